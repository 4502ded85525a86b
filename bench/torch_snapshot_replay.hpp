#pragma once
// stash-replay --torch-snapshot: replays a trace with the default stash composition, through a
// stash::memory_history, up to the operation at which the most bytes are live, and writes the
// allocator's state then as a PyTorch memory snapshot (stash/torch_snapshot.hpp). Compiled in a
// translation unit of its own (torch_snapshot_replay.cpp), like stash+log, so the timed compositions
// compile as they do without it.
#include <filesystem>

#include "trace_reader.hpp"

namespace stash::bench {

/// `cuda`: on the GPU (stash::device_caching_allocator), else on the simulated device. Returns the
/// number of operations replayed.
std::size_t write_torch_snapshot_at_peak(const trace& t, const std::filesystem::path& file, bool cuda);

}  // namespace stash::bench
