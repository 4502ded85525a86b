// The memory manager facade on host memory (pretend devices): pools per device, the owner found from
// the pointer, per-device figures, typed errors that change nothing, and threads.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "stash/memory_manager.hpp"
#include "support/failing_heap.hpp"

namespace {

using stash::memory_manager;
using stash::memory_type;

constexpr std::size_t MiB = std::size_t{1} << 20;

std::size_t good(std::size_t n) { return stash::host_caching_allocator::good_size(n); }

bool same_figures(const stash::memory_stats& a, const stash::memory_stats& b) {
  return a.detail == b.detail && a.total_allocated == b.total_allocated && a.total_cached == b.total_cached &&
         a.peak_allocated == b.peak_allocated;
}

}  // namespace

TEST_CASE("manager: without a GPU the instance runs on host memory as one device", "[manager]") {
  if (stash::device_manager::has_gpu()) {
    WARN("a GPU is visible: the instance is CUDA-backed (tests/cuda covers it)");
    return;
  }
  auto& mm = memory_manager::instance();
  REQUIRE(mm.backed_by() == memory_manager::backing::host);
  REQUIRE(mm.device_count() == 1);
  REQUIRE(mm.current_device() == 0);
  void* p = mm.allocate(1000, memory_type::device);
  REQUIRE(mm.get_stats(0).total_allocated >= good(1000));
  mm.deallocate(p);
}

TEST_CASE("manager: each device has its own pool and figures, and the owner is found from the pointer",
          "[manager]") {
  memory_manager mm(memory_manager::backing::host, 2);
  REQUIRE(mm.device_count() == 2);
  REQUIRE(mm.current_device() == 0);

  void* on0 = mm.allocate(3 * MiB + 5, memory_type::device);  // -1: the current device, 0
  void* on1 = mm.allocate(1000, memory_type::device, 1);
  void* pinned = mm.allocate_pinned(4096);
  REQUIRE(on0 != on1);
  REQUIRE(mm.get_stats(0).total_allocated == good(3 * MiB + 5));
  REQUIRE(mm.get_stats(1).total_allocated == good(1000));
  REQUIRE(mm.get_pinned_stats().total_allocated == good(4096));
  REQUIRE(mm.device_pool(0).stats().allocations == 1);
  REQUIRE(mm.device_pool(1).stats().allocations == 1);

  // Freed through the manager, each block goes back to the pool it came from.
  mm.deallocate(on1);
  REQUIRE(mm.get_stats(1).total_allocated == 0);
  REQUIRE(mm.get_stats(1).detail.deallocations == 1);
  REQUIRE(mm.get_stats(0).total_allocated == good(3 * MiB + 5));
  mm.deallocate(pinned);
  REQUIRE(mm.get_pinned_stats().total_allocated == 0);
  mm.deallocate(on0);
  REQUIRE(mm.get_stats(0).total_allocated == 0);
  REQUIRE(mm.get_stats(0).peak_allocated == good(3 * MiB + 5));
  REQUIRE(mm.get_stats(0).total_cached == mm.get_stats(0).total_reserved);

  // The same size again is served from the cache at the same address.
  void* again = mm.allocate(1000, memory_type::device, 1);
  REQUIRE(again == on1);
  REQUIRE(mm.get_stats(1).detail.cache_hits == 1);
  mm.deallocate(again);
  mm.deallocate(nullptr);  // a no-op
}

TEST_CASE("manager: pinned memory ignores the device id", "[manager]") {
  memory_manager mm(memory_manager::backing::host, 1);
  void* p = mm.allocate(100, memory_type::pinned, 7);
  REQUIRE(mm.get_pinned_stats().total_allocated == good(100));
  mm.deallocate(p);
}

TEST_CASE("manager: empty_cache, trim_cache and reset_peak act on one device", "[manager]") {
  memory_manager mm(memory_manager::backing::host, 2);
  std::vector<void*> zero, one;
  for (std::size_t n = MiB; n <= 16 * MiB; n *= 2) {
    zero.push_back(mm.allocate(n, memory_type::device, 0));
    one.push_back(mm.allocate(n, memory_type::device, 1));
  }
  for (void* p : zero) mm.deallocate(p);
  for (void* p : one) mm.deallocate(p);
  const auto cached1 = mm.get_stats(1).total_cached;
  REQUIRE(cached1 > 0);

  mm.trim_cache(8 * MiB, 0);
  REQUIRE(mm.get_stats(0).total_cached <= 8 * MiB);
  REQUIRE(mm.get_stats(1).total_cached == cached1);  // the other device keeps its cache

  mm.empty_cache(0);
  REQUIRE(mm.get_stats(0).total_cached == 0);
  REQUIRE(mm.get_stats(0).total_reserved == 0);
  REQUIRE(mm.get_stats(1).total_cached == cached1);

  const auto peak = mm.get_stats(1).peak_allocated;
  REQUIRE(peak > 0);
  mm.reset_peak(1);
  REQUIRE(mm.get_stats(1).peak_allocated == 0);  // restarts from what is live: nothing
  mm.empty_cache(1);
  REQUIRE(mm.get_stats(1).total_reserved == 0);
}

