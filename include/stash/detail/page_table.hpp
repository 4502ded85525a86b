#pragma once
// State of every page of a paged backend's reservation, kept as bitsets so that a block of hundreds of
// pages costs a few word operations, not a loop over its pages:
//   - mapped: physical memory backs the page;
//   - interior: the page lies strictly inside one live block (no other block can touch it);
//   - edge_refs: how many live blocks start or end on the page (small blocks share pages);
//   - fresh: mapped by the allocation in progress, so that a failed one unmaps exactly those;
//   - moved: moved in by the allocation in progress without access yet (chunked backends grant it
//     with the block's new pages), so that a failed one gives exactly those back.
//   - held (Holds, stream-ordered allocators only): a freed block whose work may still run on the GPU
//     lies on the page, so it may not be moved or unmapped. Holds are an overlay the allocator lays
//     down only while it picks pages to move or give back, and lifts before it places or frees a
//     block: touch and untouch never meet a held page, and the fast path pays nothing for them.
//   - chunks: which mapped pages share one physical allocation (the first and the last page of each
//     are marked). A chunk is unmapped whole, so its pages count as idle only when all of them are.
// A page is touched when a live block lies on it: interior, or edge_refs > 0 (or it is held). Mapped pages
// that are not touched are idle: the paged allocator's cache, moved to where memory is needed or given back.
// Pages that may be idle are also kept in a hierarchical bitmap, so that the highest idle page is found
// in a few word operations however large the table: a page goes in when it becomes idle, and a page
// found there that is no longer idle (a block was placed on it since) is taken out when the search
// meets it. Each such stale entry is met once, so the search costs O(log n) per page, amortized, and
// placing a block (the allocator's fast path) never touches the bitmap.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "stash/detail/hierarchical_bitmap.hpp"

namespace stash::detail {

template <bool Holds>
class basic_page_table {
 public:
  static constexpr std::size_t none = SIZE_MAX;

  /// Throws std::bad_alloc, and then leaves the table as it was.
  void resize(std::size_t pages) {
    const std::size_t words = (pages + 63) / 64;
    std::vector<std::uint64_t> mapped(words, 0), interior(words, 0), fresh(words, 0), moved(words, 0);
    std::vector<std::uint64_t> chunk_first(words, 0), chunk_last(words, 0);
    std::vector<std::uint32_t> edge_refs(pages, 0);
    std::vector<std::uint64_t> held(Holds ? words : 0, 0);
    hierarchical_bitmap maybe_idle;
    maybe_idle.resize(pages);
    mapped_ = std::move(mapped);
    interior_ = std::move(interior);
    fresh_ = std::move(fresh);
    moved_ = std::move(moved);
    chunk_first_ = std::move(chunk_first);
    chunk_last_ = std::move(chunk_last);
    edge_refs_ = std::move(edge_refs);
    held_ = std::move(held);
    maybe_idle_ = std::move(maybe_idle);
    pages_ = pages;
    mapped_count_ = 0;
  }
  std::size_t size() const noexcept { return pages_; }

