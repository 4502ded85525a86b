#pragma once
// Segments of page-locked host memory from cudaHostAlloc: what asynchronous copies between host and
// device need to really run asynchronously. Pinning costs hundreds of microseconds per call and grows
// with the size, so these segments are worth caching even more than device memory.
#include <cuda_runtime_api.h>

#include <cstddef>

#include "stash/backend/backend.hpp"
#include "stash/cuda/cuda_check.hpp"
#include "stash/ordering/cuda_event_ordering.hpp"

namespace stash {

class cuda_pinned_backend {
 public:
  static constexpr memory_kind kind = memory_kind::pinned;
  /// The GPU uses this memory on streams: allocators over it are stream-ordered by default.
  using ordering_type = cuda_event_ordering;

  /// `flags` as for cudaHostAlloc (cudaHostAllocPortable, cudaHostAllocMapped, ...).
  explicit cuda_pinned_backend(unsigned flags = cudaHostAllocDefault) noexcept : flags_(flags) {}

  /// nullptr when host memory cannot be pinned; stash::cuda_error for any other failure.
  void* allocate(std::size_t bytes) {
    void* p = nullptr;
    const cudaError_t status = cudaHostAlloc(&p, bytes, flags_);
    return cuda::allocated(status, "cudaHostAlloc", __FILE__, __LINE__) ? p : nullptr;
  }

  void deallocate(void* p, std::size_t /*bytes*/) noexcept {
    if (cudaFreeHost(p) != cudaSuccess) (void)cudaGetLastError();
  }

  /// Pinning works on whole host pages.
  std::size_t granularity() const noexcept { return 4096; }
  int device() const noexcept { return -1; }
  unsigned flags() const noexcept { return flags_; }

 private:
  unsigned flags_;
};

static_assert(segment_backend<cuda_pinned_backend>);

}  // namespace stash
