#pragma once
// Every counter of stats_snapshot, kept exactly. Plain integers: the allocator's lock protects them.
#include <algorithm>

#include "stash/stats/stats.hpp"

namespace stash {

class basic_stats {
 public:
  void on_allocate(std::size_t requested, std::size_t rounded, bool from_cache) noexcept {
    s_.requested_bytes += requested;
    s_.allocated_bytes += rounded;
    // A peak rises rarely once a workload is warm: compare, and store only when it does.
    if (s_.requested_bytes > s_.peak_requested_bytes) [[unlikely]]
      s_.peak_requested_bytes = s_.requested_bytes;
    if (s_.allocated_bytes > s_.peak_allocated_bytes) [[unlikely]]
      s_.peak_allocated_bytes = s_.allocated_bytes;
    ++s_.allocations;
    s_.cache_hits += from_cache ? 1 : 0;
  }
  void on_deallocate(std::size_t requested, std::size_t rounded) noexcept {
    s_.requested_bytes -= requested;
    s_.allocated_bytes -= rounded;
    ++s_.deallocations;
  }
  void on_reserve(std::size_t bytes) noexcept {
    s_.reserved_bytes += bytes;
    s_.peak_reserved_bytes = std::max(s_.peak_reserved_bytes, s_.reserved_bytes);
    ++s_.backend_allocations;
  }
  void on_release(std::size_t bytes) noexcept {
    s_.reserved_bytes -= bytes;
    ++s_.backend_frees;
  }
  void on_oom_retry() noexcept { ++s_.oom_retries; }
  /// Peaks restart from the current values, as torch.cuda.reset_peak_memory_stats does.
  void reset_peak() noexcept {
    s_.peak_allocated_bytes = s_.allocated_bytes;
    s_.peak_requested_bytes = s_.requested_bytes;
    s_.peak_reserved_bytes = s_.reserved_bytes;
  }
  stats_snapshot snapshot() const noexcept {
    stats_snapshot out = s_;
    out.cached_bytes = out.reserved_bytes - out.allocated_bytes;
    return out;
  }

 private:
  stats_snapshot s_;
};

static_assert(stats_policy<basic_stats>);

}  // namespace stash
