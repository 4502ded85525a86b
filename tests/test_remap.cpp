// caching_options::remap_pending_pages on the simulated paged device with simulated_ordering: a request
// on stream s that needs pages while every mapped page lies under a free block pending on s gets those
// pages mapped at its own address too (remap_pages); the old range is handed out to nobody until the
// free's event has completed, and is unmapped (unmap_alias) at the first slow path after that, with
// no host wait. Each physical page is counted once throughout.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "support/failing_heap.hpp"
#include "support/paged_checks.hpp"
#include "support/page_sharing_options.hpp"

namespace {

using stash_test::check_counted;
using stash_test::check_emptied;

constexpr std::size_t MiB = std::size_t{1} << 20;
constexpr std::size_t page = 2 * MiB;

using paged = stash::simulated_stream_allocator;

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }
bool overlap(const void* a, std::size_t an, std::uintptr_t b, std::size_t bn) {
  return addr(a) < b + bn && b < addr(a) + an;
}

using stash_test::remapping;

/// x (4 pages) freed on s with a live guard page above it, then a 10 MiB request on s placed above
/// the guard: x's pages are all under its pending free, so none is idle.
struct scene {
  explicit scene(stash::caching_options o)
      : a(stash::simulated_paged_backend{}, o), s(a.ordering().make_stream()) {
    x = a.allocate(8 * MiB, s);
    guard = a.allocate(page, s);
    a.deallocate(x, s);
    y = a.allocate(10 * MiB, s);
  }
  paged a;
  stash::stream s;
  void* x = nullptr;
  void* guard = nullptr;
  void* y = nullptr;
};

/// The scene with options o remaps nothing: y gets 5 new pages, 10 mapped in all with x's 4 and the
/// guard's.
void check_new_pages(const stash::caching_options& o) {
  scene sc(o);
  CHECK(sc.a.backend().remap_calls() == 0);
  CHECK(sc.a.backend().mapped_bytes() == 10 * page);
  sc.a.deallocate(sc.y, sc.s);
  sc.a.deallocate(sc.guard, sc.s);
}

/// f() throws the simulated backend's injected cuda_error (throw_on_remap).
template <class F>
void check_injected_failure(F&& f) {
  bool threw = false;
  try {
    f();
  } catch (const stash::cuda_error& e) {
    threw = true;
    CHECK(e.code() == 2);
  }
  CHECK(threw);
}

}  // namespace

TEST_CASE("remap: pages under a free pending on the requesting stream are mapped at the new block too",
          "[remap][paged][streams]") {
  scene sc(remapping());
  auto& a = sc.a;
  const auto& b = a.backend();
  const std::uintptr_t x = addr(sc.x);
  CHECK(addr(sc.guard) == x + 8 * MiB);
  CHECK(addr(sc.y) == x + 10 * MiB);  // above the guard: x's 8 MiB do not fit it
  // x's pages 1-3 (never its first page, which the free block's record starts on) moved to y.
  CHECK(b.remap_calls() == 3);
  CHECK(a.page_moves() == 3);
  CHECK(b.aliased_pages() == 3);
  for (std::size_t i = 1; i < 4; ++i) CHECK(b.aliased(x + i * page));
  CHECK_FALSE(b.aliased(x));
  for (std::size_t i = 0; i < 5; ++i) CHECK(b.accessible(addr(sc.y) + i * page));
  // Physical pages counted once: x's 4, the guard and y's 2 new pages, whatever is mapped twice.
  CHECK(b.mapped_bytes() == 7 * page);
  CHECK(a.reserved_bytes() == 7 * page);
  CHECK(a.stats().reserved_bytes == 7 * page);
  CHECK(b.map_calls() == 4 + 1 + 2);
  CHECK(a.ordering().host_waits() == 0);
  CHECK(b.misuses() == 0);
  a.deallocate(sc.y, sc.s);
  a.deallocate(sc.guard, sc.s);
}

