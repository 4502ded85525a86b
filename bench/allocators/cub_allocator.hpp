#pragma once
// cub::CachingDeviceAllocator from CCCL. Its header is kept out of every other translation unit
// (it drags in CCCL's configuration), so only this factory is visible.
#include <memory>

#include "replay_allocator.hpp"

namespace stash::bench {

/// `shared_by_threads`: skip the peak and backend-call tracking, which reads CUB's counters outside
/// its lock (peak_reserved_bytes and backend_allocs then report 0).
std::unique_ptr<replay_allocator> make_cub_allocator(bool shared_by_threads);

}  // namespace stash::bench
