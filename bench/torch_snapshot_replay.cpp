#include "torch_snapshot_replay.hpp"

#include <vector>

#include "stash/allocators.hpp"
#include "stash/torch_snapshot.hpp"

namespace stash::bench {
namespace {

template <class Allocator>
std::size_t snapshot_at_peak(const trace& t, const std::filesystem::path& file) {
  // The first operation after which the live bytes are at their peak.
  std::size_t live = 0, peak = 0, peak_ops = 0;
  for (std::size_t i = 0; i < t.ops.size(); ++i) {
    live = t.ops[i].is_free ? live - t.ops[i].size : live + t.ops[i].size;
    if (live > peak) peak = live, peak_ops = i + 1;
  }
  Allocator pool;
  stash::memory_history history(pool);
  std::vector<void*> slots(t.slot_count, nullptr);
  for (std::size_t i = 0; i < peak_ops; ++i) {
    const trace_op& op = t.ops[i];
    if (op.is_free) history.deallocate(slots[op.slot], op.size);
    else slots[op.slot] = history.allocate(op.size);
  }
  stash::write_torch_snapshot(file, pool, &history);
  return peak_ops;  // the pool gives everything back when it goes
}

}  // namespace

std::size_t write_torch_snapshot_at_peak(const trace& t, const std::filesystem::path& file, bool cuda) {
  if (cuda) return snapshot_at_peak<stash::device_caching_allocator>(t, file);
  return snapshot_at_peak<stash::simulated_caching_allocator>(t, file);
}

}  // namespace stash::bench
