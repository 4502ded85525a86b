#pragma once
// stash-replay --timeline: replays a trace once more on a fresh allocator, untimed, and records live
// and reserved bytes after every operation into a stash::timeline (one series per trace and
// allocator), which stash-replay writes as one HTML page.
#include <span>
#include <string>
#include <vector>

#include "allocators/replay_allocator.hpp"
#include "stash/timeline.hpp"
#include "trace_reader.hpp"

namespace stash::bench {

/// Returns false, recording nothing, when the allocator cannot tell its reserved bytes.
inline bool record_timeline(stash::timeline& tl, replay_allocator& allocator, const trace& t) {
  if (!allocator.reserved_bytes()) return false;
  const auto series = tl.add_series(t.name + ": " + std::string(allocator.name()), allocator.page_bytes(), t.name);
  std::vector<void*> slots(t.slot_count, nullptr);
  std::size_t live = 0;  // as asked for, from the trace: the same for every allocator
  tl.record(series, 0, 0, *allocator.reserved_bytes());
  for (std::size_t i = 0; i < t.ops.size(); ++i) {
    const trace_op& op = t.ops[i];
    allocator.run(std::span(&op, 1), slots.data());
    live = op.is_free ? live - op.size : live + op.size;
    tl.record(series, static_cast<double>(i + 1), live, *allocator.reserved_bytes());
  }
  allocator.run(t.live_at_end, slots.data());
  return true;
}

}  // namespace stash::bench
