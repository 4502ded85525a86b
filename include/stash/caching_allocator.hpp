#pragma once
// stash::caching_allocator: the core. It caches blocks that callers free and hands them out again, so
// the backend (cudaMalloc, cudaMallocHost, CUDA virtual memory, ...) is called rarely.
//
// One algorithm serves every composition:
//   - requests are rounded by the bucket policy (good_size) and served from free blocks filed in the
//     bucket policy's free lists (best fit within the request's own bucket, else the first block of the
//     next non-empty bucket, which always fits);
//   - a larger free block is split and the rest stays cached; a freed block merges with free neighbours;
//   - when nothing fits, the allocator grows: with a segment backend it asks for a new segment, with a
//     paged backend it carves its one reserved address range and backs the pages the block touches with
//     physical memory, reusing the pages that no live block touches before it maps new ones. That is what
//     keeps the memory held within a few percent of the memory in use. Requests of at most half a page
//     are carved from a region of their own above that range, so that small blocks never split the holes
//     large ones leave (caching_options::small_region);
//   - with a segment backend and a splitting bucket policy, small requests (the policy's small_request
//     and below) are carved only from small segments and larger ones only from large segments, each
//     kind with free lists of its own, so a small live block never keeps a large segment from going
//     back to the backend (PyTorch's small and large pools);
//   - when the backend is out of memory, the cache is released and the request retried once; then
//     stash::out_of_memory is thrown, and the memory held is what it was before the call (less the
//     cache released): pages mapped for the failed request are unmapped again.
// Every operation is strongly exception-safe: the host memory the bookkeeping needs (block records,
// index slots, segment map nodes) is taken before anything changes, so a std::bad_alloc, like any
// error, leaves every pool and counter as it was.
// Stream order (ordering policies that are not host-ordered: the device and pinned compositions): a
// block freed on stream S is reused on S at once and on another stream only once an event recorded on
// S after the free has completed; detail/stream_layer.hpp keeps the epochs and events, and the free
// lists below skip blocks the requesting stream may not use yet. Host-ordered compositions compile
// every stream path out.
// allocate() and deallocate() below are the whole fast path; everything they call that is not inline in
// them is a slow path (growing, out of memory, errors).
#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "stash/backend/backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/detail/block.hpp"
#include "stash/detail/free_lists.hpp"
#include "stash/detail/page_table.hpp"
#include "stash/detail/pointer_map.hpp"
#include "stash/detail/stream_layer.hpp"
#include "stash/error.hpp"
#include "stash/lock/lock.hpp"
#include "stash/ordering/default_ordering.hpp"
#include "stash/stats/basic_stats.hpp"
#include "stash/stream.hpp"

namespace stash {

/// Numbers a user may tune per allocator; the defaults are what the benchmarks ran with.
struct caching_options {
  /// Paged backends only: address space to reserve up front (0: the backend's
  /// default_reserve_bytes() when it has one, else 1 TiB). Rounded up to the page size.
  std::size_t reserve_bytes = 0;
  /// Paged backends only: how far the pages held may exceed the high tide of pages touched by live
  /// blocks before idle pages are moved to where they are needed instead of new ones being mapped.
  /// 0 holds the least memory; a little slack saves page moves when the same workload repeats.
  double page_slack = 0.02;
  /// Paged backends only: a page move costs tens of microseconds (unmap, map, set access), so moves
  /// are rationed: at most one per this many pages backed. Between moves new pages are mapped, so a
  /// workload whose layout keeps shifting settles on the pages it needs instead of moving them forever.
  std::uint64_t pages_between_moves = 8;
  /// Paged backends that map runs of pages as one physical allocation (chunked_paged_backend): the
  /// unmapped pages inside a new block (not its first and last page, which neighbours may share) are
  /// mapped in chunks of up to this many pages, three driver calls per chunk instead of three per
  /// page. A chunk is given back or moved away only whole, once none of its pages is touched, so a
  /// block placed later on part of a freed chunk's range keeps the rest of it mapped: the size bounds
  /// that (64 MiB with 2 MiB pages). 1: every page is its own physical allocation.
  std::size_t max_chunk_pages = 32;
  /// Paged backends only: requests of at most half a page (1 MiB with 2 MiB pages, PyTorch's small
  /// requests) are carved from a region of their own, an eighth more address space reserved above
  /// reserve_bytes, and larger ones from the range below it. A small block then never sits inside a
  /// hole a large block left, where it would keep the hole's pages touched and split the hole, so that
  /// the next large request would need new pages elsewhere (PyTorch keeps small and large pools for the
  /// same reason). When the small region is full, small requests are carved from the large one. Off:
  /// one region for every size.
  bool small_region = true;
  /// Stream-ordered compositions with a segment backend: when no block usable on the requesting
  /// stream T is cached and no other stream's free has completed, take a block freed on another
  /// stream S by making T wait for S's event on the GPU (cudaStreamWaitEvent, RMM's way) before new
  /// memory is asked for. Off: T then never waits for S's unrelated work (README, "Stream order").
  bool cross_stream_wait = false;
};

template <backend_policy Backend, bucket_policy Buckets = segregated_fit_buckets,
          lock_policy Lock = std::mutex, stats_policy Stats = basic_stats,
          ordering_policy Ordering = default_ordering_t<Backend>>
class caching_allocator {
  static constexpr bool paged = paged_backend<Backend>;
  static constexpr bool streamed = !Ordering::host_ordered;
  using tag = detail::stream_tag;
  /// Host order keeps no stream state: the policy alone (empty for host_ordering).
  struct no_stream_layer {
    explicit no_stream_layer(Ordering o) noexcept : policy(std::move(o)) {}
    Ordering& ordering() noexcept { return policy; }
    const Ordering& ordering() const noexcept { return policy; }
    [[no_unique_address]] Ordering policy;
  };
  struct none {};
  static_assert(!(paged && Buckets::exact_fit),
                "a paged backend carves one address range: it needs a bucket policy that splits");
  using block = detail::block;
  // Small and large requests in free lists of their own: segment backends whose policy splits and
  // names a small_request threshold (small and large segments), and paged backends (a region of the
  // reserved range for requests of at most half a page, caching_options::small_region); one set otherwise.
  static constexpr bool small_pool = !Buckets::exact_fit && (paged || requires { Buckets::small_request; });
  static constexpr std::size_t pool_count = small_pool ? 2 : 1;
  static constexpr std::size_t unknown = SIZE_MAX - 1;  // a page index not yet looked up
  struct segment {
    block* first;       // the block at the segment's start; stays the same record for its lifetime
    std::size_t bytes;  // as allocated from the backend
  };