  bool mapped(std::size_t p) const noexcept { return (mapped_[p / 64] >> (p % 64)) & 1; }
  void set_mapped(std::size_t p, bool on) noexcept { set_mapped(p, p, on); }
  /// Marks pages [first, last] mapped (on) or not, a word at a time; mapped_count() counts only the
  /// pages that change, and mapped pages no block touches join the idle ones. A kept alias taken back
  /// (paged_arena::move_chunk_marks) marks a whole chunk, and page by page that was most of the host
  /// time the aliases cost (ddp_gpt2_rank0 under the 1.05 bound: 50 of 69 instructions per warm op).
  void set_mapped(std::size_t first, std::size_t last, bool on) noexcept {
    for (std::size_t w = first / 64; w <= last / 64; ++w) {
      const std::uint64_t mask = word_mask(w, first, last);
      const std::uint64_t changed = (on ? ~mapped_[w] : mapped_[w]) & mask;
      const auto count = static_cast<std::size_t>(__builtin_popcountll(changed));
      if (on) {
        mapped_[w] |= mask;
        mapped_count_ += count;
        if (const std::uint64_t idle = untouched(w, mask))
          maybe_idle_.assign_word(w, maybe_idle_.word(w) | idle);
      } else {
        mapped_[w] &= ~mask;
        mapped_count_ -= count;
        maybe_idle_.assign_word(w, maybe_idle_.word(w) & ~mask);
      }
    }
  }
  std::size_t mapped_count() const noexcept { return mapped_count_; }
  bool touched(std::size_t p) const noexcept {
    return ((interior_[p / 64] >> (p % 64)) & 1) || edge_refs_[p] != 0 || is_held(p);
  }
  /// Whether any page of [first, last] is touched: the interior and held bits a word at a time, the
  /// edge counts page by page.
  bool touched_any(std::size_t first, std::size_t last) const noexcept {
    for (std::size_t w = first / 64; w <= last / 64; ++w) {
      const std::uint64_t mask = word_mask(w, first, last);
      if (untouched(w, mask) != mask) return true;
    }
    return false;
  }

  /// Records a live block on pages [first, last]; returns how many pages became touched.
  std::size_t touch(std::size_t first, std::size_t last) noexcept {
    std::size_t fresh = touch_edge(first);
    if (last != first) fresh += touch_edge(last);
    if (last > first + 1) fresh += touch_interior(first + 1, last - 1);
    return fresh;
  }
  /// Undoes touch(first, last); returns how many pages stopped being touched.
  std::size_t untouch(std::size_t first, std::size_t last) noexcept {
    std::size_t gone = untouch_edge(first);
    if (last != first) gone += untouch_edge(last);
    if (last > first + 1) gone += untouch_interior(first + 1, last - 1);
    return gone;
  }

  /// Holds: a freed block lies on pages [first, last] and GPU work may still use it; the pages count
  /// as touched (never idle) until unhold. No block may be placed or freed while any page is held.
  void hold(std::size_t first, std::size_t last) noexcept
    requires Holds
  {
    for (std::size_t w = first / 64; w <= last / 64; ++w) held_[w] |= word_mask(w, first, last);
  }
  /// Lifts the holds on pages [first, last] (all of them: holds do not count), and puts the pages left
  /// idle back among the idle ones (highest_idle() dropped them while they were held).
  void unhold(std::size_t first, std::size_t last) noexcept
    requires Holds
  {
    for (std::size_t w = first / 64; w <= last / 64; ++w) {
      const std::uint64_t pages = held_[w] & word_mask(w, first, last);
      held_[w] &= ~pages;
      if (const std::uint64_t idle = untouched(w, pages))
        maybe_idle_.assign_word(w, maybe_idle_.word(w) | idle);
    }
  }

  /// First page in [first, last] that is not mapped, or none. The one-word case (most blocks) inline
  /// in the allocate path, the loop over several words a call.
  [[gnu::always_inline]] std::size_t first_unmapped(std::size_t first, std::size_t last) const noexcept {
    if (first / 64 == last / 64) [[likely]] {
      const std::uint64_t holes = ~mapped_[first / 64] & span_mask(first, last);
      return holes ? (first & ~std::size_t{63}) + static_cast<std::size_t>(__builtin_ctzll(holes)) : none;
    }
    return first_unmapped_in_words(first, last);
  }
  [[gnu::noinline]] std::size_t first_unmapped_in_words(std::size_t first, std::size_t last) const noexcept {
    for (std::size_t w = first / 64; w <= last / 64; ++w)
      if (const std::uint64_t holes = ~mapped_[w] & word_mask(w, first, last))
        return w * 64 + static_cast<std::size_t>(__builtin_ctzll(holes));
    return none;
  }

