// Growing in chunks (chunked_paged_backend, caching_options::max_chunk_pages): a new block's pages are
// mapped as few physical allocations, except an edge page that a neighbouring block may share (the
// block starts, or ends, off a page boundary): that one is mapped alone. A chunk goes back and moves
// away only whole. On the simulated backend, which counts the driver calls cuda_vmm_backend would make
// (two per physical allocation, cuMemCreate and cuMemMap, and one cuMemSetAccess for all the pages a
// block maps or moves in; two per move of a chunk or a page alone, cuMemUnmap and cuMemMap; two per
// release).
#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <vector>

#include "stash/backend/limited_backend.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/lock/null_lock.hpp"
#include "stash/testing/failing_backend.hpp"

namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;
constexpr std::size_t page = 2 * MiB;
using paged =
    stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets, stash::null_lock>;
using limited = stash::caching_allocator<stash::limited_backend<stash::simulated_paged_backend>,
                                         stash::segregated_fit_buckets, stash::null_lock>;
using failing = stash::caching_allocator<stash::failing_backend<stash::simulated_paged_backend>,
                                         stash::segregated_fit_buckets, stash::null_lock>;

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

stash::caching_options chunks_of(std::size_t pages) {
  stash::caching_options o;
  o.max_chunk_pages = pages;
  return o;
}

/// No slack and no ration: every page backed past the budget may move an idle page.
stash::caching_options moving_every_page() {
  stash::caching_options o;
  o.page_slack = 0;
  o.pages_between_moves = 0;
  return o;
}

/// The simulated device, whose access grants and moves can each be refused as the driver refuses a
/// mapping out of memory.
struct refusing_backend : stash::simulated_paged_backend {
  refusing_backend() : simulated_paged_backend(unlimited) {}
  bool refuse_access = false, refuse_moves = false;
  std::size_t refused_moves = 0;
  bool set_access(std::uintptr_t a, std::size_t n) noexcept {
    if (refuse_access) return false;
    return simulated_paged_backend::set_access(a, n);
  }
  bool move_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n) noexcept {
    if (refuse_moves) return ++refused_moves, false;
    return simulated_paged_backend::move_pages(from, to, n);
  }
};
static_assert(stash::chunked_paged_backend<refusing_backend>);
using refusing = stash::caching_allocator<refusing_backend, stash::segregated_fit_buckets, stash::null_lock>;

// edge_pages_in_chunks off: the edge pages a neighbour may share are mapped one page each.
stash::caching_options edges_alone() {
  stash::caching_options options;
  options.edge_pages_in_chunks = false;
  return options;
}

}  // namespace

TEST_CASE(
    "chunks: a block's edge pages join its chunk, and a neighbour on one keeps the chunk until it is freed",
    "[paged][chunks]") {
  paged a;  // edge_pages_in_chunks: the default
  void* head = a.allocate(3 * MiB / 2);  // the arena's first block: page 0, a run of one page
  // From 1.5 MiB to 19.5 MiB: pages 0-9, page 0 mapped already under head. The new pages 1-9 are one
  // chunk, page 9 with them although the next block may share it.
  void* p = a.allocate(18 * MiB);
  const std::uintptr_t base = addr(head);
  REQUIRE(addr(p) == base + 3 * MiB / 2);
  const auto& b = a.backend();
  CHECK(b.chunk_pages(base) == 1);
  CHECK(b.chunk_pages(base + page) == 9);
  CHECK(b.mapped_bytes() == 10 * page);
  CHECK(b.driver_calls() == (2 + 1) + (2 + 1));  // per block: one allocation created and mapped, one grant
  for (std::size_t i = 0; i < 10; ++i) CHECK(b.accessible(base + i * page));
  CHECK(a.stats().backend_allocations == 2);
  // The next block starts on page 9 and needs page 10 too: a run of one page, mapped alone.
  void* next = a.allocate(2 * MiB);
  REQUIRE(addr(next) == addr(p) + 18 * MiB);
  CHECK(b.chunk_pages(base + 10 * page) == 1);
  CHECK(a.stats().backend_allocations == 3);
  a.deallocate(p);
  a.empty_cache();  // page 9 is next's: the chunk 1-9 stays mapped whole, nothing goes back
  CHECK(b.mapped_bytes() == 11 * page);
  CHECK(a.stats().backend_frees == 0);
  CHECK(a.stats().reserved_bytes == 11 * page);
  void* again = a.allocate(16 * MiB);  // the chunk's pages are the cache: served with no driver call
  CHECK(addr(again) == addr(p));
  CHECK(a.stats().backend_allocations == 3);
  a.deallocate(again);
  a.deallocate(next);
  a.empty_cache();  // the chunk 1-9 and page 10 go; page 0 stays under head
  CHECK(b.mapped_bytes() == page);
  CHECK(a.stats().backend_frees == 2);
  a.deallocate(head);
  a.empty_cache();
  CHECK(b.mapped_bytes() == 0);
  CHECK(a.stats().reserved_bytes == 0);
  CHECK(a.stats().backend_frees == 3);
  CHECK(b.misuses() == 0);
}

