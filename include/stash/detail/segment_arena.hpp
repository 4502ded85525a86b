#pragma once
// The segment arena: growth for a segment_backend (cudaMalloc, cudaMallocHost, host memory). Each
// segment the backend hands out is a run of blocks of its own in the block heap; a segment goes back
// to the backend only when one free block spans it. With a splitting bucket policy that names a
// small_request threshold, small requests are carved only from small segments and larger ones only
// from large segments, each kind in a pool of free lists of its own, so a small live block never keeps
// a large segment from going back (PyTorch's small and large pools).
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>

#include "stash/backend/backend.hpp"
#include "stash/backend/host_backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_options.hpp"
#include "stash/detail/arena.hpp"
#include "stash/detail/block_heap.hpp"
#include "stash/detail/stream_layer.hpp"
#include "stash/error.hpp"
#include "stash/ordering/host_ordering.hpp"
#include "stash/stats/basic_stats.hpp"

namespace stash::detail {

template <segment_backend Backend, class Heap, stats_policy Stats, class Streams>
class segment_arena {
  using Buckets = typename Heap::buckets_type;
  static constexpr bool streamed = Heap::streamed;
  using tag = stream_tag;
  struct segment {
    block* first;       // the block at the segment's start; stays the same record for its lifetime
    std::size_t bytes;  // as allocated from the backend
  };
  using segment_map = std::map<std::uintptr_t, segment>;

 public:
  using backend_type = Backend;

  segment_arena(Backend backend, const caching_options&, Heap& heap, Stats& stats, Streams& streams)
      : backend_(std::move(backend)), heap_(heap), stats_(stats), streams_(streams) {}
  segment_arena(const segment_arena&) = delete;
  segment_arena& operator=(const segment_arena&) = delete;
  /// Gives every segment back to the backend, including those of blocks the caller never freed.
  ~segment_arena() {
    for (const auto& [addr, seg] : segments_) backend_.deallocate(reinterpret_cast<void*>(addr), seg.bytes);
  }

  Backend& backend() noexcept { return backend_; }
  const Backend& backend() const noexcept { return backend_; }
  std::size_t reserved() const noexcept { return reserved_; }

  std::uint8_t pool_for(std::size_t size) const noexcept {
    if constexpr (Heap::small_pool) return size <= Buckets::small_request ? 1 : 0;
    else return (void)size, 0;
  }

  /// A new segment for the request, filed whole as a free block. Out of memory: in stream order the
  /// pending frees are waited for first (one of them may fit then); then the cache is given back and
  /// the backend asked again, for the request alone where a shared segment does not fit.
  block* grow(std::size_t requested, std::size_t size, const tag* on) {
    return new_segment(requested, size, on);
  }

  /// Segments: one pass gives back every free one when the target is 0 (the out-of-memory retry);
  /// otherwise each pass gives back the largest free one, so k segments cost k passes over the map.
  void release_cache(std::size_t target) noexcept {
    if (target == 0) {
      for (auto it = segments_.begin(); it != segments_.end();)
        it = segment_is_free(it->second) ? release_segment(it) : std::next(it);
    } else {
      while (reserved_ - heap_.allocated() > target) {
        auto largest = segments_.end();
        for (auto it = segments_.begin(); it != segments_.end(); ++it)
          if (segment_is_free(it->second) &&
              (largest == segments_.end() || it->second.bytes > largest->second.bytes))
            largest = it;
        if (largest == segments_.end()) break;
        release_segment(largest);
      }
    }
  }

  /// Stream order: the request being served is for a capturing stream (or not); see block_arena.
  void note_capture(bool capturing) noexcept { capturing_ = capturing; }

  /// Stream order: merges neighbouring free blocks that are both ready, segment by segment.
  void coalesce() noexcept {
    if constexpr (streamed)
      heap_.merge_all_ready([&](auto&& merge) {
        for (auto& [addr, seg] : segments_) merge(seg.first);
      });
  }

