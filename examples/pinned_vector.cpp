// std::vector over pinned host memory, copied to the GPU and back asynchronously when there is one.
#include <cuda_runtime_api.h>
#include <stash/fmt.hpp>
#include <stash/stash.hpp>

#include <numeric>
#include <vector>

int main() {
  using pinned_vector = std::vector<float, stash::pinned_allocator<float>>;
  pinned_vector host(1 << 20);
  std::iota(host.begin(), host.end(), 0.0f);

  auto& mm = stash::memory_manager::instance();
  if (mm.backed_by() != stash::memory_manager::backing::cuda) {
    fmt::print("no GPU: the vector lives in ordinary host memory; {} floats, last = {}\n", host.size(), host.back());
    fmt::print("pinned pool: {}\n", mm.get_pinned_stats());
    return 0;
  }

  cudaStream_t stream = nullptr;
  if (cudaStreamCreate(&stream) != cudaSuccess) return 1;
  const std::size_t bytes = host.size() * sizeof(float);
  void* device = mm.allocate(bytes, stash::memory_type::device);
  pinned_vector back(host.size(), -1.0f);
  bool ok = cudaMemcpyAsync(device, host.data(), bytes, cudaMemcpyHostToDevice, stream) == cudaSuccess &&
            cudaMemcpyAsync(back.data(), device, bytes, cudaMemcpyDeviceToHost, stream) == cudaSuccess &&
            cudaStreamSynchronize(stream) == cudaSuccess;
  ok = ok && back == host;
  fmt::print("round trip of {} floats through the GPU: {}\n", host.size(), ok ? "intact" : "CORRUPTED");
  mm.deallocate(device);
  cudaStreamDestroy(stream);
  fmt::print("pinned pool: {}\n", mm.get_pinned_stats());
  return ok ? 0 : 1;
}
