#pragma once
// stash-replay --least-memory: the least memory a trace runs in with each allocator. A probe replays
// the trace (cold, then `warm` times with the cache kept) on a fresh allocator limited to L bytes
// from the driver; the answer is the least L, in steps of `step` bytes, at which every replay
// completes. It is searched by bisection between the peak of live bytes and what the allocator holds
// with no limit, so it assumes that a replay which completes under a limit completes under any
// higher one.
//
// What it tells that reserved/live does not: how much of what an allocator holds it can give up when
// the device is full (a paged allocator moves idle pages where they are needed, a segment allocator
// frees its cached segments and retries), so the smallest device, or the largest batch, a workload
// fits. Untimed: every operation goes through the adapter's virtual calls, and the blocks live at a
// failure are freed before the next probe.
#include <algorithm>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "allocators/replay_allocator.hpp"
#include "trace_reader.hpp"

namespace stash::bench {

struct least_memory_result {
  std::string trace;
  std::string allocator;
  std::size_t peak_live_bytes = 0;
  std::size_t unlimited_bytes = 0;  // the peak held over the same replays with no limit
  std::size_t least_bytes = 0;      // the least limit at which every replay completed
  int probes = 0;                   // replays under a limit, the one with no limit not counted
};

/// Replays `t` cold and `warm` more times; false when the allocator ran out of memory (the blocks
/// then live are freed), true when every replay completed. Other errors propagate.
inline bool replay_within(replay_allocator& a, const trace& t, int warm) {
  std::vector<void*> slots(t.slot_count, nullptr);
  std::vector<std::size_t> sizes(t.slot_count, 0);
  auto play = [&](const trace_op& op) {
    void* s = a.stream_handle(op.stream);
    if (op.is_free) {
      if (a.takes_streams()) a.deallocate_on_stream(slots[op.slot], op.size, s);
      else a.deallocate(slots[op.slot], op.size);
      slots[op.slot] = nullptr;
    } else {
      slots[op.slot] = a.takes_streams() ? a.allocate_on_stream(op.size, s) : a.allocate(op.size);
      sizes[op.slot] = op.size;
    }
  };
  try {
    for (int i = 0; i <= warm; ++i) {
      for (const trace_op& op : t.ops) play(op);
      for (const trace_op& op : t.live_at_end) play(op);
    }
    return true;
  } catch (const std::exception& e) {
    if (!a.is_out_of_memory(e)) throw;
    for (std::size_t i = 0; i < slots.size(); ++i)
      if (slots[i]) a.deallocate(slots[i], sizes[i]);
    return false;
  }
}

/// `make` returns a fresh allocator (an empty cache) each time it is called, or null for one that
/// takes no limit. nullopt when it takes none (null, or set_memory_limit returned false).
inline std::optional<least_memory_result> least_memory(const std::function<std::unique_ptr<replay_allocator>()>& make,
                                                       const trace& t, int warm, std::size_t step) {
  least_memory_result r;
  r.trace = t.name;
  r.peak_live_bytes = t.peak_live_bytes;
  {
    auto a = make();
    if (!a) return std::nullopt;
    r.allocator = std::string(a->name());
    if (!replay_within(*a, t, warm)) throw std::runtime_error("out of memory with no limit");
    r.unlimited_bytes = a->peak_reserved_bytes();
  }
  auto completes_within = [&](std::size_t steps) {
    auto a = make();
    if (!a->set_memory_limit(steps * step)) return std::optional<bool>{};
    ++r.probes;
    return std::optional<bool>{replay_within(*a, t, warm)};
  };
  // Completes at hi (the unlimited peak rounded up, checked: raised until it does), fails at lo (the
  // live peak rounded down, checked).
  std::size_t hi = std::max<std::size_t>(1, (r.unlimited_bytes + step - 1) / step);
  const auto at_hi = completes_within(hi);
  if (!at_hi) return std::nullopt;
  for (bool done = *at_hi; !done; done = *completes_within(hi)) {
    if (r.probes > 64) throw std::runtime_error("out of memory under every limit tried");
    hi += hi / 8 + 1;
  }
  std::size_t lo = std::min(t.peak_live_bytes / step, hi - 1);
  if (*completes_within(lo)) hi = lo;
  while (hi - lo > 1) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (*completes_within(mid)) hi = mid;
    else lo = mid;
  }
  r.least_bytes = hi * step;
  return r;
}

}  // namespace stash::bench