TEST_CASE("remap: the old range goes to no block before its free's event completes, then is unmapped",
          "[remap][paged][streams]") {
  scene sc(remapping());
  auto& a = sc.a;
  auto& o = a.ordering();
  const auto& b = a.backend();
  const std::uintptr_t x = addr(sc.x);
  const stash::stream t = o.make_stream(), u = o.make_stream();

  // Before the event completes: s may reuse x's free block in place at once, but only its first page
  // is left free; another stream gets none of it.
  void* on_t = a.allocate(6 * MiB, t);
  CHECK_FALSE(overlap(on_t, 6 * MiB, x, 4 * page));
  void* small_on_s = a.allocate(page, sc.s);
  CHECK(small_on_s == sc.x);
  void* on_s = a.allocate(6 * MiB, sc.s);
  CHECK_FALSE(overlap(on_s, 6 * MiB, x + page, 3 * page));
  CHECK(b.aliased_pages() == 3);
  CHECK(a.reserved_bytes() == b.mapped_bytes());
  a.deallocate(on_t, t);
  a.deallocate(on_s, sc.s);
  a.deallocate(small_on_s, sc.s);
  CHECK(b.aliased_pages() == 3);

  // The event completes: the first slow path unmaps the old range (no host wait) and frees it.
  o.complete_all();
  a.trim_cache(SIZE_MAX);  // gives nothing back; reclaims and coalesces
  CHECK(b.aliased_pages() == 0);
  for (std::size_t i = 1; i < 4; ++i) CHECK_FALSE(b.aliased(x + i * page));
  CHECK(o.host_waits() == 0);
  CHECK(o.device_syncs() == 0);
  CHECK(a.reserved_bytes() == b.mapped_bytes());
  // The old range is free for every stream now: a 6 MiB request on a third stream is placed there
  // (the other free blocks of that size are pending on s and t), on pages mapped anew.
  const std::size_t maps = b.map_calls() + b.remap_calls() + b.chunk_moves() + b.move_calls();
  void* again = a.allocate(6 * MiB, u);
  CHECK(addr(again) == x + page);
  CHECK(b.map_calls() + b.remap_calls() + b.chunk_moves() + b.move_calls() > maps);
  for (std::size_t i = 1; i < 4; ++i) CHECK(b.accessible(x + i * page));
  CHECK(b.misuses() == 0);
  a.deallocate(again, u);
  a.deallocate(sc.y, sc.s);
  a.deallocate(sc.guard, sc.s);
  a.empty_cache();
  CHECK(b.mapped_bytes() == 0);
  CHECK(a.reserved_bytes() == 0);
  CHECK(b.misuses() == 0);
}

TEST_CASE("remap: empty_cache and the destructor unmap old ranges still waiting", "[remap][paged][streams]") {
  SECTION("empty_cache settles every epoch first") {
    scene sc(remapping());
    auto& a = sc.a;
    a.deallocate(sc.y, sc.s);
    a.deallocate(sc.guard, sc.s);
    CHECK(a.backend().aliased_pages() == 3);
    a.empty_cache();
    CHECK(a.backend().aliased_pages() == 0);
    CHECK(a.backend().mapped_bytes() == 0);
    CHECK(a.reserved_bytes() == 0);
    CHECK(a.backend().misuses() == 0);
  }
  SECTION("destroyed with the epoch pending") {
    auto sc = std::make_unique<scene>(remapping());
    CHECK(sc->a.backend().aliased_pages() == 3);
    sc.reset();  // the simulated backend counts nothing after this; the path must not crash or leak
  }
}

