// stash::limited_backend: a memory limit the caching allocator meets as a full device.
#include <catch2/catch.hpp>

#include <vector>

#include "stash/backend/cuda_vmm_backend.hpp"
#include "stash/backend/limited_backend.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/lock/null_lock.hpp"
#include "stash/ordering/default_ordering.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "support/page_sharing_options.hpp"

namespace {
constexpr std::size_t MiB = std::size_t{1} << 20;
using paged = stash::caching_allocator<stash::limited_backend<stash::simulated_paged_backend>>;
using segments = stash::caching_allocator<stash::limited_backend<stash::host_backend>>;
// The memory manager's device pools in stream order (a limited vmm backend), over the simulated device.
using ordered_paged = stash::caching_allocator<stash::limited_backend<stash::simulated_paged_backend>,
                                               stash::segregated_fit_buckets, stash::null_lock,
                                               stash::basic_stats, stash::simulated_ordering>;
// Aliases and remaps reach the device through the limit, as the memory manager's pools need.
static_assert(stash::aliasing_paged_backend<stash::limited_backend<stash::cuda_vmm_backend>>);
// The limit keeps the upstream's stream ordering: a limited device pool is stream-ordered as the
// plain one is.
static_assert(std::is_same_v<stash::default_ordering_t<stash::limited_backend<stash::cuda_vmm_backend>>,
                             stash::default_ordering_t<stash::cuda_vmm_backend>>);
static_assert(std::is_same_v<stash::default_ordering_t<stash::limited_backend<stash::host_backend>>,
                             stash::default_ordering_t<stash::host_backend>>);
}  // namespace

TEST_CASE("limited_backend: a paged allocator stays within the limit and reuses idle pages", "[limit]") {
  stash::caching_options one_region;  // the small blocks below share the pages of the others
  one_region.small_region = false;
  paged a(paged::backend_type(stash::simulated_paged_backend{}), one_region);
  a.backend().set_limit(8 * MiB);  // four 2 MiB pages
  void* x = a.allocate(6 * MiB);   // three pages
  CHECK(a.backend().held_bytes() == 6 * MiB);
  const auto before = a.stats();
  CHECK_THROWS_AS(a.allocate(4 * MiB), stash::out_of_memory);  // two more pages: ten MiB
  CHECK(a.stats().allocated_bytes == before.allocated_bytes);
  CHECK(a.backend().held_bytes() <= 8 * MiB);
  void* y = a.allocate(2 * MiB);  // the fourth page fits
  CHECK(a.backend().held_bytes() == 8 * MiB);
  a.deallocate(x);
  a.deallocate(y);
  a.trim_cache(0);
  CHECK(a.backend().held_bytes() == 0);

  // Pages 0 and 1 live then idle (two blocks of a page, each mapped alone, so each can move), page 2
  // live: a 6 MiB request lands above (pages 3-5). Page 3 is the fourth page held; pages 4 and 5 would
  // pass the limit, so the two idle pages move there.
  void* p0 = a.allocate(2 * MiB);
  void* p1 = a.allocate(2 * MiB);
  void* p2 = a.allocate(2 * MiB);
  a.deallocate(p0);
  a.deallocate(p1);
  const auto moves = a.page_moves();
  void* p345 = a.allocate(6 * MiB);
  CHECK(a.page_moves() == moves + 2);
  CHECK(a.backend().held_bytes() == 8 * MiB);
  CHECK(a.reserved_bytes() == 8 * MiB);
  a.deallocate(p2);
  a.deallocate(p345);
  a.backend().set_limit(stash::limited_backend<stash::simulated_paged_backend>::unlimited);
  void* big = a.allocate(64 * MiB);  // raised: the same allocator grows again
  CHECK(a.backend().held_bytes() >= 64 * MiB);
  a.deallocate(big);
  a.empty_cache();
  CHECK(a.backend().held_bytes() == 0);
}

