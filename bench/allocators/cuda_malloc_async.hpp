#pragma once
// cudaMallocAsync / cudaFreeAsync on the trace's streams (stream 0 without a Stream column) from the device's default memory pool, with the
// release threshold raised to UINT64_MAX so the pool keeps what is freed (the configuration that
// makes it a caching allocator; with the default threshold of 0 it gives memory back at every
// synchronisation). The pool's own high-water mark of reserved memory is the peak; it is reset when
// the adapter is made, after the pool has been trimmed, so each replay starts cold.
#include <cstdint>

#include "stash/cuda/cuda_check.hpp"
#include "replay_allocator.hpp"

namespace stash::bench {

class cuda_malloc_async_allocator final : public replayable<cuda_malloc_async_allocator> {
 public:
  cuda_malloc_async_allocator() {
    int device = 0;
    STASH_CUDA_CHECK(cudaGetDevice(&device));
    STASH_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool_, device));
    STASH_CUDA_CHECK(cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &saved_threshold_));
    std::uint64_t keep_everything = UINT64_MAX;
    STASH_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep_everything));
    empty_cache();
    std::uint64_t zero = 0;  // the only value accepted: restarts the high tide from the current value
    STASH_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReservedMemHigh, &zero));
  }
  ~cuda_malloc_async_allocator() override {
    empty_cache_noexcept();
    cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &saved_threshold_);
  }
  cuda_malloc_async_allocator(const cuda_malloc_async_allocator&) = delete;
  cuda_malloc_async_allocator& operator=(const cuda_malloc_async_allocator&) = delete;

  std::string_view name() const noexcept override { return "cudaMallocAsync"; }
  void* allocate(std::size_t n) override {
    void* p = nullptr;
    STASH_CUDA_CHECK(cudaMallocAsync(&p, n, cudaStream_t{}));
    return p;
  }
  void deallocate(void* p, std::size_t) override { STASH_CUDA_CHECK(cudaFreeAsync(p, cudaStream_t{})); }
  /// On the trace's streams (replayable::run calls these when the trace has a Stream column).
  void* allocate_on(std::size_t n, void* stream) {
    void* p = nullptr;
    STASH_CUDA_CHECK(cudaMallocAsync(&p, n, static_cast<cudaStream_t>(stream)));
    return p;
  }
  void deallocate_on(void* p, std::size_t, void* stream) {
    STASH_CUDA_CHECK(cudaFreeAsync(p, static_cast<cudaStream_t>(stream)));
  }
  void empty_cache() override {
    STASH_CUDA_CHECK(cudaStreamSynchronize(cudaStream_t{}));
    STASH_CUDA_CHECK(cudaMemPoolTrimTo(pool_, 0));
  }
  std::size_t peak_reserved_bytes() const override {
    std::uint64_t high = 0;
    STASH_CUDA_CHECK(cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemHigh, &high));
    return high;
  }
  /// The pool maps physical memory as it sees fit and does not count it.
  std::optional<std::uint64_t> backend_allocs() const override { return std::nullopt; }

 private:
  void empty_cache_noexcept() noexcept {
    cudaStreamSynchronize(cudaStream_t{});
    cudaMemPoolTrimTo(pool_, 0);
  }
  cudaMemPool_t pool_{};
  std::uint64_t saved_threshold_ = 0;
};

}  // namespace stash::bench
