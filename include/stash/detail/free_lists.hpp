#pragma once
// One doubly linked list of free blocks per bucket, plus a two-level bitmap of the non-empty buckets,
// so "the first non-empty bucket at or above i" costs two bit scans whatever the number of buckets.
// A record does not store its list: the head's prev_free is a mark, 2i + 1 (no record's address is
// odd), so removing any block finds its list without another field in the record, and removing one
// from the middle of a list never needs it.
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

  /// Files b in list i.
  [[gnu::always_inline]] void push(block* b, std::size_t i) noexcept {
    block* const head = heads_[i];
    b->prev_free = head_mark(i);
    b->next_free = head;
    heads_[i] = b;
    if (head) {
      head->prev_free = b;
    } else {  // the bitmap says which lists are non-empty: only an empty list changes it
      words_[i / 64] |= bit(i % 64);
      summary_ |= bit(i / 64);
    }
  }

  /// Takes b out of the list it is filed in (its head's mark says which, when b is the head).
  [[gnu::always_inline]] void remove(block* b) noexcept {
    block* const prev = b->prev_free;
    block* const next = b->next_free;
    if (next) next->prev_free = prev;
    if (!is_head_mark(prev)) {
      prev->next_free = next;
      return;
    }
    const std::size_t i = list_of_mark(prev);
    heads_[i] = next;
    if (!next) {
      words_[i / 64] &= ~bit(i % 64);
      if (!words_[i / 64]) summary_ &= ~bit(i / 64);
    }
  }

  /// Whether b is filed in list i (walks list i: for short lists).
  bool holds(std::size_t i, const block* b) const noexcept {
    for (const block* p = heads_[i]; p; p = p->next_free)
      if (p == b) return true;
    return false;
  }

  /// Whether b, filed here, is the head of its list.
  static bool is_head(const block* b) noexcept { return is_head_mark(b->prev_free); }

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
  static block* head_mark(std::size_t i) noexcept { return reinterpret_cast<block*>(i * 2 + 1); }
  static bool is_head_mark(const block* p) noexcept { return (reinterpret_cast<std::uintptr_t>(p) & 1) != 0; }
  static std::size_t list_of_mark(const block* p) noexcept { return reinterpret_cast<std::uintptr_t>(p) / 2; }
  std::array<block*, BucketCount> heads_{};
  std::array<std::uint64_t, word_count> words_{};
  std::uint64_t summary_ = 0;
};

}  // namespace stash::detail