TEST_CASE("manager: bad input is a typed error and changes nothing", "[manager][errors]") {
  memory_manager mm(memory_manager::backing::host, 2);
  void* live = mm.allocate(5000, memory_type::device, 1);
  void* freed = mm.allocate(700, memory_type::device, 0);
  mm.deallocate(freed);
  const auto before0 = mm.get_stats(0);
  const auto before1 = mm.get_stats(1);
  auto unchanged = [&] {
    REQUIRE(same_figures(mm.get_stats(0), before0));
    REQUIRE(same_figures(mm.get_stats(1), before1));
  };

  for (int bad : {2, 3, -2, 1000}) {
    INFO("device " << bad);
    REQUIRE_THROWS_AS((void)mm.allocate(10, memory_type::device, bad), stash::invalid_device);
    REQUIRE_THROWS_AS(mm.get_stats(bad), stash::invalid_device);
    REQUIRE_THROWS_AS(mm.empty_cache(bad), stash::invalid_device);
    REQUIRE_THROWS_AS(mm.trim_cache(0, bad), stash::invalid_device);
    try {
      (void)mm.allocate(10, memory_type::device, bad);
    } catch (const stash::invalid_device& e) {
      REQUIRE(e.device() == bad);
    }
    unchanged();
  }

  REQUIRE(mm.allocate(0, memory_type::device) == nullptr);  // as cudaMalloc(0): nothing taken
  REQUIRE(mm.allocate(0, memory_type::device, 1) == nullptr);
  REQUIRE(mm.allocate_pinned(0) == nullptr);
  REQUIRE_THROWS_AS((void)mm.allocate(SIZE_MAX, memory_type::device, 1), stash::invalid_size);
  unchanged();

  int on_stack = 0;
  REQUIRE_THROWS_AS(mm.deallocate(&on_stack), stash::invalid_pointer);
  REQUIRE_THROWS_AS(mm.deallocate(freed), stash::double_free);  // its memory is still cached
  REQUIRE_THROWS_AS(mm.deallocate(static_cast<char*>(live) + 256), stash::invalid_pointer);
  unchanged();

  mm.deallocate(live);
  REQUIRE_THROWS_AS(mm.deallocate(live), stash::double_free);
}

TEST_CASE("manager: threads on two devices keep exact figures", "[manager][stress]") {
  memory_manager mm(memory_manager::backing::host, 2);
  constexpr int threads = 8;
  constexpr int rounds = 3000;
  std::atomic<int> corrupted{0};  // Catch2's assertions are not thread safe: count, check after join
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&mm, &corrupted, t] {
      const int device = t % 2;
      std::vector<std::pair<unsigned char*, std::size_t>> live;
      for (int i = 0; i < rounds; ++i) {
        const std::size_t n = 64 + static_cast<std::size_t>((i * 7919 + t * 104729) % 200000);
        auto* p = static_cast<unsigned char*>(mm.allocate(n, memory_type::device, device));
        p[0] = p[n - 1] = static_cast<unsigned char>(t);
        live.emplace_back(p, n);
        if (live.size() > 16) {
          auto [q, m] = live.front();
          if (q[0] != static_cast<unsigned char>(t) || q[m - 1] != static_cast<unsigned char>(t)) ++corrupted;
          mm.deallocate(q);
          live.erase(live.begin());
        }
      }
      for (auto [q, m] : live) mm.deallocate(q);
    });
  }
  for (auto& w : workers) w.join();
  REQUIRE(corrupted == 0);
  for (int device : {0, 1}) {
    const auto s = mm.get_stats(device);
    REQUIRE(s.total_allocated == 0);
    REQUIRE(s.detail.allocations == threads / 2 * rounds);
    REQUIRE(s.detail.deallocations == threads / 2 * rounds);
  }
}