TEST_CASE("remap: only the requesting stream's pending frees, only when enabled, whole chunks",
          "[remap][paged][streams]") {
  SECTION("off by default: new pages") {
    stash::caching_options o = remapping();
    o.remap_pending_pages = false;
    check_new_pages(o);
  }
  SECTION("a free pending on another stream is not taken") {
    paged a(stash::simulated_paged_backend{}, remapping());
    auto& o = a.ordering();
    const stash::stream s = o.make_stream(), t = o.make_stream();
    void* x = a.allocate(8 * MiB, t);
    void* guard = a.allocate(page, s);
    a.deallocate(x, t);
    void* y = a.allocate(10 * MiB, s);
    CHECK(a.backend().remap_calls() == 0);
    CHECK_FALSE(overlap(y, 10 * MiB, addr(x), 8 * MiB));
    CHECK(a.backend().mapped_bytes() == 10 * page);
    a.deallocate(y, s);
    a.deallocate(guard, s);
  }
  SECTION("a free of the open epoch is not taken with remap_min_age 2") {
    stash::caching_options o = remapping();
    o.remap_min_age = 2;  // x's epoch is recorded by y's request, one epoch old then
    scene sc(o);
    CHECK(sc.a.backend().remap_calls() == 0);
    sc.a.deallocate(sc.y, sc.s);
    sc.a.deallocate(sc.guard, sc.s);
  }
  SECTION("a block of fewer than remap_min_pages pages remaps nothing") {
    stash::caching_options o = remapping();
    o.remap_min_pages = 6;  // y has 5 pages
    check_new_pages(o);
  }
  SECTION("a block of remap_min_pages pages remaps") {
    stash::caching_options o = remapping();
    o.remap_min_pages = 5;
    scene sc(o);
    CHECK(sc.a.backend().remap_calls() == 3);
    sc.a.deallocate(sc.y, sc.s);
    sc.a.deallocate(sc.guard, sc.s);
  }
  SECTION("a chunk of several pages moves whole, onto pages inside the block") {
    paged a(stash::simulated_paged_backend{}, remapping(32));
    auto& o = a.ordering();
    const stash::stream s = o.make_stream();
    // x starts off a page boundary (its first page, 0, is head's, mapped alone) and ends on one: pages
    // 1-4 are one chunk, above the first page of x's free block, where a chunk may be taken.
    void* head = a.allocate(MiB, s);
    void* x = a.allocate(9 * MiB, s);
    void* guard = a.allocate(page, s);  // page 5
    const std::uintptr_t base = addr(head);
    REQUIRE(addr(x) == base + MiB);
    CHECK(a.backend().chunk_pages(base) == 1);
    CHECK(a.backend().chunk_pages(base + page) == 4);
    a.deallocate(head, s);  // with x: pages 0-4 lie under frees pending on s, the guard's page is touched
    a.deallocate(x, s);
    // Pages 6-11: page 6 new (up to the tide), then the chunk 1-4 whole onto pages 7-10, inside the
    // block; page 11 is mapped anew (page 0, head's first page, is not taken).
    void* y = a.allocate(12 * MiB, s);
    CHECK(addr(y) == base + 12 * MiB);
    const auto& b = a.backend();
    CHECK(b.remap_calls() == 1);
    CHECK(b.aliased_pages() == 4);
    CHECK(b.aliased(base + page));
    CHECK(b.chunk_pages(addr(y) + page) == 4);
    CHECK(b.mapped_bytes() == a.reserved_bytes());
    for (std::size_t i = 0; i < 6; ++i) CHECK(b.accessible(addr(y) + i * page));
    o.complete_all();
    a.trim_cache(SIZE_MAX);
    CHECK(b.aliased_pages() == 0);
    CHECK(b.misuses() == 0);
    a.deallocate(y, s);
    a.deallocate(guard, s);
  }
}

