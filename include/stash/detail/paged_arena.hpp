#pragma once
// The paged arena: growth for a paged_backend (CUDA's virtual memory management). It reserves one range
// of addresses on first use, carves blocks from it in the block heap (one run of blocks from the
// range's start) and backs the pages a live block touches with physical memory, reusing the pages no
// live block touches before it maps new ones; that keeps the memory held within a few percent of the
// memory in use. The page table (detail/page_table.hpp) says which pages are mapped, touched and idle,
// and which run of pages was mapped as one chunk. Requests of at most half a page are carved from a
// region of their own above that range (caching_options::small_region), a second run of blocks, so
// that small blocks never split the holes large ones leave.
// Stream order: the pages under free blocks whose GPU work may still be running are never moved or
// given back (hold_pending_pages); where pages are short, the pending frees are waited for, except
// for a stream that captures a graph (note_capture), where nothing may wait. With
// caching_options::remap_pending_pages, a chunk under a free block pending on the requesting stream
// may be mapped at a second address for it (remap_pending_chunk_to); its old range waits, out of
// every free list, for that free's epoch (retire_remapped).
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#include "stash/backend/backend.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_options.hpp"
#include "stash/detail/arena.hpp"
#include "stash/detail/block_heap.hpp"
#include "stash/detail/page_table.hpp"
#include "stash/detail/stream_layer.hpp"
#include "stash/error.hpp"
#include "stash/ipc_handle.hpp"
#include "stash/ordering/host_ordering.hpp"
#include "stash/stats/basic_stats.hpp"

namespace stash::detail {

template <paged_backend Backend, class Heap, stats_policy Stats, class Streams>
class paged_arena {
  using Buckets = typename Heap::buckets_type;
  static constexpr bool streamed = Heap::streamed;
  static_assert(!Buckets::exact_fit,
                "a paged backend carves one address range: it needs a bucket policy that splits");
  static_assert(Heap::small_pool, "the small region has a pool of its own");
  using tag = stream_tag;
  static constexpr bool remapping = streamed && remapping_paged_backend<Backend>;
  static constexpr bool aliasing = aliasing_paged_backend<Backend>;

 public:
  using backend_type = Backend;

  /// Throws invalid_option for a reserve_bytes that cannot be rounded up to whole pages.
  paged_arena(Backend backend, const caching_options& options, Heap& heap, Stats& stats, Streams& streams)
      : backend_(std::move(backend)), options_(options), heap_(heap), stats_(stats), streams_(streams) {
    const std::size_t page = backend_.page_size();
    if (options_.reserve_bytes > SIZE_MAX - (page - 1))
      throw invalid_option("reserve_bytes",
                           std::to_string(options_.reserve_bytes) + " cannot be rounded up to whole pages");
  }
  paged_arena(const paged_arena&) = delete;
  paged_arena& operator=(const paged_arena&) = delete;
  /// Gives every page back to the backend, including those of blocks the caller never freed.
  ~paged_arena() {
    if constexpr (remapping)
      for (const remapped_chunk& r : remapped_) backend_.unmap_alias(page_address(r.first), r.pages);
    for (std::size_t p = 0; p < pages_.size(); ++p)
      if (pages_.mapped(p) && pages_.starts_chunk(p)) (void)unmap_chunk(p);
  }

  Backend& backend() noexcept { return backend_; }
  const Backend& backend() const noexcept { return backend_; }
  std::size_t reserved() const noexcept { return reserved_; }
  /// Pages moved from one address to another instead of newly mapped (remapped pages included). Every
  /// move made counts, those of a request that failed and gave the pages back included: the driver
  /// calls were made.
  std::uint64_t page_moves() const noexcept { return page_moves_; }
  /// caching_options::keep_page_aliases: chunks taken back at an address where they were mapped
  /// already (no driver call), and inactive aliases unmapped because their chunk was in use elsewhere.
  std::uint64_t alias_activations() const noexcept { return alias_activations_; }
  std::uint64_t alias_unmaps() const noexcept { return alias_unmaps_; }

  std::uint8_t pool_for(std::size_t size) const noexcept { return size <= small_below_ ? 1 : 0; }

  /// Reserves the range on first use, then carves the request from its own region, else from the other
  /// one (a small request when the small region is full). Stream order: pending frees hold address
  /// ranges too, so when neither region has room they are waited for once.
  block* grow(std::size_t requested, std::size_t size, const tag* on) {
    if (arena_base_ == 0) reserve_arena();
    auto fitting = [&] {
      block* f = heap_.find_free_block(size, on, pool_for(size));
      return f ? f : heap_.find_free_block(size, on, static_cast<std::uint8_t>(1 - pool_for(size)));
    };
    block* b = fitting();
    if constexpr (streamed) {
      if (!b && !capturing_ && !streams_.settled()) {  // pending frees hold address ranges too: wait for them
        stats_.on_oom_retry();
        streams_.synchronize();
        coalesce();
        b = fitting();
      }
    }
    if (!b) throw_out_of_memory(requested);  // the reservation itself is exhausted
    return b;
  }

  /// With caching_options::small_fill_mapped or fill_mapped_above, a small request (pool_for(size) ==
  /// 1) whose block would need a page mapped: a free block of the large region, usable on `on`, whose
  /// first `size` bytes lie on mapped pages already, or null (always null for other requests, or with
  /// max_held_over_live). A request of at most fill_mapped_above bytes never takes the large region's
  /// top (its untouched rest: a tiny block there keeps the top's first page touched under the next
  /// large block, where hundreds like it would share one page of the small region). At most
  /// mapped_fit_budget free blocks are looked at, smallest lists first: this runs only where a page is
  /// about to be mapped.
  block* mapped_fit(std::size_t size, const tag* on) const noexcept {
    if (size > fill_mapped_below_) return nullptr;
    const bool tiny = size <= fill_mapped_above_;
    auto usable_on_mapped_pages = [&](const block* b) {
      return Heap::usable(b, on) && (!tiny || b->next_adjacent) &&
             first_unmapped(b->addr, size) == page_table::none;
    };
    return heap_.find_free_block_if(size, 0, usable_on_mapped_pages, mapped_fit_budget);
  }

  static constexpr int mapped_fit_budget = 8;  // finds as much as 64 or 1,024 did on every trace