TEST_CASE("chunks: with edge pages alone, a block's inside pages are one physical allocation, the edge pages "
          "it may share their own",
          "[paged][chunks]") {
  paged a(stash::simulated_paged_backend{}, edges_alone());
  void* head = a.allocate(3 * MiB / 2);  // the arena's first block: page 0, alone (it ends off a boundary)
  // From 1.5 MiB to 19.5 MiB, starting and ending off a page boundary: pages 0-9, page 0 shared with
  // head (mapped already), page 9 with the block that would come next; inside, pages 1-8.
  void* p = a.allocate(18 * MiB);
  const std::uintptr_t base = addr(head);
  REQUIRE(addr(p) == base + 3 * MiB / 2);
  const auto& b = a.backend();
  CHECK(b.chunk_pages(base) == 1);
  CHECK(b.chunk_pages(base + page) == 8);
  CHECK(b.chunk_pages(base + 9 * page) == 1);
  CHECK(b.mapped_bytes() == 10 * page);
  // Page 0 mapped and granted for head; for the block, two allocations mapped and one access grant.
  CHECK(b.driver_calls() == (2 + 1) + (2 * 2 + 1));
  for (std::size_t i = 0; i < 10; ++i) CHECK(b.accessible(base + i * page));
  CHECK(a.stats().backend_allocations == 3);  // physical allocations, not pages
  CHECK(a.stats().reserved_bytes == 10 * page);
  a.deallocate(p);
  a.empty_cache();  // the chunk 1-8 and page 9 go; page 0, alone, stays under head
  CHECK(b.mapped_bytes() == page);
  CHECK(b.driver_calls() == 3 + 5 + 2 * 2);
  CHECK(a.stats().backend_frees == 2);
  a.deallocate(head);
  a.empty_cache();
  CHECK(b.mapped_bytes() == 0);
  CHECK(b.driver_calls() == 3 + 5 + 3 * 2);
  CHECK(a.stats().backend_frees == 3);
  CHECK(a.stats().reserved_bytes == 0);
  CHECK(b.misuses() == 0);
}

TEST_CASE("chunks: with edge pages alone, a block on page boundaries is one chunk with its edge pages, an "
          "edge page off one stays alone",
          "[paged][chunks]") {
  paged a(stash::simulated_paged_backend{}, edges_alone());
  void* whole = a.allocate(10 * page);  // the arena's first block: pages 0-9, on page boundaries
  const std::uintptr_t base = addr(whole);
  const auto& b = a.backend();
  CHECK(b.chunk_pages(base) == 10);  // no neighbour can share its edge pages: they join the chunk
  CHECK(a.stats().backend_allocations == 1);
  CHECK(b.driver_calls() == 2 + 1);  // one allocation created and mapped, one access grant
  for (std::size_t i = 0; i < 10; ++i) CHECK(b.accessible(base + i * page));
  // 19 MiB from page 10 on: pages 10-19, ending off a page boundary. Its first page is its own and
  // starts the chunk 10-18; its last page, which the next block shares, is mapped alone.
  void* part = a.allocate(19 * MiB);
  REQUIRE(addr(part) == base + 10 * page);
  CHECK(b.chunk_pages(base + 10 * page) == 9);
  CHECK(b.chunk_pages(base + 19 * page) == 1);
  CHECK(a.stats().backend_allocations == 1 + 2);
  CHECK(b.driver_calls() == 3 + (2 * 2 + 1));
  void* next = a.allocate(3 * MiB);  // from 39 MiB: pages 19 (shared with part) and 20 (new, alone)
  REQUIRE(addr(next) == addr(part) + 19 * MiB);
  CHECK(b.chunk_pages(base + 20 * page) == 1);
  CHECK(a.stats().backend_allocations == 1 + 2 + 1);
  a.deallocate(whole);
  a.deallocate(part);
  a.empty_cache();  // the chunks 0-9 and 10-18 go whole; page 19 stays under next, with page 20
  CHECK(b.mapped_bytes() == 2 * page);
  CHECK(a.stats().backend_frees == 2);
  a.deallocate(next);
  a.empty_cache();  // every page goes back
  CHECK(b.mapped_bytes() == 0);
  CHECK(a.stats().reserved_bytes == 0);
  CHECK(a.stats().backend_frees == 4);
  CHECK(b.misuses() == 0);
}

// (No semicolon in the name: catch_discover_tests would split it into two names that match no test.)
TEST_CASE("chunks: max_chunk_pages bounds a chunk and 1 maps page by page", "[paged][chunks]") {
  SECTION("16 pages at most") {
    paged a(stash::simulated_paged_backend{}, chunks_of(16));
    void* p = a.allocate(40 * page);  // pages 0-39, on page boundaries (edge pages its own): 16 + 16 + 8
    const std::uintptr_t base = addr(p);
    CHECK(a.backend().chunk_pages(base) == 16);
    CHECK(a.backend().chunk_pages(base + 16 * page) == 16);
    CHECK(a.backend().chunk_pages(base + 32 * page) == 8);
    CHECK(a.stats().backend_allocations == 3);
    CHECK(a.backend().driver_calls() == 3 * 2 + 1);
    a.deallocate(p);
  }
  SECTION("page by page") {
    paged a(stash::simulated_paged_backend{}, chunks_of(1));
    void* p = a.allocate(10 * page);
    for (std::size_t i = 0; i < 10; ++i) CHECK(a.backend().chunk_pages(addr(p) + i * page) == 1);
    CHECK(a.stats().backend_allocations == 10);
    CHECK(a.backend().driver_calls() == 10 * 2 + 1);
    for (std::size_t i = 0; i < 10; ++i) CHECK(a.backend().accessible(addr(p) + i * page));
    a.deallocate(p);
  }
}