  bool holds(std::uintptr_t a) const noexcept { return segment_holding(a) != nullptr; }
  const block* first_block_holding(std::uintptr_t a) const noexcept {
    const segment* seg = segment_holding(a);
    return seg ? seg->first : nullptr;
  }

  /// region(begin, bytes) for each segment, then blocks_in(first block, begin, end) for its blocks.
  template <class Region, class BlocksIn>
  void visit(Region& region, BlocksIn& blocks_in) const {
    for (const auto& [addr, seg] : segments_) {
      region(addr, seg.bytes);
      blocks_in(seg.first, addr, addr + seg.bytes);
    }
  }

 private:
  block* new_segment(std::size_t requested, std::size_t size, const tag* on) {
    if (spare_segment_.empty()) {  // the map node is made before the backend is asked (may throw)
      spare_segment_ = segments_.extract(segments_.emplace(0, segment{}).first);  // 0 is never a segment
    }
    const std::size_t granularity = backend_.granularity();
    std::size_t bytes = round_up_checked(Buckets::segment_size(size), granularity, requested);
    void* p = backend_.allocate(bytes);
    if (!p) {
      if constexpr (streamed) {
        // Waiting for pending frees and giving segments back (cudaFree synchronizes the device) are
        // what a capture forbids.
        if (capturing_)
          throw capture_error(requested, "the device is out of memory, and the cache cannot be given back to "
                                         "retry while the stream captures");
      }
      stats_.on_oom_retry();
      if constexpr (streamed) {
        if (!streams_.settled()) {  // wait for the pending frees: one of them may fit now
          streams_.synchronize();
          coalesce();
          if (block* b = heap_.find_free_block(size, on, pool_for(size))) return b;
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
      if (!p) throw out_of_memory(requested, backend_.device(), reserved_, reserved_ - heap_.allocated());
    }
    block* b = heap_.make();  // reserved by allocate()
    *b = block{};
    b->addr = reinterpret_cast<std::uintptr_t>(p);
    // Exact fit: the block is its class size, whatever the backend's rounding added to the segment,
    // so that it is filed in (and found again from) its own class.
    b->size = Buckets::exact_fit ? size : bytes;
    b->set_pool(pool_for(size));
    spare_segment_.key() = b->addr;
    spare_segment_.mapped() = segment{b, bytes};
    segments_.insert(std::move(spare_segment_));  // a node that exists: no allocation
    reserved_ += bytes;
    stats_.on_reserve(bytes);
    heap_.push_free(b);
    return b;
  }

  auto release_segment(typename segment_map::iterator it) noexcept {
    const segment seg = it->second;
    heap_.remove(seg.first);
    backend_.deallocate(reinterpret_cast<void*>(it->first), seg.bytes);
    reserved_ -= seg.bytes;
    stats_.on_release(seg.bytes);
    heap_.drop(seg.first);
    return segments_.erase(it);
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
      if (!ready(seg.first)) return false;  // work on some stream may still use it
    }
    return seg.first->is_free() && (Buckets::exact_fit || seg.first->size == seg.bytes);
  }

  static std::size_t round_up_checked(std::size_t n, std::size_t multiple, std::size_t requested) {
    if (n > SIZE_MAX - multiple)
      throw invalid_size(requested, "too large to round to the backend's granularity");
    return round_up_to(n, multiple);
  }

  Backend backend_;
  Heap& heap_;
  Stats& stats_;
  Streams& streams_;
  std::size_t reserved_ = 0;  // bytes held from the backend
  segment_map segments_;
  bool capturing_ = false;  // the request being served is for a capturing stream: no host waits
  typename segment_map::node_type spare_segment_;  // for the next new segment
};

static_assert(block_arena<segment_arena<host_backend, block_heap<segregated_fit_buckets, false, true>,
                                        basic_stats, no_stream_layer<host_ordering>>>);

}  // namespace stash::detail
