#pragma once
// The importing side of stash/ipc.hpp: maps a block another process exported (ipc_export) into this
// process's device address space, as cudaIpcOpenMemHandle does for cudaMalloc'd memory.
//
// Each piece's physical allocation is imported from its file descriptor and mapped whole (cuMemMap
// maps a handle only from its start), chunk after chunk in one reserved range, so the block is as
// contiguous here as in the exporter. Access is granted to the exporter's device, as there.
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "stash/cuda/cuda_check.hpp"
#include "stash/cuda/device_guard.hpp"
#include "stash/cuda/driver_api.hpp"
#include "stash/error.hpp"
#include "stash/ipc.hpp"
#include "stash/ipc_handle.hpp"

namespace stash {

/// A block of another process, mapped here until destroyed (or moved from). The exporter's block must
/// stay allocated while it is used; the physical memory lasts until both sides have unmapped it.
class ipc_mapping {
 public:
  /// Imports and maps h. Throws stash::error for a handle whose pieces cannot be one block, and
  /// stash::cuda_error when the driver refuses (nothing is left mapped then). h keeps its descriptors.
  explicit ipc_mapping(const ipc_handle& h) : device_(h.device()) {
    if (!h.consistent()) throw error("stash: ipc_mapping: the handle's pieces do not describe one block");
    const cuda::driver_api& cu = cuda::driver_api::get();
    cuda::device_guard guard(device_);
    STASH_CUDA_CHECK(cudaFree(nullptr));  // the primary context the driver calls run in
    bytes_ = h.mapped_bytes();
    STASH_CU_CHECK(cu.cuMemAddressReserve(&base_, bytes_, 0, 0, 0));
    try {
      std::size_t at = 0;
      for (std::size_t i = 0; i < h.pieces().size(); ++i) {
        const ipc_piece& piece = h.pieces()[i];
        CUmemGenericAllocationHandle handle = 0;
        STASH_CU_CHECK(cu.cuMemImportFromShareableHandle(
            &handle, reinterpret_cast<void*>(static_cast<std::intptr_t>(h.fds()[i])),
            CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR));
        const CUresult mapped = cu.cuMemMap(base_ + at, piece.chunk_bytes, 0, handle, 0);
        (void)cu.cuMemRelease(handle);  // the mapping keeps the memory; unmapping gives it back
        STASH_CU_CHECK(mapped);
        mapped_.push_back({at, piece.chunk_bytes});
        at += piece.chunk_bytes;
      }
      CUmemAccessDesc access{};
      access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
      access.location.id = device_;
      access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
      STASH_CU_CHECK(cu.cuMemSetAccess(base_, bytes_, &access, 1));
    } catch (...) {
      unmap_all();
      throw;
    }
    pointer_ = reinterpret_cast<void*>(base_ + h.mapping_offset());
    size_ = h.size();
  }

  ipc_mapping(ipc_mapping&& other) noexcept { *this = std::move(other); }
  ipc_mapping& operator=(ipc_mapping&& other) noexcept {
    if (this != &other) {
      unmap_all();
      device_ = other.device_;
      base_ = std::exchange(other.base_, 0);
      bytes_ = std::exchange(other.bytes_, 0);
      mapped_ = std::move(other.mapped_);
      other.mapped_.clear();
      pointer_ = std::exchange(other.pointer_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ipc_mapping(const ipc_mapping&) = delete;
  ipc_mapping& operator=(const ipc_mapping&) = delete;
  /// Unmaps the block. Work queued on it must be done: as with cudaIpcCloseMemHandle, the caller
  /// synchronizes first.
  ~ipc_mapping() { unmap_all(); }

  /// The block, as the exporter's pointer is there; its size as asked for; its device.
  void* get() const noexcept { return pointer_; }
  std::size_t size() const noexcept { return size_; }
  int device() const noexcept { return device_; }

 private:
  struct span {
    std::size_t at;
    std::size_t bytes;
  };

  void unmap_all() noexcept {
    if (base_ == 0) return;
    try {
      const cuda::driver_api& cu = cuda::driver_api::get();
      cuda::device_guard guard(device_);
      for (const span& s : mapped_) (void)cu.cuMemUnmap(base_ + s.at, s.bytes);
      (void)cu.cuMemAddressFree(base_, bytes_);
    } catch (...) {  // no driver left (process exit): it frees everything itself
    }
    mapped_.clear();
    base_ = 0;
    bytes_ = 0;
    pointer_ = nullptr;
  }

  int device_ = -1;
  CUdeviceptr base_ = 0;
  std::size_t bytes_ = 0;
  std::vector<span> mapped_;
  void* pointer_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace stash
