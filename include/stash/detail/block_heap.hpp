#pragma once
// The block heap: every block record of one allocator, the free lists they are filed in, split and
// merge, and the index from a live block's address to its record. It knows nothing of where memory
// comes from (the arenas: detail/segment_arena.hpp, detail/paged_arena.hpp) or of locking and stats
// (caching_allocator): those give it blocks and ask it for them.
//
// Free blocks are filed by the bucket policy, one range of free lists per pool: pool 0 for large
// requests and, where the arena keeps them apart (SmallPool), pool 1 for small ones, so a block's list
// is its bucket alone. Stream order (Streamed): a free block remembers the stream it was freed on and
// that stream's epoch; the search skips blocks the requesting stream may not use yet, and neighbours
// merge only when the merged block is as safe as both halves.
#include <cstddef>
#include <cstdint>
#include <limits>

#include "stash/buckets/buckets.hpp"
#include "stash/detail/block.hpp"
#include "stash/detail/free_lists.hpp"
#include "stash/detail/pointer_map.hpp"
#include "stash/detail/stream_layer.hpp"

namespace stash::detail {

template <bucket_policy Buckets, bool Streamed, bool SmallPool>
class block_heap {
 public:
  using tag = stream_tag;
  using buckets_type = Buckets;
  static constexpr bool streamed = Streamed;
  static constexpr bool small_pool = SmallPool;
  static constexpr std::size_t pool_count = SmallPool ? 2 : 1;

  block_heap() = default;
  block_heap(const block_heap&) = delete;
  block_heap& operator=(const block_heap&) = delete;

  // ---- records and the index ----------------------------------------------------------------------

  /// The host memory one allocate() may need (two records, one index slot), asked for before anything
  /// changes, so that a std::bad_alloc leaves every pool and counter as it was.
  void reserve() {
    records_.reserve(2);  // split and new_segment take one each
    index_.reserve_one();
  }
  /// Makes sure the next n make() calls cannot throw (n <= 256).
  void reserve_records(std::size_t n = 2) { records_.reserve(n); }
  block* make() { return records_.make(); }
  void recycle(block* b) noexcept { records_.recycle(b); }

  /// The record of the block that starts at a, live or free, if it has ever been live there.
  block* find(std::uintptr_t a) const noexcept { return index_.find(a); }
  /// Indexes b (live now) unless it is already: a block reused at the same address is. After
  /// reserve(): cannot throw.
  void index(block* b) noexcept {
    if (!b->indexed()) {
      index_.insert_reserved(b->addr, b);
      b->set_indexed(true);
    }
  }
  /// Drops the record of a block that no longer exists (a released segment's only block).
  void drop(block* b) noexcept {
    if (b->indexed()) index_.erase(b->addr);
    records_.recycle(b);
  }

  /// Bytes of live blocks.
  std::size_t allocated() const noexcept { return allocated_; }
  void count_live(std::size_t bytes) noexcept { allocated_ += bytes; }
  void count_freed(std::size_t bytes) noexcept { allocated_ -= bytes; }

  // ---- free blocks --------------------------------------------------------------------------------

  /// The free list of a block of (rounded) size n filed in pool `pool`: each pool has a range of the
  /// free lists of its own, so a block's list is its bucket alone (removing it needs no pool).
  static std::size_t bucket_of(std::size_t n, std::uint8_t pool) noexcept {
    return Buckets::bucket_index(n) + pool * Buckets::bucket_count;
  }
  static std::uint8_t filed_pool(const block* b) noexcept {
    if constexpr (SmallPool) return b->pool();
    else return 0;
  }

  /// Whether free block b may be handed out on the stream tagged `on` (always, in host order).
  static bool usable(const block* b, const tag* on) noexcept {
    if constexpr (Streamed) return usable_on(b, on);
    else return true;
  }

