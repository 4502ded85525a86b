// NCCL on stash buffers: an in-place all-reduce over two devices, each buffer from a paged stash
// allocator of its device. Its own binary (stash_nccl_tests), so that only it links NCCL. Skipped
// (with a warning) on a machine with fewer than two devices.
#include <catch2/catch.hpp>
#include <nccl.h>

#include <cstddef>
#include <vector>

#include "cuda/allocators.hpp"
#include "cuda/cuda_support.hpp"
#include "cuda/kernels.hpp"

using namespace stash_test;

#define NCCL_REQUIRE(call)                                                   \
  do {                                                                       \
    const ncclResult_t stash_test_nccl_ = (call);                            \
    INFO(#call << " -> " << ncclGetErrorString(stash_test_nccl_));           \
    REQUIRE(stash_test_nccl_ == ncclSuccess);                                \
  } while (0)

TEST_CASE("an in-place NCCL all-reduce over stash buffers of two devices sums them", "[cuda][peers][nccl]") {
  STASH_REQUIRE_TWO_DEVICES();
  constexpr int ranks = 2;
  const int devices[ranks] = {0, 1};
  scoped_device current(0);
  ncclComm_t comms[ranks] = {};
  NCCL_REQUIRE(ncclCommInitAll(comms, ranks, devices));

  // Several pages and a partial one per rank.
  const std::size_t n = (9 * MiB + 4 * KiB) / sizeof(float);
  device_vmm on0{stash::cuda_vmm_backend(0)};
  device_vmm on1{stash::cuda_vmm_backend(1)};
  device_vmm* alloc[ranks] = {&on0, &on1};
  float* data[ranks] = {};
  cudaStream_t streams[ranks] = {};
  for (int r = 0; r < ranks; ++r) {
    scoped_device on(devices[r]);
    CUDA_REQUIRE(cudaStreamCreateWithFlags(&streams[r], cudaStreamNonBlocking));
    data[r] = static_cast<float*>(alloc[r]->allocate(n * sizeof(float), streams[r]));
    require_device_memory(data[r], devices[r]);
    // Rank r holds i * (r + 1) + 10 * r: the sum over both ranks is 3 i + 10.
    CUDA_REQUIRE(launch_affine_fill(data[r], n, static_cast<float>(r + 1), 10.0f * static_cast<float>(r)));
    CUDA_REQUIRE(cudaDeviceSynchronize());
  }

  NCCL_REQUIRE(ncclGroupStart());
  for (int r = 0; r < ranks; ++r)
    NCCL_REQUIRE(ncclAllReduce(data[r], data[r], n, ncclFloat, ncclSum, comms[r], streams[r]));
  NCCL_REQUIRE(ncclGroupEnd());

  for (int r = 0; r < ranks; ++r) {
    scoped_device on(devices[r]);
    CUDA_REQUIRE(cudaStreamSynchronize(streams[r]));
    std::vector<float> back(n);
    CUDA_REQUIRE(cudaMemcpy(back.data(), data[r], n * sizeof(float), cudaMemcpyDeviceToHost));
    std::size_t wrong = 0;
    // Values stay below 2^24 (exact in float) for the indices compared.
    for (std::size_t i = 0; i < n; ++i) {
      const float expected = 3.0f * static_cast<float>(i) + 10.0f;
      wrong += back[i] != expected ? 1 : 0;
    }
    INFO("rank " << r);
    CHECK(wrong == 0);
    alloc[r]->deallocate(data[r], streams[r]);
    alloc[r]->empty_cache();  // waits for the free on the stream, which is destroyed next
    CUDA_REQUIRE(cudaStreamDestroy(streams[r]));
  }
  for (ncclComm_t c : comms) NCCL_REQUIRE(ncclCommDestroy(c));
}