 public:
  using backend_type = Backend;
  using buckets_type = Buckets;
  using lock_type = Lock;
  using stats_type = Stats;
  using ordering_type = Ordering;
  static constexpr memory_kind kind = Backend::kind;

  explicit caching_allocator(Backend backend = Backend{}, caching_options options = {},
                             Ordering ordering = Ordering{})
      : backend_(std::move(backend)), options_(options), streams_(std::move(ordering)) {}
  caching_allocator(const caching_allocator&) = delete;
  caching_allocator& operator=(const caching_allocator&) = delete;
  /// Gives every segment or page back to the backend, including blocks the caller never freed.
  ~caching_allocator() { release_everything(); }

  /// What allocate(n) really occupies; 0 for n == 0 (allocate(0) takes nothing) or n > max_size().
  static constexpr std::size_t good_size(std::size_t n) noexcept {
    return n == 0 || n > Buckets::max_size ? 0 : Buckets::round_up(n);
  }
  static constexpr std::size_t max_size() noexcept { return Buckets::max_size; }

  /// At least 256-byte aligned, for use on stream s (default: the legacy default stream). allocate(0)
  /// returns nullptr and changes nothing (as cudaMalloc(0) does). Throws invalid_size for
  /// n > max_size(), out_of_memory when the backend has no memory even after the cache was released,
  /// invalid_stream for a stream the ordering policy rejects, capture_error when s is capturing a graph
  /// and the cache cannot serve the request.
  [[nodiscard]] void* allocate(std::size_t n, stream s = stream{}) {
    if (n - 1 >= Buckets::max_size) [[unlikely]] {  // n == 0 wraps around to SIZE_MAX
      if (n == 0) return nullptr;
      throw_too_large(n);
    }
    const std::size_t size = Buckets::round_up(n);
    std::lock_guard guard(lock_);
    records_.reserve_two();  // split and new_segment take one each: host memory is asked for first
    index_.reserve_one();
    tag* const on = tag_of(s);
    block* b = find_free_block(size, on);
    bool from_cache = b != nullptr;
    if (!b) b = grow(n, size, on);
    if constexpr (paged) {
      std::size_t unmapped = unknown;  // the block's first unmapped page: back_pages finds it
      if constexpr (streamed) {  // but in stream order a capture or pending frees may matter first
        unmapped = pages_.first_unmapped(first_page(b->addr), last_page(b->addr, size));
        if (unmapped != detail::page_table::none) [[unlikely]] b = before_mapping(b, size, n, on, unmapped);
      }
      from_cache = back_pages(b->addr, size, n, unmapped) && from_cache;
    }
    free_.remove(b);
    split(b, size);
    b->is_free = false;
    b->requested = n;
    if constexpr (streamed) b->owner = on;
    if (!b->indexed) {  // a block reused at the same address is indexed already
      index_.insert(b->addr, b);
      b->indexed = true;
    }
    allocated_ += b->size;
    stats_.on_allocate(n, b->size, from_cache);
    return reinterpret_cast<void*>(b->addr);
  }

  /// Frees p; work queued on stream s (default: the legacy default stream) may still use it. nullptr is
  /// a no-op. A pointer not handed out here throws invalid_pointer; one already freed throws
  /// double_free; a stream the ordering policy rejects throws invalid_stream. Either way nothing
  /// changes. Stream order: s is normally the stream p was allocated on; another stream is accepted
  /// and means record_stream(p, s) and a free on p's own stream.
  void deallocate(void* p, stream s = stream{}) {
    if (!p) return;
    std::lock_guard guard(lock_);
    block* b = index_.find(address(p));
    if (!b || b->is_free) throw_bad_pointer(p);
    if constexpr (streamed) {
      if (b->owner->key != streams_.key_of(s) || b->used_elsewhere) [[unlikely]] return release_cross(b, s);
    }
    release_block(b);
  }

  /// As deallocate(p, s), and n must be the size that was asked for (else invalid_size, nothing changes).
  void deallocate(void* p, std::size_t n, stream s = stream{}) {
    if (!p) return;
    std::lock_guard guard(lock_);
    block* b = index_.find(address(p));
    if (!b || b->is_free) throw_bad_pointer(p);
    if (b->requested != n)
      throw invalid_size(n, "sized deallocate does not match the " + std::to_string(b->requested) +
                                " bytes allocated at this pointer");
    if constexpr (streamed) {
      if (b->owner->key != streams_.key_of(s) || b->used_elsewhere) [[unlikely]] return release_cross(b, s);
    }
    release_block(b);
  }

  /// p, a live allocation, is also used on stream s (PyTorch's Tensor.record_stream): once freed, it
  /// is reused on no stream before the work queued on s up to the free has completed. Throws as
  /// deallocate does for a bad pointer or stream, changing nothing. Host order: checks p only.
  void record_stream(void* p, stream s) {
    std::lock_guard guard(lock_);
    block* b = p ? index_.find(address(p)) : nullptr;
    if (!b || b->is_free) throw_bad_pointer(p);
    if constexpr (streamed) {
      tag* const t = streams_.tag(s);
      if (t == b->owner) return;
      auto& uses = extra_uses_[b->addr];
      if (std::find(uses.begin(), uses.end(), t) == uses.end()) uses.push_back(t);
      b->used_elsewhere = true;
    }
  }

  /// The size asked for when p was allocated. Throws invalid_pointer if p is not live here.
  std::size_t allocation_size(const void* p) const {
    std::lock_guard guard(lock_);
    const block* b = index_.find(address(p));
    if (!b || b->is_free) throw invalid_pointer(p, "not a live allocation of this allocator");
    return b->requested;
  }

