// The process-wide memory manager and the standard allocators on a real GPU. The manager is shared by
// every test in the process, so figures are checked as differences.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

#include "cuda/cuda_support.hpp"
#include "cuda/stream_blocker.hpp"
#include "stash/device_allocator.hpp"
#include "stash/memory_manager.hpp"
#include "stash/pinned_allocator.hpp"
#include "support/failing_heap.hpp"
#include "support/page_sharing_options.hpp"

using namespace stash_test;

namespace {

stash::memory_manager& manager() { return stash::memory_manager::instance(); }

/// The slack between what the manager says it released and what cudaMemGetInfo shows.
std::size_t release_tolerance(int device, std::uint64_t backend_frees) {
  const bool paged =
      dynamic_cast<stash::pool_of<stash::limited_caching_allocator<stash::cuda_vmm_backend>>*>(
          &manager().device_pool(device)) != nullptr;
  return paged ? 8 * MiB : 2 * MiB * (backend_frees + 1);
}

}  // namespace

TEST_CASE("the memory manager is CUDA-backed when there is a GPU", "[cuda][manager]") {
  CHECK(manager().backed_by() == stash::memory_manager::backing::cuda);
  CHECK(manager().device_count() == stash::device_manager::device_count());
  CHECK(manager().current_device() == current_device());
}

TEST_CASE("manager device memory lands on the current device and the stats follow it", "[cuda][manager]") {
  const int device = current_device();
  const auto before = manager().get_stats(device);
  void* p = manager().allocate(3 * MiB, stash::memory_type::device);
  void* q = manager().allocate(1000, stash::memory_type::device, device);
  require_device_memory(p, device);
  require_device_memory(q, device);
  write_pattern(p, 3 * MiB, 1);
  write_pattern(q, 1000, 2);
  CHECK(holds_pattern(p, 3 * MiB, 1));
  CHECK(holds_pattern(q, 1000, 2));

  const auto during = manager().get_stats(device);
  CHECK(during.detail.requested_bytes == before.detail.requested_bytes + 3 * MiB + 1000);
  CHECK(during.total_allocated >= before.total_allocated + 3 * MiB + 1000);
  CHECK(during.peak_allocated >= during.total_allocated);
  CHECK(during.total_reserved == during.total_allocated + during.total_cached);

  manager().deallocate(p);
  manager().deallocate(q);
  const auto after = manager().get_stats(device);
  CHECK(after.total_allocated == before.total_allocated);
  CHECK(after.detail.requested_bytes == before.detail.requested_bytes);
  CHECK(after.detail.deallocations == before.detail.deallocations + 2);
  CHECK(after.total_cached >= 3 * MiB);
  CHECK_THROWS_AS(manager().deallocate(p), stash::invalid_pointer);  // double free
  CHECK(current_device() == device);
}

// A free on a stream other than the block's own needs host memory (the stream's state, the block's
// other streams). The manager first tries each pool without letting errors out (try_deallocate); when the
// host heap failed there, the pool the pointer lies in must free it or fail with nothing changed, never
// free it and then call the pointer foreign.
TEST_CASE("manager: a free on another stream completes, or fails with nothing changed, whatever host "
          "allocation fails",
          "[cuda][manager][streams]") {
  if (!stash_test::failing_heap::can_fail()) {
    WARN("operator new is replaced (a sanitizer or valgrind): no host allocation failure can be injected");
    return;
  }
  const int device = current_device();
  const scoped_stream s, t;
  bool reached = true;
  for (std::size_t k = 1; reached && k < 64; ++k) {
    INFO("the free's host allocation " << k << " fails");
    void* p = manager().allocate(1000, stash::memory_type::device, device, s.s);
    const auto before = manager().get_stats(device).detail;
    bool threw_bad_alloc = false;
    stash_test::failing_heap::arm(k);
    try {
      manager().deallocate(p, t.s);
    } catch (const std::bad_alloc&) {
      threw_bad_alloc = true;
    }
    reached = stash_test::failing_heap::disarm();
    if (threw_bad_alloc) {
      CHECK(manager().get_stats(device).detail == before);
      CHECK(manager().owns(p));
      manager().deallocate(p, t.s);
    } else {
      CHECK_FALSE(manager().owns(p));
      CHECK(manager().get_stats(device).detail.deallocations == before.deallocations + 1);
    }
    CHECK_THROWS_AS(manager().deallocate(p, t.s), stash::double_free);
  }
  CHECK_FALSE(reached);  // a k the free no longer reaches was found: every failure was tried
  CUDA_REQUIRE(cudaStreamSynchronize(s.s));
  CUDA_REQUIRE(cudaStreamSynchronize(t.s));
}

