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
// error, leaves every pool and counter as it was. Exactly: the stats, reserved and cached bytes, the
// live blocks and the memory that is free. What a failed call may leave changed, none of it a figure
// the caller reads: an out-of-memory retry already under way when the call fails (it throws
// out_of_memory, a std::bad_alloc building that error's message, or the backend's error on the
// retried call: simulated_backend's own std::bad_alloc) leaves the cache released, oom_retries
// counted and the pending frees waited for; and in stream order the stream layer may
// have learnt or done what any later call would (docs/design.md, "A call that fails"): an event
// recorded for a close that was due, closes requested, completed epochs retired (their free blocks
// ready, ready neighbours merged), the stream the call named added, another stream made to wait
// (cross_stream_wait). Each only makes memory reusable sooner. A trim_cache target that the retired
// epochs allow is then met at the end of the next allocate that succeeds (reclaim below).
// Stream order (ordering policies that are not host-ordered: the device and pinned compositions): a
// block freed on stream S is reused on S at once and on another stream only once an event recorded on
// S after the free has completed; detail/stream_layer.hpp keeps the epochs and events, and the free
// lists below skip blocks the requesting stream may not use yet. Host-ordered compositions compile
// every stream path out.
// The allocator is a composition: its lock, stats and stream layer, a block heap (detail/block_heap.hpp:
// free lists, split and merge, the pointer index) and an arena chosen by the backend's concept
// (detail/segment_arena.hpp or detail/paged_arena.hpp: growth from the backend, pages, giving memory
// back). allocate() and deallocate() below are the whole fast path; everything they call that is not
// inline in them is a slow path (growing, out of memory, errors).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "stash/backend/backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_options.hpp"
#include "stash/detail/arena.hpp"
#include "stash/detail/block.hpp"
#include "stash/detail/block_heap.hpp"
#include "stash/detail/paged_arena.hpp"
#include "stash/detail/segment_arena.hpp"
#include "stash/detail/stream_layer.hpp"
#include "stash/error.hpp"
#include "stash/ipc_handle.hpp"
#include "stash/lock/lock.hpp"
#include "stash/ordering/default_ordering.hpp"
#include "stash/stats/basic_stats.hpp"
#include "stash/stream.hpp"

namespace stash {

namespace detail {
/// The arena that grows a caching_allocator's memory, chosen by the backend's concept.
template <class Backend, class Heap, class Stats, class Streams>
struct arena_for {
  using type = segment_arena<Backend, Heap, Stats, Streams>;
};
template <paged_backend Backend, class Heap, class Stats, class Streams>
struct arena_for<Backend, Heap, Stats, Streams> {
  using type = paged_arena<Backend, Heap, Stats, Streams>;
};
}  // namespace detail

template <backend_policy Backend, bucket_policy Buckets = segregated_fit_buckets,
          lock_policy Lock = std::mutex, stats_policy Stats = basic_stats,
          ordering_policy Ordering = default_ordering_t<Backend>>
class caching_allocator {
  static constexpr bool paged = paged_backend<Backend>;
  static constexpr bool streamed = !Ordering::host_ordered;
  using tag = detail::stream_tag;
  struct none {};
  static_assert(!(paged && Buckets::exact_fit),
                "a paged backend carves one address range: it needs a bucket policy that splits");
  using block = detail::block;
  // Small and large requests in free lists of their own: segment backends whose policy splits and
  // names a small_request threshold (small and large segments), and paged backends (a region of the
  // reserved range for requests of at most half a page, caching_options::small_region); one set otherwise.
  static constexpr bool small_pool = !Buckets::exact_fit && (paged || requires { Buckets::small_request; });
  using streams_type =
      std::conditional_t<streamed, detail::stream_layer<Ordering>, detail::no_stream_layer<Ordering>>;
  using heap_type = detail::block_heap<Buckets, streamed, small_pool>;
  using arena_type = typename detail::arena_for<Backend, heap_type, Stats, streams_type>::type;
  static_assert(detail::block_arena<arena_type>);

 public:
  using backend_type = Backend;
  using buckets_type = Buckets;
  using lock_type = Lock;
  using stats_type = Stats;
  using ordering_type = Ordering;
  using event_type = typename Ordering::event_type;
  static constexpr memory_kind kind = Backend::kind;