  /// Gives back idle pages, highest address first; each costs O(log pages) (the page table keeps the
  /// idle ones in a hierarchical bitmap).
  void release_cache(std::size_t target) noexcept {
    const bool holding = hold_pending_pages();
    while (reserved_ - heap_.allocated() > target) {
      const std::size_t p = pages_.highest_idle();
      if (p == page_table::none) break;
      release_chunk(pages_.chunk_first(p));
    }
    if (holding) release_pending_pages();
  }

  /// Stream order: the request being served is for a capturing stream (or not); see block_arena.
  void note_capture(bool capturing) noexcept { capturing_ = capturing; }
  /// Stream order: the stream of the request whose pages are about to be backed (remap_pending_chunk_to
  /// takes pages only from its own pending frees).
  void note_requesting(const tag* on) noexcept { requesting_ = on; }

  /// Stream order: unmaps the old ranges of remapped chunks whose frees' epochs have completed and
  /// files them as free blocks, then merges neighbouring free blocks that are both ready, region by region.
  void coalesce() noexcept {
    if constexpr (streamed) {
      retire_remapped();
      heap_.merge_all_ready([&](auto&& merge) {
        merge(large_first_);
        merge(small_first_);
      });
    }
  }

  /// Whether a lies in the reserved address range, mapped or not. Takes no lock (the range is set once).
  bool in_arena(std::uintptr_t a) const noexcept {
    return a >= arena_begin_.load(std::memory_order_acquire) &&
           a < arena_end_.load(std::memory_order_acquire);
  }
  bool holds(std::uintptr_t a) const noexcept { return in_arena(a) && pages_.mapped(first_page(a)); }
  const block* first_block_holding(std::uintptr_t a) const noexcept {
    if (!holds(a)) return nullptr;
    return small_first_ && a >= small_first_->addr ? small_first_ : large_first_;
  }

  /// The first and last page the block [addr, addr + size) touches.
  struct page_span {
    std::size_t first, last;
  };
  [[gnu::always_inline]] page_span pages_of(std::uintptr_t addr, std::size_t size) const noexcept {
    return {first_page(addr), last_page(addr, size)};
  }
  /// The first page of the span (or of the block [addr, addr + size)) that is not mapped, or
  /// page_table::none.
  [[gnu::always_inline]] std::size_t first_unmapped(page_span pages) const noexcept {
    return pages_.first_unmapped(pages.first, pages.last);
  }
  std::size_t first_unmapped(std::uintptr_t addr, std::size_t size) const noexcept {
    return first_unmapped(pages_of(addr, size));
  }

  /// Counts a new live block on the pages it touches (`pages`: pages_of(addr, size)) and backs those no
  /// physical page backs yet, from p on (the block's first unmapped page, or none). Returns whether all
  /// were backed already. On failure (out_of_memory, or the backend's error) the block is uncounted and
  /// every page mapped for it is unmapped again, so the memory held is what it was. Idle pages moved
  /// here for it by move_page stay where they are, idle: moving them back would be more driver calls
  /// that can fail too, and where they sit changes no figure. Chunks moved here by move_pages have no
  /// access yet, so they are given back (counted as released; a remapped chunk's memory once its
  /// alias is unmapped: release_chunk).
  bool back_pages(std::uintptr_t addr, std::size_t size, std::size_t requested, page_span pages,
                  std::size_t p) {
    const std::size_t peak_before = peak_touched_;
    touched_ += pages_.touch(pages.first, pages.last);
    peak_touched_ = std::max(peak_touched_, touched_);
    if (p == page_table::none) return true;
    back_unmapped_pages(addr, size, p, requested, peak_before);
    return false;
  }

  /// The live block [addr, addr + size) as an ipc_handle: one piece per chunk under its pages, in
  /// address order, each with a descriptor of the chunk's physical allocation.
  ipc_handle export_block(std::uintptr_t addr, std::size_t size, std::size_t requested) const
    requires shareable_paged_backend<Backend>
  {
    const std::size_t first = first_page(addr), last = last_page(addr, size);
    ipc_handle h(backend_.device(), addr - page_address(first), requested);
    for (std::size_t p = first; p <= last;) {
      const std::size_t chunk = pages_.chunk_first(p), chunk_end = pages_.chunk_last(p) + 1;
      const std::size_t stop = std::min(chunk_end, last + 1);
      h.add(backend_.export_chunk(page_address(p)),
            {(p - chunk) << page_shift_, (stop - p) << page_shift_, (chunk_end - chunk) << page_shift_});
      p = stop;
    }
    return h;
  }

  void unback_pages(std::uintptr_t addr, std::size_t size) noexcept {
    touched_ -= pages_.untouch(first_page(addr), last_page(addr, size));
  }


  /// region(begin, bytes) for each run of mapped pages (a run ends where a region does), then
  /// blocks_in(first block reaching in, begin, end) for its blocks.
  template <class Region, class BlocksIn>
  void visit(Region& region, BlocksIn& blocks_in) const {
    const std::size_t small_page = small_first_ ? first_page(small_first_->addr) : pages_.size();
    const block* b = large_first_;
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
  }