TEST_CASE("chunks: only the unmapped run is mapped, in chunks between the pages mapped already",
          "[paged][chunks]") {
  paged a;
  void* small = a.allocate(page);  // page 0, alone (a run of one page)
  void* big = a.allocate(9 * page);  // pages 1-9, on page boundaries: one chunk, its edge pages its own
  const std::uintptr_t base = addr(small);
  REQUIRE(addr(big) == base + page);
  CHECK(a.backend().chunk_pages(base + page) == 9);
  a.deallocate(big);
  // 19 pages from page 1: pages 1-9 are mapped (idle), 10-19 are not: 10-19 one chunk (page 19, the
  // block's last, is its own), and the chunk 1-9 stays as it was.
  void* bigger = a.allocate(19 * page);
  REQUIRE(addr(bigger) == base + page);
  CHECK(a.backend().chunk_pages(base + page) == 9);
  CHECK(a.backend().chunk_pages(base + 10 * page) == 10);
  CHECK(a.stats().backend_allocations == 1 + 1 + 1);
  CHECK(a.backend().misuses() == 0);
  a.deallocate(bigger);
  a.deallocate(small);
}

TEST_CASE("chunks: a chunk goes back only when none of its pages is touched", "[paged][chunks]") {
  paged a;
  void* big = a.allocate(10 * page);  // pages 0-9, on page boundaries: one chunk 0-9
  void* after = a.allocate(page);     // page 10
  const std::uintptr_t base = addr(big);
  a.deallocate(big);
  void* head = a.allocate(5 * MiB);  // at the base again: pages 0-2, so chunk 0-9 is touched
  REQUIRE(addr(head) == base);

  a.empty_cache();  // pages 3-9 are touched by no block, but chunk 0-9 stays whole
  CHECK(a.backend().mapped_bytes() == 11 * page);
  CHECK(a.stats().reserved_bytes == 11 * page);
  CHECK(a.backend().chunk_pages(base) == 10);
  CHECK(a.stats().backend_frees == 0);

  a.deallocate(head);
  a.trim_cache(0);  // now idle: chunk 0-9 goes, page 10 stays under `after`
  CHECK(a.backend().mapped_bytes() == page);
  CHECK(a.stats().reserved_bytes == page);
  CHECK(a.backend().chunk_pages(base) == 0);
  CHECK(a.stats().backend_frees == 1);
  CHECK(a.backend().misuses() == 0);
  a.deallocate(after);
}

TEST_CASE("chunks: where an idle chunk does not fit inside the block, it is given back whole instead",
          "[paged][chunks]") {
  const stash::caching_options o = moving_every_page();
  paged a(stash::simulated_paged_backend{}, o);
  void* big = a.allocate(10 * page);  // pages 0-9, on page boundaries: one chunk 0-9
  void* guard = a.allocate(page);     // page 10
  std::vector<void*> singles;
  for (int i = 0; i < 4; ++i) singles.push_back(a.allocate(page));  // pages 11-14, each alone
  void* top = a.allocate(page);       // page 15
  a.deallocate(big);
  for (void* s : singles) a.deallocate(s);  // idle: chunk 0-9, 11-14; 16 held, 16 at the tide
  const auto before = a.stats();
  // Pages 16-27, every page past the tide: the idle pages come highest first, 14 to 11 moving alone
  // onto pages 16-19; for page 20 it is the chunk 0-9, which does not fit in the 7 inside pages left
  // (20-26), so it is given back whole and page 20 mapped anew; 21-27 are new pages, below the tide
  // now: one chunk (page 27, the block's last, is its own).
  void* p = a.allocate(12 * page);
  const std::uintptr_t at = addr(p);
  REQUIRE(at == addr(top) + page);
  const auto& b = a.backend();
  CHECK(b.chunk_pages(addr(big)) == 0);
  CHECK(a.page_moves() == 4);
  CHECK(b.moved_pages() == 4);
  CHECK(a.stats().backend_frees - before.backend_frees == 1);
  CHECK(a.stats().backend_allocations - before.backend_allocations == 2);
  CHECK(b.chunk_pages(at + 3 * page) == 1);   // page 19, moved in from page 11
  CHECK(b.chunk_pages(at + 4 * page) == 1);   // page 20, new
  CHECK(b.chunk_pages(at + 5 * page) == 7);   // pages 21-27, new
  CHECK(a.stats().reserved_bytes == 14 * page);  // the guards, the block
  CHECK(b.mapped_bytes() == 14 * page);
  for (std::size_t i = 0; i < 12; ++i) CHECK(b.accessible(at + i * page));
  CHECK(b.misuses() == 0);
  a.deallocate(p);
  a.deallocate(guard);
  a.deallocate(top);
  a.empty_cache();
  CHECK(b.mapped_bytes() == 0);
  CHECK(b.misuses() == 0);
}