TEST_CASE("limited_backend: a segment allocator releases its cache, retries, then throws", "[limit]") {
  segments a(stash::limited_backend<stash::host_backend>(stash::host_backend{}, 4 * MiB));
  CHECK(a.backend().limit() == 4 * MiB);
  void* x = a.allocate(3 * MiB);
  CHECK_THROWS_AS(a.allocate(3 * MiB), stash::out_of_memory);
  CHECK(a.stats().oom_retries >= 1);
  a.deallocate(x);  // cached: the next request past the limit releases it and retries
  void* y = a.allocate(3 * MiB + 512 * 1024);
  CHECK(a.backend().held_bytes() <= 4 * MiB);
  a.deallocate(y);
  a.empty_cache();
  CHECK(a.backend().held_bytes() == 0);
}

TEST_CASE("limited_backend: a limit below what is held refuses more and gives nothing back by itself",
          "[limit]") {
  paged a;
  void* x = a.allocate(10 * MiB);
  a.backend().set_limit(4 * MiB);
  CHECK(a.backend().held_bytes() == 10 * MiB);
  CHECK_THROWS_AS(a.allocate(10 * MiB), stash::out_of_memory);
  a.deallocate(x);
  a.trim_cache(0);
  CHECK(a.backend().held_bytes() == 0);
  void* y = a.allocate(4 * MiB);
  CHECK(a.backend().held_bytes() == 4 * MiB);
  a.deallocate(y);
}

TEST_CASE("limited_backend: kept page aliases pass through, and what is held counts each chunk once",
          "[limit][aliases][paged]") {
  paged a(paged::backend_type(stash::simulated_paged_backend{}), stash_test::aliasing());
  auto& limited = a.backend();
  const auto& device = limited.upstream();
  limited.set_limit(8 * MiB);  // four pages
  void* x = a.allocate(4 * MiB);
  void* guard = a.allocate(2 * MiB);
  const auto x_at = reinterpret_cast<std::uintptr_t>(x);
  a.deallocate(x);
  void* y = a.allocate(6 * MiB);  // x's two idle pages move under y and stay mapped at x: aliases
  CHECK(device.alias_calls() == 2);
  CHECK(device.aliased_pages() == 2);
  CHECK(limited.held_bytes() == device.mapped_bytes());
  CHECK(limited.held_bytes() == 8 * MiB);  // x's 2 (now y's too), the guard's, y's new one
  a.deallocate(y);
  void* x2 = a.allocate(4 * MiB);  // taken back at x with no driver call
  CHECK(reinterpret_cast<std::uintptr_t>(x2) == x_at);
  CHECK(a.alias_activations() == 2);
  CHECK(limited.held_bytes() == device.mapped_bytes());
  a.deallocate(x2);
  a.deallocate(guard);
  a.trim_cache(0);  // every mapping goes, aliases and the chunks' own
  CHECK(device.aliased_pages() == 0);
  CHECK(device.mapped_bytes() == 0);
  CHECK(limited.held_bytes() == 0);
  CHECK(device.misuses() == 0);
}

TEST_CASE("limited_backend: pending pages remapped in stream order pass through and count once",
          "[limit][remap][paged][streams]") {
  ordered_paged a(ordered_paged::backend_type(stash::simulated_paged_backend{}), stash_test::remapping());
  auto& limited = a.backend();
  const auto& device = limited.upstream();
  auto& o = a.ordering();
  const stash::stream s = o.make_stream();
  void* x = a.allocate(8 * MiB, s);
  void* guard = a.allocate(2 * MiB, s);
  a.deallocate(x, s);                    // pending on s
  void* y = a.allocate(10 * MiB, s);     // x's pages are remapped to y: s's order covers them
  CHECK(device.remap_calls() == 3);
  CHECK(device.aliased_pages() == 3);
  CHECK(limited.held_bytes() == device.mapped_bytes());
  CHECK(limited.held_bytes() == 7 * 2 * MiB);  // x's 4, the guard, y's 2 new pages: each once
  o.complete_all();
  a.deallocate(y, s);
  a.deallocate(guard, s);
  o.complete_all();
  a.empty_cache();
  CHECK(device.aliased_pages() == 0);
  CHECK(device.mapped_bytes() == 0);
  CHECK(limited.held_bytes() == 0);
  CHECK(device.misuses() == 0);
}
