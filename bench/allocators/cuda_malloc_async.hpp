#pragma once
// cudaMallocAsync / cudaFreeAsync on stream 0 from the device's default memory pool, with the
// release threshold raised to UINT64_MAX so the pool keeps what is freed (the configuration that
// makes it a caching allocator; with the default threshold of 0 it gives memory back at every
// synchronisation). The pool's own high-water mark of reserved memory is the peak; it is reset when
// the adapter is made, after the pool has been trimmed, so each replay starts cold.
#include <cstdint>

#include "cuda_check.hpp"
#include "replay_allocator.hpp"

namespace stash::bench {

class cuda_malloc_async_allocator final : public replayable<cuda_malloc_async_allocator> {
 public:
  cuda_malloc_async_allocator() {
    int device = 0;
    cuda_check(cudaGetDevice(&device), "cudaGetDevice");
    cuda_check(cudaDeviceGetDefaultMemPool(&pool_, device), "cudaDeviceGetDefaultMemPool");
    cuda_check(cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &saved_threshold_),
               "cudaMemPoolGetAttribute(ReleaseThreshold)");
    std::uint64_t keep_everything = UINT64_MAX;
    cuda_check(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep_everything),
               "cudaMemPoolSetAttribute(ReleaseThreshold)");
    empty_cache();
    std::uint64_t zero = 0;  // the only value accepted: restarts the high tide from the current value
    cuda_check(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReservedMemHigh, &zero),
               "cudaMemPoolSetAttribute(ReservedMemHigh)");
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
    cuda_check(cudaMallocAsync(&p, n, cudaStream_t{}), "cudaMallocAsync");
    return p;
  }
  void deallocate(void* p, std::size_t) override { cuda_check(cudaFreeAsync(p, cudaStream_t{}), "cudaFreeAsync"); }
  void empty_cache() override {
    cuda_check(cudaStreamSynchronize(cudaStream_t{}), "cudaStreamSynchronize");
    cuda_check(cudaMemPoolTrimTo(pool_, 0), "cudaMemPoolTrimTo");
  }
  std::size_t peak_reserved_bytes() const override {
    std::uint64_t high = 0;
    cuda_check(cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemHigh, &high),
               "cudaMemPoolGetAttribute(ReservedMemHigh)");
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