TEST_CASE("chunks: where a move is due, an idle chunk that fits moves whole into the block, in two calls",
          "[paged][chunks]") {
  stash::caching_options o = moving_every_page();
  o.reserve_bytes = 64 * page;  // room above the device's 13 pages of memory
  o.chunk_room_share = 0;       // chunks of any share of the small device's room
  paged a(stash::simulated_paged_backend(13 * page), o);
  // Pages 0-9 as three blocks on page boundaries: page 0 and page 9 alone (one page each), 1-8 one chunk.
  void* low = a.allocate(page);
  void* big = a.allocate(8 * page);
  void* high = a.allocate(page);
  void* guard = a.allocate(page);  // page 10
  REQUIRE(addr(big) == addr(low) + page);
  CHECK(a.backend().chunk_pages(addr(big)) == 8);
  for (void* q : {low, big, high}) a.deallocate(q);  // 10 idle pages, 11 held, 1 touched
  const std::size_t calls = a.backend().driver_calls();
  const auto stats = a.stats();
  // Pages 11-22: 13 touched at the tide, so pages 11 and 12 are new (one chunk); then each page takes
  // the highest idle page: page 9 moves to page 13, the chunk 1-8 whole to pages 14-21 (8 unmapped
  // pages inside the block), page 0 to the edge page 22.
  void* p = a.allocate(12 * page);
  const std::uintptr_t at = addr(p);
  REQUIRE(at == addr(guard) + page);
  const auto& b = a.backend();
  CHECK(b.chunk_pages(at) == 2);
  CHECK(b.chunk_pages(at + 3 * page) == 8);
  CHECK(b.chunk_pages(addr(big)) == 0);
  CHECK(b.chunk_moves() == 3);
  CHECK(b.moved_pages() == 10);
  CHECK(a.page_moves() == 10);
  CHECK(b.move_calls() == 0);
  CHECK(b.unmap_calls() == 0);  // nothing given back
  CHECK(b.mapped_bytes() == 13 * page);
  CHECK(a.stats().reserved_bytes == 13 * page);
  CHECK(a.stats().backend_allocations - stats.backend_allocations == 1);
  CHECK(a.stats().backend_frees == stats.backend_frees);
  // One new chunk of two pages (cuMemCreate and cuMemMap), three moves (cuMemUnmap and cuMemMap
  // each), one cuMemSetAccess over the twelve pages.
  CHECK(b.driver_calls() - calls == 2 + 3 * 2 + 1);
  for (std::size_t i = 0; i < 12; ++i) CHECK(b.accessible(at + i * page));
  CHECK(b.misuses() == 0);
  a.deallocate(p);
  a.empty_cache();  // the moved chunk goes back whole
  CHECK(b.mapped_bytes() == page);
  CHECK(b.misuses() == 0);
  a.deallocate(guard);
}

TEST_CASE("chunks: an idle chunk moves onto a block's edge page, which edge pages in chunks allow",
          "[paged][chunks]") {
  for (const bool edges_in_chunks : {true, false}) {
    stash::caching_options o = moving_every_page();
    o.edge_pages_in_chunks = edges_in_chunks;
    paged a(stash::simulated_paged_backend{}, o);
    void* low = a.allocate(2 * page);  // pages 0-1, on page boundaries: one chunk
    void* guard = a.allocate(page);    // page 2
    a.deallocate(low);                 // the chunk 0-1 idle; 3 pages held, 3 at the tide
    const auto before = a.stats();
    // Pages 3-5, too large for the hole at 0-1, ending off a page boundary (page 5 may be shared with
    // the next block). The tide rises to 4 pages with it, so page 3 is new; then a move is due, and the
    // highest idle page is in the chunk 0-1, which fits on pages 4-5 only if the edge page may hold it.
    void* p = a.allocate(2 * page + page / 2);
    REQUIRE(addr(p) == addr(guard) + page);
    const auto& b = a.backend();
    CHECK(b.chunk_pages(addr(low)) == 0);
    CHECK(b.chunk_pages(addr(p)) == 1);  // page 3, new
    if (edges_in_chunks) {  // the chunk moves whole onto pages 4-5, nothing is given back
      CHECK(b.chunk_pages(addr(p) + page) == 2);
      CHECK(b.chunk_moves() == 1);
      CHECK(a.stats().backend_frees == before.backend_frees);
      CHECK(a.stats().backend_allocations - before.backend_allocations == 1);
    } else {  // a chunk goes strictly inside the block only: given back whole, and new pages mapped
      CHECK(b.chunk_moves() == 0);
      CHECK(a.stats().backend_frees - before.backend_frees == 1);
    }
    CHECK(a.stats().reserved_bytes == 4 * page);
    CHECK(b.mapped_bytes() == 4 * page);
    for (std::size_t i = 0; i < 3; ++i) CHECK(b.accessible(addr(p) + i * page));
    a.deallocate(p);
    a.deallocate(guard);
    a.empty_cache();
    CHECK(b.mapped_bytes() == 0);
    CHECK(b.misuses() == 0);
  }
}

