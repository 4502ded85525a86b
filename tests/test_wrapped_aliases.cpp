// Kept aliases and remapped chunks through the test wrappers: failing_backend and checked_backend pass
// remap_pages, unmap_alias and alias_pages on when their upstream has them, failing_backend fails them
// as it fails a map (out of memory: false; an error: a thrown cuda_error), and both count the memory
// held as the device does, a chunk mapped at several addresses once, until its last mapping goes.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/lock/null_lock.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "stash/stats/basic_stats.hpp"
#include "stash/testing/failing_backend.hpp"
#include "support/checked_backend.hpp"
#include "support/page_sharing_options.hpp"

namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;
constexpr std::size_t page = 2 * MiB;

using failing_pages = stash::failing_backend<stash::simulated_paged_backend>;
using checked_pages = stash_test::checked_backend<stash::simulated_paged_backend>;
using failing_paged = stash::caching_allocator<failing_pages, stash::segregated_fit_buckets, stash::null_lock,
                                               stash::basic_stats>;
using checked_stream_paged =
    stash::caching_allocator<checked_pages, stash::segregated_fit_buckets, stash::null_lock,
                             stash::basic_stats, stash::simulated_ordering>;

static_assert(stash::aliasing_paged_backend<failing_pages>);
static_assert(stash::aliasing_paged_backend<checked_pages>);
// A wrapper claims no call its upstream lacks.
static_assert(!stash::chunked_paged_backend<stash::failing_backend<
                  stash_test::checked_backend<stash::simulated_paged_backend,
                                              stash_test::checked_calls::pages_only>>>);

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

using stash_test::aliasing;

/// What the allocator, the failing wrapper and the device hold agree, aliases counted once.
void check_held(const failing_paged& a) {
  CHECK(a.reserved_bytes() == a.backend().upstream().mapped_bytes());
  CHECK(a.backend().held_bytes() == a.reserved_bytes());
  CHECK(a.stats().reserved_bytes == a.reserved_bytes());
  CHECK(a.backend().upstream().misuses() == 0);
}

/// x (2 pages) freed under a live guard page: a 3-page request then goes above the guard; its first
/// page is mapped anew (backend call 1 of the request: the bound at the live peak is not reached yet),
/// and its next two take x's idle pages as aliases (calls 2 and 3).
struct failing_scene {
  failing_scene() : a(failing_pages{}, aliasing()) {
    void* x = a.allocate(2 * page);
    guard = a.allocate(page);
    a.deallocate(x);
  }
  failing_paged a;
  void* guard = nullptr;
};

void empty_and_check(failing_paged& a) {
  a.empty_cache();
  CHECK(a.backend().held_bytes() == 0);
  CHECK(a.backend().upstream().mapped_bytes() == 0);
  CHECK(a.backend().upstream().aliased_pages() == 0);
  check_held(a);
}

}  // namespace

TEST_CASE("wrapped aliases: failing_backend passes alias_pages on, one call each, memory counted once",
          "[aliases][paged][wrappers]") {
  failing_scene sc;
  auto& a = sc.a;
  const std::size_t calls = a.backend().calls();
  void* y = a.allocate(3 * page);
  CHECK(addr(y) == addr(sc.guard) + page);
  CHECK(a.backend().calls() - calls == 3);  // two aliases and a new page
  CHECK(a.backend().upstream().alias_calls() == 2);
  CHECK(a.backend().upstream().aliased_pages() == 2);
  CHECK(a.page_moves() == 2);
  CHECK(a.backend().held_bytes() == 4 * page);  // x's two pages, the guard, one new page
  check_held(a);
  a.deallocate(y);
  a.trim_cache(0);  // y's chunks go with their aliases at x's old pages
  CHECK(a.backend().held_bytes() == page);
  check_held(a);
  a.deallocate(sc.guard);
  empty_and_check(a);
}

TEST_CASE("wrapped aliases: an alias failing_backend fails for memory is mapped anew",
          "[aliases][paged][wrappers][errors]") {
  for (const std::size_t failing : {std::size_t{2}, std::size_t{3}}) {
    DYNAMIC_SECTION("backend call " << failing << " of the request, an alias, out of memory") {
      failing_scene sc;
      auto& a = sc.a;
      a.backend().fail_call(failing);
      void* y = a.allocate(3 * page);
      CHECK(addr(y) == addr(sc.guard) + page);
      CHECK(a.backend().failures() == 1);
      CHECK(a.backend().upstream().alias_calls() == 1);  // the failed one never reached the device
      CHECK(a.backend().upstream().aliased_pages() == 1);
      CHECK(a.page_moves() == 1);
      // One of x's pages moved under y as an alias; y's two other pages are new, x's other page idle.
      CHECK(a.backend().held_bytes() == 5 * page);
      check_held(a);
      a.deallocate(y);
      a.deallocate(sc.guard);
      empty_and_check(a);
    }
  }
}