  /// Best fit among the first few blocks of the request's own bucket (they differ by at most one
  /// bucket width), else the first block of the next non-empty buckets, whose blocks all fit. Stream
  /// order: blocks the stream may not use yet are skipped.
  [[gnu::always_inline]] block* find_free_block(std::size_t size, const tag* on, std::uint8_t pool) noexcept {
    const std::size_t i = bucket_of(size, pool);
    const std::size_t end = (pool + std::size_t{1}) * Buckets::bucket_count;  // the pool's last list + 1
    const auto& free = free_;
    if constexpr (Buckets::exact_fit) {
      for (block* b = free.head(i); b; b = b->next_free)
        if (usable(b, on)) return b;
      return nullptr;
    } else {
      block* best = nullptr;
      int scan = 8;
      for (block* b = free.head(i); b && scan-- > 0; b = b->next_free) {
        if (!usable(b, on)) continue;
        if (b->size == size) return b;  // exact: nothing better exists, nothing to split
        if (b->size > size && (!best || b->size < best->size)) best = b;
      }
      if (best) return best;
      for (std::size_t j = free.first_at_or_above(i + 1); j < end; j = free.first_at_or_above(j + 1)) {
        for (block* b = free.head(j); b; b = b->next_free)
          if (usable(b, on)) {
            if constexpr (Streamed) {
              if (!b->next_adjacent) [[unlikely]] return below_top_first(b, size, on);
            }
            return b;
          }
        if constexpr (!Streamed) break;  // unreachable: in host order the head is usable
      }
      // Nothing larger: before the backend is asked, the rest of the own bucket (a slow path).
      for (block* b = free.head(i); b; b = b->next_free)
        if (b->size >= size && usable(b, on) && (!best || b->size < best->size)) best = b;
      return best;
    }
  }

  /// The first free block of at least `size` bytes in pool `pool` that `keep` accepts, bucket by
  /// bucket from the request's own (so nearly the smallest such block); gives up after looking at
  /// `budget` blocks. For slow paths: its cost is bounded by the budget, not its success.
  template <class Keep>
  block* find_free_block_if(std::size_t size, std::uint8_t pool, Keep keep,
                            int budget = std::numeric_limits<int>::max()) const noexcept {
    const std::size_t end = (pool + std::size_t{1}) * Buckets::bucket_count;
    const auto& free = free_;
    for (std::size_t j = free.first_at_or_above(bucket_of(size, pool)); j < end;
         j = free.first_at_or_above(j + 1))
      for (block* b = free.head(j); b; b = b->next_free) {
        if (budget-- <= 0) return nullptr;
        if constexpr (Streamed) {  // a top stands for itself and the block filed apart below it
          if (!b->next_adjacent) {
            if (block* const lower = filed_below(b); lower && lower->size >= size && keep(lower))
              return lower;
          }
        }
        if (b->size >= size && keep(b)) return b;
      }
    return nullptr;
  }

  /// Wait mode: a free block of at least `size` bytes in pool `pool`, pending on some stream (not a
  /// cross block: those belong to `nobody`). An exact-fit policy never splits, so it looks in the
  /// request's own list only: a larger block would be handed out whole.
  block* pending_block_that_fits(std::size_t size, std::uint8_t pool, const tag* nobody) const noexcept {
    auto pending = [&](const block* b) { return b->owner && b->owner != nobody && !ready(b); };
    if constexpr (Buckets::exact_fit) {
      for (block* b = free_.head(bucket_of(size, pool)); b; b = b->next_free)
        if (pending(b)) return b;
      return nullptr;
    } else {
      return find_free_block_if(size, pool, pending);
    }
  }