TEST_CASE("chunks: where a move is due and no page is idle, the new pages are mapped in chunks, not alone",
          "[paged][chunks]") {
  stash::caching_options o;
  o.page_slack = 0;  // the budget is the high tide of touched pages
  // Host order remaps nothing (no free is pending), so remap_pending_pages must change nothing here: it
  // once made the arena map the pages past the tide one at a time, as if a remap could take them.
  o.remap_pending_pages = GENERATE(false, true);
  paged a(stash::simulated_paged_backend{}, o);
  void* x = a.allocate(4 * page);  // pages 0-3, one chunk
  void* guard = a.allocate(page);  // page 4
  const std::uintptr_t base = addr(x);
  a.deallocate(x);
  void* head = a.allocate(page);  // page 0 again: chunk 0-3 is touched, so none of its pages is idle
  REQUIRE(addr(head) == base);
  const std::size_t calls = a.backend().driver_calls();
  // The block raises the tide to 12 touched pages, 5 held: 7 new pages reach it (one chunk). Past it a
  // move is due (12 pages backed since none), but no page is idle, so the last 3 are new pages too, in
  // one chunk (page by page, they were 3 allocations: 4 more calls).
  void* big = a.allocate(10 * page);  // pages 5-14
  REQUIRE(addr(big) == base + 5 * page);
  const auto& b = a.backend();
  CHECK(b.chunk_pages(base + 5 * page) == 7);
  CHECK(b.chunk_pages(base + 12 * page) == 3);
  CHECK(a.page_moves() == 0);
  CHECK(b.driver_calls() - calls == 2 + 2 + 1);  // two chunks (cuMemCreate, cuMemMap), one grant
  CHECK(a.stats().reserved_bytes == 15 * page);
  for (std::size_t i = 0; i < 10; ++i) CHECK(b.accessible(addr(big) + i * page));
  // Where a page is idle, a due move still comes first: the guard's page 4 moves to page 19.
  a.deallocate(guard);
  void* next = a.allocate(8 * page);  // pages 15-22: 15-18 new (the tide), 19 moved, 20-22 new
  REQUIRE(addr(next) == base + 15 * page);
  CHECK(a.page_moves() == 1);
  CHECK(b.chunk_pages(base + 4 * page) == 0);
  CHECK(b.chunk_pages(base + 15 * page) == 4);
  CHECK(b.chunk_pages(base + 19 * page) == 1);
  CHECK(b.chunk_pages(base + 20 * page) == 3);
  CHECK(b.mapped_bytes() == 22 * page);
  CHECK(b.misuses() == 0);
  for (void* q : {head, big, next}) a.deallocate(q);
}

TEST_CASE("chunks: the simulated device moves a chunk only whole, onto unmapped pages, without access",
          "[paged][chunks]") {
  stash::simulated_paged_backend b;
  const std::uintptr_t base = b.reserve(32 * page);
  REQUIRE(b.map_pages(base + page, 4));  // pages 1-4, granted
  REQUIRE(b.map_pages(base + 10 * page, 1));
  const std::size_t calls = b.driver_calls();
  CHECK_FALSE(b.move_pages(base + 2 * page, base + 20 * page, 3));  // not the chunk's first page
  CHECK_FALSE(b.move_pages(base + page, base + 20 * page, 3));      // not the whole chunk
  CHECK_FALSE(b.move_pages(base + page, base + 8 * page, 4));       // page 10 is mapped
  CHECK_FALSE(b.move_pages(base + page, base + 30 * page, 4));      // past the range
  CHECK(b.misuses() == 4);
  CHECK(b.chunk_pages(base + page) == 4);
  REQUIRE(b.move_pages(base + page, base + 20 * page, 4));
  CHECK(b.driver_calls() - calls == 5 * 2);  // cuMemUnmap and cuMemMap per call
  CHECK(b.chunk_pages(base + page) == 0);
  CHECK(b.chunk_pages(base + 20 * page) == 4);
  CHECK(b.mapped_bytes() == 5 * page);
  CHECK(b.moved_pages() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK_FALSE(b.accessible(base + (1 + i) * page));
    CHECK_FALSE(b.accessible(base + (20 + i) * page));  // mapped, not granted yet
  }
  REQUIRE(b.set_access(base + 20 * page, 4));
  for (std::size_t i = 0; i < 4; ++i) CHECK(b.accessible(base + (20 + i) * page));
  b.unmap_pages(base + 20 * page, 4);
  CHECK(b.mapped_bytes() == page);
  CHECK(b.misuses() == 4);
}

TEST_CASE("chunks: limited_backend counts a chunk's bytes against the limit", "[paged][chunks][limit]") {
  stash::caching_options o;
  o.chunk_room_share = 0;  // chunks of any share of what the limit leaves
  limited a(stash::limited_backend<stash::simulated_paged_backend>{}, o);
  a.backend().set_limit(8 * page);
  void* p = a.allocate(6 * page);  // pages 0-5, on page boundaries: one chunk
  CHECK(a.backend().held_bytes() == 6 * page);
  CHECK(a.backend().upstream().chunk_pages(addr(p)) == 6);
  // Pages 6-11: its chunk of 6 would pass the limit, and so would its pages mapped one by one.
  CHECK_THROWS_AS(a.allocate(6 * page), stash::out_of_memory);
  CHECK(a.backend().held_bytes() == 6 * page);
  CHECK(a.stats().reserved_bytes == 6 * page);
  void* q = a.allocate(2 * page);  // pages 6-7: a chunk of 2 reaches the limit, and is within it
  CHECK(a.backend().upstream().chunk_pages(addr(q)) == 2);
  CHECK(a.backend().held_bytes() == 8 * page);
  a.deallocate(q);
  a.deallocate(p);
  a.empty_cache();
  CHECK(a.backend().held_bytes() == 0);
  CHECK(a.backend().upstream().misuses() == 0);
}