TEST_CASE("manager calls with a bad device id throw invalid_device and change nothing", "[cuda][manager]") {
  const int count = device_count();
  const int device = current_device();
  CHECK_THROWS_AS(manager().allocate(MiB, stash::memory_type::device, count), stash::invalid_device);
  CHECK_THROWS_AS(manager().get_stats(count), stash::invalid_device);
  CHECK_THROWS_AS(manager().empty_cache(-5), stash::invalid_device);
  CHECK_THROWS_AS(manager().trim_cache(0, count + 1), stash::invalid_device);
  CHECK(current_device() == device);
}

// [no-initcheck]: compares cudaMemGetInfo figures, which initcheck's shadow memory disturbs.
TEST_CASE("manager empty_cache and trim_cache give the device's cache back to the driver",
          "[cuda][manager][cache][no-initcheck]") {
  const int device = current_device();
  manager().empty_cache(device);
  std::vector<void*> blocks;
  for (int i = 0; i < 16; ++i) {
    void* p = manager().allocate(32 * MiB, stash::memory_type::device, device);
    write_edges(p, 32 * MiB, static_cast<std::uint32_t>(i));
    blocks.push_back(p);
  }
  for (void* p : blocks) manager().deallocate(p);
  const auto full = manager().get_stats(device);
  REQUIRE(full.total_cached >= 16 * 32 * MiB);

  const std::size_t free_full = free_memory(device);
  const std::size_t target = full.total_cached / 2;
  manager().trim_cache(target, device);
  const auto trimmed = manager().get_stats(device);
  const std::size_t free_trimmed = free_memory(device);
  CHECK(trimmed.total_cached <= target);
  const std::size_t released = full.total_cached - trimmed.total_cached;
  INFO("trim released " << released << " bytes; free rose by "
                        << static_cast<long long>(free_trimmed) - static_cast<long long>(free_full));
  REQUIRE(free_trimmed >= free_full);
  CHECK(abs_diff(free_trimmed - free_full, released) <=
        release_tolerance(device, trimmed.detail.backend_frees - full.detail.backend_frees));

  manager().empty_cache(device);
  const auto empty = manager().get_stats(device);
  const std::size_t free_empty = free_memory(device);
  CHECK(empty.total_cached == 0);
  INFO("empty_cache released " << trimmed.total_cached << " bytes; free rose by "
                               << static_cast<long long>(free_empty) - static_cast<long long>(free_trimmed));
  REQUIRE(free_empty >= free_trimmed);
  CHECK(abs_diff(free_empty - free_trimmed, trimmed.total_cached) <=
        release_tolerance(device, empty.detail.backend_frees - trimmed.detail.backend_frees));
  CHECK(current_device() == device);
}

TEST_CASE("pinned memory from the manager is page-locked host memory", "[cuda][manager][pinned]") {
  void* a = manager().allocate_pinned(64 * KiB);
  void* b = manager().allocate(100, stash::memory_type::pinned);
  CHECK(attributes(a).type == cudaMemoryTypeHost);
  CHECK(attributes(b).type == cudaMemoryTypeHost);
  std::memset(a, 0x5a, 64 * KiB);  // host-writable
  manager().deallocate(a);
  manager().deallocate(b);
  manager().empty_pinned_cache();
  CHECK(manager().get_pinned_stats().total_reserved == 0);
}

TEST_CASE("a pinned std::vector round-trips through the device with cudaMemcpyAsync on a stream",
          "[cuda][manager][pinned]") {
  constexpr std::size_t count = std::size_t{1} << 22;  // 16 MiB of floats
  std::vector<float, stash::pinned_allocator<float>> source(count);
  std::vector<float, stash::pinned_allocator<float>> target(count, -1.0f);
  std::iota(source.begin(), source.end(), 0.25f);
  CHECK(attributes(source.data()).type == cudaMemoryTypeHost);
  CHECK(attributes(target.data()).type == cudaMemoryTypeHost);

  stash::device_allocator<float> device_alloc;
  float* d = device_alloc.allocate(count);
  require_device_memory(d, current_device());

  cudaStream_t stream = nullptr;
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  CUDA_REQUIRE(cudaMemcpyAsync(d, source.data(), count * sizeof(float), cudaMemcpyHostToDevice, stream));
  CUDA_REQUIRE(cudaMemcpyAsync(target.data(), d, count * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CUDA_REQUIRE(cudaStreamSynchronize(stream));
  CUDA_REQUIRE(cudaStreamDestroy(stream));
  CHECK(source == target);
  device_alloc.deallocate(d, count);
}

TEST_CASE("8 threads allocate through the manager with exact final figures", "[cuda][manager][threads]") {
  const int device = current_device();
  const auto before = manager().get_stats(device);
  constexpr int threads = 8;
  constexpr int iterations = 250;
  std::atomic<int> bad{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      try {
        if (cudaSetDevice(device) != cudaSuccess) ++bad;
        for (int i = 0; i < iterations; ++i) {
          const std::size_t n = 512 + static_cast<std::size_t>((i * 7919 + t * 104729) % (512 * 1024));
          void* p = manager().allocate(n, stash::memory_type::device);
          const auto v = pattern(n, static_cast<std::uint32_t>(t * 1000 + i));
          std::vector<unsigned char> back(n);
          if (cudaMemcpy(p, v.data(), n, cudaMemcpyHostToDevice) != cudaSuccess) ++bad;
          if (cudaMemcpy(back.data(), p, n, cudaMemcpyDeviceToHost) != cudaSuccess) ++bad;
          if (back != v) ++bad;
          manager().deallocate(p);
        }
      } catch (...) {
        ++bad;
      }
    });
  }
  for (auto& t : pool) t.join();
  CHECK(bad == 0);
  const auto after = manager().get_stats(device);
  CHECK(after.total_allocated == before.total_allocated);
  CHECK(after.detail.requested_bytes == before.detail.requested_bytes);
  CHECK(after.detail.allocations == before.detail.allocations + threads * iterations);
  CHECK(after.detail.deallocations == before.detail.deallocations + threads * iterations);
}