  [[gnu::always_inline]] void push_free(block* b) noexcept {
    free_.push(b, bucket_of(b->size, filed_pool(b)));  // sets prev_free: b is free
  }
  /// As push_free, and in stream order a block just below a free top it cannot merge with is filed
  /// apart (below_free_top).
  [[gnu::always_inline]] void file_free(block* b) noexcept {
    if constexpr (Streamed) {
      // The flag second: most blocks fail the first test at their neighbour's record, which the
      // caller has just read; testing the flag first costs about 3 instructions per warm op. Pool 0's
      // flag (the large region's) is on whenever any pool's is; file_below_top asks b's own pool.
      if (below_free_top(b) && below_tops_[0]) [[unlikely]]
        return file_below_top(b);
    }
    push_free(b);
  }
  /// file_free's rare case, out of line (looking the pool up in file_free itself cost 3 instructions
  /// per warm op): b lies below a free top; apart, unless its pool does not file apart now.
  [[gnu::cold, gnu::noinline]] void file_below_top(block* b) noexcept {
    if (below_tops_[filed_pool(b)]) free_.push(b, below_top_list);
    else push_free(b);
  }
  /// Stream order: whether blocks of pool `pool` are filed apart below a free top (off until the
  /// composition says: caching_allocator turns it on for paged arenas, whose tops are the untouched rest
  /// of their range, for the small pool only while one stream allocates).
  void file_below_tops(std::uint8_t pool, bool on) noexcept {
    if constexpr (Streamed) below_tops_[pool] = on;
    else (void)pool, (void)on;
  }
  /// Stream order: whether a search may hand out a top above a block filed apart that the requesting
  /// stream may not use yet (below_top_first). Off on the fast path, where such a search misses; the
  /// allocator's slow paths turn it on while they search (top_over_pending_scope).
  void allow_top_over_pending(bool on) noexcept {
    if constexpr (Streamed) top_over_pending_ = on;
    else (void)on;
  }

  /// Stream order: b, free on a stream, lies just below the free last block of its region or segment
  /// (the top), which belongs to no stream (the untouched rest of the range, or a segment's), so the
  /// two cannot merge: the top must stay free for every stream. In host order they would be one
  /// block, the last choice of every search; filed in its bucket, b would be a choice like any other,
  /// and the layout of a repeated workload drifted from host order's (Llama training settled at 1.36x
  /// its live bytes instead of 1.18x). So b is filed apart, where no search looks, and a search that
  /// chooses the top starts at b instead when it may (below_top_first), as it would start at the
  /// merged block.
  static bool below_free_top(const block* b) noexcept {
    const block* const next = b->next_adjacent;
    return next && !next->next_adjacent && next->is_free() && next->owner == nullptr && b->owner != nullptr;
  }
  /// Stream order, `top` (the last block of its region or segment, free, usable on `on`) was chosen
  /// for a request of `size` bytes on `on`: the block to serve it from. If the block below top was
  /// filed apart (file_free) and `on` may use it, the request starts there: in it if it fits, else in
  /// it and the start of top (place_lower). If `on` may not use it yet (another stream's pending
  /// free), host order would still have started the request there, so carving the top above it is
  /// growth: on the fast path the search misses (null), and the allocator's grow() first retires the
  /// frees that have completed, as before any growth, and searches again with
  /// allow_top_over_pending on; only then is top taken above it. Without that, a stream that found
  /// only the top (mlp_two_streams' copy stream, while the default stream's frees below it were
  /// pending) carved above the block and the layout spread (1.109 of the live peak cold instead of
  /// 1.040, bench/RESULTS.md). Otherwise top: taking it files the block below back in its bucket
  /// (top_leaves).
  block* below_top_first(block* top, std::size_t size, const tag* on) noexcept {
    block* const lower = filed_below(top);
    if (!lower) return top;
    if (!usable(lower, on)) return top_over_pending_ ? top : nullptr;
    return lower->size >= size ? lower : place_lower(top, size);
  }
  /// The block filed apart just below `top` (file_free), or null.
  block* filed_below(const block* top) const noexcept {
    block* const lower = top->prev_adjacent();
    return lower && lower->is_free() && free_.holds(below_top_list, lower) ? lower : nullptr;
  }
  /// Stream order: `top`, the last block of its region, leaves its free list (to be handed out, cut
  /// or merged): a block filed apart below it goes back to its bucket, since top is no longer the free
  /// block above it.
  void top_leaves(const block* top) noexcept {
    if (block* const lower = filed_below(top)) {
      free_.remove(lower);
      push_free(lower);
    }
  }
  /// Takes b out of its free list (it is about to be merged, given back or handed out).
  [[gnu::always_inline]] void remove(block* b) noexcept {
    free_.remove(b);
    if constexpr (Streamed) {
      if (!b->next_adjacent) [[unlikely]] top_leaves(b);
    }
  }
  /// Takes b out of its free list to hand it out (or to make it the paged arena's ghost): it is not
  /// free from now.
  [[gnu::always_inline]] void take(block* b) noexcept {
    remove(b);
    b->prev_free = nullptr;
  }