 private:
  [[noreturn]] void throw_out_of_memory(std::size_t requested) const {
    throw out_of_memory(requested, backend_.device(), reserved_, reserved_ - heap_.allocated());
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
    bytes = round_up_to(bytes, page);  // the constructor checked that it cannot wrap
    std::size_t small_bytes = 0;  // none when the range is a few pages, or an eighth more would wrap
    if (options_.small_region && bytes >= 8 * page && bytes / 8 <= SIZE_MAX - page - bytes)
      small_bytes = round_up_to(bytes / 8, page);
    const std::size_t total = bytes + small_bytes;
    const auto shift = static_cast<unsigned>(__builtin_ctzll(page));
    pages_.resize(total >> shift);
    if (keep_aliases()) alias_id_.assign(total >> shift, 0);
    block* const large = heap_.make();  // the two allocate() reserved; split's is reserved again below
    block* const small = heap_.make();
    try {
      heap_.reserve_records();
      arena_base_ = backend_.reserve(total);
    } catch (...) {
      heap_.recycle(small);
      heap_.recycle(large);
      throw;
    }
    page_shift_ = shift;
    *large = block{};
    large->addr = arena_base_;
    large->size = bytes;
    heap_.push_free(large);
    large_first_ = large;
    if (small_bytes != 0) {
      *small = block{};  // not linked to the large region's blocks: the two never merge
      small->addr = arena_base_ + bytes;
      small->size = small_bytes;
      small->set_pool(1);
      heap_.push_free(small);
      small_first_ = small;
      small_below_ = page / 2;
      fill_mapped_above_ = options_.small_fill_mapped ? 0 : options_.fill_mapped_above;
      if (fill_mapped_above_ != SIZE_MAX && !(options_.max_held_over_live > 0))
        fill_mapped_below_ = small_below_;
    } else {
      heap_.recycle(small);
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

  /// The slow part of back_pages: pages from p on in the block need backing.
  [[gnu::cold, gnu::noinline]] void back_unmapped_pages(std::uintptr_t addr, std::size_t size, std::size_t p,
                                                        std::size_t requested, std::size_t peak_before) {
    const std::size_t first = first_page(addr), last = last_page(addr, size);
    // Live bytes rise on the fast path too, but the budget is needed only here, where pages are backed.
    const std::size_t peak_live_before = peak_live_;
    peak_live_ = std::max(peak_live_, heap_.allocated() + size);
    bool backed = true;
    bool chunks = true;  // until the device refuses one: then page by page, which can move and wait
    ungranted_first_ = page_table::none;
    ungranted_last_ = 0;
    retried_ = false;
    size_for_block(last - first + 1);
    if (keep_aliases()) p = take_aliases(first, last, p);
    // An edge page joins a chunk (map_run) when the block starts (ends) on a page boundary, so that no
    // neighbour can share it, or when edge_pages_in_chunks lets a neighbour hold the chunk.
    const std::size_t page_mask = (std::size_t{1} << page_shift_) - 1;
    const bool starts_on_page = ((addr - arena_base_) & page_mask) == 0;
    const bool ends_on_page = ((addr + size - arena_base_) & page_mask) == 0;
    const bool any_edge = options_.edge_pages_in_chunks;
    const edges join{any_edge || starts_on_page, any_edge || ends_on_page};
    alone_first_ = starts_on_page ? first : first + 1;
    alone_end_ = ends_on_page ? last + 1 : last;
    try {
      while (backed && p != page_table::none) {
        const std::size_t run_end = chunks ? map_run(p, first, last, join, chunks) : page_table::none;
        if (run_end == page_table::none) backed = back_page(p, first, last);
        const std::size_t done = run_end == page_table::none ? p : run_end;
        p = done < last ? pages_.first_unmapped(done + 1, last) : page_table::none;
      }
      // One access grant for every page mapped here: the block is mapped whole now, so the span from
      // the first to the last new page is a fully mapped range (pages moved in are granted again).
      if constexpr (chunked_paged_backend<Backend>) {
        if (backed && ungranted_first_ != page_table::none)
          backed =
              backend_.set_access(page_address(ungranted_first_), ungranted_last_ - ungranted_first_ + 1);
      }
    } catch (...) {
      undo_back_pages(addr, size, peak_before);
      peak_live_ = peak_live_before;
      throw;
    }
    if (!backed) {
      undo_back_pages(addr, size, peak_before);
      peak_live_ = peak_live_before;
      throw_out_of_memory(requested);
    }
    // Counted only now that the block is placed, one physical allocation per chunk: a failed call
    // leaves the stats as they were.
    pages_.take_fresh(first, last, [&](std::size_t p) {
      if (pages_.starts_chunk(p)) stats_.on_reserve((pages_.chunk_last(p) - p + 1) << page_shift_);
    });
    pages_.take_moved(first, last, [](std::size_t) {});
  }

  void undo_back_pages(std::uintptr_t addr, std::size_t size, std::size_t peak_before) noexcept {
    unback_pages(addr, size);
    peak_touched_ = peak_before;
    const std::size_t page = std::size_t{1} << page_shift_;
    pages_.take_fresh(first_page(addr), last_page(addr, size), [&](std::size_t p) {
      if (pages_.starts_chunk(p)) reserved_ -= unmap_chunk(p) * page;  // a chunk's pages are all fresh
    });
    pages_.take_moved(first_page(addr), last_page(addr, size), [&](std::size_t p) {
      if (pages_.starts_chunk(p)) release_chunk(p);  // a chunk's pages are all moved
    });
  }

  /// Backs page p. A new physical page while the pages held stay within the slack over the high tide
  /// of touched pages; past it, the highest idle page moves here instead, but at most once per
  /// pages_between_moves pages backed (a move costs tens of microseconds). Out of memory: an idle page
  /// moves here if there is one, else the map is retried once (counted as one OOM retry per request,
  /// however many of its pages take this path: oom_retries counts requests retried).
  bool back_page(std::size_t p, std::size_t first, std::size_t last) {
    const bool move_first = over_budget() && move_is_due();
    ++backed_since_move_;
    if (move_first && move_idle_page_to(p, first, last)) return true;
    if (map_new_page(p)) return true;
    if (!retried_) stats_.on_oom_retry();  // the cache is released by moving an
                                           // idle page here, else retried once
    retried_ = true;
    if constexpr (streamed) {
      if (!capturing_ && !streams_.settled()) streams_.synchronize();  // pages held by pending
                                                                       // frees become idle
    }
    return move_idle_page_to(p, first, last) || map_new_page(p);
  }

  /// Whether the block's first and last pages may join its chunks (it starts, or ends, on a page
  /// boundary, or caching_options::edge_pages_in_chunks).
  struct edges {
    bool first, last;
  };

  /// Maps the run of unmapped pages from p on in chunks, where the backend can: pages of the block
  /// [first, last] but edge pages that may not join a chunk (`join`; those are mapped alone, since a
  /// chunk goes back only whole and would stay held while a neighbour on them lives), in chunks of
  /// chunk_pages_ (one call to the backend, access granted later with the block's other new pages). The
  /// run ends where back_page would next move an idle page instead of mapping a new one (the pages held
  /// reach the slack over the high tide, a move is due and some page is idle), so pages are mapped,
  /// moved and counted as page by page, and the chunks are those that mapping one chunk at a time would
  /// make.
  /// With a move due and no idle page, the run goes on: page by page would map each page anew, one
  /// physical allocation each (cnn_train's cold replay: 95 driver calls, where that made 185). Returns
  /// the last page mapped, or none: then p is backed alone (back_page), which also moves idle pages,
  /// waits for pending frees and retries when the device is out of memory. A refused run clears
  /// `chunks`.
  std::size_t map_run(std::size_t p, std::size_t first, std::size_t last, edges join, bool& chunks) {
    if constexpr (chunked_paged_backend<Backend>) {
      if (options_.max_chunk_pages < 2 || (p == first && !join.first) || (p == last && !join.last))
        return page_table::none;
      // p < last when the last page is shared (p == last returned above), so last - 1 >= p.
      std::size_t n = pages_.unmapped_run_end(p, join.last ? last : last - 1) - p + 1;
      const std::size_t budget = budget_pages(), mapped = pages_.mapped_count();
      if (mapped < budget) n = std::min(n, budget - mapped);
      else if (!move_is_due()) n = std::min<std::size_t>(n, pages_between_moves_ - backed_since_move_);
      else if (!nothing_to_move()) return page_table::none;  // back_page moves an idle page to p
      // else nothing idle can move here: back_page would map the pages one at a time, as new pages all.
      if (n < 2) return page_table::none;
      const std::size_t chunk = chunk_for_room();
      if (!backend_.map_chunks(page_address(p), n, chunk)) {
        chunks = false;
        return page_table::none;
      }
      for (std::size_t q = p; q < p + n; q += chunk) note_mapped(q, std::min(q + chunk, p + n) - 1);
      backed_since_move_ += n;
      return p + n - 1;
    } else {
      (void)p, (void)first, (void)last, (void)join, (void)chunks;
      return page_table::none;
    }
  }

  /// The pages of a new chunk: chunk_pages_, or where the backend tells its room and
  /// chunk_room_share is set, at most that share of the room (at least one page). Asking costs (7-8 µs
  /// for cudaMemGetInfo on an H200, run D4), so the room told last, less what this arena has mapped
  /// since, stands for it while that is enough for chunk_pages_ and fewer than room_recheck_runs runs
  /// have been mapped since (memory other processes take is seen at the next ask).
  std::size_t chunk_for_room() noexcept {
    std::size_t chunk = chunk_pages_;
    if constexpr (room_telling_backend<Backend>) {
      const std::size_t share = options_.chunk_room_share;
      if (share == 0 || chunk < 2) return chunk;
      std::size_t room = room_told_;
      if (room != SIZE_MAX) {  // less what was mapped since, more what was given back (short of SIZE_MAX)
        room = reserved_ > held_when_told_
                   ? room - std::min(room, reserved_ - held_when_told_)
                   : room + std::min(SIZE_MAX - 1 - room, held_when_told_ - reserved_);
      }
      const std::size_t room_pages = room >> page_shift_;
      if (runs_since_told_ >= room_recheck_runs || room_pages / share < chunk) {
        room = backend_.room_bytes();
        room_told_ = room;
        held_when_told_ = reserved_;
        runs_since_told_ = 0;
      }
      ++runs_since_told_;
      if (room != SIZE_MAX) chunk = std::clamp<std::size_t>((room >> page_shift_) / share, 1, chunk);
    }
    return chunk;
  }
  static constexpr unsigned room_recheck_runs = 64;

  /// Whether no idle page could move to a page being backed now (none is idle, pages of free blocks
  /// pending on the GPU counted as touched), so that back_page would map a new page anyway. With
  /// remap_pending_pages (stream order, a backend that remaps), a pending chunk could be remapped
  /// instead: false, and back_page decides. Where no remap can happen the option is not read.
  bool nothing_to_move() noexcept {
    if constexpr (remapping) {
      if (options_.remap_pending_pages) return false;
    }
    bool pending = false;
    return highest_idle_page(pending) == page_table::none;
  }

  /// The highest idle page whose whole chunk is idle (page_table::highest_idle), the pages of free blocks
  /// pending on the GPU counted as touched, or none; `pending` says whether any such free was held.
  std::size_t highest_idle_page(bool& pending) noexcept {
    pending = hold_pending_pages();
    const std::size_t p = pages_.highest_idle();
    if (pending) release_pending_pages();
    return p;
  }

  /// The chunks and the ration of moves while a block of `pages` pages is backed: max_chunk_pages
  /// and pages_between_moves, or for a large block (chunks_per_block, moves_per_block) a share of it.
  /// With chunks of a fixed size and a fixed ration the driver calls grow with the block (a 3 GiB
  /// block: 48 chunks of 64 MiB, or past the slack a move and a chunk of 8 pages per 9 pages); with a
  /// share they do not, and the memory held stays within a share of the block.
  void size_for_block(std::size_t pages) noexcept {
    chunk_pages_ = options_.max_chunk_pages;
    pages_between_moves_ = options_.pages_between_moves;
    if constexpr (chunked_paged_backend<Backend>) {
      if (options_.max_chunk_pages < 2) return;  // page by page: a move costs what a new page costs
      if (options_.chunks_per_block != 0)
        chunk_pages_ = std::max(chunk_pages_, pages / options_.chunks_per_block);
      // pages_between_moves 0 asks for every page backed to move one: no ration to share out.
      if (options_.moves_per_block != 0 && options_.pages_between_moves != 0)
        pages_between_moves_ =
            std::max<std::uint64_t>(pages_between_moves_, pages / options_.moves_per_block);
    }
  }

  /// The pages held may reach the high tide of touched pages plus the slack before idle pages move;
  /// with max_held_over_live, that multiple of the high tide of live bytes.
  std::size_t budget_pages() const noexcept {
    if (options_.max_held_over_live > 0)
      return saturated(static_cast<double>(peak_live_) * options_.max_held_over_live) >> page_shift_;
    return saturated(static_cast<double>(peak_touched_) * (1.0 + options_.page_slack));
  }
  /// x (finite, >= 0: check_options) as a size, SIZE_MAX where it is past it (a slack or bound too
  /// large to reach).
  static std::size_t saturated(double x) noexcept {
    constexpr double past = static_cast<double>(SIZE_MAX);  // rounds up: 2^64, the first double past it
    return x >= past ? SIZE_MAX : static_cast<std::size_t>(x);
  }
  bool over_budget() const noexcept { return pages_.mapped_count() >= budget_pages(); }
  bool move_is_due() const noexcept {
    return options_.max_held_over_live > 0 || backed_since_move_ >= pages_between_moves_;
  }

  /// A chunked backend maps the page without access (back_unmapped_pages grants it with the block's
  /// other new pages); a plain paged one grants it here.
  bool map_new_page(std::size_t p) {
    if constexpr (chunked_paged_backend<Backend>) {
      if (!backend_.map_chunks(page_address(p), 1, 1)) return false;
    } else {
      if (!backend_.map_page(page_address(p))) return false;
    }
    note_mapped(p, p);
    return true;
  }

  /// Pages [first, last] were just mapped as one chunk, without access when the backend is chunked.
  void note_mapped(std::size_t first, std::size_t last) noexcept {
    if constexpr (chunked_paged_backend<Backend>) {
      ungranted_first_ = std::min(ungranted_first_, first);  // none is the largest index
      ungranted_last_ = std::max(ungranted_last_, last);
    }
    pages_.set_mapped(first, last, true);
    // counted in the stats once the block is placed (back_pages)
    for (std::size_t q = first; q <= last; ++q) pages_.set_fresh(q);
    pages_.set_chunk(first, last);
    reserved_ += (last - first + 1) << page_shift_;
  }

  /// Unmaps the chunk that starts at page `first` and counts its memory as released, unless an alias
  /// of it still maps that memory (a remapped chunk whose old range waits: remapped_); then
  /// retire_remapped counts it when the alias is unmapped.
  void release_chunk(std::size_t first) noexcept {
    const std::size_t bytes = unmap_chunk(first) << page_shift_;
    if (!follow_remapped(first, page_table::none)) count_release(bytes);
  }
  void count_release(std::size_t bytes) noexcept {
    reserved_ -= bytes;
    stats_.on_release(bytes);
  }

  /// Unmaps the chunk that starts at page `first`; returns its pages. The caller counts the bytes.
  std::size_t unmap_chunk(std::size_t first) noexcept {
    const std::size_t last = pages_.chunk_last(first), n = last - first + 1;
    if (keep_aliases() && alias_id_[first] != 0) {
      unmap_aliased_chunk(alias_id_[first]);
    } else if constexpr (chunked_paged_backend<Backend>) {
      if (n > 1) backend_.unmap_pages(page_address(first), n);
      else backend_.unmap_page(page_address(first));
    } else {
      backend_.unmap_page(page_address(first));
    }
    pages_.set_mapped(first, last, false);
    pages_.clear_chunk(first, last);
    return n;
  }

  /// Where a move is due and the highest idle page (`from`) lies in an idle chunk of several pages
  /// that cannot move here (the backend moves pages alone only, or the chunk does not fit: chunk_fits):
  /// gives that chunk back whole instead (the memory held drops by the chunk) and
  /// returns true, so that new pages are mapped where they are needed. false when it is alone (it can
  /// move).
  bool release_idle_chunk(std::size_t from) noexcept {
    const std::size_t chunk = pages_.chunk_first(from);
    if (pages_.chunk_last(chunk) == chunk) return false;
    release_chunk(chunk);
    backed_since_move_ = 0;
    return true;
  }

  /// Backs page p of the block [first, last] with the highest idle page: its chunk moves here whole
  /// where it fits (move_chunk_to), else a page mapped alone moves here, and an idle chunk of several
  /// pages is given back whole and p mapped anew (release_idle_chunk).
  bool move_idle_page_to(std::size_t p, std::size_t first, std::size_t last) {
    bool holding = false;
    const std::size_t from = highest_idle_page(holding);
    if (from == page_table::none) return holding && remap_pending_chunk_to(p, first, last);
    if constexpr (chunked_paged_backend<Backend>) {
      const std::size_t chunk = pages_.chunk_first(from), n = pages_.chunk_last(chunk) - chunk + 1;
      if (chunk_fits(p, n, first, last))
        return keep_aliases() ? alias_chunk_to(chunk, n, p) : move_chunk_to(chunk, n, p);
    }
    if (release_idle_chunk(from)) return map_new_page(p);
    if (keep_aliases()) return alias_chunk_to(from, 1, p);
    if (!backend_.move_page(page_address(from), page_address(p))) return false;
    follow_remapped(from, p);
    pages_.set_mapped(from, false);
    pages_.clear_chunk(from, from);
    pages_.set_mapped(p, true);
    pages_.set_chunk(p, p);
    ++page_moves_;
    backed_since_move_ = 0;
    return true;
  }

  /// Whether an idle chunk of n pages may move onto page p and the n - 1 after it, in the block
  /// [first, last], all unmapped: a page mapped alone anywhere, as move_page would; a chunk of several
  /// pages onto the block's pages, its edge pages too where edge_pages_in_chunks lets a neighbour on
  /// them hold a chunk (as map_run maps them), else strictly inside the block.
  bool chunk_fits(std::size_t p, std::size_t n, std::size_t first, std::size_t last) const noexcept {
    if (n == 1) return true;
    const bool inside = options_.edge_pages_in_chunks ? n <= last - p + 1 : p > first && n <= last - p;
    return inside && pages_.unmapped_run_end(p, p + n - 1) == p + n - 1;
  }

  /// Moves the idle chunk of n pages at `from` onto pages [to, to + n - 1]: one unmap and one map
  /// however many pages, where giving the chunk back and mapping new pages costs two calls per chunk
  /// of each (bench/RESULTS.md, "Idle chunks move whole"). Access comes with the block's new pages
  /// (back_unmapped_pages). The ration counts the move as the n pages it backs (the first one, as
  /// every move's, excepted): a move costs the same two calls whatever its pages.
  bool move_chunk_to(std::size_t from, std::size_t n, std::size_t to) {
    if (!backend_.move_pages(page_address(from), page_address(to), n)) return false;
    chunk_moved(from, n, to);
    return true;
  }

  /// Records that the chunk of n pages at `from` now backs pages [to, to + n - 1] (move_chunk_to,
  /// remap_pending_chunk_to): `from`'s pages unmapped; the new ones mapped, moved in, and granted
  /// access with the block's new pages (back_unmapped_pages); the move counted as its n pages, in
  /// page_moves and in the ration.
  void chunk_moved(std::size_t from, std::size_t n, std::size_t to) noexcept {
    follow_remapped(from, to);
    move_chunk_marks(from, n, to);
    for (std::size_t q = to; q < to + n; ++q) pages_.set_moved(q);
    ungranted_first_ = std::min(ungranted_first_, to);
    ungranted_last_ = std::max(ungranted_last_, to + n - 1);
    page_moves_ += n;
    backed_since_move_ = n - 1;
  }

  /// The page table's marks of the chunk of n pages mapped at `from` (mapped, chunk bounds) move to
  /// pages [to, to + n - 1].
  void move_chunk_marks(std::size_t from, std::size_t n, std::size_t to) noexcept {
    pages_.set_mapped(from, from + n - 1, false);
    pages_.clear_chunk(from, from + n - 1);
    pages_.set_mapped(to, to + n - 1, true);
    pages_.set_chunk(to, to + n - 1);
  }

  /// Stream order, remap_pending_pages: no page is idle, so a chunk that a free block pending on the
  /// requesting stream lies on (wholly, strictly above the block's first page) backs page p of the
  /// block [first, last] instead, mapped there as well as where it is (remap_pages). Work the stream
  /// queued before that free may still use the chunk at its old address; work it queues from now on
  /// comes after, so the new block may use it at once. The old range is carved out of the free block as
  /// a block that is neither free nor live (a ghost, in no free list and not indexed), so that no
  /// request is placed on the alias, until the free's epoch has completed: retire_remapped then unmaps
  /// the alias and frees the ghost. Only for a block of at least remap_min_pages pages: remapping for
  /// smaller ones took pages the stream reused in place a few requests later, back and forth
  /// (bench/RESULTS.md, "Remapping pages under pending frees"). The chunk chosen is the highest that
  /// fits (chunk_fits), of a free block at least remap_min_age epochs old and not on the block's own
  /// pages. A walk over the arena's blocks and the mapped pages of those pending on the stream, on the
  /// page-move slow path only.
  bool remap_pending_chunk_to(std::size_t p, std::size_t first, std::size_t last) {
    if constexpr (remapping) {
      const tag* const on = requesting_;
      if (!options_.remap_pending_pages || capturing_ || on == nullptr ||
          last - first + 1 < options_.remap_min_pages)
        return false;
      const std::uintptr_t lo = page_address(first), hi = page_address(last + 1);
      block* from_block = nullptr;
      std::size_t chunk = 0, n = 0;
      for (block* region : {large_first_, small_first_})
        for (block* b = region; b; b = b->next_adjacent) {
          if (!b->is_free() || b->owner != on || ready(b) || on->open_seq - b->seq < options_.remap_min_age)
            continue;
          if (b->addr < hi && b->addr + b->size > lo) continue;  // the block being placed, or on its pages
          const std::size_t low = first_page(b->addr) + 1;  // the ghost never starts at the block's record
          const std::size_t end = (b->addr + b->size - arena_base_) >> page_shift_;  // past the whole pages
          for (std::size_t q = end; q-- > low;) {
            if (!pages_.mapped(q)) continue;
            const std::size_t c = pages_.chunk_first(q), l = pages_.chunk_last(q);
            if (c < low) break;
            if (l < end && (!from_block || c > chunk) && chunk_fits(p, l - c + 1, first, last) &&
                alone_on(p, l - c + 1)) {
              from_block = b, chunk = c, n = l - c + 1;
              break;  // the block's highest that fits
            }
            q = c;
          }
        }
      if (!from_block) return false;
      // All the host memory first, before the chunk is remapped: room for the entry in remapped_ (its
      // capacity doubled when full, as push_back would), the two records carve_ghost takes and the two
      // allocate() reserved for its own split (carve_ghost may take those).
      // Nothing may throw once a chunk is remapped: undo_back_pages would give the chunks remapped for
      // this block back at their new addresses (their memory going with their aliases), and a call that
      // failed for the host heap would change what the backend maps (test: "remap: a host heap failing
      // while a block's chunks are remapped changes no figure"). Without the host memory the chunk is
      // not remapped: back_page maps p anew, as with remap_pending_pages off, and the call goes on.
      try {
        if (remapped_.size() == remapped_.capacity())
          remapped_.reserve(std::max<std::size_t>(1, 2 * remapped_.size()));
        heap_.reserve_records(4);
      } catch (const std::bad_alloc&) {
        return false;
      }
      if (!backend_.remap_pages(page_address(chunk), page_address(p), n)) return false;
      const std::uint64_t group = remap_group(chunk);
      chunk_moved(chunk, n, p);
      remapped_.push_back(
          {carve_ghost(from_block, page_address(chunk), n << page_shift_), chunk, n, p, group});
      return true;
    } else {
      (void)p, (void)first, (void)last;
      return false;
    }
  }

  /// Whether pages [p, p + n) are pages no block but the one being backed may lie on: not an edge page
  /// it shares with a neighbour (it starts or ends off a page boundary). A remapped chunk's memory may
  /// still be used at its old address by work its stream queued before the free; only work queued
  /// after it, the new block's, may use it, and a neighbour on a shared edge page could be another
  /// stream's at once (a block placed there needs no page backed).
  bool alone_on(std::size_t p, std::size_t n) const noexcept {
    return p >= alone_first_ && p + n <= alone_end_;
  }

  /// Cuts [at, at + bytes) out of free block f (at > f->addr) as a ghost: a block that is not free,
  /// in no free list and not indexed, pending where f was (owner and epoch); what lies below and
  /// above it stays free as f was. Takes two records (reserved by the caller).
  block* carve_ghost(block* f, std::uintptr_t at, std::size_t bytes) noexcept {
    heap_.remove(f);
    heap_.split(f, at - f->addr);  // f keeps what lies below; the rest is filed free
    block* const ghost = f->next_adjacent;
    heap_.push_free(f);
    heap_.take(ghost);  // out of its list and not free; its epoch (seq) stays
    heap_.split(ghost, bytes);
    return ghost;
  }

  /// The group of a chunk about to be remapped from page `chunk`: that of the aliases it has already
  /// (it was remapped there, and its old ranges still wait), else a new one.
  std::uint64_t remap_group(std::size_t chunk) noexcept {
    for (const remapped_chunk& r : remapped_)
      if (r.at == chunk) return r.group;
    return ++remap_groups_;
  }

  /// The chunk mapped at page `from` now is mapped at `to` instead (none: unmapped there): its
  /// remapped_ entries follow it. Returns whether it has any (an alias of it waits).
  bool follow_remapped(std::size_t from, std::size_t to) noexcept {
    bool aliased = false;
    if constexpr (remapping) {
      for (remapped_chunk& r : remapped_)
        if (r.at == from) r.at = to, aliased = true;
    } else {
      (void)from, (void)to;
    }
    return aliased;
  }

  /// Unmaps the old range of each remapped chunk whose free's epoch has completed and files its ghost
  /// as a free block of no stream (its pages unmapped), merged where it may be. A chunk given back at
  /// its new address already (release_chunk) is counted as released with its last alias.
  void retire_remapped() noexcept {
    if constexpr (remapping) {
      for (std::size_t i = 0; i < remapped_.size();) {
        const remapped_chunk r = remapped_[i];
        if (!ready(r.ghost)) {
          ++i;
          continue;
        }
        backend_.unmap_alias(page_address(r.first), r.pages);
        r.ghost->owner = nullptr;
        r.ghost->seq = 0;
        heap_.merge_and_push(r.ghost);
        heap_.note_unmerged();  // its neighbours that are ready merge in the walk that follows
        remapped_[i] = remapped_.back();
        remapped_.pop_back();
        if (r.at == page_table::none &&
            !std::any_of(remapped_.begin(), remapped_.end(),
                         [&](const remapped_chunk& o) { return o.group == r.group; }))
          count_release(r.pages << page_shift_);
      }
    }
  }

  // ---- kept aliases (caching_options::keep_page_aliases) -----------------------------------------
  // A chunk moved to a new address stays mapped at the old one too. The page table marks only one
  // mapping of each chunk mapped, its active one; blocks lie only on active mappings, since a page
  // turns touched only in allocate, where first_unmapped sends every page that is not marked mapped to
  // back_unmapped_pages. There take_aliases makes an inactive mapping under the block active when its
  // chunk is idle at its active address, with no driver call, or unmaps it. The fast path is the same.

  // A chunk mapped at more than one address.
  struct aliased_chunk {
    std::size_t pages = 0;
    std::size_t active = 0;                // first page of the mapping the page table marks mapped
    std::size_t owner = page_table::none;  // first page of the backend's own mapping; none once unmapped
    std::vector<std::size_t> inactive;     // first pages of its other mappings
  };

  bool keep_aliases() const noexcept {
    if constexpr (aliasing) return options_.keep_page_aliases;
    else return false;
  }

  /// The inactive mappings on the block's pages [first, last] from p (its first unmapped page) on:
  /// each is made its chunk's active one where the chunk is idle at its active address (no live block,
  /// no free pending on the GPU, none of its pages in the block), else unmapped. Returns the block's
  /// first unmapped page after that, or none.
  std::size_t take_aliases(std::size_t first, std::size_t last, std::size_t p) noexcept {
    bool looked = false, holding = false;
    for (std::size_t q = p; q <= last; ++q) {
      if (pages_.mapped(q) || alias_id_[q] == 0) continue;
      if (!looked) holding = hold_pending_pages(), looked = true;
      aliased_chunk& c = aliased_[alias_id_[q] - 1];
      const auto at = std::find_if(c.inactive.begin(), c.inactive.end(),
                                   [&](std::size_t a) { return a <= q && q < a + c.pages; });
      const std::size_t a = *at;
      if (chunk_idle(c.active, c.pages)) {
        move_chunk_marks(c.active, c.pages, a);
        *at = std::exchange(c.active, a);
        ++alias_activations_;
      } else {
        unmap_mapping(c, a);
        c.inactive.erase(at);
        ++alias_unmaps_;
        if (c.inactive.empty() && c.owner == c.active) forget_aliases(alias_id_[c.active]);
      }
      q = a + c.pages - 1;
    }
    if (holding) release_pending_pages();
    return pages_.first_unmapped(first, last);
  }

  /// Whether no page of the chunk [first, first + n) is touched (live blocks, the block being backed,
  /// frees held as pending).
  bool chunk_idle(std::size_t first, std::size_t n) const noexcept {
    return !pages_.touched_any(first, first + n - 1);
  }

  /// Maps the idle chunk of n pages at `from` at pages [to, to + n - 1] too (one driver call, access
  /// with the block's other new pages), keeps `from` as an inactive alias, and counts it as a move
  /// (chunk_moved). Throws std::bad_alloc before any driver call when the host heap fails.
  bool alias_chunk_to(std::size_t from, std::size_t n, std::size_t to) {
    if constexpr (!aliasing) {
      return (void)from, (void)n, (void)to, false;
    } else {
      std::uint32_t id = alias_id_[from];
      if (id == 0) {  // the host memory first: a new record, and room for the alias in it
        if (free_alias_ids_.empty()) {
          aliased_.emplace_back();
          free_alias_ids_.reserve(aliased_.size());
          free_alias_ids_.push_back(static_cast<std::uint32_t>(aliased_.size()));
        }
        aliased_[free_alias_ids_.back() - 1].inactive.reserve(1);
      } else {
        aliased_chunk& c = aliased_[id - 1];
        c.inactive.reserve(c.inactive.size() + 1);
      }
      if (!backend_.alias_pages(page_address(from), page_address(to), n)) return false;
      if (id == 0) {
        id = free_alias_ids_.back();
        free_alias_ids_.pop_back();
        aliased_chunk& c = aliased_[id - 1];
        c.pages = n;
        c.owner = from;
        c.inactive.clear();
        std::fill_n(alias_id_.begin() + static_cast<std::ptrdiff_t>(from), n, id);
      }
      aliased_chunk& c = aliased_[id - 1];
      c.inactive.push_back(from);  // reserved above
      c.active = to;
      std::fill_n(alias_id_.begin() + static_cast<std::ptrdiff_t>(to), n, id);
      chunk_moved(from, n, to);
      return true;
    }
  }

  /// Unmaps one mapping of chunk c, at page a, in the backend: its own (unmap_pages; the memory stays
  /// while an alias maps it) or an alias.
  void unmap_mapping(aliased_chunk& c, std::size_t a) noexcept {
    if constexpr (aliasing) {
      if (a == c.owner) {
        backend_.unmap_pages(page_address(a), c.pages);
        c.owner = page_table::none;
      } else {
        backend_.unmap_alias(page_address(a), c.pages);
      }
      std::fill_n(alias_id_.begin() + static_cast<std::ptrdiff_t>(a), c.pages, 0);
    } else {
      (void)c, (void)a;
    }
  }

  /// Unmaps every mapping of aliased chunk `id` in the backend (its memory goes back with the last)
  /// and forgets it; the caller updates the page table.
  void unmap_aliased_chunk(std::uint32_t id) noexcept {
    aliased_chunk& c = aliased_[id - 1];
    for (const std::size_t a : c.inactive) unmap_mapping(c, a);
    c.inactive.clear();
    unmap_mapping(c, c.active);
    free_alias_ids_.push_back(id);  // room for every id was reserved when it was made
  }

  /// Chunk `id` has one mapping left, its own: a plain chunk again.
  void forget_aliases(std::uint32_t id) noexcept {
    aliased_chunk& c = aliased_[id - 1];
    std::fill_n(alias_id_.begin() + static_cast<std::ptrdiff_t>(c.active), c.pages, 0);
    free_alias_ids_.push_back(id);
  }

  /// Paged: while idle pages are picked to be moved or given back, the pages under free blocks that
  /// are not ready (GPU work on some stream may still use them) count as touched. A walk over the
  /// arena's blocks, on those slow paths only and only while frees are pending; no block may be
  /// placed or freed before release_pending_pages().
  bool hold_pending_pages() noexcept {
    if constexpr (!streamed) return false;
    else {
      if (streams_.settled() || large_first_ == nullptr) return false;
      for (const block* first : {large_first_, small_first_})
        for (const block* b = first; b; b = b->next_adjacent)
          if (b->is_free() && !ready(b)) pages_.hold(first_page(b->addr), last_page(b->addr, b->size));
      return true;
    }
  }
  void release_pending_pages() noexcept {
    if constexpr (streamed)
      for (const block* first : {large_first_, small_first_})
        for (const block* b = first; b; b = b->next_adjacent)
          if (b->is_free() && !ready(b)) pages_.unhold(first_page(b->addr), last_page(b->addr, b->size));
  }

  Backend backend_;
  caching_options options_;
  Heap& heap_;
  Stats& stats_;
  Streams& streams_;
  std::size_t reserved_ = 0;  // bytes held from the backend
  std::uintptr_t arena_base_ = 0;
  std::atomic<std::uintptr_t> arena_begin_{UINTPTR_MAX}, arena_end_{0};  // for in_arena(), lock-free
  unsigned page_shift_ = 0;
  // The first block of each region: the lowest block of a run never merges into another, so these
  // records stay the same for the arena's lifetime. The regions' blocks are not linked to each other.
  block* large_first_ = nullptr;
  block* small_first_ = nullptr;  // null: no small region
  std::size_t small_below_ = 0;   // requests of at most this many bytes go to the small region (0: none)
  std::size_t fill_mapped_below_ = 0;  // small_below_ where mapped_fit may serve them, else 0
  std::size_t fill_mapped_above_ = 0;  // those of at most this many bytes never
                                       // into the top (fill_mapped_above)
  basic_page_table<streamed> pages_;
  std::size_t touched_ = 0;       // pages at least one live block touches
  std::size_t peak_touched_ = 0;  // high tide of touched_
  bool retried_ = false;          // back_unmapped_pages: this request's OOM retry is counted already
  std::size_t peak_live_ = 0;     // high tide of live bytes (block in progress
                                  // included) seen where pages are backed
  std::uint64_t page_moves_ = 0;
  // Chunks mapped at a second address whose old range (a ghost block) waits for its free's epoch.
  struct remapped_chunk {
    block* ghost;
    std::size_t first, pages;  // the old range, the alias
    std::size_t at;            // the chunk's first page now (follow_remapped); none: unmapped there
    std::uint64_t group;       // the chunk's: one physical allocation, however many aliases it has
  };
  std::vector<remapped_chunk> remapped_;
  std::uint64_t remap_groups_ = 0;
  // keep_page_aliases: the chunks mapped at more than one address, by id - 1 (ids of records not in
  // use wait in free_alias_ids_), and per page the id of the chunk one of whose mappings covers it.
  std::vector<aliased_chunk> aliased_;
  std::vector<std::uint32_t> free_alias_ids_;
  std::vector<std::uint32_t> alias_id_;
  std::uint64_t alias_activations_ = 0, alias_unmaps_ = 0;
  const tag* requesting_ = nullptr;  // the stream whose request is being backed (note_requesting)
  bool capturing_ = false;  // the request being served is for a capturing stream: no host waits
  std::uint64_t backed_since_move_ = 0;  // pages backed (mapped or moved) since the last move
  // Chunked backends: the first and last page mapped without access while a block is backed.
  std::size_t ungranted_first_ = page_table::none, ungranted_last_ = 0;
  // The block being backed: its pages from alone_first_ to before alone_end_ are its alone, without an
  // edge page a neighbour may share (alone_on).
  std::size_t alone_first_ = 0, alone_end_ = 0;
  // Chunks and the ration of moves for the block being backed (size_for_block).
  std::size_t chunk_pages_ = 1;
  std::uint64_t pages_between_moves_ = 0;
  // chunk_for_room: the room the backend told last (SIZE_MAX: no bound), reserved_ then, and the runs
  // of pages mapped since (the first run asks).
  std::size_t room_told_ = SIZE_MAX, held_when_told_ = 0;
  unsigned runs_since_told_ = room_recheck_runs;
};

static_assert(
    block_arena<paged_arena<simulated_paged_backend, block_heap<segregated_fit_buckets, false, true>,
                            basic_stats, no_stream_layer<host_ordering>>>);

}  // namespace stash::detail
