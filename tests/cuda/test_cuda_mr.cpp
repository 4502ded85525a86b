// stash::mr resources on a real GPU: device memory through cuda::mr::async_resource_ref on a stream
// of its own (aligned, written by a kernel, read back), pinned memory reached from host and device,
// and copies of a resource sharing one pool.
#if __has_include(<cuda/memory_resource>)

#include "stash/cuda_mr.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "cuda/cuda_support.hpp"
#include "cuda/kernels.hpp"

using namespace stash_test;

TEST_CASE("cuda::mr: device memory on a stream, over-aligned, written by a kernel and read back",
          "[cuda][cuda_mr]") {
  stash::mr::device_pool_resource mr;
  cuda::mr::async_resource_ref<cuda::mr::device_accessible> ref{mr};
  cudaStream_t stream = nullptr;
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  constexpr std::size_t count = (std::size_t{1} << 20) + 5;
  for (std::size_t alignment : {std::size_t{256}, std::size_t{4096}, std::size_t{1} << 16}) {
    INFO("alignment " << alignment);
    auto* p = static_cast<float*>(ref.allocate_async(count * sizeof(float), alignment, stream));
    REQUIRE(reinterpret_cast<std::uintptr_t>(p) % alignment == 0);
    require_device_memory(p, current_device());
    CUDA_REQUIRE(cudaStreamSynchronize(stream));  // the kernel below runs on the default stream
    CUDA_REQUIRE(launch_affine_fill(p, count, 2.0f, 1.0f));
    CUDA_REQUIRE(cudaDeviceSynchronize());
    std::vector<float> back(count, -1.0f);
    CUDA_REQUIRE(cudaMemcpy(back.data(), p, count * sizeof(float), cudaMemcpyDeviceToHost));
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < count; ++i)
      if (back[i] != static_cast<float>(i) * 2.0f + 1.0f) ++wrong;
    CHECK(wrong == 0);
    ref.deallocate_async(p, count * sizeof(float), alignment, stream);
  }
  CUDA_REQUIRE(cudaStreamSynchronize(stream));
  CHECK(mr.pool().stats().allocated_bytes == 0);
  CHECK(mr.pool().stats().allocations == 3);
  CUDA_REQUIRE(cudaStreamDestroy(stream));
}

TEST_CASE("cuda::mr: pinned memory is written on the host and copied by the device", "[cuda][cuda_mr]") {
  stash::mr::pinned_pool_resource mr;
  auto copy = mr;  // a handle on the same pool
  cuda::mr::resource_ref<cuda::mr::host_accessible, cuda::mr::device_accessible> ref{copy};
  constexpr std::size_t count = 4096;
  auto* host = static_cast<std::uint32_t*>(ref.allocate(count * sizeof(std::uint32_t), 512));
  for (std::size_t i = 0; i < count; ++i) host[i] = static_cast<std::uint32_t>(i * 7u);
  stash::mr::device_pool_resource device_mr;
  auto* device = static_cast<std::uint32_t*>(device_mr.allocate(count * 4));
  CUDA_REQUIRE(cudaMemcpy(device, host, count * 4, cudaMemcpyHostToDevice));
  std::vector<std::uint32_t> back(count, 0);
  CUDA_REQUIRE(cudaMemcpy(back.data(), device, count * 4, cudaMemcpyDeviceToHost));
  CHECK(back[count - 1] == (count - 1) * 7u);
  CHECK(mr.pool().stats().allocations == 1);  // made through the copy
  device_mr.deallocate(device, count * 4);
  ref.deallocate(host, count * sizeof(std::uint32_t), 512);
  CHECK(mr.pool().stats().allocated_bytes == 0);
  CUDA_REQUIRE(cudaDeviceSynchronize());
}

#endif  // __has_include(<cuda/memory_resource>)
