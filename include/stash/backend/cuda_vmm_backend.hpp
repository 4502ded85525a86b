#pragma once
// Device memory through CUDA's virtual memory management API: one large range of device addresses is
// reserved up front, and physical memory is created and mapped into it in chunks of one or more pages
// (2 MiB on current GPUs), each chunk one physical allocation: created and mapped with two driver
// calls whatever its size, and unmapped and released whole; a run of chunks mapped together is
// granted access with one more call. A chunk can also move inside the range, whole (the
// same handle mapped at another address). Because a free range can give its physical pages back whatever its
// neighbours hold, the memory held tracks the memory in use far more closely than with whole
// cudaMalloc segments. This is the mechanism behind PyTorch's expandable segments.
// mapped_bytes() is the physical memory held, as simulated_paged_backend counts it: a chunk mapped
// at a second address (remap_pages) is counted once, and until its last mapping goes (cuMemRelease
// frees an allocation only once nothing maps it), whether that is the alias or its own.
//
// The driver calls come from entry points fetched through the runtime (stash/cuda/driver_api.hpp),
// so nothing links libcuda.
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "stash/backend/backend.hpp"
#include "stash/cuda/cuda_check.hpp"
#include "stash/cuda/capture_mode.hpp"
#include "stash/cuda/device_guard.hpp"
#include "stash/cuda/driver_api.hpp"
#include "stash/device_manager.hpp"
#include "stash/error.hpp"
#include "stash/ordering/cuda_event_ordering.hpp"

namespace stash {

/// Which other GPUs a paged device backend maps its pages for (README, "Behaviour we chose": peers).
enum class peer_access {
  all,   // every device that cudaDeviceCanAccessPeer says can reach the backend's device
  none,  // its own device only, until grant_peer adds one
};

/// Kind: memory_kind::device (pages of device memory) or memory_kind::pinned (pages of page-locked
/// host memory, CU_MEM_LOCATION_TYPE_HOST, readable and writable by the CPU and by the device).
template <memory_kind Kind>
class basic_cuda_vmm_backend {
  static_assert(Kind == memory_kind::device || Kind == memory_kind::pinned, "device or pinned pages");

 public:
  static constexpr memory_kind kind = Kind;
  /// The GPU uses this memory on streams: allocators over it are stream-ordered by default.
  using ordering_type = cuda_event_ordering;

  /// -1: the device current when the backend is made. `reserve_bytes`: size of the address range to
  /// reserve by default; 0 means the device's memory and half as much again (default_reserve_bytes()).
  /// `shareable`: physical memory is created so that it can be exported to another process as a POSIX
  /// file descriptor (export_chunk; stash/ipc.hpp). `peers` (device pages): all maps every page for
  /// each device that can reach this one too; none maps it for this device only, and grant_peer adds
  /// devices later. Pinned host pages are mapped for the CPU and every device whatever it says. Throws
  /// stash::invalid_device for a bad id and stash::cuda_error when there is no driver, the device lacks VMM
  /// support, or shareable memory was asked for and the device cannot export it.
  explicit basic_cuda_vmm_backend(int device = -1, std::size_t reserve_bytes = 0, bool shareable = false,
                                  peer_access peers = peer_access::all)
      : device_(device_manager::resolve(device)), reserve_bytes_(reserve_bytes), shareable_(shareable) {
    cuda::device_guard guard(device_);
    STASH_CUDA_CHECK(cudaFree(nullptr));  // creates the primary context the driver calls run in
    CUdevice handle = 0;
    STASH_CU_CHECK(api().cuDeviceGet(&handle, device_));
    // Host pages have their own attribute (CUDA 12.2+); a driver that does not know it fails the query,
    // which is as good an answer: the caller (the memory manager) then falls back to cudaHostAlloc.
    int supported = 0;
    STASH_CU_CHECK(api().cuDeviceGetAttribute(
        &supported,
        Kind == memory_kind::device ? CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED
                                    : CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED,
        handle));
    if (!supported) {
      throw cuda_error(static_cast<int>(cudaErrorNotSupported),
                       "device " + std::to_string(device_) + " does not support virtual memory management" +
                           (Kind == memory_kind::device ? " (cuMemCreate/cuMemMap)"
                                                        : " of host memory (CU_MEM_LOCATION_TYPE_HOST)"));
    }
    if (shareable_) {
      int exportable = 0;
      STASH_CU_CHECK(api().cuDeviceGetAttribute(
          &exportable, CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED, handle));
      if (!exportable)
        throw cuda_error(static_cast<int>(cudaErrorNotSupported),
                         "device " + std::to_string(device_) +
                             " cannot export memory as a POSIX file descriptor (shareable pages asked for)");
    }
    std::size_t free_bytes = 0;
    STASH_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_memory_));