TEST_CASE("chunks: a new chunk takes at most chunk_room_share of the room the backend has left",
          "[paged][chunks][room]") {
  stash::caching_options o;
  o.chunk_room_share = 8;
  SECTION("the fuller the device, the smaller the chunks") {
    paged a(stash::simulated_paged_backend{64 * page}, o);
    void* p = a.allocate(32 * page);  // room 64 pages: chunks of 8
    for (std::size_t i = 0; i < 4; ++i) CHECK(a.backend().chunk_pages(addr(p) + i * 8 * page) == 8);
    CHECK(a.stats().backend_allocations == 4);
    void* q = a.allocate(16 * page);  // room 32: chunks of 4
    for (std::size_t i = 0; i < 4; ++i) CHECK(a.backend().chunk_pages(addr(q) + i * 4 * page) == 4);
    void* r = a.allocate(8 * page);  // room 16: chunks of 2
    for (std::size_t i = 0; i < 4; ++i) CHECK(a.backend().chunk_pages(addr(r) + i * 2 * page) == 2);
    void* t = a.allocate(4 * page);  // room 8: a page each
    for (std::size_t i = 0; i < 4; ++i) CHECK(a.backend().chunk_pages(addr(t) + i * page) == 1);
    CHECK(a.stats().backend_allocations == 16);
    CHECK(a.backend().room_calls() == 4);  // one query per run of pages mapped
    for (void* x : {p, q, r, t}) a.deallocate(x);
  }
  SECTION("the room is asked again only where it could bound the chunk, or after 64 runs") {
    paged a(stash::simulated_paged_backend{std::size_t{1} << 40}, o);  // 1 TiB: room for chunks of 32 pages
    std::vector<void*> blocks;
    for (int i = 0; i < 130; ++i) blocks.push_back(a.allocate(2 * page));  // a run of 2 pages each
    CHECK(a.backend().room_calls() == 3);  // runs 1, 65 and 129
    CHECK(a.stats().backend_allocations == 130);
    for (void* x : blocks) a.deallocate(x);
  }
  SECTION("no bound: chunks of max_chunk_pages") {
    paged a(stash::simulated_paged_backend{}, o);
    void* p = a.allocate(32 * page);
    CHECK(a.backend().chunk_pages(addr(p)) == 32);
    CHECK(a.stats().backend_allocations == 1);
    a.deallocate(p);
  }
  SECTION("0: off") {
    o.chunk_room_share = 0;
    paged a(stash::simulated_paged_backend{64 * page}, o);
    void* p = a.allocate(32 * page);
    CHECK(a.backend().chunk_pages(addr(p)) == 32);
    CHECK(a.backend().room_calls() == 0);
    a.deallocate(p);
  }
  SECTION("a limit's rest") {
    limited a(stash::limited_backend<stash::simulated_paged_backend>{}, o);
    a.backend().set_limit(40 * page);
    void* p = a.allocate(16 * page);  // room 40 pages: chunks of 5
    CHECK(a.backend().upstream().chunk_pages(addr(p)) == 5);
    CHECK(a.backend().upstream().chunk_pages(addr(p) + 15 * page) == 1);
    CHECK(a.stats().backend_allocations == 4);
    a.deallocate(p);
  }
  SECTION("failing_backend's byte limit, as the fault-injection tests run near a full device") {
    failing a(stash::failing_backend<stash::simulated_paged_backend>{}, o);
    a.backend().set_byte_limit(40 * page);
    CHECK(a.backend().room_bytes() == 40 * page);
    void* p = a.allocate(16 * page);  // room 40 pages: chunks of 5
    CHECK(a.backend().upstream().chunk_pages(addr(p)) == 5);
    CHECK(a.backend().upstream().chunk_pages(addr(p) + 15 * page) == 1);
    CHECK(a.stats().backend_allocations == 4);
    CHECK(a.backend().room_bytes() == 24 * page);
    a.deallocate(p);
    a.empty_cache();
    CHECK(a.backend().room_bytes() == 40 * page);
  }
}

TEST_CASE(
    "chunks: near a limit, smaller chunks let the idle pages of a freed block move where they are needed",
    "[paged][chunks][room][limit]") {
  // X (16 pages) then W (a page) above it; X is freed and Y (4 pages) takes the start of its hole, so
  // the 12 pages left there are idle; Z (14 pages) does not fit the hole and goes above W. Under a limit
  // of 24 pages, Z needs 14 pages where the limit leaves 7: X's idle pages must move. As one chunk they
  // cannot (Y touches it), so Z is out of memory; in chunks of a share of the room, those that Y does
  // not touch move, and Z fits.
  auto run = [](std::size_t share) {
    stash::caching_options o;
    o.chunk_room_share = share;
    limited a(stash::limited_backend<stash::simulated_paged_backend>{}, o);
    a.backend().set_limit(24 * page);
    void* x = a.allocate(16 * page);
    void* w = a.allocate(page);
    a.deallocate(x);
    void* y = a.allocate(4 * page);
    CHECK(y == x);
    void* z = nullptr;
    try {
      z = a.allocate(14 * page);
    } catch (const stash::out_of_memory&) {
      CHECK(a.stats().reserved_bytes == 17 * page);  // nothing changed
    }
    const bool fitted = z != nullptr;
    if (fitted) {
      CHECK(addr(z) == addr(w) + page);
      CHECK(a.stats().reserved_bytes <= 24 * page);
      CHECK(a.backend().held_bytes() == a.stats().reserved_bytes);
      a.deallocate(z);
    }
    a.deallocate(y);
    a.deallocate(w);
    a.empty_cache();
    CHECK(a.backend().held_bytes() == 0);
    CHECK(a.backend().upstream().misuses() == 0);
    return fitted;
  };
  CHECK_FALSE(run(0));
  CHECK(run(4));
}

