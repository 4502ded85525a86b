// The policies on their own: bucket policies (rounding, bucket indices, segment sizes), stats
// policies, lock policies, and the concepts that say what models each.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>

#include "stash/backend/backend.hpp"
#include "stash/testing/failing_backend.hpp"
#include "stash/backend/host_backend.hpp"
#include "stash/backend/simulated_backend.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/buckets/buckets.hpp"
#include "stash/buckets/power_of_two_buckets.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/lock/lock.hpp"
#include "stash/lock/null_lock.hpp"
#include "stash/lock/spin_lock.hpp"
#include "stash/stats/basic_stats.hpp"
#include "stash/stats/no_stats.hpp"
#include "stash/stats/stats.hpp"
#include "support/checked_backend.hpp"

namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;

/// Sizes that cover every region of a bucket policy: every small size, both sides of every power of
/// two, and random sizes up to max_size; sorted, so monotonicity can be checked pairwise.
template <class Buckets>
std::vector<std::size_t> probe_sizes() {
  std::vector<std::size_t> sizes;
  for (std::size_t n = 1; n <= 20000; ++n) sizes.push_back(n);
  for (unsigned k = 8; k < 63; ++k) {
    const std::size_t p = std::size_t{1} << k;
    for (std::size_t d : {std::size_t{1}, std::size_t{255}, std::size_t{256}, std::size_t{257}}) {
      if (p - d <= Buckets::max_size) sizes.push_back(p - d);
      if (p + d <= Buckets::max_size) sizes.push_back(p + d);
    }
    if (p <= Buckets::max_size) sizes.push_back(p);
  }
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) sizes.push_back(1 + rng() % Buckets::max_size);
  sizes.push_back(Buckets::max_size);
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  return sizes;
}

}  // namespace

// ---- bucket policies -----------------------------------------------------------------------------

TEMPLATE_TEST_CASE("buckets: round_up, bucket_index and segment_size keep their promises",
                   "[policies][buckets]", stash::power_of_two_buckets, stash::segregated_fit_buckets) {
  STATIC_REQUIRE(stash::bucket_policy<TestType>);
  std::size_t previous_rounded = 0, previous_index = 0;
  for (std::size_t n : probe_sizes<TestType>()) {
    const std::size_t r = TestType::round_up(n);
    const std::size_t i = TestType::bucket_index(r);
    if (r < n || r % 256 != 0 || r < previous_rounded || i >= TestType::bucket_count || i < previous_index ||
        TestType::round_up(r) != r || TestType::segment_size(r) < r) {
      INFO("n = " << n << ", round_up = " << r << ", bucket_index = " << i);
      REQUIRE(r >= n);
      REQUIRE(r % 256 == 0);
      REQUIRE(r >= previous_rounded);  // monotone
      REQUIRE(i < TestType::bucket_count);
      REQUIRE(i >= previous_index);    // monotone
      REQUIRE(TestType::round_up(r) == r);
      REQUIRE(TestType::segment_size(r) >= r);
    }
    previous_rounded = r;
    previous_index = i;
  }
  REQUIRE(TestType::round_up(TestType::max_size) == TestType::max_size);
  REQUIRE(TestType::bucket_index(TestType::max_size) == TestType::bucket_count - 1);
}

TEST_CASE("buckets: power_of_two_buckets exact values", "[policies][buckets]") {
  using b = stash::power_of_two_buckets;
  STATIC_REQUIRE(b::exact_fit);
  REQUIRE(b::round_up(1) == 256);
  REQUIRE(b::round_up(256) == 256);
  REQUIRE(b::round_up(257) == 512);
  REQUIRE(b::round_up(1000) == 1024);
  REQUIRE(b::round_up(1024) == 1024);
  REQUIRE(b::round_up(1025) == 2048);
  REQUIRE(b::round_up(3 * MiB) == 4 * MiB);
  REQUIRE(b::round_up((std::size_t{1} << 40) + 1) == std::size_t{1} << 41);
  REQUIRE(b::bucket_index(256) == 8);
  REQUIRE(b::bucket_index(1024) == 10);
  REQUIRE(b::bucket_index(4 * MiB) == 22);
  REQUIRE(b::segment_size(1024) == 1024);  // one segment per block
  // Exact fit: every bucket holds exactly one size class.
  std::map<std::size_t, std::size_t> size_of_bucket;
  for (unsigned k = 8; k <= 62; ++k) {
    const std::size_t r = std::size_t{1} << k;
    REQUIRE(size_of_bucket.emplace(b::bucket_index(r), r).second);
  }
}

