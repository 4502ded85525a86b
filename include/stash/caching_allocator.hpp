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
//     keeps the memory held within a few percent of the memory in use.
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
#include <vector>

#include "stash/backend/backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/detail/block.hpp"
#include "stash/detail/free_lists.hpp"
#include "stash/detail/page_table.hpp"
#include "stash/detail/pointer_map.hpp"
#include "stash/error.hpp"
#include "stash/lock/lock.hpp"
#include "stash/stats/basic_stats.hpp"

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
};

template <backend_policy Backend, bucket_policy Buckets = segregated_fit_buckets,
          lock_policy Lock = std::mutex, stats_policy Stats = basic_stats>
class caching_allocator {
  static constexpr bool paged = paged_backend<Backend>;
  static_assert(!(paged && Buckets::exact_fit),
                "a paged backend carves one address range: it needs a bucket policy that splits");
  using block = detail::block;
  // Small and large requests in free lists of their own (segment backends whose policy splits and
  // names a small_request threshold); one set of free lists otherwise.
  static constexpr bool small_pool = !paged && !Buckets::exact_fit && requires { Buckets::small_request; };
  static constexpr std::size_t pool_count = small_pool ? 2 : 1;
  struct segment {
    block* first;       // the block at the segment's start; stays the same record for its lifetime
    std::size_t bytes;  // as allocated from the backend
  };

 public:
  using backend_type = Backend;
  using buckets_type = Buckets;
  using lock_type = Lock;
  using stats_type = Stats;
  static constexpr memory_kind kind = Backend::kind;

  explicit caching_allocator(Backend backend = Backend{}, caching_options options = {})
      : backend_(std::move(backend)), options_(options) {}
  caching_allocator(const caching_allocator&) = delete;
  caching_allocator& operator=(const caching_allocator&) = delete;
  /// Gives every segment or page back to the backend, including blocks the caller never freed.
  ~caching_allocator() { release_everything(); }

  /// What allocate(n) really occupies; 0 for n == 0 (allocate(0) takes nothing) or n > max_size().
  static constexpr std::size_t good_size(std::size_t n) noexcept {
    return n == 0 || n > Buckets::max_size ? 0 : Buckets::round_up(n);
  }
  static constexpr std::size_t max_size() noexcept { return Buckets::max_size; }

  /// At least 256-byte aligned. allocate(0) returns nullptr and changes nothing (as cudaMalloc(0)
  /// does). Throws invalid_size for n > max_size(), out_of_memory when the backend has no memory even
  /// after the cache was released.
  [[nodiscard]] void* allocate(std::size_t n) {
    if (n - 1 >= Buckets::max_size) [[unlikely]] {  // n == 0 wraps around to SIZE_MAX
      if (n == 0) return nullptr;
      throw_too_large(n);
    }
    const std::size_t size = Buckets::round_up(n);
    std::lock_guard guard(lock_);
    records_.reserve_two();  // split and new_segment take one each: host memory is asked for first
    index_.reserve_one();
    block* b = find_free_block(size);
    bool from_cache = b != nullptr;
    if (!b) b = grow(n, size);
    if constexpr (paged) from_cache = back_pages(b->addr, size, n) && from_cache;
    free_[pool_of(b)].remove(b);
    split(b, size);
    b->is_free = false;
    b->requested = n;
    if (!b->indexed) {  // a block reused at the same address is indexed already
      index_.insert(b->addr, b);
      b->indexed = true;
    }
    allocated_ += b->size;
    stats_.on_allocate(n, b->size, from_cache);
    return reinterpret_cast<void*>(b->addr);
  }

  /// nullptr is a no-op. A pointer not handed out here throws invalid_pointer; one already freed throws
  /// double_free. Either way nothing changes.
  void deallocate(void* p) {
    if (!p) return;
    std::lock_guard guard(lock_);
    block* b = index_.find(address(p));
    if (!b || b->is_free) throw_bad_pointer(p);
    release_block(b);
  }