  /// As deallocate(p) when p is a live allocation here; otherwise returns false and changes nothing.
  /// Lets a caller with several allocators (the memory manager) find the owner with one lookup each.
  /// Stream order: a free on another stream than p's own that cannot be recorded (a rejected stream,
  /// no host memory) also returns false and changes nothing; deallocate(p, s) says why.
  bool try_deallocate(void* p, stream s = stream{}) noexcept {
    if (!p) return false;
    std::lock_guard guard(lock_);
    block* b = index_.find(address(p));
    if (!b || b->is_free) return false;
    if constexpr (streamed) {
      try {
        if (b->owner->key != streams_.key_of(s) || b->used_elsewhere) [[unlikely]] {
          release_cross(b, s);
          return true;
        }
      } catch (...) {
        return false;
      }
    }
    release_block(b);
    return true;
  }

  /// Whether p lies in memory held from the backend (live or cached): in a segment, or in a page
  /// that is mapped. The allocator that can say why freeing p is wrong.
  bool holds(const void* p) const noexcept {
    std::lock_guard guard(lock_);
    if constexpr (paged) {
      return in_arena(p) && pages_.mapped(first_page(address(p)));
    } else {
      return segment_holding(address(p)) != nullptr;
    }
  }

  /// Paged backends: whether p lies in the reserved address range, mapped or not. Takes no lock (the
  /// range is set once), so a set of allocators can find the one a pointer belongs to without
  /// contention.
  bool in_arena(const void* p) const noexcept
    requires paged
  {
    const std::uintptr_t a = address(p);
    return a >= arena_begin_.load(std::memory_order_acquire) && a < arena_end_.load(std::memory_order_acquire);
  }

  /// Whether p is a live allocation of this allocator.
  bool owns(const void* p) const noexcept {
    std::lock_guard guard(lock_);
    if (!p) return false;
    const block* b = index_.find(address(p));
    return b && !b->is_free;
  }

  /// Gives back to the backend everything no live block uses. Stream order: when frees are pending,
  /// synchronizes the device first (the one call besides the out-of-memory retry that waits), which
  /// settles every stream's frees, destroyed streams' included; while a graph capture is underway the
  /// runtime refuses that, and only frees whose events were recorded are waited for.
  void empty_cache() {
    std::lock_guard guard(lock_);
    if constexpr (streamed) {
      synchronize_pending();
      coalesce();
    }
    release_cache(0);
  }

  /// Gives cached memory back to the backend until at most target_cached_bytes stay cached, or nothing
  /// more can go. Segment backends: whole free segments, largest first (fewest backend calls). Paged
  /// backends: idle pages, highest address first. Memory inside a partly used segment or page stays.
  /// Asks the host heap for nothing, so it works (and the out-of-memory retry works) when it is full.
  /// Stream order: never waits and names no stream, so records no event; memory under frees not known
  /// complete stays, and goes back (down to the target) at a later slow path once it is.
  void trim_cache(std::size_t target_cached_bytes) {
    std::lock_guard guard(lock_);
    if constexpr (streamed) {
      reclaim(nullptr);
      coalesce();
    }
    release_cache(target_cached_bytes);
    if constexpr (streamed) {
      if (reserved_ - allocated_ > target_cached_bytes && !streams_.settled()) deferred_trim_ = target_cached_bytes;
    }
  }

  stats_snapshot stats() const {
    std::lock_guard guard(lock_);
    return stats_.snapshot();
  }
  void reset_peak() {
    std::lock_guard guard(lock_);
    stats_.reset_peak();
  }

  /// Bytes held from the backend and bytes of it that are free; kept whatever the stats policy.
  std::size_t reserved_bytes() const noexcept {
    std::lock_guard guard(lock_);
    return reserved_;
  }
  std::size_t cached_bytes() const noexcept {
    std::lock_guard guard(lock_);
    return reserved_ - allocated_;
  }
  /// Paged backends: pages moved from one address to another instead of newly mapped.
  std::uint64_t page_moves() const noexcept {
    std::lock_guard guard(lock_);
    return page_moves_;
  }

  /// Walks the memory held from the backend, in address order, for reports (stash/torch_snapshot.hpp):
  /// region(begin, bytes) for each stretch of it (a segment; a run of mapped pages), then
  /// block(addr, bytes, requested) for each block in that stretch, clipped to it, requested 0 for a
  /// free block. Holds the lock throughout: the callbacks must not call the allocator.
  template <class Region, class Block>
  void visit_memory(Region&& region, Block&& block) const {
    std::lock_guard guard(lock_);
    auto blocks_in = [&](const detail::block* b, std::uintptr_t begin, std::uintptr_t end) {
      for (; b && b->addr < end; b = b->next_adjacent) {
        const std::uintptr_t from = std::max(b->addr, begin), to = std::min(b->addr + b->size, end);
        if (from < to) block(from, to - from, b->is_free ? std::size_t{0} : b->requested);
      }
    };
    if constexpr (paged) {
      // Each region's blocks are a run of their own; a stretch of mapped pages ends where a region does.
      const std::size_t small_page = small_first_ ? first_page(small_first_->addr) : pages_.size();
      const detail::block* b = large_first_;
      for (std::size_t p = 0; p < pages_.size();) {
        if (!pages_.mapped(p)) {
          ++p;
          continue;
        }
        std::size_t end = p + 1;
        while (end < pages_.size() && end != small_page && pages_.mapped(end)) ++end;
        const std::uintptr_t begin = page_address(p), stop = page_address(end);
        region(begin, static_cast<std::size_t>(stop - begin));
        if (p >= small_page && (!b || b->addr < small_first_->addr)) b = small_first_;
        while (b && b->addr + b->size <= begin) b = b->next_adjacent;  // the first block reaching in
        blocks_in(b, begin, stop);
        p = end;
      }
    } else {
      for (const auto& [addr, seg] : segments_) {
        region(addr, seg.bytes);
        blocks_in(seg.first, addr, addr + seg.bytes);
      }
    }
  }

  Backend& backend() noexcept { return backend_; }
  const Backend& backend() const noexcept { return backend_; }
  /// The ordering policy (simulated_ordering: where a test completes events).
  Ordering& ordering() noexcept { return streams_.ordering(); }
  const Ordering& ordering() const noexcept { return streams_.ordering(); }
  /// Stream order: events recorded and retired, cross-stream blocks, waits.
  auto stream_stats() const
    requires streamed
  {
    std::lock_guard guard(lock_);
    return streams_.stats();
  }
  int device() const noexcept { return backend_.device(); }