TEST_CASE("manager: a host-backed manager of no devices is invalid_device at construction",
          "[manager][errors]") {
  for (int count : {0, -1, -5}) {
    INFO("host devices " << count);
    try {
      memory_manager mm(memory_manager::backing::host, count);
      FAIL("constructed");
    } catch (const stash::invalid_device& e) {
      REQUIRE(e.device() == count);
      REQUIRE(std::string(e.what()).find("at least one device") != std::string::npos);
    }
  }
}

TEST_CASE("manager: without a GPU, CUDA-backed pools say that no CUDA device is visible",
          "[manager][errors]") {
  if (stash::device_manager::has_gpu()) {
    WARN("a GPU is visible: nothing to check here");
    return;
  }
  auto no_device = [](auto&& make) {
    try {
      make();
      FAIL("constructed without a GPU");
    } catch (const stash::invalid_device& e) {
      const std::string what = e.what();
      REQUIRE(what.find("no CUDA device is visible") != std::string::npos);
      REQUIRE(what.find("-1 means the current device") == std::string::npos);
    }
  };
  no_device([] { memory_manager mm(memory_manager::backing::cuda); });
  no_device([] { stash::device_caching_allocator a; });
  no_device([] { stash::segment_device_allocator a; });
  no_device([] { stash::pow2_device_allocator a; });
  REQUIRE(std::string(stash::invalid_device(3, 2).what()).find("device count 2") != std::string::npos);
}

TEST_CASE("manager: out of memory on host memory names the device asked for", "[manager][errors]") {
  memory_manager mm(memory_manager::backing::host, 2);
  constexpr std::size_t too_much = std::size_t{1} << 61;  // below max_size, above any host heap
  for (int device : {-1, 0, 1}) {
    INFO("device " << device);
    try {
      (void)mm.allocate(too_much, memory_type::device, device);
      FAIL("allocated 2^61 bytes");
    } catch (const stash::out_of_memory& e) {
      const int expected = device == -1 ? 0 : device;
      REQUIRE(e.device() == expected);
      REQUIRE(std::string(e.what()).find("on device " + std::to_string(expected) + " ") != std::string::npos);
    }
  }
  REQUIRE(mm.get_stats(0).total_reserved == 0);
  REQUIRE(mm.get_stats(1).total_reserved == 0);
}

TEST_CASE("manager: a device's limit holds what its pool takes from the driver", "[manager][limit]") {
  memory_manager mm(memory_manager::backing::host, 2);
  std::vector<std::string> told;
  mm.attach_out_of_memory_observer([&](const stash::out_of_memory& e) { told.emplace_back(e.what()); });
  REQUIRE(mm.memory_limit(0) == memory_manager::unlimited);
  REQUIRE(mm.get_stats(0).limit_bytes == memory_manager::unlimited);

  mm.set_memory_limit(64 * MiB, 0);  // before the pool is made: it is made with the limit
  REQUIRE(mm.existing_device_pool(0) == nullptr);
  REQUIRE(mm.memory_limit(0) == 64 * MiB);
  REQUIRE(mm.get_stats(0).limit_bytes == 64 * MiB);
  REQUIRE(mm.memory_limit(1) == memory_manager::unlimited);  // the other device has none

  void* a = mm.allocate(40 * MiB, memory_type::device, 0);
  const auto held = mm.get_stats(0);
  REQUIRE(held.total_reserved >= 40 * MiB);
  REQUIRE(held.total_reserved <= 64 * MiB);
  try {
    (void)mm.allocate(40 * MiB, memory_type::device, 0);  // 80 MiB would pass the limit
    FAIL("allocated past the limit");
  } catch (const stash::out_of_memory& e) {
    REQUIRE(e.device() == 0);
    REQUIRE(e.requested_bytes() == 40 * MiB);
    REQUIRE(e.details() != nullptr);  // the manager's report
  }
  REQUIRE(told.size() == 1);
  REQUIRE(told[0].find("requested " + std::to_string(40 * MiB)) != std::string::npos);
  const auto after = mm.get_stats(0);
  REQUIRE(after.num_ooms == 1);
  REQUIRE(after.detail.oom_retries >= 1);
  REQUIRE(after.total_allocated == held.total_allocated);
  REQUIRE(after.total_reserved <= 64 * MiB);

  // Device 1 is not limited by device 0's limit.
  void* b = mm.allocate(100 * MiB, memory_type::device, 1);
  REQUIRE(mm.get_stats(1).num_ooms == 0);
  mm.deallocate(b);

  // Freed, the same request fits again.
  mm.deallocate(a);
  void* c = mm.allocate(40 * MiB, memory_type::device, 0);
  REQUIRE(mm.get_stats(0).total_reserved <= 64 * MiB);
  mm.deallocate(c);
}

