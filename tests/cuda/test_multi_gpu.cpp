// Two or more devices: memory lands on the device asked for whatever device is current, the caller's
// current device never changes, and each device's figures are its own. Skipped (with a warning) on
// a machine with one device.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "cuda/allocators.hpp"
#include "cuda/cuda_support.hpp"
#include "stash/cuda/device_guard.hpp"

using namespace stash_test;

// [no-initcheck]: compares cudaMemGetInfo figures, which initcheck's shadow memory disturbs.
TEMPLATE_TEST_CASE("an allocator for device 1 hands out device 1 memory while device 0 is current",
                   "[cuda][multi-gpu][no-initcheck]", device_segregated, device_pow2, device_vmm) {
  STASH_REQUIRE_TWO_DEVICES();
  scoped_device current(0);
  const std::size_t free0 = free_memory(0);
  const std::size_t free1 = free_memory(1);
  {
    TestType alloc{typename TestType::backend_type(1)};
    CHECK(current_device() == 0);
    CHECK(alloc.device() == 1);
    void* p = alloc.allocate(256 * MiB);
    CHECK(current_device() == 0);
    require_device_memory(p, 1);
    {
      // With the owner current: the copy works whether or not device 0 can reach device 1.
      stash::cuda::device_guard on_owner(1);
      write_edges(p, 256 * MiB, 3);
      CHECK(holds_edges(p, 256 * MiB, 3));
    }
    CHECK(free1 - free_memory(1) >= 256 * MiB);
    CHECK(abs_diff(free_memory(0), free0) < 64 * MiB);
    alloc.deallocate(p);
    CHECK(current_device() == 0);
    alloc.trim_cache(0);
    CHECK(current_device() == 0);
  }
  CHECK(current_device() == 0);
  CHECK(abs_diff(free_memory(1), free1) <= 8 * MiB);
}

TEST_CASE("backends resolve -1 to the device current when they are made", "[cuda][multi-gpu]") {
  STASH_REQUIRE_TWO_DEVICES();
  scoped_device current(1);
  stash::cuda_device_backend device_backend;
  stash::cuda_vmm_backend vmm_backend;
  CHECK(device_backend.device() == 1);
  CHECK(vmm_backend.device() == 1);
  {
    stash::cuda::device_guard guard(0);
    CHECK(current_device() == 0);
    void* p = device_backend.allocate(MiB);  // still device 1
    require_device_memory(p, 1);
    CHECK(current_device() == 0);
    device_backend.deallocate(p, MiB);
    CHECK(current_device() == 0);
  }
  CHECK(current_device() == 1);
}

TEMPLATE_TEST_CASE("each device's allocator keeps its own figures", "[cuda][multi-gpu]", device_segregated,
                   device_vmm) {
  STASH_REQUIRE_TWO_DEVICES();
  TestType on0{typename TestType::backend_type(0)};
  TestType on1{typename TestType::backend_type(1)};
  void* a = on0.allocate(10 * MiB);
  void* b = on1.allocate(30 * MiB);
  void* c = on1.allocate(MiB);
  require_device_memory(a, 0);
  require_device_memory(b, 1);
  require_device_memory(c, 1);
  CHECK(on0.stats().requested_bytes == 10 * MiB);
  CHECK(on1.stats().requested_bytes == 31 * MiB);
  CHECK(on0.stats().allocations == 1);
  CHECK(on1.stats().allocations == 2);
  CHECK_FALSE(on0.owns(b));
  CHECK_THROWS_AS(on0.deallocate(b), stash::invalid_pointer);
  on1.deallocate(b);
  on1.deallocate(c);
  on0.deallocate(a);
  on1.empty_cache();
  CHECK(on1.stats().reserved_bytes == 0);
  CHECK(on0.stats().reserved_bytes > 0);
}

TEST_CASE("threads on two devices, each with its device's allocator", "[cuda][multi-gpu][threads]") {
  STASH_REQUIRE_TWO_DEVICES();
  device_vmm on0{stash::cuda_vmm_backend(0)};
  device_segregated on1{stash::cuda_device_backend(1)};
  constexpr int per_thread = 200;
  std::atomic<int> bad{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < 8; ++t) {
    pool.emplace_back([&, t] {
      const int device = t % 2;
      // Each thread sits on the other device: the allocator must place memory by its own device.
      if (cudaSetDevice(1 - device) != cudaSuccess) ++bad;
      try {
        for (int i = 0; i < per_thread; ++i) {
          const std::size_t n = 4096 + static_cast<std::size_t>(i % 7) * 100 * KiB;
          void* p = device == 0 ? on0.allocate(n) : on1.allocate(n);
          cudaPointerAttributes a{};
          if (cudaPointerGetAttributes(&a, p) != cudaSuccess || a.device != device) ++bad;
          {
            // Copies run with the owner current: they work whether or not the devices reach each other.
            stash::cuda::device_guard on_owner(device);
            const std::vector<unsigned char> fill(n, static_cast<unsigned char>(t));
            if (cudaMemcpy(p, fill.data(), n, cudaMemcpyHostToDevice) != cudaSuccess) ++bad;
            unsigned char last = 0;
            if (cudaMemcpy(&last, static_cast<char*>(p) + n - 1, 1, cudaMemcpyDeviceToHost) != cudaSuccess ||
                last != t)
              ++bad;
          }
          if (device == 0) on0.deallocate(p, n); else on1.deallocate(p, n);
        }
        int now = -1;
        if (cudaGetDevice(&now) != cudaSuccess || now != 1 - device) ++bad;
      } catch (...) {
        ++bad;
      }
    });
  }
  for (auto& t : pool) t.join();
  CHECK(bad == 0);
  for (const auto& s : {on0.stats(), on1.stats()}) {
    CHECK(s.allocations == 4 * per_thread);
    CHECK(s.deallocations == 4 * per_thread);
    CHECK(s.allocated_bytes == 0);
  }
}
