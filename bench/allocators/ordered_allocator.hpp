#pragma once
// `stash-ordered` (simulated backend): the default device composition's shape (paged, spin lock,
// basic stats) with its stream layer on, over the simulated device, ordered by counting_ordering
// (events complete at once, every call counted). Its warm replay runs the instructions the GPU
// composition runs on the host, less the CUDA runtime's own, so callgrind on it measures what stream
// order costs the fast path. Built in a translation unit of its own (as stash+log), so the `stash`
// composition in stash-replay's is compiled as before.
#include <cstdint>
#include <memory>

#include "counting_ordering.hpp"
#include "replay_allocator.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/lock/spin_lock.hpp"
#include "stash/stats/basic_stats.hpp"

namespace stash::bench {

using simulated_ordered_allocator = stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets,
                                                             stash::spin_lock, stash::basic_stats, counting_ordering>;

std::unique_ptr<replay_allocator> make_ordered_stash_allocator();
/// How many records late `stash-lagged`'s events complete.
inline constexpr std::uint64_t lagged_records = 2;
/// `stash-lagged`: the same, with events completing lagged_records records late (counting_ordering's
/// lag), as when the GPU runs behind the host.
std::unique_ptr<replay_allocator> make_lagged_stash_allocator();
/// `stash-ordered` (or `stash-lagged`) over limited_backend<simulated_paged_backend>, for
/// stash-replay --least-memory.
std::unique_ptr<replay_allocator> make_limited_ordered_stash_allocator(bool lagged);

}  // namespace stash::bench