TEST_CASE("remap: a host heap failing while a block's chunks are remapped changes no figure",
          "[remap][paged][streams][errors][heap]") {
  namespace heap = stash_test::failing_heap;
  if (!heap::can_fail()) {
    WARN("operator new is not this test's own (valgrind replaces it): no heap failure can be injected");
    return;
  }
  // The scene before y's request: x's 4 pages under its free pending on s, the guard live above them.
  // The request (10 MiB on s, 5 pages) remaps x's pages 1, 2 and 3, three chunks of one page (three
  // remap_pending_chunk_to calls, each reserving host memory), and maps 2 pages anew. Its k-th heap
  // allocation fails, for every k it reaches.
  struct world {
    paged a{stash::simulated_paged_backend{}, remapping()};
    stash::stream s = a.ordering().make_stream();
    void* x = nullptr;
    void* guard = nullptr;
    world() {
      x = a.allocate(8 * MiB, s);
      guard = a.allocate(page, s);
      a.deallocate(x, s);
    }
  };
  struct figures {
    explicit figures(const paged& a)
        : stats(a.stats()),
          reserved(a.reserved_bytes()),
          cached(a.cached_bytes()),
          page_moves(a.page_moves()),
          mapped(a.backend().mapped_bytes()),
          aliased(a.backend().aliased_pages()) {
      a.backend().for_each_chunk([&](std::uintptr_t at, std::size_t n) { chunks.emplace_back(at, n); });
    }
    stash::stats_snapshot stats;
    std::size_t reserved, cached;
    std::uint64_t page_moves;
    std::size_t mapped, aliased;
    std::vector<std::pair<std::uintptr_t, std::size_t>> chunks;  // what the backend maps, and where
  };
  // Every figure a world holds is the memory the backend holds, counted once (check_counted); and it
  // all goes back.
  auto tear_down = [&](world& w, void* y) {
    if (y) w.a.deallocate(y, w.s);
    w.a.deallocate(w.guard, w.s);
    w.a.ordering().complete_all();
    check_emptied(w.a);
  };

  world twin;  // never sees a failure
  void* twin_y = twin.a.allocate(10 * MiB, twin.s);
  REQUIRE(twin.a.backend().remap_calls() == 3);  // the path under test: three chunks remapped
  const figures twin_after(twin.a);

  std::size_t failures = 0, in_remaps = 0;
  for (std::size_t k = 1;; ++k) {
    INFO("heap allocation " << k << " of the request fails");
    world w;
    const figures before(w.a);
    const std::size_t remaps_before = w.a.backend().remap_calls();
    void* y = nullptr;
    bool threw = false;
    heap::arm(k);
    try {
      y = w.a.allocate(10 * MiB, w.s);
    } catch (const std::bad_alloc&) {  // stash::out_of_memory is one too; none is expected here
      threw = true;
    }
    const bool failed = heap::disarm();
    if (!failed) {  // the request makes fewer than k heap allocations: every one has failed once
      REQUIRE_FALSE(threw);
      tear_down(w, y);
      break;
    }
    ++failures;
    const std::size_t remapped = w.a.backend().remap_calls() - remaps_before;  // in this call
    INFO("threw: " << threw << ", chunks remapped in the call: " << remapped);
    // The failure hit a remap's host memory: the call threw after remapping a chunk (as it did before
    // the fix), or it went on (only a remap's host memory is given up in this request).
    if (!threw || remapped > 0) ++in_remaps;
    if (threw) {
      // A call that fails leaves every pool and counter as it was (docs/design.md, "A call that
      // fails": nothing here is an out-of-memory retry), and the backend maps what it mapped.
      const figures after(w.a);
      CHECK(after.stats.reserved_bytes == before.stats.reserved_bytes);
      CHECK(after.stats.backend_frees == before.stats.backend_frees);
      CHECK(after.stats == before.stats);
      CHECK(after.reserved == before.reserved);
      CHECK(after.cached == before.cached);
      CHECK(after.page_moves == before.page_moves);
      CHECK(after.mapped == before.mapped);
      CHECK(after.aliased == before.aliased);
      CHECK(after.chunks == before.chunks);
      check_counted(w.a);
      // The allocator still works, and holds no more than the twin that never failed.
      y = w.a.allocate(10 * MiB, w.s);
      CHECK(w.a.reserved_bytes() <= twin_after.reserved);
    } else {
      // The failure was absorbed (the page whose remap had no host memory is mapped anew): the
      // request is served, and here x's chunks still back the block's later pages, so it holds what
      // the twin holds, each physical page counted once.
      REQUIRE(y != nullptr);
      CHECK(w.a.stats().allocated_bytes == twin_after.stats.allocated_bytes);
      CHECK(w.a.reserved_bytes() == twin_after.reserved);
      CHECK(w.a.page_moves() == twin_after.page_moves);
    }
    check_counted(w.a);
    for (std::size_t i = 0; i < 5; ++i) CHECK(w.a.backend().accessible(addr(y) + i * page));
    tear_down(w, y);
  }
  CHECK(failures > 0);
  // Each of the three remaps asks the heap for room in remapped_ before it remaps: failures there
  // (k = 5, 6, 7 here), the later two after a chunk had been remapped for the request. Before the
  // fix the call threw at k = 6 and 7 and gave those chunks back at their new addresses: reserved
  // bytes 8 and 6 MiB where they had been 10, backend_frees 1 and 2 higher.
  CHECK(in_remaps >= 2);
  tear_down(twin, twin_y);
}

