// caching_options::keep_page_aliases on the simulated paged device: an idle chunk moved to a new block
// stays mapped at its old address as an inactive alias; a block placed there later takes the chunk back
// with no driver call when nothing uses it at its other address, and otherwise the alias is unmapped
// and the pages backed as without aliases. Two live blocks never share a physical page, and every
// figure is the memory the backend holds, each physical page counted once.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "support/paged_checks.hpp"
#include "support/page_sharing_options.hpp"

namespace {

using stash_test::check_counted;
using stash_test::check_emptied;

constexpr std::size_t MiB = std::size_t{1} << 20;
constexpr std::size_t page = 2 * MiB;

using host_paged = stash::simulated_caching_allocator;
using stream_paged = stash::simulated_stream_allocator;

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

using stash_test::aliasing;

/// The physical pages under [p, p + bytes).
std::vector<std::pair<std::uint32_t, std::size_t>> physical(const stash::simulated_paged_backend& b,
                                                            const void* p, std::size_t bytes) {
  std::vector<std::pair<std::uint32_t, std::size_t>> out;
  for (std::uintptr_t a = addr(p) & ~(page - 1); a < addr(p) + bytes; a += page)
    out.push_back(b.physical_page(a));
  return out;
}

/// No physical page lies under two addresses that live blocks use, and every page a live block lies on
/// is mapped with access.
void check_no_sharing(const stash::simulated_paged_backend& b,
                      const std::vector<std::pair<void*, std::size_t>>& live) {
  std::map<std::pair<std::uint32_t, std::size_t>, std::uintptr_t> used;  // physical page -> the
                                                                         // address using it
  for (const auto& [p, bytes] : live)
    for (std::uintptr_t a = addr(p) & ~(page - 1); a < addr(p) + bytes; a += page) {
      REQUIRE(b.accessible(a));
      const auto [it, fresh] = used.emplace(b.physical_page(a), a);
      REQUIRE(it->second == a);  // the same physical page under another address: shared
    }
}

/// x (2 pages) freed under a live guard page, then y (3 pages) above the guard: with the bound at the
/// live peak, x's two idle pages move to y, which maps one new page.
struct scene {
  explicit scene(stash::caching_options o) : a(stash::simulated_paged_backend{}, o) {
    x = a.allocate(2 * page);
    guard = a.allocate(page);
    x_at = addr(x);
    a.deallocate(x);
    y = a.allocate(3 * page);
  }
  host_paged a;
  void* x = nullptr;
  void* guard = nullptr;
  void* y = nullptr;
  std::uintptr_t x_at = 0;
};

}  // namespace

TEST_CASE("aliases: a move that keeps its alias counts the driver calls cuda_vmm_backend makes for it",
          "[aliases][paged]") {
  for (const bool keep : {false, true}) {
    stash::caching_options o = aliasing();
    o.keep_page_aliases = keep;
    host_paged a(stash::simulated_paged_backend{}, o);
    void* x = a.allocate(2 * page);
    void* guard = a.allocate(page);
    a.deallocate(x);
    const std::size_t before = a.backend().driver_calls();
    void* y = a.allocate(3 * page);  // x's two idle pages move under y, one page is made
    CHECK(a.page_moves() == 2);
    // A move without its alias: cuMemUnmap and cuMemMap. With it: cuMemRetainAllocationHandle, cuMemMap,
    // cuMemRelease. Then the new page (cuMemCreate, cuMemMap) and one access grant over y's three pages.
    CHECK(a.backend().driver_calls() - before == (keep ? 3 : 2) * 2 + 2 + 1);
    CHECK(a.backend().alias_calls() == (keep ? 2 : 0));
    a.deallocate(y);
    a.deallocate(guard);
  }
}

TEST_CASE(
    "aliases: a moved chunk stays mapped at its old address and is taken back there without a driver call",
    "[aliases][paged]") {
  scene sc(aliasing());
  auto& a = sc.a;
  const auto& b = a.backend();
  CHECK(a.page_moves() == 2);
  CHECK(b.aliased_pages() == 2);  // x's old pages still map the two pages now under y
  CHECK(b.mapped_bytes() == 4 * page);
  check_counted(a);
  const auto under_y = physical(b, sc.y, 3 * page);

  a.deallocate(sc.y);
  const std::size_t calls = b.driver_calls();
  void* x2 = a.allocate(2 * page);
  CHECK(addr(x2) == sc.x_at);
  CHECK(b.driver_calls() == calls);  // no map, no grant: the aliases were there
  CHECK(a.alias_activations() == 2);
  CHECK(a.alias_unmaps() == 0);
  for (const auto& physical_page : physical(b, x2, 2 * page))  // two of y's three pages
    CHECK(std::count(under_y.begin(), under_y.end(), physical_page) == 1);
  CHECK(b.accessible(sc.x_at));
  CHECK(b.accessible(sc.x_at + page));
  CHECK(b.mapped_bytes() == 4 * page);
  check_counted(a);
  a.deallocate(x2);
  a.deallocate(sc.guard);
  check_emptied(a);
}

