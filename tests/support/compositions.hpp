#pragma once
// The compositions every typed suite runs over, and what a test needs to know about each.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <random>

#include "stash/testing/failing_backend.hpp"
#include "stash/backend/host_backend.hpp"
#include "stash/backend/simulated_backend.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/buckets/power_of_two_buckets.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/lock/null_lock.hpp"
#include "stash/lock/spin_lock.hpp"
#include "stash/stats/basic_stats.hpp"

namespace stash_test {

using stash::basic_stats;
using stash::caching_allocator;
using stash::failing_backend;
using stash::host_backend;
using stash::null_lock;
using stash::power_of_two_buckets;
using stash::segregated_fit_buckets;
using stash::simulated_backend;
using stash::simulated_paged_backend;
using stash::spin_lock;

using host_segregated = caching_allocator<host_backend, segregated_fit_buckets, std::mutex, basic_stats>;
using host_pow2 = caching_allocator<host_backend, power_of_two_buckets, null_lock, basic_stats>;
using simulated_segregated =
    caching_allocator<simulated_backend, segregated_fit_buckets, spin_lock, basic_stats>;
using simulated_pow2 = caching_allocator<simulated_backend, power_of_two_buckets, std::mutex, basic_stats>;
using paged_segregated =
    caching_allocator<simulated_paged_backend, segregated_fit_buckets, std::mutex, basic_stats>;
using failing_host_segregated =
    caching_allocator<failing_backend<host_backend>, segregated_fit_buckets, null_lock, basic_stats>;
using failing_simulated_pow2 =
    caching_allocator<failing_backend<simulated_backend>, power_of_two_buckets, spin_lock, basic_stats>;
using failing_paged_segregated = caching_allocator<failing_backend<simulated_paged_backend>,
                                                   segregated_fit_buckets, spin_lock, basic_stats>;

#define STASH_TEST_COMPOSITIONS                                                                      \
  stash_test::host_segregated, stash_test::host_pow2, stash_test::simulated_segregated,             \
      stash_test::simulated_pow2, stash_test::paged_segregated, stash_test::failing_host_segregated, \
      stash_test::failing_simulated_pow2, stash_test::failing_paged_segregated

/// The same composition over another backend.
template <class Allocator, class NewBackend>
struct rebind_backend;
template <class B, class Buckets, class Lock, class Stats, class NewBackend>
struct rebind_backend<caching_allocator<B, Buckets, Lock, Stats>, NewBackend> {
  using type = caching_allocator<NewBackend, Buckets, Lock, Stats>;
};

template <class Allocator>
constexpr bool is_paged = stash::paged_backend<typename Allocator::backend_type>;

/// The allocator hands out real, writable host memory.
template <class Allocator>
constexpr bool touches_memory = Allocator::kind == stash::memory_kind::host;

/// Sizes spread evenly over orders of magnitude in [1, max_bytes].
class log_uniform_sizes {
 public:
  explicit log_uniform_sizes(std::size_t max_bytes)
      : exponent_(0.0, std::log2(static_cast<double>(max_bytes))) {}
  template <class Rng>
  std::size_t operator()(Rng& rng) {
    const auto n = static_cast<std::size_t>(std::exp2(exponent_(rng)));
    return n == 0 ? 1 : n;
  }

 private:
  std::uniform_real_distribution<double> exponent_;
};

}  // namespace stash_test
