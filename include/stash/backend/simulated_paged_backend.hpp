#pragma once
// A paged backend over a fake address space: reserve() takes a window of it of its own, as large as
// asked (no other simulated backend's addresses fall in it), and map/move/unmap only count pages.
// Memory figures do not depend on the backend, so the paged allocator's fragmentation on real traces
// is measured here, without a GPU, exactly as it will be on one. It checks its caller: mapping a
// mapped page or unmapping an unmapped one is counted as a misuse, and so is unmapping or moving a
// page of a chunk (map_pages) other than whole. It counts the driver calls cuda_vmm_backend makes
// for the same work (driver_calls()), so that the cost of growing can be compared without a GPU.
// mapped_bytes() is the physical memory a driver would hold: a chunk's memory is held while any
// mapping of it remains (its own, or an alias remap_pages left), and counted once.
// Peers are modelled as cuda_vmm_backend grants them: a set of other devices (ids below 64) that
// every grant covers, and grant_peer to add one to the pages mapped already and to come.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "stash/backend/backend.hpp"
#include "stash/detail/fake_address_space.hpp"
#include "stash/error.hpp"

namespace stash {

class simulated_paged_backend {
 public:
  static constexpr memory_kind kind = memory_kind::simulated;
  static constexpr std::size_t unlimited = SIZE_MAX;

  explicit simulated_paged_backend(std::size_t capacity_bytes = unlimited,
                                   std::size_t page_bytes = std::size_t{2} << 20)
      : capacity_(capacity_bytes), page_(page_bytes) {}