  /// Throws invalid_option for options no allocator can use (check_options), before anything is made.
  explicit caching_allocator(Backend backend = Backend{}, caching_options options = {},
                             Ordering ordering = Ordering{})
      : arena_(std::move(backend), checked(options), heap_, stats_, streams_),
        options_(options),
        streams_(std::move(ordering)) {
    // Paged, stream order: a block freed just below the free top of a region is filed apart, as host
    // order would merge them (block_heap::below_free_top); in the small region only while one stream
    // allocates (tag_of). Not for segments: a segment's free top is its rest, which may be too small to
    // reach, and the block below it would never be found.
    if constexpr (streamed) {
      for (std::uint8_t pool = 0; pool < heap_type::pool_count; ++pool) heap_.file_below_tops(pool, paged);
    }
  }
  caching_allocator(const caching_allocator&) = delete;
  caching_allocator& operator=(const caching_allocator&) = delete;
  /// Gives every segment or page back to the backend, including blocks the caller never freed (the
  /// arena's destructor).
  ~caching_allocator() = default;

  /// What allocate(n) really occupies; 0 for n == 0 (allocate(0) takes nothing) or n > max_size().
  static constexpr std::size_t good_size(std::size_t n) noexcept {
    return n == 0 || n > Buckets::max_size ? 0 : Buckets::round_up(n);
  }
  static constexpr std::size_t max_size() noexcept { return Buckets::max_size; }

  /// At least 256-byte aligned, for use on stream s (default: the legacy default stream). allocate(0)
  /// returns nullptr and changes nothing (as cudaMalloc(0) does). Throws invalid_size for
  /// n > max_size(), out_of_memory when the backend has no memory even after the cache was released,
  /// invalid_stream for a stream the ordering policy rejects, capture_error when s is capturing a graph
  /// and serving the request would need a call capture forbids (segments out of memory: giving the
  /// cache back to retry). During a capture nothing waits for the device; pages and segments are
  /// made as at any other time.
  [[nodiscard]] void* allocate(std::size_t n, stream s = stream{}) {
    if (n - 1 >= Buckets::max_size) [[unlikely]] {  // n == 0 wraps around to SIZE_MAX
      if (n == 0) return nullptr;
      throw_too_large(n);
    }
    const std::size_t size = Buckets::round_up(n);
    std::lock_guard guard(lock_);
    heap_.reserve();  // host memory is asked for first
    tag* const on = tag_of(s);
    block* b = find_free_block(size, on);
    bool from_cache = b != nullptr;
    if (!b) b = grow(n, size, on);
    if constexpr (paged) {
      auto pages = arena_.pages_of(b->addr, size);
      std::size_t unmapped = arena_.first_unmapped(pages);  // the block's first unmapped page
      if (unmapped != detail::page_table::none) [[unlikely]] b = before_mapping(b, size, on, pages, unmapped);
      from_cache = arena_.back_pages(b->addr, size, n, pages, unmapped) && from_cache;
    }
    heap_.take(b);
    heap_.split(b, size);
    b->requested = n;
    if constexpr (streamed) b->owner = on;
    heap_.index(b);  // a block reused at the same address is indexed already
    heap_.count_live(b->size);
    stats_.on_allocate(n, b->size, from_cache);
    if constexpr (streamed) {
      if (trim_due_) [[unlikely]] apply_deferred_trim();  // only now: a call that fails changes nothing
    }
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
    block* b = heap_.find(address(p));
    if (!b || b->is_free()) throw_bad_pointer(p);
    if constexpr (streamed) {
      if (b->owner->key != streams_.key_of(s) || b->used_elsewhere()) [[unlikely]] return release_cross(b, s);
    }
    release_block(b);
  }

  /// As deallocate(p, s), and n must be the size that was asked for (else invalid_size, nothing changes).
  void deallocate(void* p, std::size_t n, stream s = stream{}) {
    if (!p) return;
    std::lock_guard guard(lock_);
    block* b = heap_.find(address(p));
    if (!b || b->is_free()) throw_bad_pointer(p);
    if (b->requested != n)
      throw invalid_size(n, "sized deallocate does not match the " + std::to_string(b->requested) +
                                " bytes allocated at this pointer");
    if constexpr (streamed) {
      if (b->owner->key != streams_.key_of(s) || b->used_elsewhere()) [[unlikely]] return release_cross(b, s);
    }
    release_block(b);
  }

