#pragma once
// A set of indices in [0, n) as a bitmap with summary levels above it: a bit of level k + 1 says that
// word i of level k is not zero. Inserting or erasing one index, and finding the highest one, cost one
// word operation per level: log64(n) levels, 4 for a million indices. The page table keeps its idle
// pages here, so that giving back k pages costs O(k log n) instead of a scan of the table for each.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace stash::detail {

class hierarchical_bitmap {
  static constexpr std::size_t max_levels = 11;  // 64^11 > 2^64: any n

 public:
  static constexpr std::size_t none = SIZE_MAX;

  hierarchical_bitmap() { resize(0); }

  /// n indices, none in the set. Throws std::bad_alloc, and then leaves the set as it was.
  void resize(std::size_t n) {
    std::array<std::size_t, max_levels + 1> offset{};
    std::size_t levels = 0, words = 0;
    do {
      n = (n + 63) / 64;
      offset[levels++] = words;
      words += n == 0 ? 1 : n;
    } while (n > 1);
    auto storage = std::make_unique<std::uint64_t[]>(words);  // zeroed
    storage_ = std::move(storage);
    levels_ = levels;
    for (std::size_t k = 0; k < levels; ++k) level_[k] = storage_.get() + offset[k];
  }

  bool contains(std::size_t i) const noexcept { return (level_[0][i / 64] >> (i % 64)) & 1; }

  void insert(std::size_t i) noexcept {
    for (std::size_t k = 0; k < levels_; ++k, i /= 64) {
      std::uint64_t& word = level_[k][i / 64];
      const bool was_empty = word == 0;
      word |= bit(i);
      if (!was_empty) return;
    }
  }

  void erase(std::size_t i) noexcept {
    for (std::size_t k = 0; k < levels_; ++k, i /= 64) {
      std::uint64_t& word = level_[k][i / 64];
      word &= ~bit(i);
      if (word != 0) return;
    }
  }

  /// Sets word w of the bottom level to `bits` (64 indices at once) and keeps the levels above exact.
  void assign_word(std::size_t w, std::uint64_t bits) noexcept {
    std::uint64_t& word = level_[0][w];
    const bool was_empty = word == 0;
    word = bits;
    if (was_empty == (bits == 0)) return;
    for (std::size_t k = 1; k < levels_; ++k, w /= 64) {
      std::uint64_t& above = level_[k][w / 64];
      if (bits != 0) {
        const bool above_was_empty = above == 0;
        above |= bit(w);
        if (!above_was_empty) return;
      } else {
        above &= ~bit(w);
        if (above != 0) return;
      }
    }
  }
  std::uint64_t word(std::size_t w) const noexcept { return level_[0][w]; }

  /// The highest index in the set, or none.
  std::size_t highest() const noexcept {
    std::size_t i = 0;
    for (std::size_t k = levels_; k-- > 0;) {
      const std::uint64_t word = level_[k][i];
      if (word == 0) return none;  // only the top word can be empty: a lower one is reached by a set bit
      i = i * 64 + 63 - static_cast<std::size_t>(__builtin_clzll(word));
    }
    return i;
  }

 private:
  static constexpr std::uint64_t bit(std::size_t i) noexcept { return std::uint64_t{1} << (i % 64); }

  std::unique_ptr<std::uint64_t[]> storage_;  // every level, bottom first
  std::array<std::uint64_t*, max_levels> level_{};
  std::size_t levels_ = 0;
};

}  // namespace stash::detail