  /// Last page of the run of unmapped pages that starts at p, at most `last`.
  std::size_t unmapped_run_end(std::size_t p, std::size_t last) const noexcept {
    for (std::size_t w = p / 64; w <= last / 64; ++w)
      if (const std::uint64_t backed = mapped_[w] & word_mask(w, p, last))
        return w * 64 + static_cast<std::size_t>(__builtin_ctzll(backed)) - 1;
    return last;
  }

  /// Pages [first, last], just mapped, are one physical allocation.
  void set_chunk(std::size_t first, std::size_t last) noexcept {
    chunk_first_[first / 64] |= bit(first);
    chunk_last_[last / 64] |= bit(last);
  }
  /// The chunk [first, last] is unmapped.
  void clear_chunk(std::size_t first, std::size_t last) noexcept {
    chunk_first_[first / 64] &= ~bit(first);
    chunk_last_[last / 64] &= ~bit(last);
  }
  bool starts_chunk(std::size_t p) const noexcept { return (chunk_first_[p / 64] >> (p % 64)) & 1; }
  /// First and last page of the chunk of mapped page p.
  std::size_t chunk_first(std::size_t p) const noexcept {
    for (std::size_t w = p / 64 + 1; w-- > 0;)
      if (const std::uint64_t marks = chunk_first_[w] & word_mask(w, 0, p))
        return w * 64 + 63 - static_cast<std::size_t>(__builtin_clzll(marks));
    return p;  // not reached for a mapped page
  }
  std::size_t chunk_last(std::size_t p) const noexcept {
    for (std::size_t w = p / 64; w < chunk_last_.size(); ++w)
      if (const std::uint64_t marks = chunk_last_[w] & word_mask(w, p, pages_ - 1))
        return w * 64 + static_cast<std::size_t>(__builtin_ctzll(marks));
    return p;  // not reached for a mapped page
  }

  /// The idle page with the highest address whose whole chunk is idle, or none. Idle pages are taken
  /// from the top so that the low end of the range, where the allocator carves first, stays backed.
  /// Drops the stale entries it meets on the way (pages touched since they went in), and the pages of
  /// a chunk some live block still touches: the page of that chunk that goes idle last goes back in
  /// then, and finds the chunk whole.
  std::size_t highest_idle() noexcept {
    for (;;) {
      const std::size_t p = maybe_idle_.highest();
      if (p == hierarchical_bitmap::none) return none;
      if (mapped(p) && !touched(p)) {
        const std::size_t first = chunk_first(p), last = chunk_last(p);
        std::size_t q = first;
        while (q <= last && !touched(q)) ++q;
        if (q > last) return p;
        for (q = first; q <= last; ++q) maybe_idle_.erase(q);
        continue;
      }
      maybe_idle_.erase(p);
    }
  }

  void set_fresh(std::size_t p) noexcept { fresh_[p / 64] |= bit(p); }
  /// Calls f(p) for each fresh page in [first, last], highest first, and clears them all.
  template <class F>
  void take_fresh(std::size_t first, std::size_t last, F&& f) noexcept {
    take(fresh_, first, last, f);
  }
  void set_moved(std::size_t p) noexcept { moved_[p / 64] |= bit(p); }
  /// Calls f(p) for each page in [first, last] marked moved, highest first, and clears them all.
  template <class F>
  void take_moved(std::size_t first, std::size_t last, F&& f) noexcept {
    take(moved_, first, last, f);
  }

 private:
  template <class F>
  static void take(std::vector<std::uint64_t>& marks, std::size_t first, std::size_t last, F& f) noexcept {
    for (std::size_t w = last / 64 + 1; w-- > first / 64;) {
      std::uint64_t pages = marks[w] & word_mask(w, first, last);
      marks[w] &= ~pages;
      while (pages) {
        const unsigned high = 63 - static_cast<unsigned>(__builtin_clzll(pages));
        f(w * 64 + high);
        pages &= ~(std::uint64_t{1} << high);
      }
    }
  }

