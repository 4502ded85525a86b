// Peers: paged device memory is mapped for every device that can reach it (README, "Behaviour we
// chose"), so a kernel on another GPU and peer copies work on stash buffers as on cudaMalloc'd ones.
// No test here enables peer access: the access granted at map time is what they rely on. Skipped
// (with a warning) on a machine with one device; the kernel test also where device 1 cannot reach
// device 0. The NCCL all-reduce is in tests/cuda/nccl (its own binary, the only one linking NCCL).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "cuda/allocators.hpp"
#include "cuda/cuda_support.hpp"
#include "cuda/kernels.hpp"

using namespace stash_test;

namespace {

bool can_access_peer(int device, int peer) {
  int can = 0;
  CUDA_REQUIRE(cudaDeviceCanAccessPeer(&can, device, peer));
  return can != 0;
}

std::vector<float> iota_floats(std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 4096);
  return v;
}

}  // namespace

TEST_CASE("the vmm backend grants access to exactly the devices that can reach its device", "[cuda][peers]") {
  STASH_REQUIRE_TWO_DEVICES();
  for (int owner = 0; owner < device_count(); ++owner) {
    const stash::cuda_vmm_backend backend(owner);
    std::vector<int> expected;
    for (int d = 0; d < device_count(); ++d)
      if (d != owner && can_access_peer(d, owner)) expected.push_back(d);
    CHECK(backend.peers() == expected);
  }
}

TEST_CASE("a kernel on device 1 reads and writes a stash buffer of device 0", "[cuda][peers]") {
  STASH_REQUIRE_TWO_DEVICES();
  if (!can_access_peer(1, 0)) {
    WARN("device 1 cannot access device 0 (cudaDeviceCanAccessPeer): skipped");
    return;
  }
  scoped_device current(0);
  device_vmm alloc{stash::cuda_vmm_backend(0)};
  // Several pages and a partial one, so that the buffer spans more than one mapping.
  const std::size_t n = (5 * MiB + 12 * KiB) / sizeof(float);
  auto* data = static_cast<float*>(alloc.allocate(n * sizeof(float)));
  require_device_memory(data, 0);
  const std::vector<float> before = iota_floats(n);
  CUDA_REQUIRE(cudaMemcpy(data, before.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  {
    scoped_device on_peer(1);
    cudaStream_t stream = nullptr;
    CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CUDA_REQUIRE(launch_affine_update(data, n, 2.0f, 1.0f, stream));
    CUDA_REQUIRE(cudaStreamSynchronize(stream));
    CUDA_REQUIRE(cudaStreamDestroy(stream));
  }
  std::vector<float> after(n);
  CUDA_REQUIRE(cudaMemcpy(after.data(), data, n * sizeof(float), cudaMemcpyDeviceToHost));
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < n; ++i) wrong += after[i] != before[i] * 2.0f + 1.0f ? 1 : 0;
  CHECK(wrong == 0);
  alloc.deallocate(data);
}

TEST_CASE("cudaMemcpyPeerAsync copies between stash buffers of devices 0 and 1, both ways", "[cuda][peers]") {
  STASH_REQUIRE_TWO_DEVICES();
  scoped_device current(0);
  device_vmm on0{stash::cuda_vmm_backend(0)};
  device_vmm on1{stash::cuda_vmm_backend(1)};
  const std::size_t bytes = 6 * MiB + 256;
  void* a = on0.allocate(bytes);
  void* b = on1.allocate(bytes);
  require_device_memory(a, 0);
  require_device_memory(b, 1);
  cudaStream_t stream = nullptr;
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  write_pattern(a, bytes, 11);
  CUDA_REQUIRE(cudaMemcpyPeerAsync(b, 1, a, 0, bytes, stream));
  CUDA_REQUIRE(cudaStreamSynchronize(stream));
  CHECK(holds_pattern(b, bytes, 11));

  write_pattern(b, bytes, 12);
  CUDA_REQUIRE(cudaMemcpyPeerAsync(a, 0, b, 1, bytes, stream));
  CUDA_REQUIRE(cudaStreamSynchronize(stream));
  CHECK(holds_pattern(a, bytes, 12));

  CUDA_REQUIRE(cudaStreamDestroy(stream));
  on0.deallocate(a);
  on1.deallocate(b);
}
