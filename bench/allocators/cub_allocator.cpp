// cub::CachingDeviceAllocator configured as a caching allocator for the whole size range: power-of-two
// bins (bin_growth 2) from 256 B (min_bin 8) to 1 TiB (max_bin 40), no limit on the bytes cached.
// CUB's default configuration (bins 512 B .. 2 MiB, at most 6 MiB cached) would send every block
// above 2 MiB straight to cudaMalloc/cudaFree, which measures cudaMalloc, not a cache.
//
// CUB does not report what it holds, but it keeps the figure: cached_bytes[device] has `free`
// (cached) and `live` bytes, and with no limit on the cache free + live is exactly what it holds
// from cudaMalloc. The adapter reads it after every allocation; the map node is stable, so that is
// two loads. Those reads are outside CUB's lock, so an adapter shared by threads does not track.
#include "cub_allocator.hpp"

#include <cub/util_allocator.cuh>

#include <algorithm>

#include "stash/cuda/cuda_check.hpp"

namespace stash::bench {
namespace {

class cub_allocator final : public replayable<cub_allocator> {
 public:
  explicit cub_allocator(bool track) : cub_(/*bin_growth*/ 2, /*min_bin*/ 8, /*max_bin*/ 40), track_(track) {
    int device = 0;
    STASH_CUDA_CHECK(cudaGetDevice(&device));
    totals_ = &cub_.cached_bytes[device];
  }
  std::string_view name() const noexcept override { return "cub"; }
  void* allocate(std::size_t n) override {
    void* p = nullptr;
    if (!track_) {
      STASH_CUDA_CHECK(cub_.DeviceAllocate(&p, n));
      return p;
    }
    const std::size_t held_before = held();
    STASH_CUDA_CHECK(cub_.DeviceAllocate(&p, n));
    const std::size_t held_after = held();
    if (held_after > held_before) ++backend_allocs_;
    peak_ = std::max(peak_, held_after);
    return p;
  }
  void deallocate(void* p, std::size_t) override {
    STASH_CUDA_CHECK(cub_.DeviceFree(p));
  }
  void empty_cache() override { STASH_CUDA_CHECK(cub_.FreeAllCached()); }
  std::size_t peak_reserved_bytes() const override { return peak_; }
  std::optional<std::uint64_t> backend_allocs() const override { return backend_allocs_; }

 private:
  std::size_t held() const noexcept { return totals_->free + totals_->live; }

  cub::CachingDeviceAllocator cub_;
  bool track_;
  const cub::CachingDeviceAllocator::TotalBytes* totals_ = nullptr;
  std::size_t peak_ = 0;
  std::uint64_t backend_allocs_ = 0;
};

}  // namespace

std::unique_ptr<replay_allocator> make_cub_allocator(bool shared_by_threads) {
  return std::make_unique<cub_allocator>(!shared_by_threads);
}

}  // namespace stash::bench
