// stash::limited_backend: a memory limit the caching allocator meets as a full device.
#include <catch2/catch.hpp>

#include <vector>

#include "stash/backend/cuda_vmm_backend.hpp"
#include "stash/backend/limited_backend.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/ordering/default_ordering.hpp"

namespace {
constexpr std::size_t MiB = std::size_t{1} << 20;
using paged = stash::caching_allocator<stash::limited_backend<stash::simulated_paged_backend>>;
using segments = stash::caching_allocator<stash::limited_backend<stash::host_backend>>;
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

TEST_CASE("limited_backend: a limit below what is held refuses more and gives nothing back by itself", "[limit]") {
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