  /// Frees p, every use of which on the device has completed: the caller has waited for it (a
  /// device-wide synchronize, as before graph_pools::return_released). Stream order: p is free for
  /// every stream at once, and no stream handle is used (the streams p was used on may be destroyed
  /// since), so no event is recorded. Throws as deallocate does for a bad pointer, changing nothing.
  void deallocate_completed(void* p) {
    if (!p) return;
    std::lock_guard guard(lock_);
    block* b = heap_.find(address(p));
    if (!b || b->is_free()) throw_bad_pointer(p);
    if constexpr (streamed) {
      if (b->used_elsewhere()) {
        extra_uses_.erase(b->addr);
        b->set_used_elsewhere(false);
      }
    }
    release_block<completed_free>(b);
  }

  /// p, a live allocation, is also used on stream s (PyTorch's Tensor.record_stream): once freed, it
  /// is reused on no stream before the work queued on s up to the free has completed. Throws as
  /// deallocate does for a bad pointer or stream, changing nothing. Host order: checks p only.
  void record_stream(void* p, stream s) {
    std::lock_guard guard(lock_);
    block* b = p ? heap_.find(address(p)) : nullptr;
    if (!b || b->is_free()) throw_bad_pointer(p);
    if constexpr (streamed) {
      tag* const t = tag_of(s);
      if (t == b->owner) return;
      const auto [it, added] = extra_uses_.try_emplace(b->addr);
      std::vector<tag*>& uses = it->second;
      if (std::find(uses.begin(), uses.end(), t) == uses.end()) {
        try {
          uses.push_back(t);
        } catch (...) {  // std::bad_alloc: no entry is left behind for a call that changed nothing
          if (added) extra_uses_.erase(it);
          throw;
        }
      }
      b->set_used_elsewhere(true);
    }
  }

  /// Stream order: the caller is done with stream s and may destroy it after this call. The frees made
  /// on s since its last event get one now (no host wait), so that other streams may reuse their
  /// memory once the work queued on s before them completes. Without it they stay pending until a
  /// device-wide synchronize (empty_cache, the out-of-memory retry): a destroyed stream's handle is
  /// never used. A stream the allocator never saw is a no-op; a record that fails throws the ordering
  /// policy's error and leaves the frees pending. Host order: a no-op.
  void flush_stream(stream s) {
    if constexpr (streamed) {
      std::lock_guard guard(lock_);
      streams_.flush(s);
    }
  }

  // Events for callers that keep freed blocks apart from this allocator's free lists (graph_pools):
  // they ask when another stream's work on such a block is done, with the ordering policy this
  // allocator holds (and its lock, which the policy needs). Host order: every event has completed.

  /// An event that completes once the work queued on s so far has completed; nullopt, recording
  /// nothing, while s is capturing a CUDA graph (no event may be recorded on it then). Throws the
  /// ordering policy's error (invalid_stream for a stream that is gone), having recorded nothing.
  std::optional<event_type> record_event(stream s) {
    std::lock_guard guard(lock_);
    if (streams_.ordering().is_capturing(s)) return std::nullopt;
    return streams_.ordering().record(s);
  }
  /// Whether e has completed; never blocks the host.
  bool event_completed(event_type e) {
    std::lock_guard guard(lock_);
    return streams_.ordering().query(e);
  }
  /// e, from record_event, is no longer needed.
  void release_event(event_type e) noexcept {
    std::lock_guard guard(lock_);
    streams_.ordering().release(e);
  }

  /// The live block p as another process can map it (stash/ipc.hpp, stash/cuda/ipc_mapping.hpp): a
  /// descriptor for each physical allocation under it, with no lock held while the descriptors are
  /// sent. Only where the backend's memory is shareable (cuda_vmm_backend made with `shareable`).
  /// Throws invalid_pointer (or double_free) if p is not the start of a live allocation here, and the
  /// backend's error when it cannot export; nothing changes then.
  ipc_handle ipc_export(const void* p) const
    requires shareable_paged_backend<Backend>
  {
    std::lock_guard guard(lock_);
    const block* b = p ? heap_.find(address(p)) : nullptr;
    if (!b || b->is_free()) throw_bad_pointer(p);
    return arena_.export_block(b->addr, b->size, b->requested);
  }

