// PyTorch's caching allocator through its C++ entry points (c10/cuda/CUDACachingAllocator.h):
// raw_alloc / raw_delete on the current stream of device 0, emptyCache, and the device statistics
// (reserved_bytes[AGGREGATE].peak, num_device_alloc) that torch.cuda.memory_stats() reports.
//
// The allocator is a process-wide singleton: each adapter empties its cache and resets the peak and
// the counters when it is made, so every replay starts cold, and empties the cache when it goes.
#include "torch_allocator.hpp"

#include <c10/cuda/CUDACachingAllocator.h>

#include <algorithm>
#include <mutex>

namespace stash::bench {
namespace {

namespace torch_alloc = c10::cuda::CUDACachingAllocator;

constexpr int device = 0;
constexpr std::size_t aggregate = 0;  // StatType::AGGREGATE: small and large pools together

class torch_allocator final : public replayable<torch_allocator> {
 public:
  torch_allocator() {
    static std::once_flag initialised;
    std::call_once(initialised, [] { torch_alloc::init(1); });
    torch_alloc::emptyCache();
    torch_alloc::resetPeakStats(device);
    torch_alloc::resetAccumulatedStats(device);
  }
  ~torch_allocator() override {
    torch_alloc::emptyCache();
    if (limited_) torch_alloc::setMemoryFraction(1.0, device);
  }
  torch_allocator(const torch_allocator&) = delete;
  torch_allocator& operator=(const torch_allocator&) = delete;

  std::string_view name() const noexcept override { return "torch"; }
  void* allocate(std::size_t n) override { return torch_alloc::raw_alloc(n); }
  void deallocate(void* p, std::size_t) override { torch_alloc::raw_delete(p); }
  /// On the trace's streams; PyTorch frees a block to the pool of the stream it was allocated on.
  void* allocate_on(std::size_t n, void* stream) {
    return torch_alloc::raw_alloc_with_stream(n, static_cast<cudaStream_t>(stream));
  }
  void deallocate_on(void* p, std::size_t, void*) { torch_alloc::raw_delete(p); }
  void empty_cache() override { torch_alloc::emptyCache(); }
  std::size_t peak_reserved_bytes() const override {
    return static_cast<std::size_t>(torch_alloc::getDeviceStats(device).reserved_bytes[aggregate].peak);
  }
  std::optional<std::uint64_t> backend_allocs() const override {
    return static_cast<std::uint64_t>(torch_alloc::getDeviceStats(device).num_device_alloc);
  }
  /// torch.cuda.set_per_process_memory_fraction: the fraction of the device's total memory that
  /// `bytes` is. PyTorch then frees its cached blocks and retries before it throws
  /// c10::OutOfMemoryError; the fraction goes back to 1 when the adapter goes.
  bool set_memory_limit(std::size_t bytes) override {
    std::size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess || total == 0) return false;
    torch_alloc::setMemoryFraction(std::min(1.0, static_cast<double>(bytes) / static_cast<double>(total)), device);
    limited_ = true;
    return true;
  }
  bool is_out_of_memory(const std::exception& e) const noexcept override {
    return dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr;
  }

 private:
  bool limited_ = false;
};

}  // namespace

std::unique_ptr<replay_allocator> make_torch_allocator() { return std::make_unique<torch_allocator>(); }

}  // namespace stash::bench