TEST_CASE(
    "aliases: a chunk in use at its other address is not taken: the alias is unmapped, the pages backed anew",
    "[aliases][paged]") {
  scene sc(aliasing());
  auto& a = sc.a;
  const auto& b = a.backend();
  void* x2 = a.allocate(2 * page);  // y still lives on the chunks aliased at x's old pages
  CHECK(addr(x2) == sc.x_at);
  CHECK(a.alias_activations() == 0);
  CHECK(a.alias_unmaps() == 2);
  // The chunks' own mappings (at x's old pages) are gone; y's, aliases in the backend's terms, remain.
  CHECK(b.aliased_pages() == 2);
  CHECK(b.mapped_bytes() == 6 * page);
  check_no_sharing(b, {{sc.y, 3 * page}, {x2, 2 * page}, {sc.guard, page}});
  check_counted(a);
  for (void* p : {x2, sc.y, sc.guard}) a.deallocate(p);
  check_emptied(a);
}

TEST_CASE("aliases: off, a move unmaps the old address; with remap_pending_pages, invalid_option",
          "[aliases][paged]") {
  stash::caching_options o = aliasing();
  o.keep_page_aliases = false;
  scene sc(o);
  CHECK(sc.a.page_moves() == 2);
  CHECK(sc.a.backend().aliased_pages() == 0);
  CHECK(sc.a.backend().mapped_bytes() == 4 * page);
  check_counted(sc.a);
  for (void* p : {sc.y, sc.guard}) sc.a.deallocate(p);

  stash::caching_options both = aliasing();
  both.remap_pending_pages = true;
  CHECK_THROWS_AS(host_paged(stash::simulated_paged_backend{}, both), stash::invalid_option);
  CHECK_THROWS_AS(stash::check_options(both), stash::invalid_option);
}

TEST_CASE("aliases: trim_cache and empty_cache give back every mapping of a chunk", "[aliases][paged]") {
  scene sc(aliasing());
  auto& a = sc.a;
  const auto& b = a.backend();
  a.deallocate(sc.y);
  a.trim_cache(0);  // y's pages, two of them mapped at x's old pages too
  CHECK(b.aliased_pages() == 0);
  CHECK(b.mapped_bytes() == page);  // the guard's
  check_counted(a);
  void* x2 = a.allocate(2 * page);  // x's old pages: mapped anew
  CHECK(b.mapped_bytes() == 3 * page);
  check_counted(a);
  a.deallocate(x2);
  a.deallocate(sc.guard);
  check_emptied(a);
}

TEST_CASE("aliases: a chunk of several pages moves and comes back whole", "[aliases][paged]") {
  stash::caching_options o = aliasing(4);
  o.edge_pages_in_chunks = true;  // a block's own chunk may cover its edge pages
  host_paged a(stash::simulated_paged_backend{}, o);
  const auto& b = a.backend();
  void* x = a.allocate(4 * page);  // one chunk of 4
  void* guard = a.allocate(page);
  const std::uintptr_t x_at = addr(x);
  a.deallocate(x);
  void* y = a.allocate(5 * page);  // above the guard: x's chunk moves there whole, one page new
  CHECK(b.aliased_pages() == 4);
  CHECK(b.mapped_bytes() == 6 * page);
  check_counted(a);
  a.deallocate(y);
  const std::size_t calls = b.driver_calls();
  void* x2 = a.allocate(4 * page);
  CHECK(addr(x2) == x_at);
  CHECK(b.driver_calls() == calls);
  CHECK(a.alias_activations() == 1);
  check_counted(a);
  a.deallocate(x2);
  a.deallocate(guard);
  check_emptied(a);
}