TEST_CASE("remap: a request failing after remapping chunks counts their memory until the aliases go",
          "[remap][paged][streams][errors]") {
  // The scene's first steps, then the device is full (5 pages: x's 4 under its free pending on s,
  // the guard's). The request (10 MiB on s, 5 pages, over the lean bound from its first page on)
  // remaps x's pages 1-3, cannot map a fourth page, waits for x's free (the out-of-memory retry),
  // moves x's page 0 in, cannot map a fifth and fails. The chunks moved in are given back at their
  // new addresses: x's page 0 goes, the memory of pages 1-3 stays held through the aliases at x
  // until those are unmapped.
  stash::caching_options opts = remapping();
  opts.max_held_over_live = 0.5;  // over the bound from y's first page on: its pages are remapped first
  paged a(stash::simulated_paged_backend{}, opts);
  auto& o = a.ordering();
  const auto& b = a.backend();
  const stash::stream s = o.make_stream();
  void* x = a.allocate(8 * MiB, s);
  void* guard = a.allocate(page, s);
  a.deallocate(x, s);
  a.backend().set_capacity(5 * page);
  REQUIRE(b.mapped_bytes() == 5 * page);
  const stash::stats_snapshot before = a.stats();
  const std::uint64_t moves_before = a.page_moves();

  CHECK_THROWS_AS(a.allocate(10 * MiB, s), stash::out_of_memory);
  REQUIRE(b.remap_calls() == 3);  // the path under test: x's pages 1-3 remapped...
  REQUIRE(b.chunk_moves() + b.move_calls() == 1);  // ...and x's page 0 moved, after the wait
  REQUIRE(o.host_waits() + o.device_syncs() > 0);
  CHECK(a.page_moves() == moves_before + 4);  // moves made, driver calls and all
  CHECK(b.aliased_pages() == 3);
  // Held now: the guard's page, and x's pages 1-3 through their aliases; x's page 0 went back.
  CHECK(b.mapped_bytes() == 4 * page);
  check_counted(a);
  stash::stats_snapshot expected = before;
  expected.reserved_bytes -= page;
  expected.cached_bytes -= page;
  expected.backend_frees += 1;
  expected.oom_retries += 1;
  CHECK(a.stats().backend_frees == expected.backend_frees);
  CHECK(a.stats().oom_retries == expected.oom_retries);
  CHECK(a.stats() == expected);

  // x's free has completed: the first slow path unmaps the aliases, and their memory goes.
  o.complete_all();
  a.trim_cache(SIZE_MAX);
  CHECK(b.aliased_pages() == 0);
  CHECK(b.mapped_bytes() == page);
  check_counted(a);
  CHECK(a.stats().backend_frees == expected.backend_frees + 3);
  a.deallocate(guard, s);
  check_emptied(a);
}