TEST_CASE("manager: device 1 memory while device 0 is current, and per-device figures",
          "[cuda][manager][multi-gpu]") {
  STASH_REQUIRE_TWO_DEVICES();
  scoped_device current(0);
  const auto before0 = manager().get_stats(0);
  const auto before1 = manager().get_stats(1);
  void* p = manager().allocate(8 * MiB, stash::memory_type::device, 1);
  CHECK(current_device() == 0);
  require_device_memory(p, 1);
  CHECK(manager().get_stats(1).detail.requested_bytes == before1.detail.requested_bytes + 8 * MiB);
  CHECK(manager().get_stats(0).detail.requested_bytes == before0.detail.requested_bytes);
  manager().deallocate(p);  // the owning pool is found from the pointer
  CHECK(manager().get_stats(1).detail.requested_bytes == before1.detail.requested_bytes);
  manager().empty_cache(1);
  CHECK(manager().get_stats(1).total_cached == 0);
  CHECK(current_device() == 0);

  stash::device_allocator<int> on1(1);
  int* q = on1.allocate(1000);
  require_device_memory(q, 1);
  on1.deallocate(q, 1000);
  CHECK(current_device() == 0);
}

TEST_CASE("a memory fraction of the device caps a manager's pool", "[cuda][manager][limit]") {
  stash::memory_manager mm(stash::memory_manager::backing::cuda);
  const std::size_t total = stash::device_manager::memory(0).total_bytes;
  CHECK(mm.memory_limit(0) == stash::memory_manager::unlimited);
  mm.set_memory_fraction(0.25, 0);
  const std::size_t limit = mm.memory_limit(0);
  CHECK(limit == static_cast<std::size_t>(0.25 * static_cast<double>(total)));
  CHECK(mm.get_stats(0).limit_bytes == limit);

  std::size_t told = 0;
  mm.attach_out_of_memory_observer([&](const stash::out_of_memory& e) { told = e.requested_bytes(); });
  void* a = mm.allocate(limit / 2, stash::memory_type::device, 0);
  require_device_memory(a, 0);
  write_pattern(a, MiB, 3);
  CHECK_THROWS_AS((void)mm.allocate(limit / 2 + limit / 4, stash::memory_type::device, 0),
                  stash::out_of_memory);
  CHECK(told == limit / 2 + limit / 4);
  const auto s = mm.get_stats(0);
  CHECK(s.num_ooms == 1);
  CHECK(s.total_reserved <= limit);
  CHECK(holds_pattern(a, MiB, 3));
  mm.set_memory_limit(stash::memory_manager::unlimited, 0);  // raised: the same request fits
  void* b = mm.allocate(limit / 2 + limit / 4, stash::memory_type::device, 0);
  require_device_memory(b, 0);
  mm.deallocate(b);
  mm.deallocate(a);
  mm.empty_cache(0);
  CHECK(mm.get_stats(0).total_reserved == 0);
}

