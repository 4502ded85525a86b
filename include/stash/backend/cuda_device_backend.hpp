#pragma once
// Segments of device memory from cudaMalloc, on one fixed device. cudaMalloc is synchronous and
// slow (tens of microseconds to milliseconds), which is the whole reason the caching allocator exists.
#include <cuda_runtime_api.h>

#include <cstddef>

#include "stash/backend/backend.hpp"
#include "stash/cuda/cuda_check.hpp"
#include "stash/cuda/capture_mode.hpp"
#include "stash/cuda/device_guard.hpp"
#include "stash/device_manager.hpp"
#include "stash/ordering/cuda_event_ordering.hpp"

namespace stash {

class cuda_device_backend {
 public:
  static constexpr memory_kind kind = memory_kind::device;
  /// The GPU uses this memory on streams: allocators over it are stream-ordered by default.
  using ordering_type = cuda_event_ordering;

  /// -1: the device that is current when the backend is made. Throws stash::invalid_device for an
  /// id out of range (or any id on a machine with no device).
  explicit cuda_device_backend(int device = -1) : device_(device_manager::resolve(device)) {}

  /// nullptr when the device is out of memory; stash::cuda_error for any other failure. The caller's
  /// current device is the same afterwards.
  void* allocate(std::size_t bytes) {
    cuda::device_guard guard(device_);
    cuda::relaxed_capture_mode relaxed;  // legal during a graph capture (cuda/capture_mode.hpp)
    void* p = nullptr;
    const cudaError_t status = cudaMalloc(&p, bytes);
    return cuda::allocated(status, "cudaMalloc", __FILE__, __LINE__) ? p : nullptr;
  }

  void deallocate(void* p, std::size_t /*bytes*/) noexcept {
    // cudaFree synchronizes the device, so pending kernels that still use the segment finish first.
    // It fails only when the pointer is bad or the driver is shutting down (a cache released from a
    // static destructor at exit); neither can be reported from here.
    try {
      cuda::device_guard guard(device_);
      if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
    } catch (...) {
      (void)cudaGetLastError();
    }
  }

  /// cudaMalloc returns 256-byte aligned memory in practice but hands out whole 2 MiB pages for
  /// large requests; rounding segments to 512 bytes wastes little and keeps small segments small.
  std::size_t granularity() const noexcept { return 512; }
  int device() const noexcept { return device_; }

 private:
  int device_;
};

static_assert(segment_backend<cuda_device_backend>);

}  // namespace stash