TEST_CASE("remap: a remap that throws leaves the chunks remapped before it counted until their aliases go",
          "[remap][paged][streams][errors]") {
  // The scene's first steps, then y's request (10 MiB on s, 5 pages) remaps x's pages 3, 2 and 1, three
  // chunks of one page (one remap_pages call each, the highest first), onto y's first three pages; the
  // k-th of those calls throws, as cuda_vmm_backend's does when the driver fails for a reason other than
  // memory. The error reaches the caller as it was thrown. The chunks remapped before it are given back at
  // y's addresses (no access was granted there yet), and their memory stays held, and counted, through
  // their aliases at x until x's free completes; nothing else is held.
  const std::size_t k = GENERATE(as<std::size_t>{}, 1, 2, 3);
  INFO("remap_pages call " << k << " of the request throws");
  paged a(stash::simulated_paged_backend{}, remapping());
  auto& o = a.ordering();
  const auto& b = a.backend();
  const stash::stream s = o.make_stream();
  void* x = a.allocate(8 * MiB, s);
  void* guard = a.allocate(page, s);
  a.deallocate(x, s);
  REQUIRE(b.mapped_bytes() == 5 * page);
  const stash::stats_snapshot before = a.stats();

  a.backend().throw_on_remap(k);
  check_injected_failure([&] { (void)a.allocate(10 * MiB, s); });
  REQUIRE(b.remap_calls() == k);  // the path under test: k - 1 chunks remapped, then the throw
  CHECK(b.aliased_pages() == k - 1);
  for (std::size_t i = 1; i < k; ++i) CHECK(b.aliased(addr(x) + (4 - i) * page));
  CHECK(b.mapped_bytes() == 5 * page);  // x's 4 pages (those remapped through their aliases), the guard's
  check_counted(a);
  CHECK(a.stats() == before);  // nothing released: the aliases hold the remapped chunks' memory
  CHECK(o.host_waits() + o.device_syncs() == 0);

  SECTION("the aliases go when x's free completes, and their memory with them") {
    o.complete_all();
    a.trim_cache(SIZE_MAX);
    CHECK(b.aliased_pages() == 0);
    CHECK(b.mapped_bytes() == (5 - (k - 1)) * page);
    check_counted(a);
    CHECK(a.stats().backend_frees == before.backend_frees + (k - 1));
  }
  // The same request again, with no failure: it is served, each physical page counted once.
  void* y = a.allocate(10 * MiB, s);
  CHECK(addr(y) == addr(x) + 10 * MiB);  // above the guard, as the failed one was to be
  for (std::size_t i = 0; i < 5; ++i) CHECK(b.accessible(addr(y) + i * page));
  check_counted(a);
  a.deallocate(y, s);
  a.deallocate(guard, s);
  check_emptied(a);
}

TEST_CASE("remap: a remap that throws for a block of chunks of several pages keeps the figures",
          "[remap][paged][streams][errors]") {
  // x's 16 MiB (8 pages) are mapped as two chunks of 4 (max_chunk_pages 4) above head's page; x is freed
  // pending on s, and a 24 MiB request on s above the guard remaps x's two chunks whole (they fit inside
  // the block), the first then the second. The second remap throws: the first chunk goes back at the new
  // block's address and its memory stays counted through its alias at x until x's free completes.
  paged a(stash::simulated_paged_backend{}, remapping(4));
  auto& o = a.ordering();
  const auto& b = a.backend();
  const stash::stream s = o.make_stream();
  void* head = a.allocate(page, s);
  void* x = a.allocate(16 * MiB, s);
  void* guard = a.allocate(page, s);
  REQUIRE(addr(x) == addr(head) + page);
  REQUIRE(b.chunk_pages(addr(x)) == 4);
  REQUIRE(b.chunk_pages(addr(x) + 4 * page) == 4);
  a.deallocate(head, s);
  a.deallocate(x, s);
  const std::size_t mapped = b.mapped_bytes();
  const stash::stats_snapshot before = a.stats();

  a.backend().throw_on_remap(2);
  check_injected_failure([&] { (void)a.allocate(24 * MiB, s); });
  REQUIRE(b.remap_calls() == 2);  // the path under test: one chunk remapped, the second remap threw
  CHECK(b.aliased_pages() == 4);
  CHECK(b.mapped_bytes() == mapped);
  check_counted(a);
  CHECK(a.stats() == before);

  void* y = a.allocate(24 * MiB, s);
  for (std::size_t i = 0; i < 12; ++i) CHECK(b.accessible(addr(y) + i * page));
  check_counted(a);
  o.complete_all();
  a.trim_cache(SIZE_MAX);
  CHECK(b.aliased_pages() == 0);
  check_counted(a);
  a.deallocate(y, s);
  a.deallocate(guard, s);
  check_emptied(a);
}

TEST_CASE("remap: a remapped chunk given back while its alias waits counts its memory until the alias goes",
          "[remap][paged][streams]") {
  // y, on x's remapped pages 1-3, is freed as completed (deallocate_completed) while x's free is still
  // pending: y's pages are idle, and trim_cache gives them back at y's address; x's aliases keep the
  // memory of pages 1-3 until x's free completes.
  scene sc(remapping());
  auto& a = sc.a;
  auto& o = a.ordering();
  const auto& b = a.backend();
  REQUIRE(b.remap_calls() == 3);
  a.deallocate_completed(sc.y);
  a.trim_cache(0);
  REQUIRE(b.aliased_pages() == 3);  // x's free is pending: the aliases wait
  CHECK(b.chunk_pages(addr(sc.y) + page) == 0);  // y's pages went back
  CHECK(b.mapped_bytes() == 5 * page);  // x's 4 (pages 1-3 through the aliases) and the guard's
  check_counted(a);
  o.complete_all();
  a.trim_cache(0);
  CHECK(b.aliased_pages() == 0);
  CHECK(b.mapped_bytes() == page);  // the guard's
  check_counted(a);
  a.deallocate(sc.guard, sc.s);
  check_emptied(a);
}