  /// f(b) for every free block and every block in the index (the live ones, and free ones reused at
  /// the same address), a free block possibly twice. For empty_cache's walk, not a fast path.
  template <class F>
  void for_each_block(F&& f) const {
    for (std::size_t j = 0; j < list_count; ++j)
      for (block* b = free_.head(j); b; b = b->next_free) f(b);
    index_.for_each([&](std::uintptr_t, block* b) { f(b); });
  }

  // ---- split and merge ----------------------------------------------------------------------------

  /// Keeps the first `size` bytes of b (not in any free list) and files the rest as a new free block.
  /// Cannot throw: allocate() reserved the record. Always inlined: every allocate calls it, and as a
  /// call it cost more (saving and restoring registers) than the split itself.
  [[gnu::always_inline]] void split(block* b, std::size_t size) noexcept {
    if constexpr (!Buckets::exact_fit) {
      if (b->size > size) {
        block* rest = records_.make();
        rest->start_above(b);  // not indexed; in b's pool (the same segment or region)
        if constexpr (Streamed) {  // the rest is as safe, for the same streams, as the block it came from
          rest->owner = b->owner;
          rest->seq = b->seq;
        }
        rest->addr = b->addr + size;
        rest->size = b->size - size;
        rest->next_adjacent = b->next_adjacent;
        if (rest->next_adjacent) rest->next_adjacent->replace_prev_adjacent(b, rest);
        b->next_adjacent = rest;
        b->size = size;
        file_free(rest);  // its upper neighbour's record was just written: the check costs no load
      }
    }
  }

  /// Stream order: a block freed on stream `owner` merges with free neighbours freed on the same
  /// stream (pending or not), never with memory of no stream (a fresh segment's rest, the paged
  /// arena's untouched range) or of another: the merged block is pending on `owner`, and other streams
  /// must still find that memory free. Ready neighbours are merged later (merge_ready).
  static bool mergeable(const block* n, const tag* owner) noexcept {
    if constexpr (Streamed) return n->owner == owner;
    else return (void)n, (void)owner, true;
  }

  /// Files b, just freed, merged with its mergeable free neighbours (the merged block then belongs to
  /// b's stream and epoch). A free neighbour it may not merge with is noted (note_unmerged). Always
  /// inlined: it is the free fast path's last step, and with a second caller (the paged arena's
  /// retire_remapped) the compiler otherwise calls it out of line, 8 instructions more per warm
  /// operation (cachegrind, resnet50_train).
  [[gnu::always_inline]] void merge_and_push(block* b) noexcept {
    if (block* next = b->next_adjacent; next && next->is_free()) {
      if (mergeable(next, b->owner)) {
        free_.remove(next);
        absorb_next(b);
      } else {
        note_unmerged();
      }
    }
    if (block* prev = b->prev_adjacent(); prev && prev->is_free()) {
      if (mergeable(prev, b->owner)) {
        free_.remove(prev);
        if constexpr (Streamed) {
          prev->owner = b->owner;
          prev->seq = b->seq;
        }
        absorb_next(prev);
        b = prev;
      } else {
        note_unmerged();
      }
    }
    file_free(b);
  }

  /// Stream order: two neighbouring free blocks may lie unmerged now (freed on different streams, or
  /// not both ready). Whoever files a free block next to a free neighbour without merging them says
  /// so; while nobody has, no two free blocks are neighbours and merge_all_ready has nothing to do.
  void note_unmerged() noexcept {
    if constexpr (Streamed) unmerged_ = true;
  }
  /// Stream order: merge_ready over every run of neighbouring blocks (for_each_first(f) calls f with
  /// the first block of each: a region, a segment). Walking every block costs a cache miss or two per
  /// block, so the walk is skipped when no free neighbours can lie unmerged; after it they can only
  /// if some that are not ready were left.
  template <class ForEachFirst>
  void merge_all_ready(ForEachFirst&& for_each_first) noexcept {
    if constexpr (Streamed) {
      if (!unmerged_) return;
      bool left = false;
      for_each_first([&](block* first) noexcept { left = merge_ready(first) || left; });
      unmerged_ = left;
    }
  }