TEST_CASE("chunks: a 3 GiB block is 8 physical allocations and one access grant", "[paged][chunks]") {
  paged a;
  // 1536 pages from the arena's base, on page boundaries: the edge pages 0 and 1535 are its own.
  const std::size_t pages = (std::size_t{3} << 30) / page;
  REQUIRE(stash::caching_options{}.chunks_per_block == 8);
  void* p = a.allocate(pages * page);
  const std::uintptr_t base = addr(p);
  const auto& b = a.backend();
  // Chunks of an eighth of the block (192 pages), the edge pages with them: 8 of them.
  for (std::size_t c = 0; c < 8; ++c) CHECK(b.chunk_pages(base + 192 * c * page) == 192);
  CHECK(a.stats().backend_allocations == 8);
  CHECK(b.map_calls() == 8);
  CHECK(b.driver_calls() == 8 * 2 + 1);  // each allocation created and mapped; access granted once
  CHECK(b.mapped_bytes() == pages * page);
  for (std::size_t i = 0; i < pages; ++i) REQUIRE(b.accessible(base + i * page));
  a.deallocate(p);
  a.empty_cache();  // every chunk goes back, whole
  CHECK(b.mapped_bytes() == 0);
  CHECK(a.stats().reserved_bytes == 0);
  CHECK(a.stats().backend_frees == 8);
  CHECK(b.unmap_calls() == 8);
  CHECK(b.driver_calls() == 8 * 2 + 1 + 8 * 2);
  CHECK(b.misuses() == 0);
}

TEST_CASE("chunks: chunks_per_block 0 maps a large block in chunks of max_chunk_pages", "[paged][chunks]") {
  stash::caching_options o;
  o.chunks_per_block = 0;
  paged a(stash::simulated_paged_backend{}, o);
  const std::size_t pages = (std::size_t{3} << 30) / page;
  void* p = a.allocate(pages * page);
  const std::uintptr_t base = addr(p);
  // 1536 pages on page boundaries, the edge pages its own: 48 chunks of 32 pages.
  for (std::size_t c = 0; c < 48; ++c) CHECK(a.backend().chunk_pages(base + 32 * c * page) == 32);
  CHECK(a.stats().backend_allocations == 48);
  CHECK(a.backend().driver_calls() == 48 * 2 + 1);
  a.deallocate(p);
  a.empty_cache();
  CHECK(a.backend().mapped_bytes() == 0);
  CHECK(a.backend().misuses() == 0);
}

TEST_CASE("chunks: a small block keeps chunks of max_chunk_pages", "[paged][chunks]") {
  paged a;
  void* p = a.allocate(200 * page);  // 200 < 32 x 8 pages: chunks_per_block does not apply
  CHECK(a.backend().chunk_pages(addr(p)) == 32);
  CHECK(a.backend().chunk_pages(addr(p) + 192 * page) == 8);
  CHECK(a.stats().backend_allocations == 7);  // 6 x 32 + 8, the edge pages (its own) included
  a.deallocate(p);
}

TEST_CASE("chunks: past the slack, a large block makes at most moves_per_block page moves",
          "[paged][chunks]") {
  // 99 idle pages mapped alone, then a block of 300 pages over the slack: 201 new pages reach the
  // high tide, and the other 99 pages are moved or mapped as the ration says.
  auto grow = [](std::size_t moves_per_block) {
    stash::caching_options o;
    o.page_slack = 0;
    o.moves_per_block = moves_per_block;
    auto a = std::make_unique<paged>(stash::simulated_paged_backend{}, o);
    std::vector<void*> singles;
    for (int i = 0; i < 100; ++i) singles.push_back(a->allocate(page));  // pages 0-99, each alone
    for (int i = 0; i < 99; ++i) a->deallocate(singles[static_cast<std::size_t>(i)]);  // page 99 stays
    void* big = a->allocate(300 * page);  // pages 100-399
    REQUIRE(addr(big) == addr(singles[99]) + page);
    CHECK(a->backend().misuses() == 0);
    for (std::size_t i = 0; i < 300; ++i) CHECK(a->backend().accessible(addr(big) + i * page));
    return a;
  };
  // Past the tide a move comes first, then pages_between_moves new pages: 8 (one move per 9 pages of
  // the 99), or with moves_per_block 16, 300 / 16 = 18 (one per 19). (The default, 8, would give 37.)
  const auto rationed = grow(0);
  const auto shared = grow(16);
  CHECK(rationed->page_moves() == 11);
  CHECK(shared->page_moves() == 6);
  // Every page not moved is mapped anew: the moves saved are pages held.
  CHECK(rationed->stats().reserved_bytes == (400 - 11) * page);
  CHECK(shared->stats().reserved_bytes == (400 - 6) * page);
  CHECK(shared->backend().driver_calls() < rationed->backend().driver_calls());
}

TEST_CASE("chunks: pages mapped for a block are granted with the pages moved into it, in one call",
          "[paged][chunks]") {
  const stash::caching_options o = moving_every_page();
  paged a(stash::simulated_paged_backend{}, o);
  void* low = a.allocate(page);       // page 0
  void* guard = a.allocate(page);     // page 1
  a.deallocate(low);                  // page 0 idle, mapped alone: it can move
  const std::size_t before = a.backend().driver_calls();
  // Pages 2-7, on page boundaries: 2-6 are new up to the tide (one chunk, the edge page 2 its own),
  // then the idle page moves to page 7.
  void* p = a.allocate(6 * page);
  REQUIRE(addr(p) == addr(guard) + page);
  CHECK(a.page_moves() == 1);
  CHECK(a.backend().chunk_pages(addr(p)) == 5);
  CHECK(a.backend().chunk_pages(addr(p) + 5 * page) == 1);  // the page moved in, alone
  // The new chunk (1 allocation, 2 calls), one move (2 calls), one grant for all six pages.
  CHECK(a.backend().driver_calls() - before == 2 + 2 + 1);
  CHECK(a.backend().chunk_moves() == 1);
  for (std::size_t i = 0; i < 6; ++i) CHECK(a.backend().accessible(addr(p) + i * page));
  CHECK(a.backend().misuses() == 0);
  a.deallocate(p);
  a.deallocate(guard);
  a.empty_cache();
  CHECK(a.backend().mapped_bytes() == 0);
  CHECK(a.backend().misuses() == 0);
}

