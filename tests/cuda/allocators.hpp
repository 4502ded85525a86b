#pragma once
// The caching allocator compositions over real CUDA memory that the tests run against.
#include <mutex>

#include "stash/backend/cuda_device_backend.hpp"
#include "stash/backend/cuda_pinned_backend.hpp"
#include "stash/backend/cuda_vmm_backend.hpp"
#include "stash/buckets/power_of_two_buckets.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/lock/spin_lock.hpp"
#include "stash/stats/basic_stats.hpp"

namespace stash_test {

/// cudaMalloc segments carved by size class.
using device_segregated = stash::caching_allocator<stash::cuda_device_backend, stash::segregated_fit_buckets,
                                                   std::mutex, stash::basic_stats>;
/// cudaMalloc segments of exactly power-of-two sizes (the seed design).
using device_pow2 = stash::caching_allocator<stash::cuda_device_backend, stash::power_of_two_buckets,
                                             std::mutex, stash::basic_stats>;
/// One reserved range backed page by page (the default device allocator).
using device_vmm = stash::caching_allocator<stash::cuda_vmm_backend, stash::segregated_fit_buckets,
                                            stash::spin_lock, stash::basic_stats>;
using pinned_segregated = stash::caching_allocator<stash::cuda_pinned_backend, stash::segregated_fit_buckets,
                                                   stash::spin_lock, stash::basic_stats>;

template <class Allocator>
inline constexpr bool is_paged = stash::paged_backend<typename Allocator::backend_type>;

/// Slack allowed between what the allocator says it gave back and what cudaMemGetInfo shows: the
/// driver works in 2 MiB pages per cudaMalloc segment; with VMM only page tables (a few 2 MiB pages)
/// come and go besides the pages themselves.
template <class Allocator>
std::size_t driver_tolerance(std::uint64_t backend_frees) {
  constexpr std::size_t two_mib = std::size_t{2} << 20;
  if constexpr (is_paged<Allocator>) {
    return 4 * two_mib;
  } else {
    return two_mib * (backend_frees + 1);
  }
}

}  // namespace stash_test