 private:
  static std::uintptr_t address(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }

  [[noreturn]] static void throw_too_large(std::size_t n) {
    throw invalid_size(n, "larger than max_size() = " + std::to_string(Buckets::max_size));
  }

  std::uint8_t pool_for(std::size_t size) const noexcept {
    if constexpr (paged) return size <= small_below_ ? 1 : 0;
    else if constexpr (small_pool) return size <= Buckets::small_request ? 1 : 0;
    else return (void)size, 0;
  }
  /// The free list of a block of (rounded) size n filed in pool `pool`: each pool has a range of the
  /// free lists of its own, so a block's list is its bucket alone (removing it needs no pool).
  static std::size_t bucket_of(std::size_t n, std::uint8_t pool) noexcept {
    return Buckets::bucket_index(n) + pool * Buckets::bucket_count;
  }
  static std::uint8_t pool_of(const block* b) noexcept {
    if constexpr (small_pool) return b->pool;
    else return 0;
  }

  // ---- free blocks --------------------------------------------------------------------------------

  /// Whether free block b may be handed out on the stream tagged `on` (always, in host order).
  static bool usable(const block* b, const tag* on) noexcept {
    if constexpr (streamed) return detail::usable_on(b, on);
    else return true;
  }

  /// Best fit among the first few blocks of the request's own bucket (they differ by at most one
  /// bucket width), else the first block of the next non-empty buckets, whose blocks all fit. Stream
  /// order: blocks the stream may not use yet are skipped.
  block* find_free_block(std::size_t size, const tag* on) noexcept { return find_free_block(size, on, pool_for(size)); }
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
          if (usable(b, on)) return b;
        if constexpr (!streamed) break;  // unreachable: in host order the head is usable
      }
      // Nothing larger: before the backend is asked, the rest of the own bucket (a slow path).
      for (block* b = free.head(i); b; b = b->next_free)
        if (b->size >= size && usable(b, on) && (!best || b->size < best->size)) best = b;
      return best;
    }
  }

  void push_free(block* b) noexcept {
    b->is_free = true;
    b->requested = 0;
    b->bucket = static_cast<std::uint32_t>(bucket_of(b->size, pool_of(b)));
    free_.push(b);
  }

  /// Keeps the first `size` bytes of b (not in any free list) and files the rest as a new free block.
  /// Cannot throw: allocate() reserved the record.
  void split(block* b, std::size_t size) noexcept {
    if constexpr (!Buckets::exact_fit) {
      if (b->size > size) {
        block* rest = records_.make();
        rest->indexed = false;
        if constexpr (small_pool) rest->pool = b->pool;  // the same segment or region
        if constexpr (streamed) {  // the rest is as safe, for the same streams, as the block it came from
          rest->owner = b->owner;
          rest->seq = b->seq;
        }
        rest->addr = b->addr + size;
        rest->size = b->size - size;
        rest->prev_adjacent = b;
        rest->next_adjacent = b->next_adjacent;
        if (rest->next_adjacent) rest->next_adjacent->prev_adjacent = rest;
        b->next_adjacent = rest;
        b->size = size;
        push_free(rest);
      }
    }
  }

  /// Stream order: a block freed on stream `owner` merges with free neighbours freed on the same
  /// stream (pending or not), never with memory of no stream (a fresh segment's rest, the paged
  /// arena's untouched range) or of another: the merged block is pending on `owner`, and other streams
  /// must still find that memory free. Ready neighbours are merged later (coalesce).
  static bool mergeable(const block* n, const tag* owner) noexcept {
    if constexpr (streamed) return n->owner == owner;
    else return (void)n, (void)owner, true;
  }

  /// b is freed on its own stream. Stream order: it joins that stream's open epoch (its pages are
  /// not moved or unmapped before the epoch completes: hold_pending_pages) and merges as mergeable()
  /// says (the merged block then belongs to that stream's open epoch).
  void release_block(block* b) noexcept {
    [[maybe_unused]] tag* const owner = b->owner;
    allocated_ -= b->size;
    stats_.on_deallocate(b->requested, b->size);
    if constexpr (streamed) b->seq = streams_.note_free(b->owner);
    if constexpr (paged) unback_pages(b->addr, b->size);
    if (block* next = b->next_adjacent; next && next->is_free && mergeable(next, b->owner)) {
      free_.remove(next);
      b->size += next->size;
      unlink(next);
    }
    if (block* prev = b->prev_adjacent; prev && prev->is_free && mergeable(prev, b->owner)) {
      free_.remove(prev);
      prev->size += b->size;
      if constexpr (streamed) {
        prev->owner = b->owner;
        prev->seq = b->seq;
      }
      unlink(b);
      b = prev;
    }
    push_free(b);
    if constexpr (streamed) streams_.after_free(owner);
  }

  /// Drops a block that was merged into its lower neighbour (or a released segment's block).
  void unlink(block* b) noexcept {
    if (b->indexed) index_.erase(b->addr);
    if (b->prev_adjacent) b->prev_adjacent->next_adjacent = b->next_adjacent;
    if (b->next_adjacent) b->next_adjacent->prev_adjacent = b->prev_adjacent;
    records_.recycle(b);
  }

  // ---- growing (slow path) ------------------------------------------------------------------------

  /// No free block fits: get memory from the backend and return it as a free block (in its list).
  /// Kept out of line (and out of the fast path's registers and instruction cache).
  /// Stream order first: a capturing stream gets capture_error (growing needs the backend); otherwise
  /// frees whose events have completed are made ready (and merged), and in wait mode another stream's
  /// block may be taken after a stream wait.
  [[gnu::cold, gnu::noinline]] block* grow(std::size_t requested, std::size_t size, tag* on) {
    if constexpr (streamed) {
      if (streams_.capturing(on))
        throw capture_error(requested, "no cached block of this size is usable on the capturing stream, and "
                                       "more memory would need the backend");
      if (!streams_.settled() && reclaim(on) > 0) {
        coalesce();
        if (block* b = find_free_block(size, on)) return b;
      }
      if (options_.cross_stream_wait) {
        if (block* b = pending_block_that_fits(size); b && streams_.order_after(on, b)) return b;
      }
    }
    if constexpr (paged) {
      if (arena_base_ == 0) reserve_arena();
      // Its own region first, then the other one (a small request when the small region is full).
      auto fitting = [&] {
        block* f = find_free_block(size, on);
        return f ? f : find_free_block(size, on, static_cast<std::uint8_t>(1 - pool_for(size)));
      };
      block* b = fitting();
      if constexpr (streamed) {
        if (!b && !streams_.settled()) {  // pending frees hold address ranges too: wait for them
          stats_.on_oom_retry();
          synchronize_pending();
          coalesce();
          b = fitting();
        }
      }
      if (!b) throw_out_of_memory(requested);  // the reservation itself is exhausted
      return b;
    } else {
      return new_segment(requested, size, on);
    }
  }

  block* new_segment(std::size_t requested, std::size_t size, const tag* on) {
    if (spare_segment_.empty()) {  // the map node is made before the backend is asked (may throw)
      spare_segment_ = segments_.extract(segments_.emplace(0, segment{}).first);  // 0 is never a segment
    }
    const std::size_t granularity = backend_.granularity();
    std::size_t bytes = round_up_checked(Buckets::segment_size(size), granularity, requested);
    void* p = backend_.allocate(bytes);
    if (!p) {
      stats_.on_oom_retry();
      if constexpr (streamed) {
        if (!streams_.settled()) {  // wait for the pending frees: one of them may fit now
          synchronize_pending();
          coalesce();
          if (block* b = find_free_block(size, on)) return b;
        }
      } else {
        (void)on;
      }
      release_cache(0);
      p = backend_.allocate(bytes);
      if (!p && bytes > size) {  // a shared segment would not fit: try the request alone
        bytes = round_up_checked(size, granularity, requested);
        p = backend_.allocate(bytes);
      }
      if (!p) throw_out_of_memory(requested);
    }
    block* b = records_.make();  // reserved by allocate()
    *b = block{};
    b->addr = address(p);
    // Exact fit: the block is its class size, whatever the backend's rounding added to the segment,
    // so that it is filed in (and found again from) its own class.
    b->size = Buckets::exact_fit ? size : bytes;
    b->pool = pool_for(size);
    spare_segment_.key() = b->addr;
    spare_segment_.mapped() = segment{b, bytes};
    segments_.insert(std::move(spare_segment_));  // a node that exists: no allocation
    reserved_ += bytes;
    stats_.on_reserve(bytes);
    push_free(b);
    return b;
  }

  /// The segment whose bytes include a, or nullptr.
  const segment* segment_holding(std::uintptr_t a) const noexcept {
    auto it = segments_.upper_bound(a);
    if (it == segments_.begin()) return nullptr;
    --it;
    return a < it->first + it->second.bytes ? &it->second : nullptr;
  }

  /// A segment can go back to the backend when one free block spans it (exact fit: its only block).
  static bool segment_is_free(const segment& seg) noexcept {
    if constexpr (streamed) {
      if (!detail::ready(seg.first)) return false;  // work on some stream may still use it
    }
    return seg.first->is_free && (Buckets::exact_fit || seg.first->size == seg.bytes);
  }

  static std::size_t round_up_checked(std::size_t n, std::size_t multiple, std::size_t requested) {
    if (n > SIZE_MAX - multiple) throw invalid_size(requested, "too large to round to the backend's granularity");
    return detail::round_up_to(n, multiple);
  }

  /// The backend's reserve() is the last step that can fail (it cannot be undone): the page table is
  /// sized first, so a failure anywhere leaves the allocator as it was.
  /// The small region (caching_options::small_region) is an eighth more address space above the
  /// range asked for, so the large region keeps all of it: a block as large as reserve_bytes still fits.
  void reserve_arena() {
    const std::size_t page = backend_.page_size();
    std::size_t bytes = options_.reserve_bytes;
    if (bytes == 0) {
      if constexpr (requires { backend_.default_reserve_bytes(); }) bytes = backend_.default_reserve_bytes();
      else bytes = std::size_t{1} << 40;
    }
    bytes = detail::round_up_to(bytes, page);
    std::size_t small_bytes = 0;  // none when the range is a few pages, or an eighth more would wrap
    if (options_.small_region && bytes >= 8 * page && bytes / 8 <= SIZE_MAX - page - bytes)
      small_bytes = detail::round_up_to(bytes / 8, page);
    const std::size_t total = bytes + small_bytes;
    const auto shift = static_cast<unsigned>(__builtin_ctzll(page));
    pages_.resize(total >> shift);
    block* const large = records_.make();  // the two allocate() reserved; split's is reserved again below
    block* const small = records_.make();
    try {
      records_.reserve_two();
      arena_base_ = backend_.reserve(total);
    } catch (...) {
      records_.recycle(small);
      records_.recycle(large);
      throw;
    }
    page_shift_ = shift;
    *large = block{};
    large->addr = arena_base_;
    large->size = bytes;
    push_free(large);
    large_first_ = large;
    if (small_bytes != 0) {
      *small = block{};  // not linked to the large region's blocks: the two never merge
      small->addr = arena_base_ + bytes;
      small->size = small_bytes;
      small->pool = 1;
      push_free(small);
      small_first_ = small;
      small_below_ = page / 2;
    } else {
      records_.recycle(small);
    }
    arena_end_.store(arena_base_ + total, std::memory_order_release);
    arena_begin_.store(arena_base_, std::memory_order_release);
  }

  // ---- pages (paged backends) ---------------------------------------------------------------------

  std::size_t first_page(std::uintptr_t addr) const noexcept { return (addr - arena_base_) >> page_shift_; }
  std::size_t last_page(std::uintptr_t addr, std::size_t size) const noexcept {
    return (addr + size - 1 - arena_base_) >> page_shift_;
  }
  std::uintptr_t page_address(std::size_t p) const noexcept { return arena_base_ + (p << page_shift_); }

  /// Counts a new live block on the pages it touches and backs those no physical page backs yet, from
  /// p on (the block's first unmapped page, or none; unknown: found here). Returns whether all were
  /// backed already. On failure (out_of_memory, or the backend's error) the
  /// block is uncounted and every page mapped for it is unmapped again, so the memory held is what it
  /// was. Idle pages moved here for it stay where they are, idle: moving them back would be more
  /// driver calls that can fail too, and where they sit changes no figure.
  bool back_pages(std::uintptr_t addr, std::size_t size, std::size_t requested, std::size_t p) {
    const std::size_t first = first_page(addr), last = last_page(addr, size);
    const std::size_t peak_before = peak_touched_;
    touched_ += pages_.touch(first, last);
    peak_touched_ = std::max(peak_touched_, touched_);
    if (p == unknown) p = pages_.first_unmapped(first, last);
    if (p == detail::page_table::none) return true;
    back_unmapped_pages(addr, size, p, requested, peak_before);
    return false;
  }

  /// The slow part of back_pages: pages from p on in the block need backing.
  [[gnu::cold, gnu::noinline]] void back_unmapped_pages(std::uintptr_t addr, std::size_t size, std::size_t p,
                                                        std::size_t requested, std::size_t peak_before) {
    const std::size_t first = first_page(addr), last = last_page(addr, size);
    bool backed = true;
    bool chunks = true;  // until the device refuses one: then page by page, which can move and wait
    try {
      while (backed && p != detail::page_table::none) {
        const std::size_t run_end = chunks ? map_run(p, first, last, chunks) : detail::page_table::none;
        if (run_end == detail::page_table::none) backed = back_page(p);
        const std::size_t done = run_end == detail::page_table::none ? p : run_end;
        p = done < last ? pages_.first_unmapped(done + 1, last) : detail::page_table::none;
      }
    } catch (...) {
      undo_back_pages(addr, size, peak_before);
      throw;
    }
    if (!backed) {
      undo_back_pages(addr, size, peak_before);
      throw_out_of_memory(requested);
    }
    // Counted only now that the block is placed, one physical allocation per chunk: a failed call
    // leaves the stats as they were.
    pages_.take_fresh(first, last, [&](std::size_t p) {
      if (pages_.starts_chunk(p)) stats_.on_reserve((pages_.chunk_last(p) - p + 1) << page_shift_);
    });
  }

  void undo_back_pages(std::uintptr_t addr, std::size_t size, std::size_t peak_before) noexcept {
    unback_pages(addr, size);
    peak_touched_ = peak_before;
    const std::size_t page = std::size_t{1} << page_shift_;
    pages_.take_fresh(first_page(addr), last_page(addr, size), [&](std::size_t p) {
      if (pages_.starts_chunk(p)) reserved_ -= unmap_chunk(p) * page;  // a chunk's pages are all fresh
    });
  }

  void unback_pages(std::uintptr_t addr, std::size_t size) noexcept {
    touched_ -= pages_.untouch(first_page(addr), last_page(addr, size));
  }

  /// Backs page p. A new physical page while the pages held stay within the slack over the high tide
  /// of touched pages; past it, the highest idle page moves here instead, but at most once per
  /// pages_between_moves pages backed (a move costs tens of microseconds). Out of memory: an idle page
  /// moves here if there is one, else the map is retried once (counted as an OOM retry).
  bool back_page(std::size_t p) {
    const bool move_first = over_budget() && move_is_due();
    ++backed_since_move_;
    if (move_first && move_idle_page_to(p)) return true;
    if (map_new_page(p)) return true;
    stats_.on_oom_retry();  // the cache is released by moving an idle page here, else retried once
    if constexpr (streamed) {
      if (!streams_.settled()) synchronize_pending();  // pages held by pending frees become idle
    }
    return move_idle_page_to(p) || map_new_page(p);
  }

  /// Maps the run of unmapped pages from p on as one chunk, where the backend can: pages strictly
  /// inside the block [first, last], at most max_chunk_pages. The chunk ends where back_page would
  /// next move an idle page instead of mapping a new one (the pages held reach the slack over the high
  /// tide and a move is due), so pages are mapped, moved and counted as page by page. Returns the last
  /// page mapped, or none: then p is backed alone (back_page), which also moves idle pages, waits for
  /// pending frees and retries when the device is out of memory. A refused chunk clears `chunks`.
  std::size_t map_run(std::size_t p, std::size_t first, std::size_t last, bool& chunks) {
    if constexpr (chunked_paged_backend<Backend>) {
      if (options_.max_chunk_pages < 2 || p == first || p == last) return detail::page_table::none;
      std::size_t n = std::min(pages_.unmapped_run_end(p, last - 1) - p + 1, options_.max_chunk_pages);
      const std::size_t budget = budget_pages(), mapped = pages_.mapped_count();
      if (mapped < budget) n = std::min(n, budget - mapped);
      else if (move_is_due()) return detail::page_table::none;
      else n = std::min<std::size_t>(n, options_.pages_between_moves - backed_since_move_);
      if (n < 2) return detail::page_table::none;
      if (!backend_.map_pages(page_address(p), n)) {
        chunks = false;
        return detail::page_table::none;
      }
      note_mapped(p, p + n - 1);
      backed_since_move_ += n;
      return p + n - 1;
    } else {
      (void)p, (void)first, (void)last, (void)chunks;
      return detail::page_table::none;
    }
  }

  /// The pages held may reach the high tide of touched pages plus the slack before idle pages move.
  std::size_t budget_pages() const noexcept {
    return static_cast<std::size_t>(static_cast<double>(peak_touched_) * (1.0 + options_.page_slack));
  }
  bool over_budget() const noexcept { return pages_.mapped_count() >= budget_pages(); }
  bool move_is_due() const noexcept { return backed_since_move_ >= options_.pages_between_moves; }

  bool map_new_page(std::size_t p) {
    if (!backend_.map_page(page_address(p))) return false;
    note_mapped(p, p);
    return true;
  }

  /// Pages [first, last] were just mapped as one chunk.
  void note_mapped(std::size_t first, std::size_t last) noexcept {
    for (std::size_t q = first; q <= last; ++q) {
      pages_.set_mapped(q, true);
      pages_.set_fresh(q);  // counted in the stats once the block is placed (back_pages)
    }
    pages_.set_chunk(first, last);
    reserved_ += (last - first + 1) << page_shift_;
  }

  /// Unmaps the chunk that starts at page `first`; returns its pages. The caller counts the bytes.
  std::size_t unmap_chunk(std::size_t first) noexcept {
    const std::size_t last = pages_.chunk_last(first), n = last - first + 1;
    if constexpr (chunked_paged_backend<Backend>) {
      if (n > 1) backend_.unmap_pages(page_address(first), n);
      else backend_.unmap_page(page_address(first));
    } else {
      backend_.unmap_page(page_address(first));
    }
    for (std::size_t q = first; q <= last; ++q) pages_.set_mapped(q, false);
    pages_.clear_chunk(first, last);
    return n;
  }

  /// Where a move is due and the highest idle page (`from`) lies in an idle chunk of several pages,
  /// which cannot move: gives that chunk back whole instead (the memory held drops by the chunk) and
  /// returns true, so that new pages are mapped where they are needed. false when it is alone (it can
  /// move).
  bool release_idle_chunk(std::size_t from) noexcept {
    const std::size_t chunk = pages_.chunk_first(from);
    if (pages_.chunk_last(chunk) == chunk) return false;
    const std::size_t bytes = unmap_chunk(chunk) << page_shift_;
    reserved_ -= bytes;
    stats_.on_release(bytes);
    backed_since_move_ = 0;
    return true;
  }

  /// Backs page p with the highest idle page: one mapped alone moves here; an idle chunk of several
  /// pages is given back whole and p mapped anew (release_idle_chunk).
  bool move_idle_page_to(std::size_t p) {
    const bool holding = hold_pending_pages();
    const std::size_t from = pages_.highest_idle();
    if (holding) release_pending_pages();
    if (from == detail::page_table::none) return false;
    if (release_idle_chunk(from)) return map_new_page(p);
    if (!backend_.move_page(page_address(from), page_address(p))) return false;
    pages_.set_mapped(from, false);
    pages_.clear_chunk(from, from);
    pages_.set_mapped(p, true);
    pages_.set_chunk(p, p);
    ++page_moves_;
    backed_since_move_ = 0;
    return true;
  }

  // ---- releasing ----------------------------------------------------------------------------------

  /// Each idle page costs O(log pages) (the page table keeps the idle ones in a hierarchical bitmap).
  /// Segments: one pass gives back every free one when the target is 0 (the out-of-memory retry);
  /// otherwise each pass gives back the largest free one, so k segments cost k passes over the map.
  void release_cache(std::size_t target) noexcept {
    if constexpr (paged) {
      const std::size_t page = std::size_t{1} << page_shift_;
      const bool holding = hold_pending_pages();
      while (reserved_ - allocated_ > target) {
        const std::size_t p = pages_.highest_idle();
        if (p == detail::page_table::none) break;
        const std::size_t bytes = unmap_chunk(pages_.chunk_first(p)) * page;
        reserved_ -= bytes;
        stats_.on_release(bytes);
      }
      if (holding) release_pending_pages();
    } else if (target == 0) {
      for (auto it = segments_.begin(); it != segments_.end();)
        it = segment_is_free(it->second) ? release_segment(it) : std::next(it);
    } else {
      while (reserved_ - allocated_ > target) {
        auto largest = segments_.end();
        for (auto it = segments_.begin(); it != segments_.end(); ++it)
          if (segment_is_free(it->second) && (largest == segments_.end() || it->second.bytes > largest->second.bytes))
            largest = it;
        if (largest == segments_.end()) break;
        release_segment(largest);
      }
    }
  }

  auto release_segment(typename std::map<std::uintptr_t, segment>::iterator it) noexcept {
    const segment seg = it->second;
    free_.remove(seg.first);
    backend_.deallocate(reinterpret_cast<void*>(it->first), seg.bytes);
    reserved_ -= seg.bytes;
    stats_.on_release(seg.bytes);
    if (seg.first->indexed) index_.erase(seg.first->addr);
    records_.recycle(seg.first);
    return segments_.erase(it);
  }

  void release_everything() noexcept {
    if constexpr (paged) {
      for (std::size_t p = 0; p < pages_.size(); ++p)
        if (pages_.mapped(p) && pages_.starts_chunk(p)) (void)unmap_chunk(p);
    } else {
      for (const auto& [addr, seg] : segments_) backend_.deallocate(reinterpret_cast<void*>(addr), seg.bytes);
    }
  }

  // ---- streams (stream-ordered compositions) -------------------------------------------------------

  tag* tag_of(stream s) {
    if constexpr (streamed) return streams_.tag(s);
    else return (void)s, nullptr;
  }

  /// Paged: while idle pages are picked to be moved or given back, the pages under free blocks that
  /// are not ready (GPU work on some stream may still use them) count as touched. A walk over the
  /// arena's blocks, on those slow paths only and only while frees are pending; no block may be
  /// placed or freed before release_pending_pages().
  bool hold_pending_pages() noexcept
    requires paged
  {
    if constexpr (!streamed) return false;
    else {
      if (streams_.settled() || large_first_ == nullptr) return false;
      for (const block* first : {large_first_, small_first_})
        for (const block* b = first; b; b = b->next_adjacent)
          if (b->is_free && !detail::ready(b)) pages_.hold(first_page(b->addr), last_page(b->addr, b->size));
      return true;
    }
  }
  void release_pending_pages() noexcept
    requires paged
  {
    if constexpr (streamed)
      for (const block* first : {large_first_, small_first_})
        for (const block* b = first; b; b = b->next_adjacent)
          if (b->is_free && !detail::ready(b)) pages_.unhold(first_page(b->addr), last_page(b->addr, b->size));
  }

  /// A free on another stream than b's own, or of a block record_stream named other streams for: b
  /// waits for the epoch open now on every stream it was used on, and merges with nothing meanwhile.
  [[gnu::cold, gnu::noinline]] void release_cross(block* b, stream s)
    requires streamed
  {
    tag* const freed_on = streams_.tag(s);
    std::vector<tag*> uses{b->owner};
    if (auto it = extra_uses_.find(b->addr); it != extra_uses_.end()) uses.insert(uses.end(), it->second.begin(), it->second.end());
    if (std::find(uses.begin(), uses.end(), freed_on) == uses.end()) uses.push_back(freed_on);
    streams_.add_cross(b, uses);  // the last step that can throw
    extra_uses_.erase(b->addr);
    b->used_elsewhere = false;
    allocated_ -= b->size;
    stats_.on_deallocate(b->requested, b->size);
    if constexpr (paged) unback_pages(b->addr, b->size);
    push_free(b);
    streams_.after_free(freed_on);  // the one stream this call names
  }

  /// Retires every epoch whose event has completed, closing the open epoch of `on` (the stream the
  /// call names; none for trim_cache) and asking the other streams with frees to close theirs; gives
  /// back what a trim_cache could not, now that it can. Never waits.
  std::size_t reclaim(tag* on) {
    const std::size_t retired = streams_.reclaim(on);
    if (retired > 0 && deferred_trim_ != SIZE_MAX) {
      coalesce();
      release_cache(deferred_trim_);
      if (reserved_ - allocated_ <= deferred_trim_ || streams_.settled()) deferred_trim_ = SIZE_MAX;
    }
    return retired;
  }
  /// Waits on the host until every pending free has completed (empty_cache, out of memory).
  void synchronize_pending() {
    streams_.synchronize();
  }

  /// Merges neighbouring free blocks that are both ready: blocks freed on different streams could not
  /// merge while either was pending.
  void coalesce() noexcept {
    if constexpr (streamed) {
      auto merge_run = [this](block* b) {
        for (; b; b = b->next_adjacent) {
          while (b->is_free && detail::ready(b) && b->next_adjacent && b->next_adjacent->is_free &&
                 detail::ready(b->next_adjacent)) {
            block* next = b->next_adjacent;
            free_.remove(b);
            free_.remove(next);
            b->size += next->size;
            unlink(next);
            b->owner = nullptr;
            b->seq = 0;
            push_free(b);
          }
        }
      };
      if constexpr (paged) {
        merge_run(large_first_);
        merge_run(small_first_);
      } else {
        for (auto& [addr, seg] : segments_) merge_run(seg.first);
      }
    }
  }

  /// Wait mode: a free block of at least `size` bytes pending on some stream (not a cross block).
  block* pending_block_that_fits(std::size_t size) noexcept {
    const std::uint8_t pool = pool_for(size);
    const std::size_t end = (pool + std::size_t{1}) * Buckets::bucket_count;
    const auto& free = free_;
    for (std::size_t j = free.first_at_or_above(bucket_of(size, pool)); j < end; j = free.first_at_or_above(j + 1))
      for (block* b = free.head(j); b; b = b->next_free)
        if (b->size >= size && b->owner && b->owner != streams_.nobody() && !detail::ready(b)) return b;
    return nullptr;
  }

  /// Paged, b needs pages mapped (from `unmapped` on): a capturing stream is refused, and frees whose
  /// events have completed are made ready, so that a block whose pages are still mapped may serve
  /// instead (then `unmapped` is that block's).
  [[gnu::cold, gnu::noinline]] block* before_mapping(block* b, std::size_t size, std::size_t requested, tag* on,
                                                     std::size_t& unmapped)
    requires streamed && paged
  {
    if (streams_.capturing(on))
      throw capture_error(requested, "the cached blocks usable on the capturing stream would need pages mapped");
    if (!streams_.settled() && reclaim(on) > 0) {
      coalesce();                    // b may have merged into a ready neighbour: look again
      b = find_free_block(size, on);  // b's memory is still free and usable here: never null
      unmapped = pages_.first_unmapped(first_page(b->addr), last_page(b->addr, size));
    }
    return b;
  }

  // ---- errors (slow path) -------------------------------------------------------------------------

  [[noreturn]] void throw_out_of_memory(std::size_t requested) const {
    throw out_of_memory(requested, backend_.device(), reserved_, reserved_ - allocated_);
  }

  /// Not a live block: a double free if p lies in free memory we hold, else a pointer never handed out.
  [[noreturn]] void throw_bad_pointer(const void* p) const {
    const std::uintptr_t a = address(p);
    const block* first = nullptr;
    if constexpr (paged) {
      if (in_arena(p) && pages_.mapped(first_page(a))) first = small_first_ && a >= small_first_->addr ? small_first_ : large_first_;
    } else {
      if (const segment* seg = segment_holding(a)) first = seg->first;
    }
    for (const block* b = first; b; b = b->next_adjacent) {
      if (a < b->addr || a >= b->addr + b->size) continue;
      if (b->is_free) throw double_free(p);
      throw invalid_pointer(p, "points inside a live block of " + std::to_string(b->size) +
                                   " bytes, not at its start");
    }
    throw invalid_pointer(p, "not allocated by this allocator");
  }

  Backend backend_;
  caching_options options_;
  mutable Lock lock_;
  Stats stats_;
  [[no_unique_address]] std::conditional_t<streamed, detail::stream_layer<Ordering>, no_stream_layer> streams_;
  // Stream order: the other streams record_stream named for live blocks (by address).
  [[no_unique_address]] std::conditional_t<streamed, std::unordered_map<std::uintptr_t, std::vector<tag*>>, none>
      extra_uses_;
  std::size_t deferred_trim_ = SIZE_MAX;  // stream order: a trim_cache target pending frees kept from reaching
  detail::free_lists<Buckets::bucket_count * pool_count> free_;  // a range of lists per pool (bucket_of)
  detail::pointer_map<block> index_;  // block start -> record, for every block that has been live
                                      // at its address (free ones too: a reuse needs no insert)
  detail::block_pool records_;
  std::size_t reserved_ = 0;   // bytes held from the backend
  std::size_t allocated_ = 0;  // bytes of live blocks
  // Segment backends.
  std::map<std::uintptr_t, segment> segments_;
  typename std::map<std::uintptr_t, segment>::node_type spare_segment_;  // for the next new segment
  // Paged backends.
  std::uintptr_t arena_base_ = 0;
  std::atomic<std::uintptr_t> arena_begin_{UINTPTR_MAX}, arena_end_{0};  // for in_arena(), lock-free
  unsigned page_shift_ = 0;
  // The first block of each region: the lowest block of a run never merges into another, so these
  // records stay the same for the arena's lifetime. The regions' blocks are not linked to each other.
  block* large_first_ = nullptr;
  block* small_first_ = nullptr;  // null: no small region
  std::size_t small_below_ = 0;   // requests of at most this many bytes go to the small region (0: none)
  detail::basic_page_table<streamed> pages_;
  std::size_t touched_ = 0;       // pages at least one live block touches
  std::size_t peak_touched_ = 0;  // high tide of touched_
  std::uint64_t page_moves_ = 0;
  std::uint64_t backed_since_move_ = 0;  // pages backed (mapped or moved) since the last move
};

}  // namespace stash