TEST_CASE("manager stats count the pages a paged pool moved", "[cuda][manager][paged]") {
  stash::manager_options options;
  options.caching.page_slack = 0;
  options.caching.pages_between_moves = 0;  // a move is always due
  options.caching.small_region = false;     // the page-sized blocks below share the one region
  stash::memory_manager mm(stash::memory_manager::backing::cuda, 1, options);
  if (dynamic_cast<stash::pool_of<stash::limited_caching_allocator<stash::cuda_vmm_backend>>*>(
          &mm.device_pool(0)) == nullptr) {
    WARN("device 0 has no virtual memory management: its pool holds segments and moves no page");
    return;
  }
  void* first = mm.allocate(2 * MiB, stash::memory_type::device, 0);  // page 0
  void* kept = mm.allocate(2 * MiB, stash::memory_type::device, 0);   // page 1
  mm.deallocate(first);                                               // page 0 idle
  CHECK(mm.get_stats(0).page_moves == 0);
  void* big = mm.allocate(4 * MiB, stash::memory_type::device, 0);  // above page 1: pages 2 and 3
  write_pattern(big, 4 * MiB, 5);
  CHECK(holds_pattern(big, 4 * MiB, 5));
  const auto s = mm.get_stats(0);
  CHECK(s.page_moves == 1);  // page 0 moved to page 2 (high tide 3 pages, no slack), page 3 mapped
  CHECK(s.total_reserved == 3 * 2 * MiB);
  mm.deallocate(big);
  mm.deallocate(kept);
  mm.empty_cache(0);
  CHECK(mm.get_stats(0).total_reserved == 0);
}

TEST_CASE("manager: a paged pool keeps page aliases through its memory limit (keep_page_aliases)",
          "[cuda][manager][paged][aliases]") {
  stash::manager_options options;
  options.caching = stash_test::aliasing();  // every idle page moves before a new one is mapped
  stash::memory_manager mm(stash::memory_manager::backing::cuda, 1, options);
  if (dynamic_cast<stash::pool_of<stash::limited_caching_allocator<stash::cuda_vmm_backend>>*>(
          &mm.device_pool(0)) == nullptr) {
    WARN("device 0 has no virtual memory management: its pool holds segments and moves no page");
    return;
  }
  constexpr std::size_t page = 2 * MiB;
  // The contents of the 2 MiB pages from p on.
  auto pages_at = [](const void* p, std::size_t n) {
    std::vector<std::vector<unsigned char>> out(n, std::vector<unsigned char>(page));
    for (std::size_t i = 0; i < n; ++i)
      CUDA_REQUIRE(
          cudaMemcpy(out[i].data(), static_cast<const char*>(p) + i * page, page, cudaMemcpyDefault));
    return out;
  };
  void* x = mm.allocate(2 * page, stash::memory_type::device, 0);  // pages 0-1
  void* guard = mm.allocate(page, stash::memory_type::device, 0);  // page 2
  mm.deallocate(x);
  void* y = mm.allocate(3 * page, stash::memory_type::device, 0);  // pages 3-5: x's two chunks move there
  CHECK(mm.get_stats(0).page_moves == 2);
  CHECK(mm.get_stats(0).total_reserved == 4 * page);  // x's chunks counted once, the guard, y's new page
  write_pattern(y, 3 * page, 8);
  const auto under_y = pages_at(y, 3);
  mm.deallocate(y);
  // Taken back at x's address with no move: the chunks were kept mapped there, and read what was
  // written through y.
  void* x2 = mm.allocate(2 * page, stash::memory_type::device, 0);
  CHECK(x2 == x);
  CHECK(mm.get_stats(0).page_moves == 2);  // without aliases: two more moves
  CHECK(mm.get_stats(0).total_reserved == 4 * page);
  for (const auto& contents : pages_at(x2, 2))
    CHECK(std::count(under_y.begin(), under_y.end(), contents) == 1);
  mm.deallocate(x2);
  mm.deallocate(guard);
  mm.empty_cache(0);
  CHECK(mm.get_stats(0).total_reserved == 0);
}

TEST_CASE("manager: a stream destroyed after frees on it: empty_cache and another stream go on",
          "[cuda][manager][streams][destroyed]") {
  const int device = current_device();
  cudaStream_t doomed = nullptr, other = nullptr;
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&doomed, cudaStreamNonBlocking));
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking));
  void* p = manager().allocate(3 * MiB, stash::memory_type::device, device, doomed);
  void* h = manager().allocate_pinned(MiB, doomed);
  manager().deallocate(p, doomed);
  manager().deallocate(h, doomed);
  CUDA_REQUIRE(cudaStreamDestroy(doomed));
  void* q = manager().allocate(3 * MiB, stash::memory_type::device, device, other);
  manager().empty_cache(device);
  write_pattern(q, 3 * MiB, 3);
  CHECK(holds_pattern(q, 3 * MiB, 3));
  manager().deallocate(q, other);
  manager().empty_cache(device);
  CUDA_REQUIRE(cudaStreamSynchronize(other));
  CUDA_REQUIRE(cudaStreamDestroy(other));
}
