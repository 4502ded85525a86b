#pragma once
// One doubly linked list of free blocks per bucket, plus a two-level bitmap of the non-empty buckets,
// so "the first non-empty bucket at or above i" costs two bit scans whatever the number of buckets.
#include <array>
#include <cstddef>
#include <cstdint>

#include "stash/detail/block.hpp"

namespace stash::detail {

template <std::size_t BucketCount>
class free_lists {
  static constexpr std::size_t word_count = (BucketCount + 63) / 64;
  static_assert(word_count <= 64, "the summary word indexes at most 64 bitmap words");

 public:
  static constexpr std::size_t none = BucketCount;

  [[gnu::always_inline]] void push(block* b) noexcept {
    const std::size_t i = b->bucket;
    block* const head = heads_[i];
    b->prev_free = nullptr;
    b->next_free = head;
    heads_[i] = b;
    if (head) {
      head->prev_free = b;
    } else {  // the bitmap says which lists are non-empty: only an empty list changes it
      words_[i / 64] |= bit(i % 64);
      summary_ |= bit(i / 64);
    }
  }

  [[gnu::always_inline]] void remove(block* b) noexcept {
    const std::size_t i = b->bucket;
    if (b->prev_free) b->prev_free->next_free = b->next_free;
    else heads_[i] = b->next_free;
    if (b->next_free) b->next_free->prev_free = b->prev_free;
    if (!heads_[i]) {
      words_[i / 64] &= ~bit(i % 64);
      if (!words_[i / 64]) summary_ &= ~bit(i / 64);
    }
  }

  block* head(std::size_t i) const noexcept { return heads_[i]; }

  /// Smallest non-empty bucket index >= i, or `none`.
  [[gnu::always_inline]] std::size_t first_at_or_above(std::size_t i) const noexcept {
    if (i >= BucketCount) return none;
    std::size_t w = i / 64;
    const std::uint64_t in_word = words_[w] & (~std::uint64_t{0} << (i % 64));
    if (in_word) return w * 64 + static_cast<std::size_t>(__builtin_ctzll(in_word));
    if (w + 1 >= 64) return none;
    const std::uint64_t later = summary_ & (~std::uint64_t{0} << (w + 1));
    if (!later) return none;
    w = static_cast<std::size_t>(__builtin_ctzll(later));
    return w * 64 + static_cast<std::size_t>(__builtin_ctzll(words_[w]));
  }

 private:
  static constexpr std::uint64_t bit(std::size_t i) noexcept { return std::uint64_t{1} << i; }
  std::array<block*, BucketCount> heads_{};
  std::array<std::uint64_t, word_count> words_{};
  std::uint64_t summary_ = 0;
};

}  // namespace stash::detail
