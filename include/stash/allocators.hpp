#pragma once
// The compositions stash ships under names. The default for device memory is the paged design
// (CUDA virtual memory, segregated fit, spin lock, full stats): the one measured in bench/RESULTS.md.
// pow2_device_allocator is the power-of-two design ("the seed design" in the benchmarks), the baseline
// they compare against.
// Every composition takes the ordering its backend names (default_ordering_t): the device and pinned
// ones are stream-ordered with CUDA events (cuda_event_ordering), the host and simulated ones
// host-ordered.
#include <mutex>

#include "stash/backend/cuda_device_backend.hpp"
#include "stash/backend/cuda_pinned_backend.hpp"
#include "stash/backend/cuda_vmm_backend.hpp"
#include "stash/backend/host_backend.hpp"
#include "stash/backend/limited_backend.hpp"
#include "stash/backend/simulated_backend.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/buckets/power_of_two_buckets.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "stash/lock/spin_lock.hpp"
#include "stash/sharded_allocator.hpp"
#include "stash/stats/basic_stats.hpp"

namespace stash {

/// Device memory, held within a few percent of what is live: the default.
using device_caching_allocator =
    caching_allocator<cuda_vmm_backend, segregated_fit_buckets, spin_lock, basic_stats>;
/// The default design split in 8 shards, one per thread round robin: for many threads allocating at
/// once (each shard reserves its own address range and caches for itself).
using sharded_device_allocator = sharded_allocator<device_caching_allocator, 8>;
/// Device memory from whole cudaMalloc segments, split and merged: for devices without VMM support.
using segment_device_allocator =
    caching_allocator<cuda_device_backend, segregated_fit_buckets, spin_lock, basic_stats>;
/// The seed design: power-of-two classes, one cudaMalloc per block, exact-class reuse.
using pow2_device_allocator =
    caching_allocator<cuda_device_backend, power_of_two_buckets, std::mutex, basic_stats>;
/// Page-locked host memory in pages of CUDA virtual memory: held close to what is live, like device
/// memory (the default for pinned memory).
using pinned_caching_allocator =
    caching_allocator<cuda_pinned_vmm_backend, segregated_fit_buckets, spin_lock, basic_stats>;
/// Page-locked host memory in whole cudaHostAlloc segments: where pinned VMM pages are not supported.
using segment_pinned_allocator =
    caching_allocator<cuda_pinned_backend, segregated_fit_buckets, spin_lock, basic_stats>;
/// Ordinary host memory (what the memory manager uses when there is no GPU).
using host_caching_allocator =
    caching_allocator<host_backend, segregated_fit_buckets, spin_lock, basic_stats>;
/// The design above over limited_backend<Backend>: a memory limit that can be set at any time, paid
/// for only when memory is asked of the backend (the memory manager's device pools; no limit until one
/// is set). Stream-ordered as the composition over Backend itself is.
template <backend_policy Backend>
using limited_caching_allocator =
    caching_allocator<limited_backend<Backend>, segregated_fit_buckets, spin_lock, basic_stats>;
/// The default design over a simulated device: same decisions, no memory touched.
using simulated_caching_allocator =
    caching_allocator<simulated_paged_backend, segregated_fit_buckets, spin_lock, basic_stats>;
/// The seed design over a simulated device.
using simulated_pow2_allocator =
    caching_allocator<simulated_backend, power_of_two_buckets, std::mutex, basic_stats>;

/// The default design over a simulated device with simulated streams and events: tests of stream
/// order, where the test decides when each event completes (ordering()).
using simulated_stream_allocator = caching_allocator<simulated_paged_backend, segregated_fit_buckets,
                                                     spin_lock, basic_stats, simulated_ordering>;

}  // namespace stash