TEST_CASE("aliases: a free pending on the GPU keeps its chunk from being taken at another address",
          "[aliases][paged][streams]") {
  stream_paged a(stash::simulated_paged_backend{}, aliasing());
  auto& o = a.ordering();
  const auto& b = a.backend();
  const stash::stream s = o.make_stream(), t = o.make_stream();
  void* x = a.allocate(2 * page, s);
  void* guard = a.allocate(page, s);
  const std::uintptr_t x_at = addr(x);
  a.deallocate_completed(x);
  void* y = a.allocate(3 * page, s);  // x's idle pages move above the guard
  REQUIRE(b.aliased_pages() == 2);
  a.deallocate(y, s);  // pending: work on s may still use y's pages
  void* x2 = a.allocate(2 * page, t);
  CHECK(addr(x2) == x_at);
  CHECK(a.alias_activations() == 0);  // y's chunk is not taken under x2 while s may use it
  CHECK(a.alias_unmaps() == 2);
  CHECK(physical(b, x2, 2 * page) != std::vector<std::pair<std::uint32_t, std::size_t>>(2));
  check_counted(a);
  a.deallocate(x2, t);
  a.deallocate(guard, s);
  o.complete_all();
  check_emptied(a);
}

TEST_CASE("aliases: an alias the backend refuses or fails on changes no figure", "[aliases][paged][errors]") {
  // x (2 pages) freed under a guard, then y (3 pages) above it: each of x's pages would move there as
  // an alias (the first and the second alias_pages call of the request).
  for (const std::size_t failing : {std::size_t{1}, std::size_t{2}}) {
    DYNAMIC_SECTION("out of memory on alias_pages call " << failing << ": the page is mapped anew instead") {
      host_paged a(stash::simulated_paged_backend{}, aliasing());
      auto& b = a.backend();
      void* x = a.allocate(2 * page);
      void* guard = a.allocate(page);
      a.deallocate(x);
      b.fail_alias_call(failing, false);
      void* y = a.allocate(3 * page);
      CHECK(b.aliased_pages() == 1);  // one of x's pages moved as an alias, the other did not
      CHECK(a.page_moves() == 1);
      check_counted(a);
      check_no_sharing(b, {{y, 3 * page}, {guard, page}});
      for (void* p : {y, guard}) a.deallocate(p);
      check_emptied(a);
    }
    DYNAMIC_SECTION("a driver error on alias_pages call "
                    << failing << ": the request throws it, nothing live changed") {
      host_paged a(stash::simulated_paged_backend{}, aliasing());
      auto& b = a.backend();
      void* x = a.allocate(2 * page);
      void* guard = a.allocate(page);
      a.deallocate(x);
      const auto stats_before = a.stats();
      const std::size_t reserved_before = a.reserved_bytes();
      b.fail_alias_call(failing, true);
      CHECK_THROWS_AS(a.allocate(3 * page), stash::cuda_error);
      CHECK(a.stats().allocated_bytes == stats_before.allocated_bytes);
      CHECK(a.stats().allocations == stats_before.allocations);
      // A chunk aliased before the failure was given back (a moved chunk has no access yet); the rest
      // of the memory is what it was.
      CHECK(a.reserved_bytes() <= reserved_before);
      check_counted(a);
      void* y = a.allocate(3 * page);  // the same request, now served
      check_no_sharing(b, {{y, 3 * page}, {guard, page}});
      check_counted(a);
      for (void* p : {y, guard}) a.deallocate(p);
      check_emptied(a);
    }
  }
}

TEST_CASE("aliases: a random walk never puts two live blocks on one physical page", "[aliases][paged]") {
  // Requests of up to 7 pages on a small device with every idle page moved first, freed, trimmed:
  // chunks are aliased, taken back, unmapped where in use, given back, and requests fail. After every
  // call the figures are the backend's and no physical page lies under two addresses in use.
  for (const std::size_t chunk_pages : {std::size_t{1}, std::size_t{4}}) {
    INFO("max_chunk_pages " << chunk_pages);
    stash::caching_options opts = aliasing(chunk_pages);
    opts.reserve_bytes = 256 * page;
    host_paged a(stash::simulated_paged_backend(24 * page), opts);
    const auto& b = a.backend();
    std::vector<std::pair<void*, std::size_t>> live;
    std::uint64_t state = 2024;
    auto next = [&](std::uint64_t n) {
      state = state * 6364136223846793005u + 1442695040888963407u;
      return (state >> 33) % n;
    };
    std::size_t failures = 0;
    for (int step = 0; step < 4000; ++step) {
      INFO("step " << step);
      const std::uint64_t op = next(100);
      if (op < 50 || live.empty()) {
        const std::size_t bytes = 1 + next(7 * page);
        try {
          live.emplace_back(a.allocate(bytes), bytes);
        } catch (const stash::out_of_memory&) {
          ++failures;
        }
      } else if (op < 96) {
        const std::size_t i = next(live.size());
        a.deallocate(live[i].first);
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        a.trim_cache(next(2) == 0 ? 0 : 8 * page);
      }
      REQUIRE(a.reserved_bytes() == b.mapped_bytes());
      REQUIRE(a.stats().reserved_bytes == a.reserved_bytes());
      REQUIRE(b.misuses() == 0);
      check_no_sharing(b, live);
    }
    CHECK(a.alias_activations() > 0);
    CHECK(a.alias_unmaps() > 0);
    CHECK(failures > 0);
    for (const auto& [p, bytes] : live) a.deallocate(p);
    check_emptied(a);
  }
}