TEST_CASE("buckets: segregated_fit_buckets exact values and 1/16 bucket width", "[policies][buckets]") {
  using b = stash::segregated_fit_buckets;
  STATIC_REQUIRE_FALSE(b::exact_fit);
  REQUIRE(b::round_up(1) == 256);
  REQUIRE(b::round_up(256) == 256);
  REQUIRE(b::round_up(257) == 512);
  REQUIRE(b::round_up(1000) == 1024);
  REQUIRE(b::round_up(1025) == 1280);
  REQUIRE(b::round_up(3 * MiB + 1) == 3 * MiB + 256);
  REQUIRE(b::bucket_index(256) == 1);
  REQUIRE(b::bucket_index(15 * 256) == 15);
  REQUIRE(b::bucket_index(16 * 256) == 16);
  REQUIRE(b::bucket_index(31 * 256) == 31);
  REQUIRE(b::bucket_index(32 * 256) == 32);
  REQUIRE(b::bucket_index(33 * 256) == 32);  // 32..33 share a list: two granules wide
  REQUIRE(b::bucket_index(34 * 256) == 33);
  REQUIRE(b::bucket_index(MiB) == 16 * 9);  // 4096 granules: top bit 12, sub 0 -> (12 - 4 + 1) * 16
  REQUIRE(b::segment_size(256) == 2 * MiB);
  REQUIRE(b::segment_size(MiB) == 2 * MiB);
  REQUIRE(b::segment_size(MiB + 256) == 2 * MiB);
  REQUIRE(b::segment_size(3 * MiB) == 4 * MiB);
  REQUIRE(b::segment_size(4 * MiB) == 4 * MiB);
  REQUIRE(b::segment_size(4 * MiB + 256) == 6 * MiB);

  // Blocks filed in one list differ by less than 1/16 of the smallest of them.
  std::map<std::size_t, std::size_t> smallest_in_bucket;
  for (std::size_t units = 1; units < 200000; ++units) {
    const std::size_t r = units * 256;
    const std::size_t i = b::bucket_index(r);
    const auto [it, first] = smallest_in_bucket.emplace(i, r);
    if (!first && (r - it->second) * 16 >= it->second) {
      INFO("bucket " << i << " holds " << it->second << " and " << r);
      REQUIRE((r - it->second) * 16 < it->second);
    }
  }
  // Lists are numbered 1, 2, 3, ... without gaps (0 would be blocks of 0 bytes).
  REQUIRE(smallest_in_bucket.begin()->first == 1);
  REQUIRE(smallest_in_bucket.rbegin()->first == smallest_in_bucket.size());

  // The one-formula bucket_index files every size where the two-case definition does: one list per
  // granule count below 16, else (top - 3) * 16 + the four bits below the top one. Every count below
  // 2^20, and every power of two up to max_size with its neighbours.
  auto two_case = [](std::size_t rounded) -> std::size_t {
    const std::size_t units = rounded / 256;
    if (units < 16) return units;
    const unsigned top = 63 - static_cast<unsigned>(__builtin_clzll(units));
    return (top - 3) * 16 + ((units >> (top - 4)) & 15);
  };
  std::size_t mismatches = 0;
  for (std::size_t units = 1; units < (std::size_t{1} << 20); ++units)
    mismatches += b::bucket_index(units * 256) != two_case(units * 256) ? 1 : 0;
  for (unsigned k = 8; k <= 62; ++k)
    for (std::size_t r : {(std::size_t{1} << k) - 256, std::size_t{1} << k, (std::size_t{1} << k) + 256})
      if (r >= 256 && r <= b::max_size) mismatches += b::bucket_index(r) != two_case(r) ? 1 : 0;
  REQUIRE(mismatches == 0);
}

// ---- stats policies ------------------------------------------------------------------------------