  std::size_t page_size() const noexcept { return page_; }
  /// The capacity and half as much again when there is one (as cuda_vmm_backend reserves for the device's
  /// memory).
  std::size_t default_reserve_bytes() const noexcept {
    return capacity_ == unlimited ? std::size_t{1} << 40 : capacity_ + capacity_ / 2;
  }
  /// Throws stash::error when called twice or when the fake address range has no room for `bytes`.
  std::uintptr_t reserve(std::size_t bytes) {
    if (base_ != 0) throw error("stash: simulated_paged_backend::reserve called twice");
    std::vector<std::uint8_t> pages(bytes / page_, 0);
    const std::uintptr_t base = detail::take_fake_address_window(bytes);
    if (base == 0)
      throw error("stash: simulated_paged_backend: no room for a reservation of " + std::to_string(bytes) +
                  " bytes in the fake address range");
    std::vector<std::uint32_t> chunks(bytes / page_, 0);
    std::vector<std::uint8_t> access(bytes / page_, 0);
    std::vector<std::uint64_t> peer_access(bytes / page_, 0);
    std::vector<std::uint32_t> alias_pages(bytes / page_, 0);
    std::vector<std::uint32_t> allocation(bytes / page_, 0);
    std::vector<allocation_record> allocations;
    allocations.reserve(bytes / page_);  // each holds a page at least: mapping never asks the heap
    std::vector<std::uint32_t> unused_allocations;
    unused_allocations.reserve(bytes / page_);
    mapped_ = std::move(pages);
    allocations_ = std::move(allocations);
    unused_allocations_ = std::move(unused_allocations);
    allocation_ = std::move(allocation);
    alias_pages_ = std::move(alias_pages);
    access_ = std::move(access);
    peer_access_ = std::move(peer_access);
    chunk_pages_ = std::move(chunks);
    base_ = base;
    return base_;
  }
  /// cuMemCreate, cuMemMap, cuMemSetAccess.
  bool map_page(std::uintptr_t a) noexcept { return map_pages(a, 1); }
  /// One chunk: cuMemCreate, cuMemMap and cuMemSetAccess, whatever n.
  bool map_pages(std::uintptr_t a, std::size_t n) noexcept { return map_chunks(a, n, n) && set_access(a, n); }
  /// Chunks of `chunk` pages, as cuda_vmm_backend makes them: cuMemCreate and cuMemMap per chunk in
  /// address order. The first cuMemCreate the device refuses ends it, and the chunks made before it
  /// are unmapped and released (cuMemUnmap, cuMemRelease). No access yet (accessible() says false).
  bool map_chunks(std::uintptr_t a, std::size_t n, std::size_t chunk) noexcept {
    if (chunk == 0 || chunk > n) chunk = n;
    const std::size_t room =
        mapped_bytes_ > capacity_ ? 0 : (capacity_ - mapped_bytes_) / page_;  // capacity may drop below use
    std::size_t chunks = 0;
    for (std::size_t done = 0; done < n; done += chunk, ++chunks) {
      ++map_calls_;
      ++driver_calls_;  // cuMemCreate, which fails when the device is full
      if (done > room || std::min(chunk, n - done) > room - done) {
        driver_calls_ += 2 * chunks;  // the chunks made so far go back
        return false;
      }
      ++driver_calls_;  // cuMemMap
    }
    for (std::size_t done = 0; done < n; done += chunk) {
      const std::size_t pages = std::min(chunk, n - done);
      std::size_t bytes = 0;
      for (std::size_t i = done; i < done + pages; ++i)
        if (mark(a + i * page_, 1)) bytes += page_;
      mapped_bytes_ += bytes;
      const std::uintptr_t at = a + done * page_;
      if (in_range(at)) {
        chunk_pages_[index(at)] = static_cast<std::uint32_t>(pages);
        allocation_[index(at)] = new_allocation(bytes);
      }
    }
    peak_mapped_bytes_ = mapped_bytes_ > peak_mapped_bytes_ ? mapped_bytes_ : peak_mapped_bytes_;
    return true;
  }
  /// cuMemSetAccess, once for the n pages from a; a misuse when one of them is not mapped.
  bool set_access(std::uintptr_t a, std::size_t n) noexcept {
    ++driver_calls_;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uintptr_t at = a + i * page_;
      if (!in_range(at) || !mapped_[index(at)]) {
        ++misuses_;
        continue;
      }
      access_[index(at)] = 1;
      peer_access_[index(at)] = granted_mask_;
    }
    return true;
  }
  /// cuMemUnmap, cuMemMap, cuMemSetAccess. Pages of a chunk of several never move alone.
  bool move_page(std::uintptr_t from, std::uintptr_t to) noexcept {
    ++move_calls_;
    driver_calls_ += 3;
    if (!whole_chunk(from, 1)) return false;
    ++moved_pages_;
    mark(from, 0);
    mark(to, 1);
    chunk_pages_[index(from)] = 0;
    access_[index(from)] = 0;
    peer_access_[index(from)] = 0;
    const std::uint32_t moved = std::exchange(allocation_[index(from)], 0);
    if (in_range(to)) {
      chunk_pages_[index(to)] = 1, access_[index(to)] = 1, peer_access_[index(to)] = granted_mask_;
      allocation_[index(to)] = moved;
    }
    return true;
  }
  /// cuMemUnmap, cuMemMap: the chunk of n pages at `from` backs the n pages from `to` on, without
  /// access until set_access. A misuse (and false, nothing moved) when `from` is not a whole chunk of
  /// n pages or a page from `to` on is mapped or outside the range.
  bool move_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n) noexcept {
    ++chunk_moves_;
    driver_calls_ += 2;
    if (!chunk_may_map_at(from, to, n)) return false;
    for (std::size_t i = 0; i < n; ++i) {
      mark(from + i * page_, 0);
      mark(to + i * page_, 1);
      access_[index(from) + i] = 0, peer_access_[index(from) + i] = 0;
      access_[index(to) + i] = 0, peer_access_[index(to) + i] = 0;
    }
    chunk_pages_[index(from)] = 0;
    chunk_pages_[index(to)] = static_cast<std::uint32_t>(n);
    allocation_[index(to)] = std::exchange(allocation_[index(from)], 0);
    moved_pages_ += n;
    return true;
  }
  /// cuMemMap of the chunk's handle at `to` (the allocation keeps its handle): the chunk of n pages
  /// at `from` backs the n pages from `to` on too, without access there until set_access, and its
  /// memory is counted once, held until both mappings are unmapped. The pages at `from` become an
  /// alias, still accessible, until unmap_alias. A misuse (and false, nothing changed) when `from` is
  /// not a whole chunk of n pages or a page from `to` on is mapped or outside the range. Throws
  /// stash::cuda_error, nothing changed, on the call throw_on_remap chose.
  bool remap_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n) {
    ++remap_calls_;
    ++driver_calls_;
    if (remap_calls_ == throwing_remap_)
      throw cuda_error(2, "simulated_paged_backend: injected failure on remap_pages call " +
                              std::to_string(remap_calls_));
    if (!chunk_may_map_at(from, to, n)) return false;
    for (std::size_t i = 0; i < n; ++i) {
      mapped_[index(from) + i] = alias;
      mapped_[index(to) + i] = 1;
      access_[index(to) + i] = 0, peer_access_[index(to) + i] = 0;
    }
    chunk_pages_[index(to)] = static_cast<std::uint32_t>(n);
    alias_pages_[index(from)] = static_cast<std::uint32_t>(n);
    chunk_pages_[index(from)] = 0;
    allocation_[index(to)] = allocation_[index(from)];  // the alias keeps it too
    if (allocation_[index(to)] != 0) ++allocations_[allocation_[index(to)] - 1].mappings;
    aliased_pages_ += n;
    return true;
  }
  /// cuMemMap of the allocation mapped at `from` (a whole chunk of n pages, or a whole alias of one)
  /// at the n pages from `to` on too, as an alias, without access there until set_access; its memory is
  /// counted once, held until its last mapping is unmapped. A misuse (and false, nothing changed) when
  /// `from` is neither or a page from `to` on is mapped or outside the range. On the call
  /// fail_alias_call chose, false (out of memory) or stash::cuda_error, nothing changed.
  bool alias_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n) {
    ++alias_calls_;
    driver_calls_ += 3;  // cuMemRetainAllocationHandle, cuMemMap and cuMemRelease, as cuda_vmm_backend makes
    if (alias_calls_ == failing_alias_) {
      if (alias_failure_throws_)
        throw cuda_error(2, "simulated_paged_backend: injected failure on alias_pages call " +
                                std::to_string(alias_calls_));
      return false;
    }
    const bool whole_alias = in_range(from) && alias_pages_[index(from)] == n;
    if (!(whole_alias ? unmapped_run(to, n) : chunk_may_map_at(from, to, n))) return false;
    for (std::size_t i = 0; i < n; ++i) {
      mapped_[index(to) + i] = alias;
      access_[index(to) + i] = 0, peer_access_[index(to) + i] = 0;
    }
    alias_pages_[index(to)] = static_cast<std::uint32_t>(n);
    allocation_[index(to)] = allocation_[index(from)];
    if (allocation_[index(to)] != 0) ++allocations_[allocation_[index(to)] - 1].mappings;
    aliased_pages_ += n;
    return true;
  }
  /// alias_pages calls (three driver calls each), failed ones included.
  std::size_t alias_calls() const noexcept { return alias_calls_; }
  /// The n-th alias_pages call from now on (1: the next) fails: out of memory (false), or with `throws`
  /// a stash::cuda_error, as cuda_vmm_backend's does when the driver fails otherwise; 0: none does.
  void fail_alias_call(std::size_t n, bool throws) noexcept {
    failing_alias_ = n == 0 ? 0 : alias_calls_ + n;
    alias_failure_throws_ = throws;
  }
  /// The physical page mapped at the page of address `a`, whichever mapping of its allocation that is:
  /// the allocation's id and the page's index in it ({0, 0}: nothing mapped there). Two addresses with
  /// the same answer share memory.
  std::pair<std::uint32_t, std::size_t> physical_page(std::uintptr_t a) const noexcept {
    if (!in_range(a) || !mapped_[index(a)]) return {0, 0};
    const std::size_t first = mapping_first(index(a));
    return {allocation_[first], index(a) - first};
  }

  /// cuMemUnmap of the alias remap_pages left at `a`: its memory goes back if no other mapping of it
  /// remains (the chunk was unmapped at its new address already). A misuse when `a` is not such an
  /// alias of n pages.
  void unmap_alias(std::uintptr_t a, std::size_t n) noexcept {
    ++driver_calls_;
    if (!in_range(a) || alias_pages_[index(a)] != n) {
      ++misuses_;
      return;
    }
    alias_pages_[index(a)] = 0;
    for (std::size_t i = 0; i < n; ++i) {
      mapped_[index(a) + i] = 0;
      access_[index(a) + i] = 0, peer_access_[index(a) + i] = 0;
    }
    drop_mapping(std::exchange(allocation_[index(a)], 0));
    aliased_pages_ -= n;
  }
  /// Whether the page at a is an alias remap_pages left (mapped at a, its memory counted once with
  /// the chunk's other mapping).
  bool aliased(std::uintptr_t a) const noexcept { return in_range(a) && mapped_[index(a)] == alias; }
  /// Pages mapped as aliases now.
  std::size_t aliased_pages() const noexcept { return aliased_pages_; }
  /// remap_pages calls (one driver call each), the one that threw included.
  std::size_t remap_calls() const noexcept { return remap_calls_; }
  /// The n-th remap_pages call from now on (1: the next) throws stash::cuda_error, as
  /// cuda_vmm_backend's does when the driver fails for a reason other than memory; 0: none does.
  void throw_on_remap(std::size_t n) noexcept { throwing_remap_ = n == 0 ? 0 : remap_calls_ + n; }

  /// cuMemUnmap, cuMemRelease: the memory goes back, or when an alias of it remains (remap_pages),
  /// once that is unmapped too.
  void unmap_page(std::uintptr_t a) noexcept { unmap_pages(a, 1); }
  void unmap_pages(std::uintptr_t a, std::size_t n) noexcept {
    ++unmap_calls_;
    driver_calls_ += 2;
    if (!whole_chunk(a, n)) return;
    chunk_pages_[index(a)] = 0;
    for (std::size_t i = 0; i < n; ++i) {
      mark(a + i * page_, 0);
      access_[index(a) + i] = 0;
      peer_access_[index(a) + i] = 0;
    }
    drop_mapping(std::exchange(allocation_[index(a)], 0));
  }

  /// As cuda_vmm_backend::grant_peer: one cuMemSetAccess per run of mapped pages, and every page
  /// mapped or moved from then on is granted to `peer` too. The own device or a peer granted already
  /// changes nothing. invalid_device for an id outside [0, 64) or one set_reachable_peers excluded;
  /// nothing changes then.
  void grant_peer(int peer) {
    if (peer < 0 || peer >= 64) throw invalid_device(peer, 64);
    const std::uint64_t bit = std::uint64_t{1} << peer;
    if (peer == device_ || (granted_mask_ & bit) != 0) return;
    if ((reachable_mask_ & bit) == 0)
      throw invalid_device(peer, "device " + std::to_string(peer) + " cannot access the memory of device " +
                                     std::to_string(device_) + " (simulated)");
    for (std::size_t i = 0; i < mapped_.size();) {
      if (!mapped_[i]) {
        ++i;
        continue;
      }
      ++driver_calls_;  // cuMemSetAccess for the run
      for (; i < mapped_.size() && mapped_[i]; ++i) peer_access_[i] |= bit;
    }
    granted_mask_ |= bit;
    granted_.push_back(peer);
  }
  /// The peers granted, in the order they were.
  std::vector<int> peers() const { return granted_; }
  /// The devices grant_peer accepts (bit d: device d); every one by default.
  void set_reachable_peers(std::uint64_t mask) noexcept { reachable_mask_ = mask; }
  /// What cuMemExportToShareableHandle gives cuda_vmm_backend: a new descriptor, the caller's, for the
  /// chunk backing the mapped page at `a`. Here an empty in-memory file (memfd) as long as the chunk, so
  /// that a test can tell which chunk was exported. invalid_pointer when no page is mapped at `a`.
  int export_chunk(std::uintptr_t a) const {
    if (!in_range(a) || !mapped_[index(a)])
      throw invalid_pointer(reinterpret_cast<void*>(a), "export_chunk: page is not mapped");
    const std::size_t first = mapping_first(index(a));
    const std::size_t bytes = std::size_t{chunk_pages_[first] + alias_pages_[first]} * page_;
    const int fd = ::memfd_create("stash-simulated-chunk", MFD_CLOEXEC);
    if (fd < 0)
      throw error(std::string("stash: simulated export_chunk: memfd_create: ") + std::strerror(errno));
    if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      const int e = errno;
      ::close(fd);
      throw error(std::string("stash: simulated export_chunk: ftruncate: ") + std::strerror(e));
    }
    ++export_calls_;
    return fd;
  }
  std::size_t export_calls() const noexcept { return export_calls_; }

  int device() const noexcept { return device_; }
  void set_device(int d) noexcept { device_ = d; }

  std::size_t mapped_bytes() const noexcept { return mapped_bytes_; }
  std::size_t peak_mapped_bytes() const noexcept { return peak_mapped_bytes_; }
  /// The capacity less the bytes mapped (SIZE_MAX with no capacity), as cuda_vmm_backend answers with
  /// the device's free memory. Counted in room_calls(), not in driver_calls().
  std::size_t room_bytes() const noexcept {
    ++room_calls_;
    if (capacity_ == unlimited) return SIZE_MAX;
    return mapped_bytes_ > capacity_ ? 0 : capacity_ - mapped_bytes_;
  }
  /// room_bytes calls (cuMemGetInfo on the GPU).
  std::size_t room_calls() const noexcept { return room_calls_; }
  /// Physical allocations asked for (cuMemCreate), refused ones included.
  std::size_t map_calls() const noexcept { return map_calls_; }
  /// move_page calls (three driver calls each).
  std::size_t move_calls() const noexcept { return move_calls_; }
  /// move_pages calls (two driver calls each, whatever the chunk's pages).
  std::size_t chunk_moves() const noexcept { return chunk_moves_; }
  /// Pages moved by either.
  std::size_t moved_pages() const noexcept { return moved_pages_; }
  std::size_t unmap_calls() const noexcept { return unmap_calls_; }
  /// The driver calls cuda_vmm_backend would have made for the same map, move and unmap calls.
  std::size_t driver_calls() const noexcept { return driver_calls_; }
  /// Whether the page at a is mapped and granted access (set_access, map_pages or a move).
  bool accessible(std::uintptr_t a) const noexcept {
    return in_range(a) && mapped_[index(a)] && access_[index(a)];
  }
  /// Whether the page at a is mapped and granted to `device` (its own device: accessible(a)).
  bool accessible_by(std::uintptr_t a, int device) const noexcept {
    if (device == device_) return accessible(a);
    return device >= 0 && device < 64 && in_range(a) && mapped_[index(a)] &&
           (peer_access_[index(a)] >> device & 1) != 0;
  }
  /// Pages of the chunk that starts at a (0: none starts there).
  std::size_t chunk_pages(std::uintptr_t a) const noexcept {
    return in_range(a) ? chunk_pages_[index(a)] : 0;
  }
  /// f(address, pages) for every chunk mapped, in address order.
  template <class F>
  void for_each_chunk(F&& f) const {
    for (std::size_t i = 0; i < chunk_pages_.size(); ++i)
      if (chunk_pages_[i] != 0) f(base_ + i * page_, std::size_t{chunk_pages_[i]});
  }
  std::size_t misuses() const noexcept { return misuses_; }
  void set_capacity(std::size_t bytes) noexcept { capacity_ = bytes; }

 private:
  static constexpr std::uint8_t alias = 2;  // mapped_: an alias remap_pages left

  bool in_range(std::uintptr_t a) const noexcept {
    return a >= base_ && (a - base_) / page_ < mapped_.size();
  }
  std::size_t index(std::uintptr_t a) const noexcept { return (a - base_) / page_; }
  /// The first page of the mapping (a chunk's own, or an alias) that mapped page i belongs to.
  std::size_t mapping_first(std::size_t i) const noexcept {
    while (chunk_pages_[i] == 0 && alias_pages_[i] == 0 && i > 0 && mapped_[i - 1]) --i;
    return i;
  }
  /// Whether [a, a + n pages) is one chunk as mapped; a misuse when not.
  bool whole_chunk(std::uintptr_t a, std::size_t n) noexcept {
    if (in_range(a) && chunk_pages_[index(a)] == n) return true;
    ++misuses_;
    return false;
  }

  /// Whether the chunk of n pages at `from` may be mapped at the n pages from `to` on (move_pages,
  /// remap_pages): `from` is one whole chunk of n pages and each page from `to` on is inside the range
  /// and unmapped; a misuse when not.
  bool chunk_may_map_at(std::uintptr_t from, std::uintptr_t to, std::size_t n) noexcept {
    return whole_chunk(from, n) && unmapped_run(to, n);
  }

  /// Whether the n pages from `to` on are inside the range and unmapped; a misuse when not.
  bool unmapped_run(std::uintptr_t to, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
      const std::uintptr_t at = to + i * page_;
      if (!in_range(at) || mapped_[index(at)]) {
        ++misuses_;
        return false;
      }
    }
    return true;
  }

  /// A physical allocation (cuMemCreate) of `bytes` counted in mapped_bytes_, mapped once: its id.
  std::uint32_t new_allocation(std::size_t bytes) noexcept {
    if (unused_allocations_.empty()) {
      allocations_.push_back({bytes, 1});
      return static_cast<std::uint32_t>(allocations_.size());
    }
    const std::uint32_t id = unused_allocations_.back();
    unused_allocations_.pop_back();
    allocations_[id - 1] = {bytes, 1};
    return id;
  }
  /// One mapping of allocation `id` (0: none) is gone; the last one takes its memory with it.
  void drop_mapping(std::uint32_t id) noexcept {
    if (id == 0 || --allocations_[id - 1].mappings != 0) return;
    mapped_bytes_ -= allocations_[id - 1].bytes;
    unused_allocations_.push_back(id);  // never asks the heap: reserve() made room for every page
  }

  /// Sets the page's state; false (and a misuse) when it already was in that state, is an alias or is
  /// outside.
  bool mark(std::uintptr_t a, std::uint8_t state) noexcept {
    const std::size_t i = (a - base_) / page_;
    if (a < base_ || i >= mapped_.size() || mapped_[i] != 1 - state) {  // an alias is neither
      ++misuses_;
      return false;
    }
    mapped_[i] = state;
    return true;
  }

  std::size_t capacity_;
  mutable std::size_t room_calls_ = 0;
  std::size_t page_;
  int device_ = 0;
  std::uintptr_t base_ = 0;
  std::vector<std::uint8_t> mapped_;
  std::vector<std::uint8_t> access_;  // granted (set_access) since mapped
  std::vector<std::uint64_t> peer_access_;  // the peers (bit d: device d) each page is granted to
  std::uint64_t granted_mask_ = 0, reachable_mask_ = ~std::uint64_t{0};
  std::vector<int> granted_;  // grant_peer's devices, in order
  std::vector<std::uint32_t> chunk_pages_;  // at a chunk's first page: its pages
  std::vector<std::uint32_t> alias_pages_;  // at an alias's first page (remap_pages): its pages
  // The physical allocations mapped: at a chunk's or an alias's first page, its id (1 + its index in
  // allocations_; 0: none), with the bytes it counts in mapped_bytes_ and its mappings.
  struct allocation_record {
    std::size_t bytes;
    std::uint32_t mappings;
  };
  std::vector<std::uint32_t> allocation_;
  std::vector<allocation_record> allocations_;
  std::vector<std::uint32_t> unused_allocations_;  // ids free for reuse
  std::size_t aliased_pages_ = 0, remap_calls_ = 0, alias_calls_ = 0;
  std::size_t throwing_remap_ = 0;  // the remap_pages call that throws (throw_on_remap); 0: none
  std::size_t failing_alias_ = 0;   // the alias_pages call that fails (fail_alias_call); 0: none
  bool alias_failure_throws_ = false;
  std::size_t mapped_bytes_ = 0, peak_mapped_bytes_ = 0;
  std::size_t map_calls_ = 0, move_calls_ = 0, chunk_moves_ = 0, moved_pages_ = 0, unmap_calls_ = 0,
              misuses_ = 0, driver_calls_ = 0;
  mutable std::size_t export_calls_ = 0;
};

static_assert(chunked_paged_backend<simulated_paged_backend>);
static_assert(shareable_paged_backend<simulated_paged_backend>);
static_assert(peer_paged_backend<simulated_paged_backend>);
static_assert(remapping_paged_backend<simulated_paged_backend>);
static_assert(aliasing_paged_backend<simulated_paged_backend>);
static_assert(room_telling_backend<simulated_paged_backend>);

}  // namespace stash
