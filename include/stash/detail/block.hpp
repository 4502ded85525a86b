#pragma once
// The bookkeeping record of one block: a run of bytes that is either live (handed out) or free
// (cached). Blocks that are neighbours in memory are linked, so a freed block merges with free
// neighbours in O(1); free blocks are also linked into their bucket's free list.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace stash::detail {

struct stream_tag;

/// One cache line, aligned to one: a warm step of a large model touches thousands of records, more
/// than the L1 holds, and a record that spans two lines costs two misses where one would do (80 bytes
/// took 1.92 D1 misses per warm op on resnet50_train, bench/RESULTS.md). Four encodings fit it:
/// `requested` (live) and `seq` (free) share a word; the free list a block is filed in is not stored
/// (the list's head keeps it, free_lists.hpp); a block is free when it is filed in a free list (its
/// prev_free is set); and the other three flags sit in the low bits of the lower neighbour's
/// address, which the records' 64-byte alignment leaves zero.
struct alignas(64) block {
  std::uintptr_t addr = 0;
  std::size_t size = 0;  // bytes spanned, a multiple of 256
  union {
    std::size_t requested = 0;  // live: bytes the caller asked for
    std::uint64_t seq;          // free, stream order: the owner's epoch at the free (see owner)
  };
  block* next_adjacent = nullptr;  // the upper neighbour in the same segment (or the paged arena)
  block* prev_free = nullptr;      // free-list links, while free (a list's head: free_lists.hpp);
                                   // null while live
  block* next_free = nullptr;
  // Stream order (detail/stream_layer.hpp), unused by host-ordered allocators: while live, the stream
  // it was allocated on; while free, the stream it was freed on (and seq, that stream's epoch then).
  stream_tag* owner = nullptr;

  /// The lower neighbour in the same segment (or the paged arena), or null.
  block* prev_adjacent() const noexcept { return reinterpret_cast<block*>(prev_and_flags_ & ~flag_mask); }
  /// The lower neighbour, `from` until now, is `to`. One add, which keeps the flags: both addresses
  /// are multiples of 64, so the difference never reaches the flag bits.
  void replace_prev_adjacent(const block* from, const block* to) noexcept {
    prev_and_flags_ += reinterpret_cast<std::uintptr_t>(to) - reinterpret_cast<std::uintptr_t>(from);
  }
  /// A record for the block just above `lower`, split from it: no flag set but `lower`'s pool.
  void start_above(block* lower) noexcept {
    prev_and_flags_ = reinterpret_cast<std::uintptr_t>(lower) | (lower->prev_and_flags_ & pool_bit);
  }

  /// Filed in a free list. Between the allocator's calls every block is live, filed, or a ghost of the
  /// paged arena (detail/paged_arena.hpp, carve_ghost); inside one, a block taken out of its list to be
  /// merged or re-filed is none of these, and nothing asks.
  bool is_free() const noexcept { return prev_free != nullptr; }
  /// Handed out: not filed, and in the index (every block allocate() hands out is; a ghost is not).
  bool is_live() const noexcept { return prev_free == nullptr && indexed(); }
  /// Its address is in the allocator's block index (it has been live there).
  bool indexed() const noexcept { return (prev_and_flags_ & indexed_bit) != 0; }
  void set_indexed(bool on) noexcept { set(indexed_bit, on); }
  /// Which of the allocator's two sets of free lists it is filed in while free (0 or 1).
  std::uint8_t pool() const noexcept { return (prev_and_flags_ & pool_bit) != 0 ? 1 : 0; }
  void set_pool(std::uint8_t p) noexcept { set(pool_bit, p != 0); }
  /// Live, stream order: record_stream named another stream.
  bool used_elsewhere() const noexcept { return (prev_and_flags_ & used_elsewhere_bit) != 0; }
  void set_used_elsewhere(bool on) noexcept { set(used_elsewhere_bit, on); }

 private:
  static constexpr std::uintptr_t indexed_bit = 1, pool_bit = 2, used_elsewhere_bit = 4;
  static constexpr std::uintptr_t flag_mask = 63;  // below the records' alignment
  void set(std::uintptr_t bit, bool on) noexcept {
    if (on) prev_and_flags_ |= bit;
    else prev_and_flags_ &= ~bit;
  }
  std::uintptr_t prev_and_flags_ = 0;  // the lower neighbour's address | the flags
};
static_assert(sizeof(block) == 64 && alignof(block) == 64, "a block record is one cache line");

/// Hands out block records from chunks so that splitting a block never calls malloc.
class block_records {
 public:
  /// Makes sure the next n make() calls cannot throw (n <= 256: one grow() adds that many): the
  /// allocator asks the host heap for records before it changes anything, so a std::bad_alloc leaves
  /// it as it was. Counts the spare records rather than following their links: the second spare is
  /// often cold in the cache, and the allocation may take no record at all.
  void reserve(std::size_t n) {
    if (spare_count_ < n) [[unlikely]] grow();
  }
  /// A record with its fields unset: the caller sets every one (split does so on the fast path).
  block* make() {
    if (spare_count_ == 0) grow();
    block* b = spare_;
    spare_ = b->next_free;
    --spare_count_;
    return b;
  }
  void recycle(block* b) noexcept {
    b->next_free = spare_;
    spare_ = b;
    ++spare_count_;
  }

 private:
  void grow() {
    constexpr std::size_t chunk = 256;
    chunks_.push_back(std::make_unique<block[]>(chunk));
    for (std::size_t i = 0; i < chunk; ++i) recycle(&chunks_.back()[i]);
  }
  std::vector<std::unique_ptr<block[]>> chunks_;
  block* spare_ = nullptr;
  std::size_t spare_count_ = 0;
};

}  // namespace stash::detail