TEST_CASE("manager: a limit lowered and raised applies to the pool already made", "[manager][limit]") {
  memory_manager mm(memory_manager::backing::host, 1);
  void* a = mm.allocate(32 * MiB, memory_type::device);
  mm.set_memory_limit(MiB);  // below what is held: nothing is given back by itself
  REQUIRE(mm.memory_limit() == MiB);
  REQUIRE(mm.get_stats().total_allocated >= 32 * MiB);
  mm.deallocate(a);
  mm.empty_cache();
  REQUIRE(mm.get_stats().total_reserved == 0);
  REQUIRE_THROWS_AS((void)mm.allocate(8 * MiB, memory_type::device), stash::out_of_memory);
  REQUIRE(mm.get_stats().num_ooms == 1);

  mm.set_memory_limit(16 * MiB);  // raised: the request fits
  void* b = mm.allocate(8 * MiB, memory_type::device);
  REQUIRE(mm.get_stats().total_reserved <= 16 * MiB);
  mm.set_memory_limit(memory_manager::unlimited);
  void* c = mm.allocate(64 * MiB, memory_type::device);
  REQUIRE(mm.get_stats().limit_bytes == memory_manager::unlimited);
  mm.deallocate(b);
  mm.deallocate(c);
  REQUIRE(mm.get_stats().num_ooms == 1);
}

TEST_CASE("manager: a limit from the options, and bad limits change nothing", "[manager][limit][errors]") {
  stash::manager_options options;
  options.limit_bytes = 8 * MiB;
  memory_manager mm(memory_manager::backing::host, 2, options);
  REQUIRE(mm.memory_limit(0) == 8 * MiB);
  REQUIRE(mm.memory_limit(1) == 8 * MiB);
  REQUIRE_THROWS_AS((void)mm.allocate(16 * MiB, memory_type::device, 1), stash::out_of_memory);
  mm.set_memory_limit(32 * MiB, 1);
  mm.deallocate(mm.allocate(16 * MiB, memory_type::device, 1));
  REQUIRE(mm.memory_limit(0) == 8 * MiB);

  for (int bad : {2, -2}) {
    INFO("device " << bad);
    REQUIRE_THROWS_AS(mm.set_memory_limit(MiB, bad), stash::invalid_device);
    REQUIRE_THROWS_AS(mm.set_memory_fraction(0.5, bad), stash::invalid_device);
    REQUIRE_THROWS_AS(mm.memory_limit(bad), stash::invalid_device);
  }
  for (double bad : {0.0, -0.5, 1.5, std::nan(""), HUGE_VAL}) {
    INFO("fraction " << bad);
    try {
      mm.set_memory_fraction(bad, 0);
      FAIL("accepted");
    } catch (const stash::invalid_limit& e) {
      REQUIRE(std::string(e.what()).find("must be in (0, 1]") != std::string::npos);
    }
  }
  // Host memory has no device total: a valid fraction is refused too.
  try {
    mm.set_memory_fraction(0.5, 0);
    FAIL("accepted");
  } catch (const stash::invalid_limit& e) {
    REQUIRE(std::string(e.what()).find("needs a GPU") != std::string::npos);
  }
  REQUIRE(mm.memory_limit(0) == 8 * MiB);
  REQUIRE(mm.memory_limit(1) == 32 * MiB);

  stash::manager_options fraction;
  fraction.memory_fraction = 0.5;
  REQUIRE_THROWS_AS(memory_manager(memory_manager::backing::host, 1, fraction), stash::invalid_limit);
  fraction.memory_fraction = 2;
  REQUIRE_THROWS_AS(memory_manager(memory_manager::backing::host, 1, fraction), stash::invalid_limit);
}

TEST_CASE("manager: asking for figures or emptying a cache makes no pool", "[manager]") {
  memory_manager mm(memory_manager::backing::host, 2);
  mm.empty_cache(1);
  mm.trim_cache(0, 1);
  mm.reset_peak(1);
  mm.empty_pinned_cache();
  REQUIRE(mm.get_stats(1).detail.allocations == 0);
  REQUIRE(mm.get_pinned_stats().detail.allocations == 0);
  REQUIRE(mm.existing_device_pool(1) == nullptr);
  REQUIRE(mm.existing_pinned_pool() == nullptr);
  stash::pool* made = &mm.device_pool(1);
  REQUIRE(mm.existing_device_pool(1) == made);
}