  /// As deallocate(p), and n must be the size that was asked for (else invalid_size, nothing changes).
  void deallocate(void* p, std::size_t n) {
    if (!p) return;
    std::lock_guard guard(lock_);
    block* b = index_.find(address(p));
    if (!b || b->is_free) throw_bad_pointer(p);
    if (b->requested != n)
      throw invalid_size(n, "sized deallocate does not match the " + std::to_string(b->requested) +
                                " bytes allocated at this pointer");
    release_block(b);
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
  bool try_deallocate(void* p) noexcept {
    if (!p) return false;
    std::lock_guard guard(lock_);
    block* b = index_.find(address(p));
    if (!b || b->is_free) return false;
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

  /// Gives back to the backend everything no live block uses.
  void empty_cache() { trim_cache(0); }

  /// Gives cached memory back to the backend until at most target_cached_bytes stay cached, or nothing
  /// more can go. Segment backends: whole free segments, largest first (fewest backend calls). Paged
  /// backends: idle pages, highest address first. Memory inside a partly used segment or page stays.
  /// Asks the host heap for nothing, so it works (and the out-of-memory retry works) when it is full.
  void trim_cache(std::size_t target_cached_bytes) {
    std::lock_guard guard(lock_);
    release_cache(target_cached_bytes);
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
      const detail::block* b = arena_base_ ? arena_first_block() : nullptr;
      for (std::size_t p = 0; p < pages_.size();) {
        if (!pages_.mapped(p)) {
          ++p;
          continue;
        }
        std::size_t end = p;
        while (end < pages_.size() && pages_.mapped(end)) ++end;
        const std::uintptr_t begin = page_address(p), stop = page_address(end);
        region(begin, static_cast<std::size_t>(stop - begin));
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
  int device() const noexcept { return backend_.device(); }

 private:
  static std::uintptr_t address(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }

  [[noreturn]] static void throw_too_large(std::size_t n) {
    throw invalid_size(n, "larger than max_size() = " + std::to_string(Buckets::max_size));
  }

  static constexpr std::uint8_t pool_for(std::size_t size) noexcept {
    if constexpr (small_pool) return size <= Buckets::small_request ? 1 : 0;
    else return 0;
  }
  static std::uint8_t pool_of(const block* b) noexcept {
    if constexpr (small_pool) return b->pool;
    else return 0;
  }

  // ---- free blocks --------------------------------------------------------------------------------

  /// Best fit among the first few blocks of the request's own bucket (they differ by at most one
  /// bucket width), else the head of the next non-empty bucket, whose blocks all fit.
  block* find_free_block(std::size_t size) noexcept {
    const std::size_t i = Buckets::bucket_index(size);
    const auto& free = free_[pool_for(size)];
    if constexpr (Buckets::exact_fit) {
      return free.head(i);
    } else {
      block* best = nullptr;
      int scan = 8;
      for (block* b = free.head(i); b && scan-- > 0; b = b->next_free) {
        if (b->size == size) return b;  // exact: nothing better exists, nothing to split
        if (b->size > size && (!best || b->size < best->size)) best = b;
      }
      if (best) return best;
      if (const std::size_t j = free.first_at_or_above(i + 1); j != free.none) return free.head(j);
      // Nothing larger: before the backend is asked, the rest of the own bucket (a slow path).
      for (block* b = free.head(i); b; b = b->next_free)
        if (b->size >= size && (!best || b->size < best->size)) best = b;
      return best;
    }
  }

  void push_free(block* b) noexcept {
    b->is_free = true;
    b->requested = 0;
    b->bucket = static_cast<std::uint32_t>(Buckets::bucket_index(b->size));
    free_[pool_of(b)].push(b);
  }

  /// Keeps the first `size` bytes of b (not in any free list) and files the rest as a new free block.
  /// Cannot throw: allocate() reserved the record.
  void split(block* b, std::size_t size) noexcept {
    if constexpr (!Buckets::exact_fit) {
      if (b->size > size) {
        block* rest = records_.make();
        rest->indexed = false;
        if constexpr (small_pool) rest->pool = b->pool;
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

  void release_block(block* b) noexcept {
    allocated_ -= b->size;
    stats_.on_deallocate(b->requested, b->size);
    if constexpr (paged) unback_pages(b->addr, b->size);
    if (block* next = b->next_adjacent; next && next->is_free) {
      free_[pool_of(next)].remove(next);
      b->size += next->size;
      unlink(next);
    }
    if (block* prev = b->prev_adjacent; prev && prev->is_free) {
      free_[pool_of(prev)].remove(prev);
      prev->size += b->size;
      unlink(b);
      b = prev;
    }
    push_free(b);
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
  [[gnu::cold, gnu::noinline]] block* grow(std::size_t requested, std::size_t size) {
    if constexpr (paged) {
      if (arena_base_ == 0) reserve_arena();
      block* b = find_free_block(size);
      if (!b) throw_out_of_memory(requested);  // the reservation itself is exhausted
      return b;
    } else {
      return new_segment(requested, size);
    }
  }

  block* new_segment(std::size_t requested, std::size_t size) {
    if (spare_segment_.empty()) {  // the map node is made before the backend is asked (may throw)
      spare_segment_ = segments_.extract(segments_.emplace(0, segment{}).first);  // 0 is never a segment
    }
    const std::size_t granularity = backend_.granularity();
    std::size_t bytes = round_up_checked(Buckets::segment_size(size), granularity, requested);
    void* p = backend_.allocate(bytes);
    if (!p) {
      stats_.on_oom_retry();
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
    return seg.first->is_free && (Buckets::exact_fit || seg.first->size == seg.bytes);
  }

  static std::size_t round_up_checked(std::size_t n, std::size_t multiple, std::size_t requested) {
    if (n > SIZE_MAX - multiple) throw invalid_size(requested, "too large to round to the backend's granularity");
    return detail::round_up_to(n, multiple);
  }

  /// The backend's reserve() is the last step that can fail (it cannot be undone): the page table is
  /// sized first, so a failure anywhere leaves the allocator as it was.
  void reserve_arena() {
    const std::size_t page = backend_.page_size();
    std::size_t bytes = options_.reserve_bytes;
    if (bytes == 0) {
      if constexpr (requires { backend_.default_reserve_bytes(); }) bytes = backend_.default_reserve_bytes();
      else bytes = std::size_t{1} << 40;
    }
    bytes = detail::round_up_to(bytes, page);
    const auto shift = static_cast<unsigned>(__builtin_ctzll(page));
    pages_.resize(bytes >> shift);
    arena_base_ = backend_.reserve(bytes);
    page_shift_ = shift;
    block* b = records_.make();  // reserved by allocate()
    *b = block{};
    b->addr = arena_base_;
    b->size = bytes;
    push_free(b);
    arena_end_.store(arena_base_ + bytes, std::memory_order_release);
    arena_begin_.store(arena_base_, std::memory_order_release);
  }

  // ---- pages (paged backends) ---------------------------------------------------------------------

  std::size_t first_page(std::uintptr_t addr) const noexcept { return (addr - arena_base_) >> page_shift_; }
  std::size_t last_page(std::uintptr_t addr, std::size_t size) const noexcept {
    return (addr + size - 1 - arena_base_) >> page_shift_;
  }
  std::uintptr_t page_address(std::size_t p) const noexcept { return arena_base_ + (p << page_shift_); }

  /// Counts a new live block on the pages it touches and backs those no physical page backs yet.
  /// Returns whether all were backed already. On failure (out_of_memory, or the backend's error) the
  /// block is uncounted and every page mapped for it is unmapped again, so the memory held is what it
  /// was. Idle pages moved here for it stay where they are, idle: moving them back would be more
  /// driver calls that can fail too, and where they sit changes no figure.
  bool back_pages(std::uintptr_t addr, std::size_t size, std::size_t requested) {
    const std::size_t first = first_page(addr), last = last_page(addr, size);
    const std::size_t peak_before = peak_touched_;
    touched_ += pages_.touch(first, last);
    peak_touched_ = std::max(peak_touched_, touched_);
    const std::size_t p = pages_.first_unmapped(first, last);
    if (p == detail::page_table::none) return true;
    back_unmapped_pages(addr, size, p, requested, peak_before);
    return false;
  }

  /// The slow part of back_pages: pages from p on in the block need backing.
  [[gnu::cold, gnu::noinline]] void back_unmapped_pages(std::uintptr_t addr, std::size_t size, std::size_t p,
                                                        std::size_t requested, std::size_t peak_before) {
    const std::size_t first = first_page(addr), last = last_page(addr, size);
    bool backed = true;
    try {
      for (; backed && p != detail::page_table::none;
           p = p < last ? pages_.first_unmapped(p + 1, last) : detail::page_table::none)
        backed = back_page(p);
    } catch (...) {
      undo_back_pages(addr, size, peak_before);
      throw;
    }
    if (!backed) {
      undo_back_pages(addr, size, peak_before);
      throw_out_of_memory(requested);
    }
    // Counted only now that the block is placed: a failed call leaves the stats as they were.
    pages_.take_fresh(first, last, [&](std::size_t) { stats_.on_reserve(std::size_t{1} << page_shift_); });
  }

  void undo_back_pages(std::uintptr_t addr, std::size_t size, std::size_t peak_before) noexcept {
    unback_pages(addr, size);
    peak_touched_ = peak_before;
    const std::size_t page = std::size_t{1} << page_shift_;
    pages_.take_fresh(first_page(addr), last_page(addr, size), [&](std::size_t p) {
      backend_.unmap_page(page_address(p));
      pages_.set_mapped(p, false);
      reserved_ -= page;
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
    const auto budget = static_cast<std::size_t>(static_cast<double>(peak_touched_) * (1.0 + options_.page_slack));
    const bool move_is_due = backed_since_move_ >= options_.pages_between_moves;
    ++backed_since_move_;
    if (pages_.mapped_count() >= budget && move_is_due && move_idle_page_to(p)) return true;
    if (map_new_page(p)) return true;
    stats_.on_oom_retry();  // the cache is released by moving an idle page here, else retried once
    return move_idle_page_to(p) || map_new_page(p);
  }

  bool map_new_page(std::size_t p) {
    if (!backend_.map_page(page_address(p))) return false;
    pages_.set_mapped(p, true);
    pages_.set_fresh(p);  // counted in the stats once the block is placed (back_pages)
    reserved_ += std::size_t{1} << page_shift_;
    return true;
  }

  bool move_idle_page_to(std::size_t p) {
    const std::size_t from = pages_.highest_idle();
    if (from == detail::page_table::none || !backend_.move_page(page_address(from), page_address(p))) return false;
    pages_.set_mapped(from, false);
    pages_.set_mapped(p, true);
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
      while (reserved_ - allocated_ > target) {
        const std::size_t p = pages_.highest_idle();
        if (p == detail::page_table::none) break;
        backend_.unmap_page(page_address(p));
        pages_.set_mapped(p, false);
        reserved_ -= page;
        stats_.on_release(page);
      }
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
    free_[pool_of(seg.first)].remove(seg.first);
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
        if (pages_.mapped(p)) backend_.unmap_page(page_address(p));
    } else {
      for (const auto& [addr, seg] : segments_) backend_.deallocate(reinterpret_cast<void*>(addr), seg.bytes);
    }
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
      if (in_arena(p) && pages_.mapped(first_page(a))) first = arena_first_block();
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

  const block* arena_first_block() const noexcept {
    // The arena's lowest block is reached from any block through prev_adjacent; index_ or free_ has one.
    const block* any = nullptr;
    index_.for_each([&](std::uintptr_t, block* b) { any = b; });
    if (!any) {
      const std::size_t j = free_[0].first_at_or_above(0);
      any = j == free_[0].none ? nullptr : free_[0].head(j);
    }
    while (any && any->prev_adjacent) any = any->prev_adjacent;
    return any;
  }

  Backend backend_;
  caching_options options_;
  mutable Lock lock_;
  Stats stats_;
  std::array<detail::free_lists<Buckets::bucket_count>, pool_count> free_;  // [pool_for(size)]
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
  detail::page_table pages_;
  std::size_t touched_ = 0;       // pages at least one live block touches
  std::size_t peak_touched_ = 0;  // high tide of touched_
  std::uint64_t page_moves_ = 0;
  std::uint64_t backed_since_move_ = 0;  // pages backed (mapped or moved) since the last move
};

}  // namespace stash