TEST_CASE("aliases: streams, pending frees and completions keep every figure the backend's, and pending "
          "pages in place",
          "[aliases][paged][streams]") {
  // Besides the figures: a block freed on a stream whose event the test has not completed may still be
  // used by that stream's GPU work, so its pages must stay mapped to the same physical pages, under no
  // other address in use, until the test completes the stream (or the allocator waits on the host).
  stash::caching_options opts = aliasing(4);
  opts.pages_between_moves = 4;
  opts.reserve_bytes = 256 * page;
  stream_paged a(stash::simulated_paged_backend(24 * page), opts);
  auto& o = a.ordering();
  const auto& b = a.backend();
  const stash::stream streams[] = {o.make_stream(), o.make_stream(), o.make_stream()};
  std::vector<std::pair<void*, stash::stream>> live;
  std::vector<std::pair<void*, std::size_t>> live_bytes;
  struct pending_free {
    stash::stream s;
    void* p;
    std::size_t bytes;
    std::vector<std::pair<std::uint32_t, std::size_t>> under;  // its physical pages when freed
    int step;                                                  // when it was freed
  };
  std::vector<int> made_at;  // the step each live block was allocated at
  std::vector<pending_free> pending;
  std::size_t waits = 0, pending_checked = 0;
  std::uint64_t state = 777;
  auto next = [&](std::uint64_t n) {
    state = state * 6364136223846793005u + 1442695040888963407u;
    return (state >> 33) % n;
  };
  for (int step = 0; step < 4000; ++step) {
    INFO("step " << step);
    const std::uint64_t op = next(100);
    if (op < 45 || live.empty()) {
      const stash::stream s = streams[next(3)];
      const std::size_t bytes = 1 + next(7 * page);
      try {
        live.emplace_back(a.allocate(bytes, s), s);
        live_bytes.emplace_back(live.back().first, bytes);
        made_at.push_back(step);
      } catch (const stash::out_of_memory&) {
      }
    } else if (op < 88) {
      const std::size_t i = next(live.size());
      if (op < 80) {
        pending.push_back({live[i].second, live[i].first, live_bytes[i].second,
                           physical(b, live[i].first, live_bytes[i].second), step});
        a.deallocate(live[i].first, live[i].second);
      } else {
        // Every use of the block has completed, so has the work its stream queued before it was made:
        // the frees on that stream before then.
        a.deallocate_completed(live[i].first);
        std::erase_if(pending,
                      [&](const pending_free& f) { return f.s == live[i].second && f.step < made_at[i]; });
      }
      made_at.erase(made_at.begin() + static_cast<std::ptrdiff_t>(i));
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
      live_bytes.erase(live_bytes.begin() + static_cast<std::ptrdiff_t>(i));
    } else if (op < 96) {
      const stash::stream s = streams[next(3)];
      o.complete_stream(s);
      std::erase_if(pending, [&](const pending_free& f) { return f.s == s; });
    } else {
      a.trim_cache(next(2) == 0 ? 0 : 8 * page);
    }
    REQUIRE(a.reserved_bytes() == b.mapped_bytes());
    REQUIRE(a.stats().reserved_bytes == a.reserved_bytes());
    REQUIRE(b.misuses() == 0);
    if (o.host_waits() != waits) pending.clear(), waits = o.host_waits();  // every event waited for is done
    std::vector<std::pair<void*, std::size_t>> in_use = live_bytes;
    pending_checked += pending.size();
    for (const pending_free& f : pending) {
      REQUIRE(physical(b, f.p, f.bytes) == f.under);
      // A block reused in place on its stream is live and pending at once: the same address, no sharing.
      if (std::none_of(live_bytes.begin(), live_bytes.end(), [&](const auto& l) { return l.first == f.p; }))
        in_use.emplace_back(f.p, f.bytes);
    }
    check_no_sharing(b, in_use);
  }
  CHECK(a.alias_activations() > 0);
  CHECK(pending_checked > 1000);
  for (const auto& [p, s] : live) a.deallocate(p, s);
  o.complete_all();
  check_emptied(a);
}