TEST_CASE("manager: a pool's walk shows what it holds, and finds the live block a pointer lies in", "[manager]") {
  memory_manager mm(memory_manager::backing::host, 2);
  void* big = mm.allocate(5 * MiB, memory_type::device);
  void* small = mm.allocate(1000, memory_type::device);
  void* gone = mm.allocate(3000, memory_type::device);
  mm.deallocate(gone);
  const stash::pool& pool = mm.device_pool(0);
  CHECK_FALSE(pool.paged());

  std::size_t held = 0, live = 0, requested = 0, regions = 0;
  std::vector<std::uintptr_t> live_starts;
  pool.visit_memory([&](std::uintptr_t, std::size_t bytes) { held += bytes, ++regions; },
                    [&](std::uintptr_t addr, std::size_t bytes, std::size_t asked) {
                      if (asked == 0) return;
                      live += bytes, requested += asked;
                      live_starts.push_back(addr);
                    });
  const auto figures = mm.get_stats(0);
  CHECK(regions >= 2);
  CHECK(held == figures.total_reserved);
  CHECK(live == figures.total_allocated);
  CHECK(requested == 5 * MiB + 1000);
  CHECK(live_starts.size() == 2);
  CHECK(std::count(live_starts.begin(), live_starts.end(), reinterpret_cast<std::uintptr_t>(big)) == 1);
  CHECK(std::count(live_starts.begin(), live_starts.end(), reinterpret_cast<std::uintptr_t>(small)) == 1);

  // A pointer inside a live block names its start and the size asked for; one in freed memory, none.
  const auto inside = pool.live_block_containing(static_cast<char*>(big) + 4 * MiB);
  CHECK(inside.first == big);
  CHECK(inside.second == 5 * MiB);
  CHECK(pool.live_block_containing(gone).first == nullptr);

  // A device whose pool is not made has nothing to walk, and a pool of pages says so.
  CHECK(mm.existing_device_pool(1) == nullptr);
  CHECK(stash::pool_of<stash::simulated_caching_allocator>().paged());
  mm.deallocate(big);
  mm.deallocate(small);
}

TEST_CASE("manager: a memory_type that is neither device nor pinned is a typed error and changes nothing",
          "[manager][errors]") {
  memory_manager mm(memory_manager::backing::host, 2);
  for (int bad : {2, 3, -1, 255}) {
    INFO("memory_type " << bad);
    REQUIRE_THROWS_AS((void)mm.allocate(1000, static_cast<memory_type>(bad), 1), stash::error);
    REQUIRE(mm.existing_device_pool(0) == nullptr);
    REQUIRE(mm.existing_device_pool(1) == nullptr);
    REQUIRE(mm.existing_pinned_pool() == nullptr);
    REQUIRE(mm.get_stats(1).total_allocated == 0);
  }
}

TEST_CASE("manager: out of memory with the host heap failing is still out_of_memory, counted and told",
          "[manager][errors][heap]") {
  namespace failing_heap = stash_test::failing_heap;
  if (!failing_heap::can_fail()) {
    WARN("operator new is not this test's own (valgrind replaces it): no heap failure can be injected");
    return;
  }
  memory_manager mm(memory_manager::backing::host, 1);
  int told = 0;
  mm.attach_out_of_memory_observer([&](const stash::out_of_memory&) { ++told; });
  mm.set_memory_limit(4 * MiB, 0);
  void* live = mm.allocate(1000, memory_type::device, 0);
  // Each heap allocation of the failing request fails in turn: once the pool has counted the request
  // as out of memory, the caller gets stash::out_of_memory and the observers heard of it.
  for (std::size_t k = 1;; ++k) {
    INFO("heap allocation " << k << " failed");
    const auto ooms_before = mm.get_stats(0).num_ooms;
    const int told_before = told;
    bool oom = false;
    failing_heap::arm(k);
    try {
      (void)mm.allocate(64 * MiB, memory_type::device, 0);
    } catch (const stash::out_of_memory&) {
      oom = true;
    } catch (const std::bad_alloc&) {
    }
    const bool failed = failing_heap::disarm();
    const bool counted = mm.get_stats(0).num_ooms == ooms_before + 1;
    REQUIRE(counted == oom);
    REQUIRE(told == told_before + (oom ? 1 : 0));
    if (!failed) break;
  }
  REQUIRE(mm.get_stats(0).total_allocated == good(1000));
  mm.deallocate(live);
}
