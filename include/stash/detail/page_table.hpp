#pragma once
// State of every page of a paged backend's reservation, kept as bitsets so that a block of hundreds of
// pages costs a few word operations, not a loop over its pages:
//   - mapped: physical memory backs the page;
//   - interior: the page lies strictly inside one live block (no other block can touch it);
//   - edge_refs: how many live blocks start or end on the page (small blocks share pages).
// A page is touched when a live block lies on it: interior, or edge_refs > 0. Mapped pages that are not
// touched are idle: the paged allocator's cache, moved to where memory is needed or given back.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace stash::detail {

class page_table {
 public:
  static constexpr std::size_t none = SIZE_MAX;

  void resize(std::size_t pages) {
    const std::size_t words = (pages + 63) / 64;
    mapped_.assign(words, 0);
    interior_.assign(words, 0);
    edge_refs_.assign(pages, 0);
    pages_ = pages;
  }
  std::size_t size() const noexcept { return pages_; }

  bool mapped(std::size_t p) const noexcept { return (mapped_[p / 64] >> (p % 64)) & 1; }
  void set_mapped(std::size_t p, bool on) noexcept {
    if (on) mapped_[p / 64] |= bit(p);
    else mapped_[p / 64] &= ~bit(p);
    mapped_count_ += on ? 1 : -1;
  }
  std::size_t mapped_count() const noexcept { return mapped_count_; }
  bool touched(std::size_t p) const noexcept { return ((interior_[p / 64] >> (p % 64)) & 1) || edge_refs_[p] != 0; }

  /// Records a live block on pages [first, last]; returns how many pages became touched.
  std::size_t touch(std::size_t first, std::size_t last) noexcept {
    std::size_t fresh = edge_refs_[first]++ == 0 ? 1 : 0;
    if (last != first) fresh += edge_refs_[last]++ == 0 ? 1 : 0;
    if (last > first + 1) {
      set_range(interior_, first + 1, last - 1, true);
      fresh += last - first - 1;
    }
    return fresh;
  }
  /// Undoes touch(first, last); returns how many pages stopped being touched.
  std::size_t untouch(std::size_t first, std::size_t last) noexcept {
    std::size_t gone = --edge_refs_[first] == 0 ? 1 : 0;
    if (last != first) gone += --edge_refs_[last] == 0 ? 1 : 0;
    if (last > first + 1) {
      set_range(interior_, first + 1, last - 1, false);
      gone += last - first - 1;
    }
    return gone;
  }

  /// First page in [first, last] that is not mapped, or none.
  std::size_t first_unmapped(std::size_t first, std::size_t last) const noexcept {
    for (std::size_t w = first / 64; w <= last / 64; ++w)
      if (const std::uint64_t holes = ~mapped_[w] & word_mask(w, first, last))
        return w * 64 + static_cast<std::size_t>(__builtin_ctzll(holes));
    return none;
  }

  /// The idle page with the highest address, or none. Idle pages are taken from the top so that the
  /// low end of the range, where the allocator carves first, stays backed.
  std::size_t highest_idle() const noexcept {
    for (std::size_t w = mapped_.size(); w-- > 0;) {
      std::uint64_t candidates = mapped_[w] & ~interior_[w];
      while (candidates) {
        const std::size_t p = w * 64 + 63 - static_cast<std::size_t>(__builtin_clzll(candidates));
        if (edge_refs_[p] == 0) return p;
        candidates &= ~bit(p);
      }
    }
    return none;
  }

 private:
  static constexpr std::uint64_t bit(std::size_t p) noexcept { return std::uint64_t{1} << (p % 64); }

  static void set_range(std::vector<std::uint64_t>& bits, std::size_t first, std::size_t last, bool on) noexcept {
    for (std::size_t w = first / 64; w <= last / 64; ++w) {
      if (on) bits[w] |= word_mask(w, first, last);
      else bits[w] &= ~word_mask(w, first, last);
    }
  }

  /// The bits of word w that lie in pages [first, last].
  static constexpr std::uint64_t word_mask(std::size_t w, std::size_t first, std::size_t last) noexcept {
    std::uint64_t mask = ~std::uint64_t{0};
    if (w == first / 64) mask &= ~std::uint64_t{0} << (first % 64);
    if (w == last / 64) mask &= ~std::uint64_t{0} >> (63 - last % 64);
    return mask;
  }

  std::vector<std::uint64_t> mapped_, interior_;
  std::vector<std::uint32_t> edge_refs_;
  std::size_t pages_ = 0;
  std::size_t mapped_count_ = 0;
};

}  // namespace stash::detail