TEST_CASE("wrapped aliases: an alias failing_backend throws on reaches the caller, nothing live changed",
          "[aliases][paged][wrappers][errors]") {
  for (const std::size_t failing : {std::size_t{2}, std::size_t{3}}) {
    DYNAMIC_SECTION("backend call " << failing << " of the request, an alias, throws") {
      failing_scene sc;
      auto& a = sc.a;
      const auto stats_before = a.stats();
      const std::size_t reserved_before = a.reserved_bytes();
      a.backend().throw_on_call(failing);
      bool threw = false;
      try {
        (void)a.allocate(3 * page);
      } catch (const stash::cuda_error& e) {
        threw = true;
        CHECK(e.code() == 2);
      }
      CHECK(threw);
      CHECK(a.backend().failures() == 0);  // a throw is no out-of-memory answer
      CHECK(a.backend().upstream().alias_calls() == failing - 2);  // the throwing one never
                                                                   // reached the device
      CHECK(a.stats().allocated_bytes == stats_before.allocated_bytes);
      CHECK(a.stats().requested_bytes == stats_before.requested_bytes);
      CHECK(a.stats().allocations == stats_before.allocations);
      CHECK(a.stats().deallocations == stats_before.deallocations);
      // The page mapped for the request went back, and so did a chunk aliased before the throw, its
      // alias at x's old page with it (a moved chunk has no access yet): one of x's idle pages.
      CHECK(a.reserved_bytes() == reserved_before - (failing - 2) * page);
      CHECK(a.backend().upstream().aliased_pages() == 0);
      check_held(a);
      void* y = a.allocate(3 * page);  // the same request, now served where it was to go
      CHECK(addr(y) == addr(sc.guard) + page);
      check_held(a);
      a.deallocate(y);
      a.deallocate(sc.guard);
      empty_and_check(a);
    }
  }
}

TEST_CASE("wrapped aliases: failing_backend holds an aliased chunk until its last mapping goes, in any order",
          "[aliases][paged][wrappers]") {
  failing_pages b;
  const std::uintptr_t base = b.reserve(8 * page);
  REQUIRE(b.map_pages(base, 2));
  REQUIRE(b.alias_pages(base, base + 2 * page, 2));
  REQUIRE(b.alias_pages(base + 2 * page, base + 4 * page, 2));  // an alias of the alias
  CHECK(b.held_bytes() == 2 * page);
  CHECK(b.upstream().mapped_bytes() == 2 * page);
  b.unmap_pages(base, 2);  // the chunk's own mapping first: the aliases still map its memory
  CHECK(b.held_bytes() == 2 * page);
  b.unmap_alias(base + 4 * page, 2);
  CHECK(b.held_bytes() == 2 * page);
  b.unmap_alias(base + 2 * page, 2);
  CHECK(b.held_bytes() == 0);
  CHECK(b.upstream().mapped_bytes() == 0);
  CHECK(b.upstream().misuses() == 0);
  CHECK(b.calls() == 3);  // the map and the two aliases
}

TEST_CASE("wrapped aliases: checked_backend checks remaps, aliases and their unmaps",
          "[aliases][paged][wrappers]") {
  auto ledger = std::make_shared<stash_test::backend_ledger>();
  checked_pages b(ledger);
  const std::uintptr_t base = b.reserve(8 * page);
  REQUIRE(b.map_pages(base, 2));
  REQUIRE(b.remap_pages(base, base + 2 * page, 2));  // base is the alias now
  REQUIRE(b.alias_pages(base + 2 * page, base + 4 * page, 2));
  CHECK(ledger->held_bytes == 2 * page);
  CHECK(ledger->aliases.size() == 2);
  CHECK(ledger->pages.size() == 6);
  CHECK(ledger->misuses == 0);

  SECTION("an alias is no chunk's own mapping: unmapping or moving it as one is a misuse") {
    b.unmap_pages(base, 2);
    CHECK(ledger->misuses == 1);
    CHECK(ledger->held_bytes == 2 * page);
  }
  SECTION("unmap_alias of a chunk's own mapping, or of another length, is a misuse") {
    b.unmap_alias(base + 2 * page, 2);
    b.unmap_alias(base, 1);
    CHECK(ledger->misuses == 2);
    CHECK(ledger->pages.size() == 6);
  }
  SECTION("aliasing onto mapped pages is a misuse") {
    CHECK_FALSE(b.alias_pages(base, base + 4 * page, 2));  // the device refuses it too
    CHECK(ledger->misuses == 1);
    CHECK(ledger->aliases.size() == 2);
  }
  SECTION("the memory goes with the last mapping, whichever it is") {
    b.unmap_pages(base + 2 * page, 2);
    b.unmap_alias(base, 2);
    CHECK(ledger->held_bytes == 2 * page);
    b.unmap_alias(base + 4 * page, 2);
    CHECK(ledger->held_bytes == 0);
    CHECK(ledger->pages.empty());
    CHECK(ledger->aliases.empty());
    CHECK(ledger->misuses == 0);
  }
  CHECK(b.upstream().misuses() == ledger->misuses);  // the device found the same
}

TEST_CASE("wrapped aliases: a stream-ordered allocator over checked_backend remaps a pending chunk, checked",
          "[remap][paged][streams][wrappers]") {
  auto ledger = std::make_shared<stash_test::backend_ledger>();
  {
    checked_stream_paged a(checked_pages(ledger), stash_test::remapping());
    const stash::stream s = a.ordering().make_stream();
    void* x = a.allocate(8 * MiB, s);  // 4 pages
    void* guard = a.allocate(page, s);
    a.deallocate(x, s);  // pending on s: no page of x is idle
    void* y = a.allocate(10 * MiB, s);  // above the guard: x's pages 1-3 remapped there, 2 new
    CHECK(addr(y) == addr(guard) + page);
    CHECK(a.backend().upstream().remap_calls() == 3);
    CHECK(ledger->aliases.size() == 3);
    CHECK(ledger->held_bytes == 7 * page);  // x's 4, the guard, y's 2 new: each physical page once
    CHECK(ledger->held_bytes == a.reserved_bytes());
    CHECK(ledger->held_bytes == a.backend().upstream().mapped_bytes());
    a.deallocate(y, s);
    a.deallocate(guard, s);
    a.ordering().complete_all();
    a.empty_cache();  // the old range's aliases go once x's free has completed
    CHECK(ledger->aliases.empty());
    CHECK(ledger->held_bytes == 0);
    CHECK(a.backend().upstream().aliased_pages() == 0);
  }
  CHECK(ledger->misuses == 0);
  CHECK(ledger->pages.empty());
}