  static constexpr std::uint64_t bit(std::size_t p) noexcept { return std::uint64_t{1} << (p % 64); }
  bool is_held(std::size_t p) const noexcept {
    if constexpr (Holds) return (held_[p / 64] >> (p % 64)) & 1;
    else return (void)p, false;
  }

  /// A block starts or ends on page p; 1 if the page was not touched before.
  std::size_t touch_edge(std::size_t p) noexcept { return edge_refs_[p]++ == 0 ? 1 : 0; }
  /// A block that started or ended on page p is gone; 1 if the page is no longer touched.
  std::size_t untouch_edge(std::size_t p) noexcept {
    if (--edge_refs_[p] != 0) return 0;
    maybe_idle_.insert(p);  // an unmapped page too: highest_idle() drops it when it meets it
    return 1;
  }
  /// Pages [first, last] lie inside one new live block. Returns how many.
  std::size_t touch_interior(std::size_t first, std::size_t last) noexcept {
    if (first / 64 == last / 64) interior_[first / 64] |= span_mask(first, last);
    else
      for (std::size_t w = first / 64; w <= last / 64; ++w) interior_[w] |= word_mask(w, first, last);
    return last - first + 1;
  }
  /// The block whose inside pages [first, last] were is gone: the mapped ones become idle.
  std::size_t untouch_interior(std::size_t first, std::size_t last) noexcept {
    if (first / 64 == last / 64) untouch_word(first / 64, span_mask(first, last));  // most blocks
    else
      for (std::size_t w = first / 64; w <= last / 64; ++w) untouch_word(w, word_mask(w, first, last));
    return last - first + 1;
  }
  /// The pages of `mask` in word w no longer lie inside a live block: the mapped ones become idle.
  void untouch_word(std::size_t w, std::uint64_t mask) noexcept {
    interior_[w] &= ~mask;
    if (const std::uint64_t idle = mapped_[w] & mask) maybe_idle_.assign_word(w, maybe_idle_.word(w) | idle);
  }

  /// The pages of `mask` in word w that no live block touches and no hold covers.
  std::uint64_t untouched(std::size_t w, std::uint64_t mask) const noexcept {
    std::uint64_t pages = mask & ~interior_[w];
    if constexpr (Holds) pages &= ~held_[w];
    for (std::uint64_t left = pages; left; left &= left - 1) {
      const std::size_t p = w * 64 + static_cast<std::size_t>(__builtin_ctzll(left));
      if (edge_refs_[p] != 0) pages &= ~bit(p);
    }
    return pages;
  }

  /// The bits of pages [first, last], which lie in one word.
  static constexpr std::uint64_t span_mask(std::size_t first, std::size_t last) noexcept {
    return (~std::uint64_t{0} << (first % 64)) & (~std::uint64_t{0} >> (63 - last % 64));
  }
  /// The bits of word w that lie in pages [first, last].
  static constexpr std::uint64_t word_mask(std::size_t w, std::size_t first, std::size_t last) noexcept {
    std::uint64_t mask = ~std::uint64_t{0};
    if (w == first / 64) mask &= ~std::uint64_t{0} << (first % 64);
    if (w == last / 64) mask &= ~std::uint64_t{0} >> (63 - last % 64);
    return mask;
  }

  std::vector<std::uint64_t> mapped_, interior_, fresh_, moved_;
  std::vector<std::uint64_t> chunk_first_, chunk_last_;  // first and last page of each chunk
  std::vector<std::uint32_t> edge_refs_;
  std::vector<std::uint64_t> held_;  // Holds only
  hierarchical_bitmap maybe_idle_;  // every idle page, and pages touched since they went in
  std::size_t pages_ = 0;
  std::size_t mapped_count_ = 0;
};

/// The page table of host-ordered allocators: nothing is held, and holding costs them nothing.
using page_table = basic_page_table<false>;

}  // namespace stash::detail
