#pragma once
// How one (trace, allocator) pair is measured; shared by stash-replay and the CI memory guard so both
// compute reserved/live the same way.
//
// cold: the first replay, on an allocator with an empty cache; the peak bytes held and the backend
//       calls are taken from it.
// warm: `warm` further replays on the same allocator, cache kept; the median time per op.
// Blocks the trace leaves live are freed, untimed, after every replay. Each allocate or free is one
// op. The whole loop is timed with one pair of steady_clock reads.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "allocators/replay_allocator.hpp"
#include "trace_reader.hpp"

namespace stash::bench {

struct replay_result {
  std::string trace;
  std::string allocator;
  std::size_t ops = 0;
  std::size_t peak_live_bytes = 0;
  std::size_t peak_reserved_bytes = 0;
  // Empty where the figure is undefined: no ops in the trace, no bytes live, no warm replay asked
  // for. Never inf or nan, so the JSON output stays JSON (null).
  std::optional<double> reserved_over_live;
  // The same over the cold replay and every warm one: what a job that repeats its steps holds. A
  // rule that settles sooner can hold more after the first replay and the same after the second.
  std::size_t settled_peak_reserved_bytes = 0;
  std::optional<double> settled_reserved_over_live;
  std::optional<double> ns_per_op_cold;
  std::optional<double> ns_per_op_warm;
  std::optional<std::uint64_t> backend_allocs;
  // replay_allocator::page_work over all the warm replays together (0: served from the cache alone).
  std::optional<std::uint64_t> warm_page_work;
  // replay_allocator::events_recorded over all the warm replays together.
  std::optional<std::uint64_t> warm_events;
  std::size_t streams = 1;  // distinct streams in the trace
  // Host waits over the cold and every warm replay (allocate and free calls alone: nothing else is
  // called on the allocator during them); empty where the allocator does not tell.
  std::optional<std::uint64_t> device_syncs;
  std::optional<std::uint64_t> host_waits;
};

/// Stream handles for a replay without CUDA streams: the Stream value 0 is the legacy default stream
/// (nullptr), every other value a handle of its own that no CUDA call ever sees (the simulated device's
/// ordering policies only compare them). Distinct handles make a stream-ordered allocator keep each
/// stream's frees apart as it does on the GPU, where a block freed on one stream waits for that
/// stream's event before another stream gets it.
inline std::vector<void*> simulated_stream_handles(const trace& t) {
  std::vector<void*> handles;
  for (std::size_t i = 0; i < t.streams.size(); ++i)
    handles.push_back(t.streams[i] == 0 ? nullptr : reinterpret_cast<void*>(std::uintptr_t{0x5000} + 0x10 * i));
  return handles;
}

/// `before_clock` runs before each timed loop (the CUDA backend synchronises the device there).
inline replay_result measure_replay(replay_allocator& allocator, const trace& t, int warm,
                                    void (*before_clock)() = nullptr) {
  std::vector<void*> slots(t.slot_count, nullptr);
  if (allocator.stream_count() < t.streams.size()) allocator.use_streams(simulated_stream_handles(t));
  auto timed_run = [&] {
    if (before_clock) before_clock();
    const auto start = std::chrono::steady_clock::now();
    allocator.run(t.ops, slots.data());
    const auto stop = std::chrono::steady_clock::now();
    allocator.run(t.live_at_end, slots.data());
    return std::chrono::duration<double, std::nano>(stop - start).count();
  };
  const double ops = static_cast<double>(t.ops.size());
  auto per_op = [&](double ns) { return t.ops.empty() ? std::nullopt : std::optional<double>(ns / ops); };

  replay_result r;
  r.trace = t.name;
  r.allocator = std::string(allocator.name());
  r.ops = t.ops.size();
  r.streams = t.streams.size();
  r.peak_live_bytes = t.peak_live_bytes;
  const auto waits_before = allocator.host_waits();
  r.ns_per_op_cold = per_op(timed_run());
  r.peak_reserved_bytes = allocator.peak_reserved_bytes();
  r.backend_allocs = allocator.backend_allocs();
  if (t.peak_live_bytes > 0)
    r.reserved_over_live = static_cast<double>(r.peak_reserved_bytes) / static_cast<double>(t.peak_live_bytes);

  // What a counter the adapter may not tell grew by over the warm replays.
  auto grown = [](std::optional<std::uint64_t> before, std::optional<std::uint64_t> after) {
    return before && after ? std::optional<std::uint64_t>(*after - *before) : std::nullopt;
  };
  const auto work_before = allocator.page_work();
  const auto events_before = allocator.events_recorded();
  std::vector<double> warm_ns;
  for (int i = 0; i < warm; ++i) warm_ns.push_back(timed_run());
  r.warm_page_work = grown(work_before, allocator.page_work());
  r.warm_events = grown(events_before, allocator.events_recorded());
  if (!warm_ns.empty()) {
    std::sort(warm_ns.begin(), warm_ns.end());
    const std::size_t mid = warm_ns.size() / 2;
    r.ns_per_op_warm = per_op(warm_ns.size() % 2 ? warm_ns[mid] : (warm_ns[mid - 1] + warm_ns[mid]) / 2);
    r.settled_peak_reserved_bytes = allocator.peak_reserved_bytes();
    if (t.peak_live_bytes > 0)
      r.settled_reserved_over_live =
          static_cast<double>(r.settled_peak_reserved_bytes) / static_cast<double>(t.peak_live_bytes);
  }
  if (const auto waits_after = allocator.host_waits(); waits_before && waits_after) {
    r.device_syncs = waits_after->device_syncs - waits_before->device_syncs;
    r.host_waits = waits_after->host_waits - waits_before->host_waits;
  }
  return r;
}

}  // namespace stash::bench
