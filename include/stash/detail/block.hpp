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

struct block {
  std::uintptr_t addr = 0;
  std::size_t size = 0;          // bytes spanned, a multiple of 256
  std::size_t requested = 0;     // bytes the caller asked for, while live
  block* prev_adjacent = nullptr; // neighbours in the same segment (or the paged arena)
  block* next_adjacent = nullptr;
  block* prev_free = nullptr;     // free-list links, while free
  block* next_free = nullptr;
  std::uint32_t bucket = 0;
  bool is_free = true;
  bool indexed = false;  // its address is in the allocator's block index (it has been live there)
  std::uint8_t pool = 0;  // which of the allocator's free-list sets it is filed in while free
  bool used_elsewhere = false;  // live: record_stream named another stream (stream-ordered allocators)
  // Stream order (detail/stream_layer.hpp), unused by host-ordered allocators: while live, the stream
  // it was allocated on; while free, the stream it was freed on and that stream's epoch at the free.
  stream_tag* owner = nullptr;
  std::uint64_t seq = 0;
};

/// Hands out block records from chunks so that splitting a block never calls malloc.
class block_pool {
 public:
  /// Makes sure the next two make() calls cannot throw: the allocator asks the host heap for records
  /// before it changes anything, so a std::bad_alloc leaves it as it was.
  /// Counts the spare records rather than following their links: the second spare is often cold in
  /// the cache, and the allocation may take no record at all.
  void reserve_two() {
    if (spare_count_ < 2) [[unlikely]] grow();
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