TEST_CASE("remap: a pending chunk never backs an edge page the new block shares with a neighbour",
          "[remap][paged][streams]") {
  // x and x2 (4 pages each) freed on s under live guards, then y (4.5 pages) on s above them: x's and
  // x2's pages 1-3 could back all five of y's pages, but y's last page is shared with what comes after
  // it, here z on stream t, which needs no page backed. Work s queued before the frees may still use
  // those chunks at their old addresses, so only y's four whole pages are remapped and the last one is
  // mapped anew; z's memory is no chunk of x's or x2's (the fuzz harness's physical-sharing check
  // found z on one: tests/fuzz/corpus/f31867647d9f241dcef782a39ed00ddca42d987a).
  paged a(stash::simulated_paged_backend{}, remapping());
  auto& o = a.ordering();
  const auto& b = a.backend();
  const stash::stream s = o.make_stream(), t = o.make_stream();
  void* x = a.allocate(8 * MiB, s);
  void* guard = a.allocate(page, s);
  void* x2 = a.allocate(8 * MiB, s);
  void* guard2 = a.allocate(page, s);
  a.deallocate(x, s);
  a.deallocate(x2, s);
  void* y = a.allocate(9 * MiB, s);
  REQUIRE(addr(y) == addr(guard2) + page);  // neither free block fits it
  CHECK(b.remap_calls() == 4);
  CHECK(b.aliased_pages() == 4);
  CHECK(b.mapped_bytes() == 11 * page);  // x's and x2's 8, the guards' 2, y's last page
  void* z = a.allocate(MiB, t);
  REQUIRE(addr(z) == addr(y) + 9 * MiB);  // on y's last page, mapped already
  for (const void* pending : {x, x2})
    for (std::size_t i = 0; i < 4; ++i)
      CHECK(b.physical_page(addr(z)) != b.physical_page(addr(pending) + i * page));
  check_counted(a);
  a.deallocate(z, t);
  a.deallocate(y, s);
  a.deallocate(guard, s);
  a.deallocate(guard2, s);
  o.complete_all();
  check_emptied(a);
}

TEST_CASE("remap: a remapped chunk moved or remapped again while its alias waits is counted once",
          "[remap][paged][streams]") {
  // The scene, then y's pages (x's pages 1-3 remapped, 2 new) serve another block while x's aliases
  // wait; whatever happens to them, the arena's figures are what the backend holds.
  scene sc(remapping());
  auto& a = sc.a;
  auto& o = a.ordering();
  const auto& b = a.backend();
  REQUIRE(b.remap_calls() == 3);
  void* low = a.allocate(page, sc.s);     // x's first page, the part of its free block left free
  void* guard2 = a.allocate(page, sc.s);  // above y: a larger block cannot take y's place
  REQUIRE(low == sc.x);
  REQUIRE(addr(guard2) == addr(sc.y) + 10 * MiB);
  SECTION("moved to another block, then given back") {
    a.deallocate_completed(sc.y);  // y's pages are idle; x's free is still pending
    const std::size_t moves = b.chunk_moves();
    void* z = a.allocate(12 * MiB, sc.s);
    REQUIRE(b.chunk_moves() > moves);  // y's idle chunks moved under z, x's aliases among them
    REQUIRE(b.aliased_pages() == 3);
    check_counted(a);
    a.deallocate_completed(z);
    a.trim_cache(0);  // z's pages go back at z; those of x's pages 1-3 stay held through the aliases
    REQUIRE(b.aliased_pages() == 3);
    CHECK(b.mapped_bytes() >= 4 * page);
    check_counted(a);
    o.complete_all();
    a.trim_cache(0);
    CHECK(b.aliased_pages() == 0);
    check_counted(a);
  }
  SECTION("remapped again from y's free, then given back") {
    a.deallocate(sc.y, sc.s);  // pending on s, as x's free still is
    void* w = a.allocate(12 * MiB, sc.s);  // above y: no idle page, y's chunks are remapped under w
    REQUIRE(addr(w) == addr(guard2) + page);
    REQUIRE(b.remap_calls() == 3 + 4);  // y's pages 6-9, never its first
    REQUIRE(b.aliased_pages() == 3 + 4);  // x's pages 1-3 have aliases at x and at y now
    check_counted(a);
    a.deallocate_completed(w);
    a.trim_cache(0);
    check_counted(a);
    o.complete_all();
    a.trim_cache(0);
    CHECK(b.aliased_pages() == 0);
    check_counted(a);
  }
  a.deallocate(guard2, sc.s);
  a.deallocate(low, sc.s);
  a.deallocate(sc.guard, sc.s);
  check_emptied(a);
}