TEST_CASE("stats: basic_stats counts every event exactly", "[policies][stats]") {
  stash::basic_stats s;
  s.on_reserve(4096);
  s.on_allocate(1000, 1024, false);
  s.on_allocate(10, 256, true);
  s.on_deallocate(1000, 1024);
  s.on_reserve(8192);
  s.on_release(4096);
  s.on_oom_retry();
  stash::stats_snapshot x = s.snapshot();
  REQUIRE(x.allocated_bytes == 256);
  REQUIRE(x.requested_bytes == 10);
  REQUIRE(x.reserved_bytes == 8192);
  REQUIRE(x.cached_bytes == 8192 - 256);
  REQUIRE(x.peak_allocated_bytes == 1280);
  REQUIRE(x.peak_requested_bytes == 1010);
  REQUIRE(x.peak_reserved_bytes == 4096 + 8192);
  REQUIRE(x.allocations == 2);
  REQUIRE(x.deallocations == 1);
  REQUIRE(x.cache_hits == 1);
  REQUIRE(x.backend_allocations == 2);
  REQUIRE(x.backend_frees == 1);
  REQUIRE(x.oom_retries == 1);
  s.reset_peak();
  x = s.snapshot();
  REQUIRE(x.peak_allocated_bytes == 256);
  REQUIRE(x.peak_requested_bytes == 10);
  REQUIRE(x.peak_reserved_bytes == 8192);
  REQUIRE(x.allocations == 2);  // counts are not peaks
}

TEST_CASE("stats: no_stats is empty, keeps nothing, and the allocator still keeps its own books",
          "[policies][stats]") {
  STATIC_REQUIRE(std::is_empty_v<stash::no_stats>);
  STATIC_REQUIRE(sizeof(stash::no_stats) == 1);
  STATIC_REQUIRE(stash::stats_policy<stash::no_stats>);
  stash::no_stats s;
  s.on_reserve(4096);
  s.on_allocate(1000, 1024, false);
  s.on_oom_retry();
  REQUIRE(s.snapshot() == stash::stats_snapshot{});

  stash::caching_allocator<stash::simulated_backend, stash::segregated_fit_buckets, stash::null_lock,
                           stash::no_stats>
      a;
  void* p = a.allocate(1000);
  void* q = a.allocate(3 * MiB);
  a.deallocate(q);
  REQUIRE(a.stats() == stash::stats_snapshot{});
  REQUIRE(a.reserved_bytes() == 2 * MiB + 4 * MiB);
  REQUIRE(a.cached_bytes() == 6 * MiB - 1024);
  REQUIRE(a.backend().in_use_bytes() == a.reserved_bytes());
  a.deallocate(p);
  a.empty_cache();
  REQUIRE(a.reserved_bytes() == 0);
  REQUIRE(a.backend().in_use_bytes() == 0);
}

// ---- lock policies -------------------------------------------------------------------------------

TEST_CASE("locks: null_lock has the shape of a mutex and never blocks", "[policies][locks]") {
  STATIC_REQUIRE(stash::lock_policy<stash::null_lock>);
  STATIC_REQUIRE(std::is_empty_v<stash::null_lock>);
  stash::null_lock l;
  l.lock();
  REQUIRE(l.try_lock());  // even while "held": it guards nothing
  l.unlock();
  l.unlock();
  { std::lock_guard guard(l); }
  constexpr bool usable_in_constant_expressions = [] {
    stash::null_lock c;
    c.lock();
    c.unlock();
    return c.try_lock();
  }();
  STATIC_REQUIRE(usable_in_constant_expressions);
}

TEST_CASE("locks: spin_lock excludes", "[policies][locks]") {
  STATIC_REQUIRE(stash::lock_policy<stash::spin_lock>);
  stash::spin_lock l;
  REQUIRE(l.try_lock());
  REQUIRE_FALSE(l.try_lock());  // held
  l.unlock();
  REQUIRE(l.try_lock());
  l.unlock();

  SECTION("a second thread waits in lock() until the first unlocks") {
    l.lock();
    std::atomic<bool> acquired{false};
    std::thread t([&] {
      l.lock();
      acquired = true;
      l.unlock();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    REQUIRE_FALSE(acquired.load());
    l.unlock();
    t.join();
    REQUIRE(acquired.load());
  }

  SECTION("increments under the lock are never lost") {
    long counter = 0;  // not atomic: only the lock protects it
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        for (int i = 0; i < 20000; ++i) {
          std::lock_guard guard(l);
          ++counter;
        }
      });
    for (auto& t : threads) t.join();
    REQUIRE(counter == 4 * 20000);
  }
}

// ---- concepts ------------------------------------------------------------------------------------