    const CUmemAllocationProp prop = allocation_properties();
    STASH_CU_CHECK(api().cuMemGetAllocationGranularity(&page_size_, &prop,
                                                       CU_MEM_ALLOC_GRANULARITY_MINIMUM));
    access_ = access_descriptors(peers);
  }

  ~basic_cuda_vmm_backend() { release_everything(); }

  basic_cuda_vmm_backend(const basic_cuda_vmm_backend&) = delete;
  basic_cuda_vmm_backend& operator=(const basic_cuda_vmm_backend&) = delete;
  basic_cuda_vmm_backend(basic_cuda_vmm_backend&& other) noexcept { take(other); }
  basic_cuda_vmm_backend& operator=(basic_cuda_vmm_backend&& other) noexcept {
    if (this != &other) {
      release_everything();
      take(other);
    }
    return *this;
  }

  /// One physical page: the minimum VMM granularity of the device (2 MiB on an H100).
  std::size_t page_size() const noexcept { return page_size_; }
  /// Device pages: the device's free memory as the driver counts it now (cudaMemGetInfo; other
  /// processes' memory lowers it too). Pinned host pages, or a driver that does not answer: SIZE_MAX.
  std::size_t room_bytes() const noexcept {
    if constexpr (Kind != memory_kind::device) {
      return SIZE_MAX;
    } else {
      try {
        cuda::device_guard guard(device_);
        cuda::relaxed_capture_mode relaxed;  // legal during a graph capture (cuda/capture_mode.hpp)
        std::size_t free_bytes = 0, total_bytes = 0;
        return cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess ? free_bytes : SIZE_MAX;
      } catch (...) {
        return SIZE_MAX;
      }
    }
  }
  /// The device for device pages; -1 for pinned host pages (mapped for device_accessor() too).
  int device() const noexcept { return Kind == memory_kind::device ? device_ : -1; }
  int device_accessor() const noexcept { return device_; }

  /// Device pages: the other devices whose kernels and copies may use them, in the order they were
  /// granted (peer_access::all: every device reachable_peers() names, in device order). Pinned host
  /// pages: empty (every device may).
  std::vector<int> peers() const {
    std::vector<int> out;
    if constexpr (Kind == memory_kind::device) {
      for (const CUmemAccessDesc& d : access_)
        if (d.location.id != device_) out.push_back(d.location.id);
    }
    return out;
  }

  /// The devices other than this one that cudaDeviceCanAccessPeer says can reach its memory: those
  /// grant_peer takes.
  std::vector<int> reachable_peers() const {
    std::vector<int> out;
    for (int d = 0; d < device_manager::device_count(); ++d)
      if (d != device_ && can_reach(d, device_)) out.push_back(d);
    return out;
  }

  /// Maps every page for device `peer` too: each run of pages mapped now with one cuMemSetAccess (for
  /// that device alone: the others' access stays as it is), and every page mapped or moved from then
  /// on with the rest. What PyTorch's expandable segments do when PyTorch enables peer access. A
  /// peer granted already, or this backend's own device, changes nothing. Throws invalid_device for a
  /// peer that is no device id or that cannot reach this device (cudaDeviceCanAccessPeer), and
  /// stash::cuda_error when the driver refuses a grant, after revoking the peer's access to the runs
  /// granted before it; the pages mapped later are not granted to the peer then. Not thread-safe: the
  /// allocator calls it under its lock.
  void grant_peer(int peer)
    requires(Kind == memory_kind::device)
  {
    const int count = device_manager::device_count();
    if (peer < 0 || peer >= count) throw invalid_device(peer, count);
    const std::vector<int> granted = peers();
    if (peer == device_ || std::find(granted.begin(), granted.end(), peer) != granted.end()) return;
    if (!can_reach(peer, device_))
      throw invalid_device(peer, "device " + std::to_string(peer) + " cannot access the memory of device " +
                                     std::to_string(device_) + " (cudaDeviceCanAccessPeer)");
    std::vector<CUmemAccessDesc> access = access_;  // taken before anything changes
    access.push_back(read_write(CU_MEM_LOCATION_TYPE_DEVICE, peer));
    cuda::device_guard guard(device_);
    cuda::relaxed_capture_mode relaxed;  // legal during a graph capture (cuda/capture_mode.hpp)
    const CUmemAccessDesc grant = access.back();
    std::size_t granted_to = 0;  // the runs below this page index are granted
    CUresult status = CUDA_SUCCESS;
    for_each_mapped_run([&](std::size_t first, std::size_t n) {
      if (status != CUDA_SUCCESS) return;
      status = api().cuMemSetAccess(base_ + first * page_size_, n * page_size_, &grant, 1);
      if (status == CUDA_SUCCESS) granted_to = first + n;
    });
    if (status != CUDA_SUCCESS) {
      CUmemAccessDesc revoke = grant;
      revoke.flags = CU_MEM_ACCESS_FLAGS_PROT_NONE;
      for_each_mapped_run([&](std::size_t first, std::size_t n) {
        if (first < granted_to)
          (void)api().cuMemSetAccess(base_ + first * page_size_, n * page_size_, &revoke, 1);
      });
      STASH_CU_CHECK(status);
    }
    access_ = std::move(access);
  }

  /// The address range to reserve when nobody says otherwise: the constructor's `reserve_bytes`, or
  /// else the device's memory and half as much again, whole pages. The allocator carves the range from
  /// its low end and keeps it compact: over three replays of each benchmark trace (simulated device,
  /// host order) the addresses it used spanned at most 1.18x the peak bytes live (bert_infer_varlen;
  /// 1.01-1.13x on the others), and blocks whose frees are pending on a stream hold their addresses
  /// too, so half as much again as the device holds leaves room for that before the range, not the
  /// device, runs out. More would cost address space and host memory for the page tables (about 25
  /// bytes per 2 MiB page here and in the allocator) in every allocator: 8 shards reserve 12x.
  std::size_t default_reserve_bytes() const noexcept {
    return round_up(reserve_bytes_ != 0 ? reserve_bytes_ : total_memory_ + total_memory_ / 2);
  }

  /// Reserves `n` bytes (rounded up to whole pages; 0: default_reserve_bytes()) of device address
  /// space and returns its page-aligned base; maps nothing. Once per backend.
  std::uintptr_t reserve(std::size_t n) {
    if (base_ != 0) throw error("stash: basic_cuda_vmm_backend::reserve called twice");
    const std::size_t size = n != 0 ? round_up(n) : default_reserve_bytes();
    cuda::device_guard guard(device_);
    cuda::relaxed_capture_mode relaxed;  // legal during a graph capture (cuda/capture_mode.hpp)
    CUdeviceptr base = 0;
    STASH_CU_CHECK(api().cuMemAddressReserve(&base, size, page_size_, 0, 0));
    base_ = static_cast<std::uintptr_t>(base);
    size_ = size;
    pages_.assign(size / page_size_, page{});
    return base_;
  }

  /// Creates one page of physical memory on the device and maps it, read-write, at `a`. false when the
  /// device is out of memory (nothing is left behind); stash::cuda_error on any other failure.
  bool map_page(std::uintptr_t a) { return map_pages(a, 1); }

  /// Creates n pages of physical memory as one allocation (one chunk) and maps them, read-write, from
  /// `a` on: three driver calls whatever n. The chunk is unmapped whole (unmap_pages(a, n)); its pages
  /// never move alone. false when the device is out of memory (nothing is left behind);
  /// stash::cuda_error on any other failure, invalid_pointer when a page is mapped already.
  bool map_pages(std::uintptr_t a, std::size_t n) {
    if (!map_chunks(a, n, n)) return false;
    bool granted = false;
    try {
      granted = set_access(a, n);
    } catch (...) {
      unmap_pages(a, n);
      throw;
    }
    if (!granted) unmap_pages(a, n);
    return granted;
  }

  /// Creates the n pages from `a` on as physical allocations (chunks) of `chunk` pages each, the last
  /// one shorter when n is not a multiple, and maps each: two driver calls per chunk. No device may use
  /// them before set_access grants it. Each chunk is unmapped alone (unmap_pages(its first page, its
  /// pages)). false when the device is out of memory (the chunks made so far are unmapped and
  /// released: nothing is left behind); stash::cuda_error on any other failure, invalid_pointer when a
  /// page is mapped already.
  bool map_chunks(std::uintptr_t a, std::size_t n, std::size_t chunk) {
    const std::size_t first = index_of(a, "map_chunks");
    if (n == 0 || n > pages_.size() - first)
      throw invalid_pointer(reinterpret_cast<void*>(a), "map_chunks: past the reserved range");
    for (std::size_t i = first; i < first + n; ++i)
      if (pages_[i].mapped || pages_[i].alias)
        throw invalid_pointer(reinterpret_cast<void*>(base_ + i * page_size_), "page is already mapped");
    if (chunk == 0 || chunk > n) chunk = n;
    cuda::device_guard guard(device_);
    cuda::relaxed_capture_mode relaxed;  // legal during a graph capture (cuda/capture_mode.hpp)
    const cuda::driver_api& cu = api();
    const CUmemAllocationProp prop = allocation_properties();

    // Each chunk made so far is noted on its first page, not yet marked mapped, so that a failure can
    // give them all back.
    std::size_t done = 0;
    CUresult status = CUDA_SUCCESS;
    while (done < n) {
      const std::size_t pages = std::min(chunk, n - done);
      const std::size_t bytes = pages * page_size_;
      CUmemGenericAllocationHandle handle = 0;
      status = cu.cuMemCreate(&handle, bytes, &prop, 0);
      if (status != CUDA_SUCCESS) break;
      status = cu.cuMemMap(a + done * page_size_, bytes, 0, handle, 0);
      if (status != CUDA_SUCCESS) {
        (void)cu.cuMemRelease(handle);
        break;
      }
      pages_[first + done] = page{handle, false, pages};
      done += pages;
    }
    if (status != CUDA_SUCCESS) {
      for (std::size_t i = first; i < first + done;) {
        const std::size_t pages = pages_[i].chunk_pages;
        (void)cu.cuMemUnmap(base_ + i * page_size_, pages * page_size_);
        (void)cu.cuMemRelease(pages_[i].handle);
        pages_[i] = page{};
        i += pages;
      }
      if (status == CUDA_ERROR_OUT_OF_MEMORY) return false;
      STASH_CU_CHECK(status);
    }
    for (std::size_t i = first; i < first + n;) {
      const page made = pages_[i];
      for (std::size_t j = i; j < i + made.chunk_pages; ++j) pages_[j] = page{made.handle, true, 0};
      pages_[i].chunk_pages = made.chunk_pages;
      i += made.chunk_pages;
    }
    mapped_pages_ += n;
    return true;
  }

  /// Grants read-write access (to this device and its peers, access_descriptors()) to the n pages from
  /// `a` on with one cuMemSetAccess, however many chunks and moved pages back them. cuda.h allows that:
  /// the range "must be a fully mapped address range containing all allocations created by cuMemMap /
  /// cuMemCreate", which it is (PyTorch's expandable segments also map their handles one by one and
  /// then set access once over the range). false when the driver is out of memory (the pages stay
  /// mapped, without access); stash::cuda_error on any other failure, invalid_pointer when a page is
  /// not mapped.
  bool set_access(std::uintptr_t a, std::size_t n) {
    const std::size_t first = index_of(a, "set_access");
    if (n == 0 || n > pages_.size() - first)
      throw invalid_pointer(reinterpret_cast<void*>(a), "set_access: past the reserved range");
    for (std::size_t i = first; i < first + n; ++i)
      if (!pages_[i].mapped && !pages_[i].alias)
        throw invalid_pointer(reinterpret_cast<void*>(base_ + i * page_size_),
                              "set_access: page is not mapped");
    cuda::device_guard guard(device_);
    cuda::relaxed_capture_mode relaxed;  // legal during a graph capture (cuda/capture_mode.hpp)
    const CUresult granted = grant_access(a, n * page_size_);
    if (granted == CUDA_ERROR_OUT_OF_MEMORY) return false;
    STASH_CU_CHECK(granted);
    return true;
  }

  /// Makes the physical page mapped at `from` back `to` instead: no physical memory is created, and
  /// the page's contents move with it. false when the driver is out of memory for the new mapping (the
  /// page then stays at `from`); stash::cuda_error on any other failure.
  bool move_page(std::uintptr_t from, std::uintptr_t to) {
    page& source = pages_[index_of(from, "move_page")];
    page& target = pages_[index_of(to, "move_page")];
    if (!source.mapped) throw invalid_pointer(reinterpret_cast<void*>(from), "page is not mapped");
    if (source.chunk_pages != 1)
      throw invalid_pointer(reinterpret_cast<void*>(from),
                            "move_page: the page is part of a chunk of several pages");
    if (from == to) return true;
    if (target.mapped || target.alias)
      throw invalid_pointer(reinterpret_cast<void*>(to), "page is already mapped");
    cuda::device_guard guard(device_);
    cuda::relaxed_capture_mode relaxed;  // legal during a graph capture (cuda/capture_mode.hpp)
    const cuda::driver_api& cu = api();

    // No work queued on the device uses the page at its old address: the allocator moves only pages
    // no live block touches and whose frees' events have completed (or, host-ordered, whose memory
    // the program has finished with before it freed it).
    STASH_CU_CHECK(cu.cuMemUnmap(from, page_size_));
    CUresult status = cu.cuMemMap(to, page_size_, 0, source.handle, 0);
    if (status == CUDA_SUCCESS) {
      status = grant_access(to, page_size_);
      if (status != CUDA_SUCCESS) (void)cu.cuMemUnmap(to, page_size_);
    }
    if (status != CUDA_SUCCESS) {
      // Put the page back where the caller still believes it is.
      const CUresult restored = cu.cuMemMap(from, page_size_, 0, source.handle, 0);
      const CUresult regranted = restored == CUDA_SUCCESS ? grant_access(from, page_size_) : restored;
      if (regranted != CUDA_SUCCESS) {
        if (restored == CUDA_SUCCESS) (void)cu.cuMemUnmap(from, page_size_);
        (void)cu.cuMemRelease(source.handle);
        forget_chunk(index_of(from, "move_page"));
        STASH_CU_CHECK(regranted);  // the page is lost; report the failure that lost it
      }
      if (status == CUDA_ERROR_OUT_OF_MEMORY) return false;
      STASH_CU_CHECK(status);
    }
    target = source;
    source = page{};
    return true;
  }

  /// Makes the chunk of n pages mapped at `from` (one physical allocation) back the n pages from `to`
  /// on instead, with one cuMemUnmap and one cuMemMap of its handle at offset 0, and no access there
  /// until set_access covers them: no physical memory is created, however many pages. false when the
  /// driver is out of memory for the new mapping (the chunk then stays at `from`, granted as before);
  /// stash::cuda_error on any other failure; invalid_pointer when `from` is not a whole chunk of n
  /// pages or a page from `to` on is mapped or outside the range.
  bool move_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n) {
    const std::size_t source = index_of(from, "move_pages"), target = index_of(to, "move_pages");
    if (!pages_[source].mapped || pages_[source].chunk_pages != n)
      throw invalid_pointer(reinterpret_cast<void*>(from), "move_pages: not a chunk of that many pages");
    if (n > pages_.size() - target)
      throw invalid_pointer(reinterpret_cast<void*>(to), "move_pages: past the reserved range");
    for (std::size_t i = target; i < target + n; ++i)
      if (pages_[i].mapped || pages_[i].alias)
        throw invalid_pointer(reinterpret_cast<void*>(base_ + i * page_size_), "page is already mapped");
    cuda::device_guard guard(device_);
    cuda::relaxed_capture_mode relaxed;  // legal during a graph capture (cuda/capture_mode.hpp)
    const cuda::driver_api& cu = api();
    const std::size_t bytes = n * page_size_;
    const CUmemGenericAllocationHandle handle = pages_[source].handle;

    // No work queued on the device uses the chunk at its old address (see move_page).
    STASH_CU_CHECK(cu.cuMemUnmap(from, bytes));
    const CUresult status = cu.cuMemMap(to, bytes, 0, handle, 0);
    if (status != CUDA_SUCCESS) {
      // Put the chunk back where the caller still believes it is.
      const CUresult restored = cu.cuMemMap(from, bytes, 0, handle, 0);
      const CUresult regranted = restored == CUDA_SUCCESS ? grant_access(from, bytes) : restored;
      if (regranted != CUDA_SUCCESS) {
        if (restored == CUDA_SUCCESS) (void)cu.cuMemUnmap(from, bytes);
        (void)cu.cuMemRelease(handle);
        forget_chunk(source);
        STASH_CU_CHECK(regranted);  // the chunk is lost; report the failure that lost it
      }
      if (status == CUDA_ERROR_OUT_OF_MEMORY) return false;
      STASH_CU_CHECK(status);
    }
    for (std::size_t i = 0; i < n; ++i) pages_[target + i] = std::exchange(pages_[source + i], page{});
    return true;
  }

  /// Maps the chunk of n pages mapped at `from` also at the n pages from `to` on (cuMemMap of its handle
  /// a second time: one driver call), with no access there until set_access covers them. The chunk
  /// belongs to `to` from then on; `from` stays mapped, an alias through which work queued earlier may
  /// still read and write it, until unmap_alias. false when the driver is out of memory for the new
  /// mapping (nothing changed); stash::cuda_error on any other failure; invalid_pointer when `from` is
  /// not a whole chunk of n pages or a page from `to` on is mapped (or an alias) or outside the range;
  /// std::bad_alloc when the host heap has no room for the chunk's count of mappings. Nothing changed
  /// when it throws.
  bool remap_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n) {
    const std::size_t source = index_of(from, "remap_pages");
    if (!pages_[source].mapped || pages_[source].chunk_pages != n)
      throw invalid_pointer(reinterpret_cast<void*>(from), "remap_pages: not a chunk of that many pages");
    const std::size_t target = unmapped_target(to, n, "remap_pages");
    // The chunk's entry in shared_ (its mappings), made or found before the driver call: the host
    // memory comes first, so that nothing throws once the chunk is mapped twice.
    const std::uint32_t id = shared_entry_of(source);
    cuda::device_guard guard(device_);
    cuda::relaxed_capture_mode relaxed;  // legal during a graph capture (cuda/capture_mode.hpp)
    const CUmemGenericAllocationHandle handle = pages_[source].handle;
    const CUresult status = api().cuMemMap(to, n * page_size_, 0, handle, 0);
    if (status == CUDA_ERROR_OUT_OF_MEMORY) return false;  // a new entry stays unused (no mapping)
    STASH_CU_CHECK(status);
    for (std::size_t i = 0; i < n; ++i)
      pages_[target + i] = std::exchange(pages_[source + i], page{handle, false, 0, true});
    pages_[source].chunk_pages = n;  // the alias's pages, for unmap_alias
    count_new_mapping(id, source, target, n);
    return true;
  }

  /// cuMemMap of the physical allocation mapped at `from` (a whole chunk of n pages where it belongs,
  /// or a whole alias of one) at the n pages from `to` on too, as an alias (unmap_alias), with no
  /// access there until set_access (caching_options::keep_page_aliases). No memory is created; it is
  /// held until its last mapping goes, and mapped_bytes() counts it once. The handle is taken from the
  /// address (cuMemRetainAllocationHandle: the chunk's own handle is released once its own mapping is
  /// unmapped) and released once mapped: the mappings hold the memory. false when the driver is out of
  /// memory (nothing changed); stash::cuda_error on any other failure; invalid_pointer when `from` is
  /// neither or a page from `to` on is mapped (or an alias) or outside the range; std::bad_alloc when
  /// the host heap has no room for the chunk's count of mappings. Nothing changed when it throws.
  bool alias_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n) {
    const std::size_t source = index_of(from, "alias_pages");
    if (!(pages_[source].mapped || pages_[source].alias) || pages_[source].chunk_pages != n)
      throw invalid_pointer(reinterpret_cast<void*>(from),
                            "alias_pages: not a chunk or alias of that many pages");
    const std::size_t target = unmapped_target(to, n, "alias_pages");
    const std::uint32_t id = shared_entry_of(source);  // the host memory first (see remap_pages)
    cuda::device_guard guard(device_);
    cuda::relaxed_capture_mode relaxed;  // legal during a graph capture (cuda/capture_mode.hpp)
    CUmemGenericAllocationHandle handle = 0;
    STASH_CU_CHECK(api().cuMemRetainAllocationHandle(&handle, reinterpret_cast<void*>(from)));
    const CUresult status = api().cuMemMap(to, n * page_size_, 0, handle, 0);
    (void)api().cuMemRelease(handle);  // the retained reference; the mappings hold the memory
    if (status == CUDA_ERROR_OUT_OF_MEMORY) return false;  // a new entry stays unused (no mapping)
    STASH_CU_CHECK(status);
    for (std::size_t i = 0; i < n; ++i) pages_[target + i] = page{0, false, 0, true};
    pages_[target].chunk_pages = n;
    count_new_mapping(id, source, target, n);
    return true;
  }

  /// Unmaps the alias of n pages remap_pages left at `a` (cuMemUnmap alone: the memory stays mapped at
  /// its new address, or was released there and goes now, with its last mapping: mapped_bytes() drops
  /// then). Never throws; anything else than such an alias is ignored.
  void unmap_alias(std::uintptr_t a, std::size_t n) noexcept {
    if (base_ == 0 || a < base_ || a - base_ >= size_ || (a - base_) % page_size_ != 0) return;
    const std::size_t first = (a - base_) / page_size_;
    if (!pages_[first].alias || pages_[first].chunk_pages != n) return;
    try {
      cuda::device_guard guard(device_);
      cuda::relaxed_capture_mode relaxed;
      (void)api().cuMemUnmap(a, n * page_size_);
    } catch (...) {
      // No usable device context (a driver shutting down); the driver frees everything at exit.
    }
    const std::uint32_t id = pages_[first].shared;
    for (std::size_t i = first; i < first + n; ++i) pages_[i] = page{};
    aliased_pages_ -= n;
    drop_shared_mapping(id, true);
  }

  /// Unmaps the page at `a` and releases its physical memory. Never throws; an address that is not a
  /// page mapped alone is ignored.
  void unmap_page(std::uintptr_t a) noexcept { unmap_pages(a, 1); }

  /// Unmaps the chunk map_pages(a, n) mapped and releases its physical memory. Never throws; anything
  /// else than a whole chunk is ignored.
  void unmap_pages(std::uintptr_t a, std::size_t n) noexcept {
    if (base_ == 0 || a < base_ || a - base_ >= size_ || (a - base_) % page_size_ != 0) return;
    const std::size_t first = (a - base_) / page_size_;
    if (!pages_[first].mapped || pages_[first].chunk_pages != n) return;
    try {
      cuda::device_guard guard(device_);
      cuda::relaxed_capture_mode relaxed;  // legal during a graph capture (cuda/capture_mode.hpp)
      // No device-wide wait: the allocator unmaps only pages no pending work uses (see move_page).
      unmap_and_release(first);
    } catch (...) {
      // No usable device context (a driver shutting down); the driver frees everything at exit.
      forget_chunk(first);
    }
  }

  /// Whether physical memory is created exportable (the constructor's `shareable`).
  bool shareable() const noexcept { return shareable_; }

  /// A new POSIX file descriptor, owned by the caller, for the physical allocation that backs the page
  /// at `a` (the whole chunk: cuMemExportToShareableHandle). Another process imports it with
  /// cuMemImportFromShareableHandle (stash/cuda/ipc_mapping.hpp). Throws stash::error when the backend
  /// is not shareable, invalid_pointer when no page is mapped at `a`, stash::cuda_error when the
  /// driver refuses.
  int export_chunk(std::uintptr_t a) const {
    if (!shareable_) throw error("stash: export_chunk: the backend was not made shareable");
    const page& p = pages_[index_of(a, "export_chunk")];
    if (!p.mapped && !p.alias)
      throw invalid_pointer(reinterpret_cast<void*>(a), "export_chunk: page is not mapped");
    cuda::device_guard guard(device_);
    int fd = -1;
    if (p.mapped) {
      STASH_CU_CHECK(
          api().cuMemExportToShareableHandle(&fd, p.handle, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0));
      return fd;
    }
    // An alias (alias_pages, remap_pages): its chunk's own handle may be released already.
    CUmemGenericAllocationHandle handle = 0;
    STASH_CU_CHECK(api().cuMemRetainAllocationHandle(&handle, reinterpret_cast<void*>(a)));
    const CUresult status =
        api().cuMemExportToShareableHandle(&fd, handle, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0);
    (void)api().cuMemRelease(handle);
    STASH_CU_CHECK(status);
    return fd;
  }

  /// The reserved range (0 and 0 before reserve()), and how many of its pages are mapped, each by the
  /// chunk that belongs there (aliases not included).
  std::uintptr_t base() const noexcept { return base_; }
  std::size_t reserved_bytes() const noexcept { return size_; }
  std::size_t mapped_pages() const noexcept { return mapped_pages_; }
  /// The physical memory held: every chunk mapped where it belongs, and every chunk unmapped there
  /// (unmap_pages) whose aliases still map it, each counted once (an alias of a chunk that is mapped
  /// where it belongs adds nothing). As simulated_paged_backend::mapped_bytes(), which the allocator's
  /// reserved bytes match.
  std::size_t mapped_bytes() const noexcept { return (mapped_pages_ + alias_held_pages_) * page_size_; }
  /// Pages mapped as aliases of chunks that belong to other addresses (remap_pages), not counted in
  /// mapped_pages(); in mapped_bytes() only while their chunk is unmapped where it belongs (once per
  /// chunk, however many aliases it has).
  std::size_t aliased_pages() const noexcept { return aliased_pages_; }
  bool is_mapped(std::uintptr_t a) const noexcept {
    return base_ != 0 && a >= base_ && a - base_ < size_ && pages_[(a - base_) / page_size_].mapped;
  }

 private:
  struct page {
    CUmemGenericAllocationHandle handle = 0;  // the chunk's, on each of its pages
    bool mapped = false;
    std::size_t chunk_pages = 0;  // on a chunk's (or an alias's) first page: how many pages it has
    bool alias = false;  // mapped here by a chunk that belongs to another address (remap_pages)
    // On the first page of a chunk remapped once at least, and of each of its aliases: 1 + the index
    // of its entry in shared_ (0: none). Fits the padding after `alias`.
    std::uint32_t shared = 0;
  };
  // The mappings of a chunk that was remapped (its own and its aliases'), so that its memory is counted
  // until the last goes. An entry with no mapping is unused (unused_shared_entry).
  struct shared_mapping {
    std::size_t pages = 0;
    std::size_t mappings = 0;
  };

  static const cuda::driver_api& api() { return cuda::driver_api::get(); }

  CUmemAllocationProp allocation_properties() const noexcept {
    CUmemAllocationProp prop{};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.requestedHandleTypes =
        shareable_ ? CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR : CU_MEM_HANDLE_TYPE_NONE;
    prop.location.type =
        Kind == memory_kind::device ? CU_MEM_LOCATION_TYPE_DEVICE : CU_MEM_LOCATION_TYPE_HOST;
    prop.location.id = Kind == memory_kind::device ? device_ : 0;
    return prop;
  }

  static CUmemAccessDesc read_write(CUmemLocationType type, int id) noexcept {
    CUmemAccessDesc d{};
    d.location.type = type;
    d.location.id = id;
    d.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    return d;
  }

  /// Whether cudaDeviceCanAccessPeer says kernels on `peer` can reach `device`'s memory; a refused
  /// query is "no", and must not surface as a later call's error.
  static bool can_reach(int peer, int device) noexcept {
    int can = 0;
    if (cudaDeviceCanAccessPeer(&can, peer, device) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return can != 0;
  }

  /// Who may read and write the pages mapped from now on (grant_peer adds to it). Device pages: their
  /// device, and with peer_access::all every device that cudaDeviceCanAccessPeer says can reach it,
  /// whether or not the program enabled peer access (cuMemSetAccess needs no enabling): a kernel or a
  /// peer copy on another GPU works on stash memory as on cudaMalloc'd memory (README, "Behaviour we
  /// chose"). Pinned host pages: the CPU and every device, as cudaHostAlloc'd memory is under unified
  /// addressing.
  std::vector<CUmemAccessDesc> access_descriptors(peer_access peers) const {
    std::vector<CUmemAccessDesc> access;
    if constexpr (Kind == memory_kind::device) {
      access.push_back(read_write(CU_MEM_LOCATION_TYPE_DEVICE, device_));
      if (peers == peer_access::all)
        for (const int peer : reachable_peers())
          access.push_back(read_write(CU_MEM_LOCATION_TYPE_DEVICE, peer));
    } else {
      for (int d = 0; d < device_manager::device_count(); ++d)
        access.push_back(read_write(CU_MEM_LOCATION_TYPE_DEVICE, d));
      access.push_back(read_write(CU_MEM_LOCATION_TYPE_HOST, 0));
    }
    return access;
  }

  /// f(first page index, pages) for each maximal run of mapped pages (chunks and aliases), in address
  /// order.
  template <class F>
  void for_each_mapped_run(F&& f) const {
    auto mapped = [&](std::size_t i) { return pages_[i].mapped || pages_[i].alias; };
    for (std::size_t i = 0; i < pages_.size();) {
      if (!mapped(i)) {
        ++i;
        continue;
      }
      std::size_t end = i + 1;
      while (end < pages_.size() && mapped(end)) ++end;
      f(i, end - i);
      i = end;
    }
  }

  CUresult grant_access(std::uintptr_t a, std::size_t bytes) const {
    return api().cuMemSetAccess(a, bytes, access_.data(), access_.size());
  }

  std::size_t round_up(std::size_t n) const noexcept {
    return page_size_ == 0 ? n : (n + page_size_ - 1) / page_size_ * page_size_;
  }

  std::size_t index_of(std::uintptr_t a, const char* what) const {
    if (base_ == 0) throw error(std::string("stash: basic_cuda_vmm_backend::") + what + " before reserve()");
    if (a < base_ || a - base_ >= size_ || (a - base_) % page_size_ != 0) {
      throw invalid_pointer(reinterpret_cast<void*>(a),
                            std::string(what) + ": not a page of the reserved range");
    }
    return (a - base_) / page_size_;
  }

  /// The chunk whose first page is pages_[first].
  void unmap_and_release(std::size_t first) noexcept {
    const cuda::driver_api& cu = cuda::driver_api::get();  // already loaded: a page is mapped
    (void)cu.cuMemUnmap(base_ + first * page_size_, pages_[first].chunk_pages * page_size_);
    (void)cu.cuMemRelease(pages_[first].handle);
    forget_chunk(first);
  }
  /// The chunk whose first page is pages_[first] is no longer mapped there; its memory stays counted
  /// (alias_held_pages_) while an alias of it remains.
  void forget_chunk(std::size_t first) noexcept {
    const std::size_t n = pages_[first].chunk_pages;
    const std::uint32_t id = pages_[first].shared;
    for (std::size_t i = first; i < first + n; ++i) pages_[i] = page{};
    mapped_pages_ -= n;
    drop_shared_mapping(id, false);
  }

  /// The first of the n pages from `to` on, where a new mapping goes: invalid_pointer when one of them
  /// is past the reserved range, mapped or an alias.
  std::size_t unmapped_target(std::uintptr_t to, std::size_t n, const char* what) const {
    const std::size_t target = index_of(to, what);
    if (n > pages_.size() - target)
      throw invalid_pointer(reinterpret_cast<void*>(to), std::string(what) + ": past the reserved range");
    for (std::size_t i = target; i < target + n; ++i)
      if (pages_[i].mapped || pages_[i].alias)
        throw invalid_pointer(reinterpret_cast<void*>(base_ + i * page_size_), "page is already mapped");
    return target;
  }
  /// The index + 1 of the entry of shared_ counting the mappings of the physical allocation at page
  /// `source`, made (with no mapping yet) if it has none. May throw std::bad_alloc.
  std::uint32_t shared_entry_of(std::size_t source) {
    const std::uint32_t id = pages_[source].shared;
    return id != 0 ? id : unused_shared_entry();
  }
  /// After the allocation at page `source` was mapped at the n pages from `target` on too: counts that
  /// mapping (and the one at `source`, if it was the first) in entry `id`.
  void count_new_mapping(std::uint32_t id, std::size_t source, std::size_t target, std::size_t n) noexcept {
    shared_mapping& entry = shared_[id - 1];
    if (entry.mappings == 0) entry = {n, 1};  // the mapping at `source`
    ++entry.mappings;                          // and the new one
    pages_[target].shared = id;
    pages_[source].shared = id;
    aliased_pages_ += n;
  }
  /// The index + 1 of an entry of shared_ with no mapping, made if there is none (the vector grows
  /// geometrically). Throws std::bad_alloc, nothing changed.
  std::uint32_t unused_shared_entry() {
    for (std::size_t i = 0; i < shared_.size(); ++i)
      if (shared_[i].mappings == 0) return static_cast<std::uint32_t>(i + 1);
    shared_.emplace_back();
    return static_cast<std::uint32_t>(shared_.size());
  }
  /// One mapping of the chunk with entry `id` (0: none) is gone. Its own (forget_chunk): while an alias
  /// remains, the aliases hold its memory. The last alias, after its own: the driver frees the memory.
  void drop_shared_mapping(std::uint32_t id, bool alias) noexcept {
    if (id == 0) return;
    shared_mapping& entry = shared_[id - 1];
    --entry.mappings;
    if (!alias && entry.mappings != 0) alias_held_pages_ += entry.pages;
    if (alias && entry.mappings == 0) alias_held_pages_ -= entry.pages;
  }

  void release_everything() noexcept {
    if (base_ == 0) return;
    try {
      cuda::device_guard guard(device_);
      if (mapped_pages_ + aliased_pages_ != 0 && cudaDeviceSynchronize() != cudaSuccess)
        (void)cudaGetLastError();
      for (std::size_t i = 0; i < pages_.size() && aliased_pages_ != 0; ++i)
        if (pages_[i].alias && pages_[i].chunk_pages != 0)
          unmap_alias(base_ + i * page_size_, pages_[i].chunk_pages);
      for (std::size_t i = 0; i < pages_.size() && mapped_pages_ != 0; ++i) {
        if (pages_[i].mapped && pages_[i].chunk_pages != 0) unmap_and_release(i);
      }
      (void)api().cuMemAddressFree(base_, size_);
    } catch (...) {
      // The runtime is unloading (a backend destroyed from a static destructor at exit): the driver
      // tears the context down with everything in it.
    }
    base_ = 0;
    size_ = 0;
    pages_.clear();
    mapped_pages_ = 0;
    aliased_pages_ = 0;
    shared_.clear();
    alias_held_pages_ = 0;
  }

  void take(basic_cuda_vmm_backend& other) noexcept {
    device_ = other.device_;
    reserve_bytes_ = other.reserve_bytes_;
    shareable_ = other.shareable_;
    total_memory_ = other.total_memory_;
    page_size_ = other.page_size_;
    base_ = std::exchange(other.base_, 0);
    size_ = std::exchange(other.size_, 0);
    pages_ = std::move(other.pages_);
    other.pages_.clear();
    mapped_pages_ = std::exchange(other.mapped_pages_, 0);
    aliased_pages_ = std::exchange(other.aliased_pages_, 0);
    shared_ = std::move(other.shared_);
    other.shared_.clear();
    alias_held_pages_ = std::exchange(other.alias_held_pages_, 0);
    access_ = other.access_;
  }

  int device_ = -1;
  std::size_t reserve_bytes_ = 0;
  bool shareable_ = false;
  std::size_t total_memory_ = 0;
  std::size_t page_size_ = 0;
  std::uintptr_t base_ = 0;
  std::size_t size_ = 0;
  std::vector<page> pages_;  // indexed by (address - base_) / page_size_
  std::size_t mapped_pages_ = 0;
  std::size_t aliased_pages_ = 0;  // pages mapped as aliases (remap_pages), not counted in mapped_pages_
  std::vector<shared_mapping> shared_;  // the chunks remapped (page::shared)
  std::size_t alias_held_pages_ = 0;  // pages of chunks unmapped where they belong whose aliases remain
  std::vector<CUmemAccessDesc> access_;  // what every mapping is granted (access_descriptors())
};

/// Device memory through CUDA virtual memory: the default device backend.
using cuda_vmm_backend = basic_cuda_vmm_backend<memory_kind::device>;
/// Page-locked host memory through CUDA virtual memory (CUDA 12.2+ drivers): pinned memory that can
/// give back the pages under any free range, like device memory.
using cuda_pinned_vmm_backend = basic_cuda_vmm_backend<memory_kind::pinned>;

static_assert(chunked_paged_backend<cuda_vmm_backend>);
static_assert(chunked_paged_backend<cuda_pinned_vmm_backend>);
static_assert(shareable_paged_backend<cuda_vmm_backend>);
static_assert(peer_paged_backend<cuda_vmm_backend>);
static_assert(remapping_paged_backend<cuda_vmm_backend>);
static_assert(aliasing_paged_backend<cuda_vmm_backend>);
static_assert(room_telling_backend<cuda_vmm_backend>);
static_assert(!peer_paged_backend<cuda_pinned_vmm_backend>,
              "pinned pages are mapped for every device already");

}  // namespace stash
