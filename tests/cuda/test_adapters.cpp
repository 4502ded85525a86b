// std::vector over device_allocator on a real GPU: sized on the host without a host store (device
// memory from the default pool is not host-accessible, so a store would fault), written by a kernel,
// copied back and checked.
#include <catch2/catch.hpp>

#include <cstddef>
#include <vector>

#include "cuda/cuda_support.hpp"
#include "cuda/kernels.hpp"
#include "stash/device_allocator.hpp"
#include "stash/memory_manager.hpp"

using namespace stash_test;

TEST_CASE("a std::vector over device_allocator is sized on the host, filled by a kernel and read back",
          "[cuda][adapters]") {
  using device_vector = std::vector<float, stash::device_allocator<float>>;
  constexpr std::size_t count = (std::size_t{1} << 22) + 17;  // 16 MiB and a ragged end
  auto& manager = stash::memory_manager::instance();
  const int device = current_device();
  const auto before = manager.get_stats(device);
  {
    device_vector v(count);
    REQUIRE(v.size() == count);
    require_device_memory(v.data(), device);
    CHECK(manager.get_stats(device).total_allocated - before.total_allocated >= count * sizeof(float));

    CUDA_REQUIRE(launch_affine_fill(v.data(), v.size(), 0.5f, 3.0f));
    CUDA_REQUIRE(cudaDeviceSynchronize());
    std::vector<float> back(count, -1.0f);
    CUDA_REQUIRE(cudaMemcpy(back.data(), v.data(), count * sizeof(float), cudaMemcpyDeviceToHost));
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < count; ++i)
      if (back[i] != static_cast<float>(i) * 0.5f + 3.0f) ++wrong;
    CHECK(wrong == 0);

    // Moving hands the device memory over untouched.
    const float* data = v.data();
    device_vector moved = std::move(v);
    REQUIRE(moved.data() == data);
    float last = 0.0f;
    CUDA_REQUIRE(cudaMemcpy(&last, moved.data() + count - 1, sizeof(float), cudaMemcpyDeviceToHost));
    CHECK(last == static_cast<float>(count - 1) * 0.5f + 3.0f);
  }
  CHECK(manager.get_stats(device).total_allocated == before.total_allocated);
}