  /// Lets kernels and copies on device `peer` use this allocator's memory: every page mapped now and
  /// every page mapped from then on (backend grant_peer; cuda_vmm_backend made with peer_access::none
  /// grants no peer until this is called). Throws invalid_device for a peer that is no device or
  /// cannot reach this device, the backend's error when the driver refuses; nothing changes then.
  void grant_peer(int peer)
    requires peer_paged_backend<Backend>
  {
    std::lock_guard guard(lock_);
    arena_.backend().grant_peer(peer);
  }
  /// The devices other than its own that may use this allocator's memory.
  std::vector<int> peers() const
    requires peer_paged_backend<Backend>
  {
    std::lock_guard guard(lock_);
    return arena_.backend().peers();
  }

  /// The size asked for when p was allocated. Throws invalid_pointer if p is not live here.
  std::size_t allocation_size(const void* p) const {
    std::lock_guard guard(lock_);
    const block* b = heap_.find(address(p));
    if (!b || b->is_free()) throw invalid_pointer(p, "not a live allocation of this allocator");
    return b->requested;
  }

  /// As deallocate(p) when p is a live allocation here; otherwise returns false and changes nothing.
  /// Lets a caller with several allocators (the memory manager) find the owner with one lookup each.
  /// Stream order: a free on another stream than p's own that cannot be recorded (a rejected stream,
  /// no host memory) also returns false and changes nothing; deallocate(p, s) says why.
  bool try_deallocate(void* p, stream s = stream{}) noexcept {
    if (!p) return false;
    std::lock_guard guard(lock_);
    block* b = heap_.find(address(p));
    if (!b || b->is_free()) return false;
    if constexpr (streamed) {
      try {
        if (b->owner->key != streams_.key_of(s) || b->used_elsewhere()) [[unlikely]] {
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
    return arena_.holds(address(p));
  }

  /// Paged backends: whether p lies in the reserved address range, mapped or not. Takes no lock (the
  /// range is set once), so a set of allocators can find the one a pointer belongs to without
  /// contention.
  bool in_arena(const void* p) const noexcept
    requires paged
  {
    return arena_.in_arena(address(p));
  }

  /// Whether p is a live allocation of this allocator.
  bool owns(const void* p) const noexcept {
    std::lock_guard guard(lock_);
    if (!p) return false;
    const block* b = heap_.find(address(p));
    return b && !b->is_free();
  }

  /// Gives back to the backend everything no live block uses. Stream order: when frees are pending,
  /// synchronizes the device first (the one call besides the out-of-memory retry that waits), which
  /// settles every stream's frees, destroyed streams' included; while a graph capture is underway the
  /// runtime refuses that, and only frees whose events were recorded are waited for.
  void empty_cache() {
    std::lock_guard guard(lock_);
    if constexpr (streamed) {
      streams_.synchronize();
      arena_.coalesce();
    }
    arena_.release_cache(0);
    if constexpr (streamed) (void)forget_streams_and_rearm(nullptr);
  }

  /// Gives cached memory back to the backend until at most target_cached_bytes stay cached, or nothing
  /// more can go. Segment backends: whole free segments, largest first (fewest backend calls). Paged
  /// backends: idle pages, highest address first. Memory inside a partly used segment or page stays.
  /// Asks the host heap for nothing, so it works (and the out-of-memory retry works) when it is full.
  /// Stream order: never waits and names no stream, so records no event; memory under frees not known
  /// complete stays, and goes back (down to the target) once it is known complete, at the end of a later
  /// allocate that succeeds (one that fails gives nothing back). A later target replaces this one.
  void trim_cache(std::size_t target_cached_bytes) {
    std::lock_guard guard(lock_);
    if constexpr (streamed) {
      reclaim(nullptr);
      arena_.coalesce();
    }
    arena_.release_cache(target_cached_bytes);
    if constexpr (streamed) {  // this target replaces any earlier one
      deferred_trim_ = cached() > target_cached_bytes && !streams_.settled() ? target_cached_bytes : SIZE_MAX;
      trim_due_ = false;
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
    return arena_.reserved();
  }
  std::size_t cached_bytes() const noexcept {
    std::lock_guard guard(lock_);
    return cached();
  }
  /// Paged backends: pages moved from one address to another instead of newly mapped.
  std::uint64_t page_moves() const noexcept {
    std::lock_guard guard(lock_);
    if constexpr (paged) return arena_.page_moves();
    else return 0;
  }
  /// Paged backends, caching_options::keep_page_aliases: chunks taken back at an address they were
  /// mapped at already (no driver call), and such aliases unmapped because the chunk was in use elsewhere.
  std::uint64_t alias_activations() const noexcept {
    std::lock_guard guard(lock_);
    if constexpr (paged) return arena_.alias_activations();
    else return 0;
  }
  std::uint64_t alias_unmaps() const noexcept {
    std::lock_guard guard(lock_);
    if constexpr (paged) return arena_.alias_unmaps();
    else return 0;
  }

  /// Walks the memory held from the backend, in address order, for reports (stash/torch_snapshot.hpp):
  /// region(begin, bytes) for each stretch of it (a segment; a run of mapped pages), then
  /// block(addr, bytes, requested) for each block in that stretch, clipped to it, requested 0 for a
  /// block that is not live (free, or the paged arena's ghost of a remapped chunk). Holds the lock
  /// throughout: the callbacks must not call the allocator.
  template <class Region, class Block>
  void visit_memory(Region&& region, Block&& block) const {
    std::lock_guard guard(lock_);
    auto blocks_in = [&](const detail::block* b, std::uintptr_t begin, std::uintptr_t end) {
      for (; b && b->addr < end; b = b->next_adjacent) {
        const std::uintptr_t from = std::max(b->addr, begin), to = std::min(b->addr + b->size, end);
        if (from < to) block(from, to - from, b->is_live() ? b->requested : std::size_t{0});
      }
    };
    arena_.visit(region, blocks_in);
  }

  Backend& backend() noexcept { return arena_.backend(); }
  const Backend& backend() const noexcept { return arena_.backend(); }
  /// The options it was made with (checked).
  const caching_options& options() const noexcept { return options_; }
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
  int device() const noexcept { return arena_.backend().device(); }

 private:
  static std::uintptr_t address(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }

  [[noreturn]] static void throw_too_large(std::size_t n) {
    throw invalid_size(n, "larger than max_size() = " + std::to_string(Buckets::max_size));
  }

  /// The heap's search, in the pool the arena serves a request of this size from.
  [[gnu::always_inline]] block* find_free_block(std::size_t size, const tag* on) noexcept {
    return heap_.find_free_block(size, on, arena_.pool_for(size));
  }

  /// b is freed on its own stream. Stream order: it joins that stream's open epoch (its pages are
  /// not moved or unmapped before the epoch completes: the paged arena's hold_pending_pages) and
  /// merges as the heap's mergeable() says (the merged block then belongs to that stream's open epoch).
  /// completed_free (deallocate_completed): every use of b on the device has completed, so it is ready,
  /// a block of no stream (as after empty_cache), and merges with free neighbours of no stream (others
  /// merge once ready); no stream's epoch is touched.
  static constexpr bool completed_free = true;
  template <bool Completed = false>
  void release_block(block* b) noexcept {
    [[maybe_unused]] tag* const owner = b->owner;
    heap_.count_freed(b->size);
    stats_.on_deallocate(b->requested, b->size);  // before seq, which shares requested's word, is set
    if constexpr (streamed) {
      if constexpr (Completed) {
        b->owner = nullptr;
        b->seq = 0;
      } else {
        b->seq = streams_.note_free(b->owner);
      }
    }
    if constexpr (paged) arena_.unback_pages(b->addr, b->size);
    heap_.merge_and_push(b);
    if constexpr (streamed && !Completed) streams_.after_free(owner);
  }

  /// No free block fits: get memory from the arena and return it as a free block (in its list).
  /// Kept out of line (and out of the fast path's registers and instruction cache).
  /// Stream order first: frees whose events have completed are made ready (and merged), and in wait
  /// mode another stream's block may be taken after a stream wait. A capturing stream skips both (no
  /// event may be asked about or waited for in its name) and the arena grows without waiting for
  /// anything (its backend calls are legal during a capture: cuda/capture_mode.hpp).
  [[gnu::cold, gnu::noinline]] block* grow(std::size_t requested, std::size_t size, tag* on) {
    // The searches here, the arena's included, may take a top above a pending block: that is growth.
    // (Host order: the scope does nothing.)
    const top_over_pending_scope scope(heap_);
    if constexpr (streamed) {
      const bool capturing = streams_.capturing(on);
      arena_.note_capture(capturing);
      if (capturing) return arena_.grow(requested, size, on);
      if (!streams_.settled() && reclaim(on) > 0) {
        arena_.coalesce();
        if (block* b = find_free_block(size, on)) return b;
      }
      if (options_.cross_stream_wait) {
        // A wait issued here stays if the call then fails (paged: backing the block's pages): `on` is
        // ordered after work it need not wait for, which changes no figure and frees nothing.
        if (block* b = heap_.pending_block_that_fits(size, arena_.pool_for(size), streams_.nobody());
            b && streams_.order_after(on, b))
          return b;
      }
    }
    return arena_.grow(requested, size, on);
  }

  // ---- streams (stream-ordered compositions) -------------------------------------------------------

  /// While it lives, the heap's searches may hand out a top above a block filed apart below it that the
  /// requesting stream may not use (block_heap::below_top_first); the fast path's search misses there.
  struct top_over_pending_scope {
    explicit top_over_pending_scope(heap_type& h) noexcept : heap(h) { heap.allow_top_over_pending(true); }
    ~top_over_pending_scope() { heap.allow_top_over_pending(false); }
    top_over_pending_scope(const top_over_pending_scope&) = delete;
    top_over_pending_scope& operator=(const top_over_pending_scope&) = delete;
    heap_type& heap;
  };

  /// The tag of the stream a call names. Paged, the small region files blocks apart below its top only
  /// while one stream has been named: with two, the small blocks of a copy stream and a compute stream
  /// laid out as host order would lay them left a compute-stream request of 256 KiB no mapped room in
  /// its region, so small_fill_mapped carved it from a large free block, and a 64 MiB block later
  /// needed new pages (PyTorch's multistream workload, a copy stream with record_stream: 378 -> 386 MiB
  /// on the H200, run Z4; its trace with record_stream 1.0229 -> 1.0505 of the live peak). The large
  /// region keeps the filing with any number of streams (mlp_two_streams 1.143 -> 1.076 settled).
  /// Every call that names a stream looks it up here (allocate, record_stream, a free on another
  /// stream), so a stream that record_stream names first counts as one allocate names first.
  /// Called before anything else in the call, so a call that fails later leaves what it did: a stream
  /// named for the first time stays known (and the small region's filing follows the stream count), a
  /// close that was due is carried out (stream_layer::find_or_add), and the pass that forgets streams
  /// may have run. None of it is a figure the caller reads; each is what a later call on s does anyway.
  tag* tag_of(stream s) {
    if constexpr (streamed) {
      return streams_.tag(s, [&](std::size_t streams, tag* t) {
        if (streams > forget_streams_above_) [[unlikely]] streams = forget_streams_while_running(t);
        if constexpr (heap_type::small_pool) heap_.file_below_tops(1, paged && streams == 1);
      });
    } else {
      return (void)s, nullptr;
    }
  }

  /// After empty_cache, and while running once the streams known have doubled: a free block that is
  /// ready belongs to no stream any more, and the stream layer drops the streams no block refers to
  /// (live blocks' owners, the streams record_stream named for them, the owners of free blocks still
  /// pending), but `keep`, the stream of the call under way.
  void forget_unused_streams(const tag* keep = nullptr) noexcept
    requires streamed
  {
    streams_.forget_unused(
        [&](auto mark) {
          heap_.for_each_block([&](block* b) {
            if (b->is_free() && detail::ready(b)) {
              b->owner = nullptr;
              b->seq = 0;
            }
            mark(b->owner);
          });
          for (const auto& [addr, uses] : extra_uses_)
            for (tag* t : uses) mark(t);
        },
        keep);
  }

  /// A program that makes threads without end (a thread per request), each freeing on its own
  /// cudaStreamPerThread, or streams without end and never calls empty_cache(), would otherwise leave
  /// the allocator a stream for each, and every slow path walks them all. So once the streams known
  /// pass twice what the last pass kept (and at least forget_streams_floor), the completed epochs
  /// are retired (event queries, no wait), the ghosts of remapped chunks whose frees have completed go
  /// (paged: coalesce), a trim_cache target those frees kept from reaching is due (met when the call
  /// has succeeded), and the streams nothing refers to any more are dropped, as empty_cache() does.
  /// One walk over the blocks per doubling. Returns the streams known after it.
  [[gnu::cold, gnu::noinline]] std::size_t forget_streams_while_running(const tag* keep) noexcept
    requires streamed
  {
    streams_.retire_completed_everywhere();
    arena_.coalesce();
    if (deferred_trim_ != SIZE_MAX) trim_due_ = true;  // the epochs just retired may be what it waited for
    return forget_streams_and_rearm(keep);
  }
  /// forget_unused_streams(keep), then the next pass while running comes once the streams known pass
  /// twice what is left (at least forget_streams_floor). Returns the streams known now.
  std::size_t forget_streams_and_rearm(const tag* keep) noexcept
    requires streamed
  {
    forget_unused_streams(keep);
    const std::size_t left = streams_.stream_count();
    forget_streams_above_ = std::max(forget_streams_floor, 2 * left);
    return left;
  }
  static constexpr std::size_t forget_streams_floor = 64;

  /// A free on another stream than b's own, or of a block record_stream named other streams for: b
  /// waits for the epoch open now on every stream it was used on, and merges with nothing meanwhile.
  [[gnu::cold, gnu::noinline]] void release_cross(block* b, stream s)
    requires streamed
  {
    tag* const freed_on = tag_of(s);  // may carry out a close due on s, and stays done if this free then
                                      // fails (std::bad_alloc below): an event recorded early
    std::vector<tag*> uses{b->owner};
    if (auto it = extra_uses_.find(b->addr); it != extra_uses_.end())
      uses.insert(uses.end(), it->second.begin(), it->second.end());
    const std::size_t named_end = uses.size();  // uses[1, named_end): the streams record_stream named
    if (std::find(uses.begin(), uses.end(), freed_on) == uses.end()) uses.push_back(freed_on);
    const std::size_t requested = b->requested;  // add_cross sets seq, which shares its word
    streams_.add_cross(b, uses);  // the last step that can throw
    extra_uses_.erase(b->addr);
    b->set_used_elsewhere(false);
    heap_.count_freed(b->size);
    stats_.on_deallocate(requested, b->size);
    if constexpr (paged) arena_.unback_pages(b->addr, b->size);
    heap_.push_free(b);
    heap_.note_unmerged();  // b merges with nothing until it is ready
    if (options_.free_records_used_streams)  // they are alive now, by the caller's promise
      for (std::size_t i = 1; i < named_end; ++i)
        if (uses[i] != freed_on) streams_.close_used_stream(uses[i]);
    streams_.after_free(freed_on);  // the one stream this call names
  }

  /// Retires every epoch whose event has completed, closing the open epoch of `on` (the stream the
  /// call names; none for trim_cache) and asking the other streams with frees to close theirs; gives
  /// back what a trim_cache could not, now that it can. Never waits.
  /// The layer's reclaim is not all-or-nothing: it may retire the completed epochs of the streams it
  /// walks first and then throw closing `on` (std::bad_alloc recording the event). Those epochs stay
  /// retired (harmless: what is known complete stays so), and the deferred trim they allow stays due,
  /// as if the call had gone through: otherwise no later reclaim would retire them again, and a
  /// trim_cache target would be left unmet until some other epoch retired.
  std::size_t reclaim(tag* on) {
    const std::uint64_t retired_before = streams_.stats().epochs_retired;
    std::size_t retired = 0;
    try {
      retired = streams_.reclaim(on);
    } catch (...) {
      if (streams_.stats().epochs_retired != retired_before && deferred_trim_ != SIZE_MAX) trim_due_ = true;
      throw;
    }
    if (retired > 0 && deferred_trim_ != SIZE_MAX) trim_due_ = true;
    return retired;
  }
  /// Gives back what a trim_cache could not while frees were pending, once epochs have retired: at the
  /// end of an allocate that succeeded (trim_due_), so that a call that fails gives nothing back.
  [[gnu::cold, gnu::noinline]] void apply_deferred_trim() noexcept {
    trim_due_ = false;
    if (deferred_trim_ == SIZE_MAX) return;
    arena_.coalesce();
    arena_.release_cache(deferred_trim_);
    if (cached() <= deferred_trim_ || streams_.settled()) deferred_trim_ = SIZE_MAX;
  }

  /// Paged, b needs pages mapped (`pages` is its span, `unmapped` its first unmapped page): the block to
  /// serve the request instead, if one with fewer pages to map is found, with `pages` and `unmapped` set
  /// for the block returned. With small_fill_mapped, a small request takes mapped memory of the large
  /// region first (paged_arena::mapped_fit, before the stream-order work, which costs more); then, in
  /// stream order, before_mapping_in_order. Out of line (a slow path), but not marked cold: optimized
  /// for size, it cost small_fill_mapped's requests about 5 instructions more each.
  template <class PageSpan>
  [[gnu::noinline]] block* before_mapping(block* b, std::size_t size, tag* on, PageSpan& pages,
                                          std::size_t& unmapped)
    requires paged
  {
    if (block* mapped = arena_.mapped_fit(size, on)) {  // its first size bytes are mapped
      pages = arena_.pages_of(mapped->addr, size);
      unmapped = detail::page_table::none;
      return mapped;
    }
    if constexpr (streamed) {
      b = before_mapping_in_order(b, size, on);
      pages = arena_.pages_of(b->addr, size);
      unmapped = arena_.first_unmapped(pages);
    }
    return b;
  }

  /// Stream order, b needs pages mapped: frees whose events have completed are made ready, so that a
  /// block whose pages are still mapped may serve instead. A capturing stream skips that (no event is
  /// asked about in its name) and its pages are mapped without any wait (the arena is told so).
  block* before_mapping_in_order(block* b, std::size_t size, tag* on)
    requires streamed && paged
  {
    std::size_t unmapped = arena_.first_unmapped(b->addr, size);
    const bool capturing = streams_.capturing(on);
    arena_.note_capture(capturing);
    arena_.note_requesting(on);
    if (!capturing && !streams_.settled() && reclaim(on) > 0) {
      const std::uint8_t region = b->pool();  // a request is carved from the
                                              // other region when its own is full
      arena_.coalesce();                    // b may have merged into a ready neighbour: look again
      const top_over_pending_scope scope(heap_);
      b = heap_.find_free_block(size, on, region);  // b's memory is still free and usable there: never null
      unmapped = arena_.first_unmapped(b->addr, size);
    }
    // A free block just below b that this stream may use, whose pages are all mapped: the request
    // starts there, and needs only the unmapped pages of b's first size - lower->size bytes. The GPU
    // runs behind the host, so such a block is often pending on this very stream, and its pages may
    // not move: reusing them in place is the only way they serve (docs/design.md, "When the GPU runs
    // behind the host").
    if (block* lower = b->prev_adjacent();
        unmapped != detail::page_table::none && lower && lower->is_free() && lower->size < size &&
        heap_type::usable(lower, on) &&
        arena_.first_unmapped(lower->addr, lower->size) == detail::page_table::none)
      b = heap_.place_lower(b, size);
    return b;
  }

  std::size_t cached() const noexcept { return arena_.reserved() - heap_.allocated(); }

  static const caching_options& checked(const caching_options& options) {
    check_options(options);
    return options;
  }

  // ---- errors (slow path) -------------------------------------------------------------------------

  /// Not a live block: a double free if p lies in free memory we hold, else a pointer never handed out.
  [[noreturn]] void throw_bad_pointer(const void* p) const {
    const std::uintptr_t a = address(p);
    for (const block* b = arena_.first_block_holding(a); b; b = b->next_adjacent) {
      if (a < b->addr || a >= b->addr + b->size) continue;
      if (b->is_free()) throw double_free(p);
      throw invalid_pointer(p, "points inside a live block of " + std::to_string(b->size) +
                                   " bytes, not at its start");
    }
    throw invalid_pointer(p, "not allocated by this allocator");
  }

  // The arena comes first so that it is destroyed last: the memory goes back to the backend after
  // everything else is gone, the backend itself last of all.
  arena_type arena_;
  caching_options options_;
  mutable Lock lock_;
  Stats stats_;
  [[no_unique_address]] streams_type streams_;
  // Stream order: the other streams record_stream named for live blocks (by address).
  [[no_unique_address]]
  std::conditional_t<streamed, std::unordered_map<std::uintptr_t, std::vector<tag*>>, none> extra_uses_;
  std::size_t deferred_trim_ = SIZE_MAX;  // stream order: a trim_cache target
                                          // pending frees kept from reaching
  bool trim_due_ = false;  // stream order: epochs have retired since:
                           // meet deferred_trim_ when allocate succeeds
  std::size_t forget_streams_above_ = forget_streams_floor;  // stream order: forget_streams_while_running
                                                             // past this many streams
  heap_type heap_;
};

}  // namespace stash