TEST_CASE("remap: a random walk keeps every figure what the backend holds", "[remap][paged][streams]") {
  // Requests on three streams on a small device, freed pending, freed completed, trimmed, with events
  // completing stream by stream: remapped chunks get moved, remapped again and given back while their
  // aliases wait, and requests fail, out of memory or (`throwing`) with a remap_pages that throws in
  // one request of four. After every call the arena's figures are the backend's.
  for (const auto& [chunk_pages, throwing] :
       {std::pair{std::size_t{1}, false}, std::pair{std::size_t{4}, false}, std::pair{std::size_t{1}, true},
        std::pair{std::size_t{4}, true}}) {
    INFO("max_chunk_pages " << chunk_pages << ", remaps throwing " << throwing);
    stash::caching_options opts = remapping(chunk_pages);
    if (chunk_pages > 1) opts.pages_between_moves = 4;  // runs of new pages between moves, mapped in chunks
    opts.reserve_bytes = 256 * page;
    paged a(stash::simulated_paged_backend(24 * page), opts);
    auto& o = a.ordering();
    const auto& b = a.backend();
    const stash::stream streams[] = {o.make_stream(), o.make_stream(), o.make_stream()};
    std::vector<std::pair<void*, stash::stream>> live;
    std::uint64_t state = 12345;
    auto next = [&](std::uint64_t n) {
      state = state * 6364136223846793005u + 1442695040888963407u;
      return (state >> 33) % n;
    };
    std::uint64_t throw_state = 777;  // apart from `state`: the walk's calls are the same either way
    std::size_t failures = 0, throws = 0;
    for (int step = 0; step < 4000; ++step) {
      INFO("step " << step);
      const std::uint64_t op = next(100);
      if (op < 45 || live.empty()) {
        const stash::stream s = streams[next(3)];
        throw_state = throw_state * 6364136223846793005u + 1442695040888963407u;
        if (throwing && (throw_state >> 33) % 4 == 0) a.backend().throw_on_remap(1 + (throw_state >> 40) % 3);
        try {
          live.emplace_back(a.allocate(1 + next(7 * page), s), s);
        } catch (const stash::out_of_memory&) {
          ++failures;
        } catch (const stash::cuda_error&) {
          ++throws;
        }
        a.backend().throw_on_remap(0);  // none left over for a later request
      } else if (op < 80) {
        const std::size_t i = next(live.size());
        a.deallocate(live[i].first, live[i].second);
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
      } else if (op < 88) {
        const std::size_t i = next(live.size());
        a.deallocate_completed(live[i].first);
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
      } else if (op < 96) {
        o.complete_stream(streams[next(3)]);
      } else {
        a.trim_cache(next(2) == 0 ? 0 : 8 * page);
      }
      REQUIRE(a.reserved_bytes() == b.mapped_bytes());
      REQUIRE(a.stats().reserved_bytes == a.reserved_bytes());
      REQUIRE(b.misuses() == 0);
    }
    CHECK(b.remap_calls() > 0);
    CHECK(failures > 0);
    CHECK((throws > 0) == throwing);
    for (const auto& [p, s] : live) a.deallocate(p, s);
    check_emptied(a);
  }
}