TEST_CASE("chunks: a refused access grant is out of memory, and every page mapped for the block goes back",
          "[paged][chunks][errors]") {
  refusing a;
  void* first = a.allocate(3 * page);  // pages 0-2
  const auto before = a.stats();
  const std::size_t mapped = a.backend().mapped_bytes();
  a.backend().refuse_access = true;
  CHECK_THROWS_AS(a.allocate(600 * page), stash::out_of_memory);
  CHECK(a.backend().mapped_bytes() == mapped);
  CHECK(a.stats().reserved_bytes == before.reserved_bytes);
  CHECK(a.stats().allocated_bytes == before.allocated_bytes);
  CHECK(a.stats().allocations == before.allocations);
  CHECK(a.stats().backend_allocations == before.backend_allocations);
  CHECK(a.backend().misuses() == 0);
  a.backend().refuse_access = false;
  void* again = a.allocate(600 * page);  // placed as if the refused one never happened
  CHECK(addr(again) == addr(first) + 3 * page);
  for (std::size_t i = 0; i < 600; ++i) REQUIRE(a.backend().accessible(addr(again) + i * page));
  a.deallocate(again);
  a.deallocate(first);
  a.empty_cache();
  CHECK(a.backend().mapped_bytes() == 0);
  CHECK(a.backend().misuses() == 0);
}

TEST_CASE("chunks: a refused access grant gives back the chunks moved in for the block, which have no access",
          "[paged][chunks][errors]") {
  refusing a(refusing_backend{}, moving_every_page());
  // Pages 0-9 as in "an idle chunk that fits moves whole": page 0 and page 9 alone, 1-8 one chunk.
  void* low = a.allocate(page);
  void* big = a.allocate(8 * page);
  void* high = a.allocate(page);
  void* guard = a.allocate(page);  // page 10
  REQUIRE(a.backend().chunk_pages(addr(big)) == 8);
  for (void* q : {low, big, high}) a.deallocate(q);
  const auto before = a.stats();
  a.backend().refuse_access = true;
  // Pages 11-22 as there: pages 11-12 new (one chunk), page 9, the chunk 1-8 and page 0 moved in;
  // then the grant is refused.
  CHECK_THROWS_AS(a.allocate(12 * page), stash::out_of_memory);
  // The new pages are unmapped, and the ten moved in are given back: no page is left mapped without
  // access, and the memory held is the guard's page.
  CHECK(a.backend().mapped_bytes() == page);
  CHECK(a.backend().moved_pages() == 10);
  CHECK(a.stats().reserved_bytes == page);
  CHECK(a.stats().backend_frees - before.backend_frees == 3);  // the moved chunks: 9, 1-8, 0
  CHECK(a.stats().allocated_bytes == before.allocated_bytes);
  CHECK(a.stats().allocations == before.allocations);
  CHECK(a.stats().backend_allocations == before.backend_allocations);
  CHECK(a.backend().accessible(addr(guard)));
  CHECK(a.backend().misuses() == 0);
  a.backend().refuse_access = false;
  void* again = a.allocate(12 * page);  // placed as the refused one was, on new pages
  CHECK(addr(again) == addr(guard) + page);
  for (std::size_t i = 0; i < 12; ++i) CHECK(a.backend().accessible(addr(again) + i * page));
  CHECK(a.stats().reserved_bytes == 13 * page);
  a.deallocate(again);
  a.deallocate(guard);
  a.empty_cache();
  CHECK(a.backend().mapped_bytes() == 0);
  CHECK(a.backend().misuses() == 0);
}

TEST_CASE("chunks: a refused move leaves the idle chunk where it is, and the page is mapped anew",
          "[paged][chunks][errors]") {
  refusing a(refusing_backend{}, moving_every_page());
  // Pages 0-9 as in "an idle chunk that fits moves whole": page 0 and page 9 alone, 1-8 one chunk.
  void* low = a.allocate(page);
  void* big = a.allocate(8 * page);
  void* high = a.allocate(page);
  void* guard = a.allocate(page);  // page 10
  for (void* q : {low, big, high}) a.deallocate(q);
  a.backend().refuse_moves = true;
  // Pages 11-22: 11 and 12 new below the tide (one chunk), then every page past it tries the highest
  // idle page (page 9, alone), is refused, and maps a page anew: 10 refusals.
  void* p = a.allocate(12 * page);
  REQUIRE(addr(p) == addr(guard) + page);
  CHECK(a.backend().refused_moves == 10);
  CHECK(a.page_moves() == 0);
  CHECK(a.backend().chunk_pages(addr(big)) == 8);  // the idle chunk, where it was
  CHECK(a.backend().chunk_pages(addr(low)) == 1);
  CHECK(a.backend().chunk_pages(addr(high)) == 1);
  CHECK(a.backend().mapped_bytes() == 23 * page);
  CHECK(a.stats().reserved_bytes == 23 * page);
  for (std::size_t i = 0; i < 12; ++i) CHECK(a.backend().accessible(addr(p) + i * page));
  CHECK(a.backend().misuses() == 0);
  a.deallocate(p);
  a.deallocate(guard);
  a.empty_cache();
  CHECK(a.backend().mapped_bytes() == 0);
  CHECK(a.backend().misuses() == 0);
}