namespace {

struct no_deallocate_backend {  // a segment backend that forgot deallocate
  static constexpr stash::memory_kind kind = stash::memory_kind::host;
  void* allocate(std::size_t) { return nullptr; }
  std::size_t granularity() const noexcept { return 256; }
  int device() const noexcept { return -1; }
};

struct throwing_deallocate_backend {  // deallocate must be noexcept
  static constexpr stash::memory_kind kind = stash::memory_kind::host;
  void* allocate(std::size_t) { return nullptr; }
  void deallocate(void*, std::size_t) {}
  std::size_t granularity() const noexcept { return 256; }
  int device() const noexcept { return -1; }
};

struct no_kind_backend {
  void* allocate(std::size_t) { return nullptr; }
  void deallocate(void*, std::size_t) noexcept {}
  std::size_t granularity() const noexcept { return 256; }
  int device() const noexcept { return -1; }
};

struct no_move_paged_backend {  // a paged backend that cannot move pages
  static constexpr stash::memory_kind kind = stash::memory_kind::simulated;
  std::size_t page_size() const noexcept { return 2 * MiB; }
  std::uintptr_t reserve(std::size_t) { return 0; }
  bool map_page(std::uintptr_t) { return false; }
  void unmap_page(std::uintptr_t) noexcept {}
  int device() const noexcept { return 0; }
};

struct no_try_lock {
  void lock() {}
  void unlock() {}
};

struct no_snapshot_stats {
  void on_allocate(std::size_t, std::size_t, bool) {}
  void on_deallocate(std::size_t, std::size_t) {}
  void on_reserve(std::size_t) {}
  void on_release(std::size_t) {}
  void on_oom_retry() {}
  void reset_peak() {}
};

struct no_exact_fit_buckets {
  static constexpr std::size_t max_size = 1 << 20;
  static constexpr std::size_t bucket_count = 8;
  static std::size_t round_up(std::size_t n) { return n; }
  static std::size_t bucket_index(std::size_t) { return 0; }
  static std::size_t segment_size(std::size_t n) { return n; }
};

template <class B>
concept composable = requires { typename stash::caching_allocator<B>; };

}  // namespace

TEST_CASE("concepts: the models satisfy them and non-models do not", "[policies][concepts]") {
  // Backends.
  STATIC_REQUIRE(stash::segment_backend<stash::host_backend>);
  STATIC_REQUIRE(stash::segment_backend<stash::simulated_backend>);
  STATIC_REQUIRE(stash::paged_backend<stash::simulated_paged_backend>);
  STATIC_REQUIRE_FALSE(stash::paged_backend<stash::simulated_backend>);
  STATIC_REQUIRE_FALSE(stash::segment_backend<stash::simulated_paged_backend>);
  STATIC_REQUIRE(stash::segment_backend<stash::failing_backend<stash::simulated_backend>>);
  STATIC_REQUIRE(stash::paged_backend<stash::failing_backend<stash::simulated_paged_backend>>);
  STATIC_REQUIRE_FALSE(stash::paged_backend<stash::failing_backend<stash::host_backend>>);
  STATIC_REQUIRE(stash::segment_backend<stash_test::checked_backend<stash::host_backend>>);
  STATIC_REQUIRE(stash::paged_backend<stash_test::checked_backend<stash::simulated_paged_backend>>);
  STATIC_REQUIRE_FALSE(stash::backend_policy<no_deallocate_backend>);
  STATIC_REQUIRE_FALSE(stash::backend_policy<throwing_deallocate_backend>);
  STATIC_REQUIRE_FALSE(stash::backend_policy<no_kind_backend>);
  STATIC_REQUIRE_FALSE(stash::backend_policy<no_move_paged_backend>);
  STATIC_REQUIRE_FALSE(stash::backend_policy<int>);
  STATIC_REQUIRE(composable<stash::host_backend>);
  STATIC_REQUIRE(composable<stash::simulated_paged_backend>);
  STATIC_REQUIRE_FALSE(composable<no_deallocate_backend>);
  // Locks.
  STATIC_REQUIRE(stash::lock_policy<std::mutex>);
  STATIC_REQUIRE(stash::lock_policy<stash::null_lock>);
  STATIC_REQUIRE(stash::lock_policy<stash::spin_lock>);
  STATIC_REQUIRE_FALSE(stash::lock_policy<no_try_lock>);
  // Stats.
  STATIC_REQUIRE(stash::stats_policy<stash::basic_stats>);
  STATIC_REQUIRE(stash::stats_policy<stash::no_stats>);
  STATIC_REQUIRE_FALSE(stash::stats_policy<no_snapshot_stats>);
  // Buckets.
  STATIC_REQUIRE(stash::bucket_policy<stash::power_of_two_buckets>);
  STATIC_REQUIRE(stash::bucket_policy<stash::segregated_fit_buckets>);
  STATIC_REQUIRE_FALSE(stash::bucket_policy<no_exact_fit_buckets>);
}
