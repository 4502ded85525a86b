// Host threads sharing one allocator per device: every block is private to its thread while live
// (its data survives the other threads' traffic), and the final figures are exact.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cuda/allocators.hpp"
#include "cuda/cuda_support.hpp"

using namespace stash_test;

namespace {

/// What a worker found wrong; Catch's assertions are not thread safe, so workers only count.
struct failures {
  std::atomic<int> data{0};
  std::atomic<int> placement{0};
  std::atomic<int> device_changed{0};
  std::atomic<int> exceptions{0};
  std::atomic<int> cuda{0};
};

/// One worker: allocate, write a pattern, keep a few blocks live, check each before freeing it.
template <class Allocator>
void worker(Allocator& alloc, int device, unsigned thread, int iterations, failures& f) {
  try {
    if (cudaSetDevice(device) != cudaSuccess) ++f.cuda;
    std::mt19937 rng(1234u + thread);
    struct block {
      void* p;
      std::size_t n;
      std::uint32_t seed;
    };
    std::vector<block> live;
    std::vector<unsigned char> back;
    auto check_and_free = [&](const block& b) {
      back.resize(b.n);
      if (cudaMemcpy(back.data(), b.p, b.n, cudaMemcpyDeviceToHost) != cudaSuccess) ++f.cuda;
      if (back != pattern(b.n, b.seed)) ++f.data;
      alloc.deallocate(b.p, b.n);
    };
    for (int i = 0; i < iterations; ++i) {
      const std::size_t n = std::size_t{1} + rng() % (rng() % 4 == 0 ? 4 * MiB : 64 * KiB);
      const std::uint32_t seed = thread * 100000u + static_cast<std::uint32_t>(i);
      void* p = alloc.allocate(n);
      cudaPointerAttributes a{};
      if (cudaPointerGetAttributes(&a, p) != cudaSuccess || a.type != cudaMemoryTypeDevice ||
          a.device != device || reinterpret_cast<std::uintptr_t>(p) % 256 != 0)
        ++f.placement;
      const auto v = pattern(n, seed);
      if (cudaMemcpy(p, v.data(), n, cudaMemcpyHostToDevice) != cudaSuccess) ++f.cuda;
      live.push_back({p, n, seed});
      if (live.size() > 4) {
        const std::size_t victim = rng() % live.size();
        check_and_free(live[victim]);
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(victim));
      }
    }
    for (const auto& b : live) check_and_free(b);
    int now = -1;
    if (cudaGetDevice(&now) != cudaSuccess || now != device) ++f.device_changed;
  } catch (...) {
    ++f.exceptions;
  }
}

template <class Allocator>
void require_no_failures(const failures& f) {
  CHECK(f.data == 0);
  CHECK(f.placement == 0);
  CHECK(f.device_changed == 0);
  CHECK(f.exceptions == 0);
  CHECK(f.cuda == 0);
}

}  // namespace

TEMPLATE_TEST_CASE("8 host threads share one device allocator", "[cuda][allocator][threads]",
                   device_segregated, device_pow2, device_vmm) {
  const int device = current_device();
  TestType alloc{typename TestType::backend_type(device)};
  constexpr unsigned threads = 8;
  constexpr int iterations = 300;
  failures f;
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&, t] { worker(alloc, device, t, iterations, f); });
  for (auto& t : pool) t.join();

  require_no_failures<TestType>(f);
  const auto s = alloc.stats();
  CHECK(s.allocations == threads * iterations);
  CHECK(s.deallocations == threads * iterations);
  CHECK(s.allocated_bytes == 0);
  CHECK(s.requested_bytes == 0);
  CHECK(s.cached_bytes == s.reserved_bytes);
  CHECK(s.reserved_bytes == alloc.reserved_bytes());
  CHECK(s.cache_hits > 0);
  alloc.empty_cache();
  CHECK(alloc.stats().reserved_bytes == 0);
  CHECK(current_device() == device);
}