  /// Stream order: merges the neighbouring free blocks of the run from b on that are both ready
  /// (blocks freed on different streams could not merge while either was pending). Returns whether
  /// free neighbours are left unmerged (one of them is not ready).
  bool merge_ready(block* b) noexcept {
    bool left = false;
    for (; b; b = b->next_adjacent) {
      while (b->is_free() && ready(b) && b->next_adjacent && b->next_adjacent->is_free() &&
             ready(b->next_adjacent)) {
        free_.remove(b);
        free_.remove(b->next_adjacent);
        absorb_next(b);
        b->owner = nullptr;
        b->seq = 0;
        file_free(b);
      }
      if (b->is_free() && b->next_adjacent && b->next_adjacent->is_free()) left = true;
    }
    return left;
  }

  /// Places a request of `size` bytes at the start of free block b's free lower neighbour instead of at
  /// b: the neighbour (all of it) and b's first size - lower->size bytes become one free block of
  /// exactly `size`, returned; the rest of b stays a free block as it was (same stream and epoch).
  /// The caller checked that both are usable on the requesting stream, that the neighbour is smaller
  /// than `size` and that b's rest is not empty or b is larger. The returned block is pending where either
  /// part was (on that stream, at the later epoch): as safe as both halves. Cannot throw: allocate()
  /// reserved the record split needs.
  block* place_lower(block* b, std::size_t size) noexcept {
    block* const lower = b->prev_adjacent();
    free_.remove(b);
    split(b, size - lower->size);  // b keeps the part the request needs; its rest is filed as it was
    free_.remove(lower);
    if constexpr (Streamed) {
      if (!ready(b) && (ready(lower) || b->seq > lower->seq)) {
        lower->owner = b->owner;
        lower->seq = b->seq;
      }
    }
    absorb_next(lower);
    // Filed, so that it stays a free block if mapping its pages fails. Not apart below b's rest if that
    // rest, now the top, is smaller: a search reaches a block filed apart only through its top, and
    // looks only at lists of blocks at least as large as the request, so the second search of
    // caching_allocator::before_mapping_in_order would not find it (the libFuzzer harness found this,
    // near the end of a region).
    if (const block* const rest = lower->next_adjacent; !rest || rest->size >= lower->size) file_free(lower);
    else push_free(lower);
    note_unmerged();  // next to b's rest, also free
    return lower;
  }

  /// Folds b's upper neighbour (free, and out of the free lists) into b and drops its record; who owns
  /// the merged block is the caller's rule. Always inlined: both merges of a free are on its fast path.
  [[gnu::always_inline]] void absorb_next(block* b) noexcept {
    block* const next = b->next_adjacent;
    b->size += next->size;
    if (next->indexed()) index_.erase(next->addr);
    b->next_adjacent = next->next_adjacent;
    if (b->next_adjacent) b->next_adjacent->replace_prev_adjacent(next, b);
    records_.recycle(next);
  }

 private:
  // A range of lists per pool (bucket_of), and in stream order one more that no search looks at
  // (below_free_top).
  static constexpr std::size_t below_top_list = Buckets::bucket_count * pool_count;
  static constexpr std::size_t list_count = below_top_list + (Streamed ? 1 : 0);
  using free_lists_type = free_lists<list_count>;
  free_lists_type free_;
  pointer_map<block> index_;  // block start -> record, for every block that has been live at its
                              // address (free ones too: a reuse needs no insert)
  block_records records_;
  std::size_t allocated_ = 0;  // bytes of live blocks
  bool unmerged_ = false;      // stream order: free neighbours may lie unmerged (note_unmerged)
  bool below_tops_[pool_count] = {};  // stream order, per pool: file_free files blocks below a free top apart
  bool top_over_pending_ = false;  // stream order: below_top_first may take
                                   // a top above a block it may not use
};

}  // namespace stash::detail
