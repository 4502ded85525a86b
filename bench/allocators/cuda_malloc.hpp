#pragma once
// Plain cudaMalloc / cudaFree (device) and cudaMallocHost / cudaFreeHost (pinned): no cache at all,
// every request goes to the driver. Held bytes are the bytes live (the driver's own rounding is not
// visible), so reserved/live is 1 by construction and the interesting figure is the time.
#include <algorithm>

#include "stash/cuda/cuda_check.hpp"
#include "replay_allocator.hpp"

namespace stash::bench {

enum class cuda_memory { device, pinned };

template <cuda_memory Memory>
class cuda_uncached_allocator final : public replayable<cuda_uncached_allocator<Memory>> {
  static constexpr bool device = Memory == cuda_memory::device;

 public:
  std::string_view name() const noexcept override { return device ? "cudaMalloc" : "cudaMallocHost"; }
  void* allocate(std::size_t n) override {
    void* p = nullptr;
    if constexpr (device) {
      STASH_CUDA_CHECK(cudaMalloc(&p, n));
    } else {
      STASH_CUDA_CHECK(cudaMallocHost(&p, n));
    }
    live_ += n;
    peak_ = std::max(peak_, live_);
    ++calls_;
    return p;
  }
  void deallocate(void* p, std::size_t n) override {
    if constexpr (device) {
      STASH_CUDA_CHECK(cudaFree(p));
    } else {
      STASH_CUDA_CHECK(cudaFreeHost(p));
    }
    live_ -= n;
  }
  void empty_cache() override {}
  std::size_t peak_reserved_bytes() const override { return peak_; }
  std::optional<std::uint64_t> backend_allocs() const override { return calls_; }

 private:
  std::size_t live_ = 0;
  std::size_t peak_ = 0;
  std::uint64_t calls_ = 0;
};

using cuda_malloc_allocator = cuda_uncached_allocator<cuda_memory::device>;
using cuda_malloc_host_allocator = cuda_uncached_allocator<cuda_memory::pinned>;

}  // namespace stash::bench
