#pragma once
// One doubly linked list of free blocks per bucket, plus a two-level bitmap of the non-empty buckets,
// so "the first non-empty bucket at or above i" costs two bit scans whatever the number of buckets.
// A record does not store its list: the head's prev_free is a mark, 2i + 1 (no record's address is
// odd), so removing any block finds its list without another field in the record, and removing one
// from the middle of a list never needs it.
//
// push and remove have no branch. Whether a list was empty, whether a block heads its list and whether
// it is the last one depend on the workload's sizes: with a large heap most lists hold one block or
// none, and branches on these were the costliest mispredictions of a warm operation. So both always
// write the same words: a link that does not exist is written to a spare record (sink_), and the
// bitmap is updated with masks. On an H200's host that took warm ns/op to 0.87-0.94x on the large-heap
// traces, for ~20 more instructions per op, and about 1.03x where the branches were predicted (small
// heaps); bench/RESULTS.md, sixteenth session.
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
    (head ? head : &sink_)->prev_free = b;  // a conditional move: the old head links back to b
    words_[i / 64] |= bit(i % 64);          // set whether or not the list was empty
    summary_ |= bit(i / 64);
  }

  /// Takes b out of the list it is filed in (its head's mark says which, when b is the head). The
  /// cases (b heads its list or not, is its last block or not) are selected with masks, not branches.
  [[gnu::always_inline]] void remove(block* b) noexcept {
    const std::uintptr_t prev = address(b->prev_free);
    const std::uintptr_t next = address(b->next_free);
    const std::uintptr_t heads = 0 - (prev & 1);                              // all ones: b heads its list
    const std::uintptr_t last = 0 - static_cast<std::uintptr_t>(next == 0);  // all ones: b is its last block
    const std::size_t i = list_of_mark(prev) & heads;  // b's list where it heads it, else 0 (its bits stay)
    // The block after b links back to b's predecessor (or the sink takes the write) ...
    link(select(address(&sink_), next, last))->prev_free = b->prev_free;
    // ... and the list's head, or the predecessor's forward link, skips b.
    *reinterpret_cast<block**>(select(address(&heads_[i]), prev + next_free_offset(), heads)) = b->next_free;
    // The list is empty now if b was its only block: its bit goes, and the word's summary bit with the
    // word's last one.
    const std::uint64_t emptied = heads & last & 1;
    std::uint64_t& word = words_[i / 64];
    word &= ~(emptied << (i % 64));
    summary_ &= ~((emptied & static_cast<std::uint64_t>(word == 0)) << (i / 64));
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
  static std::uintptr_t address(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }
  static block* link(std::uintptr_t a) noexcept { return reinterpret_cast<block*>(a); }
  /// `yes` where mask is all ones, `no` where it is zero.
  static std::uintptr_t select(std::uintptr_t yes, std::uintptr_t no, std::uintptr_t mask) noexcept {
    return (yes & mask) | (no & ~mask);
  }
  /// Where next_free lies in a record (the same in every record; the compiler folds it to a constant).
  std::uintptr_t next_free_offset() const noexcept { return address(&sink_.next_free) - address(&sink_); }
  static block* head_mark(std::size_t i) noexcept { return reinterpret_cast<block*>(i * 2 + 1); }
  static bool is_head_mark(const block* p) noexcept { return (reinterpret_cast<std::uintptr_t>(p) & 1) != 0; }
  static std::size_t list_of_mark(std::uintptr_t mark) noexcept { return mark / 2; }
  std::array<block*, BucketCount> heads_{};
  std::array<std::uint64_t, word_count> words_{};
  std::uint64_t summary_ = 0;
  block sink_;  // takes push's and remove's writes to links that do not exist; never read
};

}  // namespace stash::detail
