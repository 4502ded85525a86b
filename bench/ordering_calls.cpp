// ordering_calls: how many calls the stream layer makes into its ordering policy per operation of a
// warm trace replay, on the stream-ordered simulated composition (allocators/ordered_allocator.hpp).
// With cuda_event_ordering each call is a CUDA runtime call (cudaStreamIsCapturing, cudaEventRecord,
// cudaEventQuery, ...) of 100 ns or more, so this is what the fast path costs on a GPU beyond its own
// instructions. Usage: ordering_calls [--warm N] TRACE.csv...
//
// Per trace: one cold replay, then N warm ones (each also frees what the trace leaves live, as
// stash-replay does); the calls of the warm replays are divided by N times the trace's operations.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "allocators/ordered_allocator.hpp"
#include "allocators/stash_allocators.hpp"
#include "replay.hpp"
#include "trace_reader.hpp"

int main(int argc, char** argv) {
  int warm = 5;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--warm") == 0 && i + 1 < argc) warm = std::atoi(argv[++i]);
    else files.emplace_back(argv[i]);
  }
  if (files.empty() || warm < 1) {
    std::fprintf(stderr, "usage: ordering_calls [--warm N>0] TRACE.csv...\n");
    return 2;
  }
  std::printf("%-24s %8s %10s %10s %10s %10s %10s %10s\n", "trace", "ops", "calls/op", "capture", "record",
              "query", "check", "wait");
  for (const auto& file : files) {
    const stash::bench::trace t = stash::bench::read_trace(file);
    stash::bench::stash_adapter<stash::bench::simulated_ordered_allocator> a("stash-ordered");
    a.use_streams(stash::bench::simulated_stream_handles(t));
    std::vector<void*> slots(t.slot_count, nullptr);
    auto replay = [&] {
      a.run(t.ops, slots.data());
      a.run(t.live_at_end, slots.data());
    };
    replay();
    const auto before = a.allocator().ordering().stats();
    for (int i = 0; i < warm; ++i) replay();
    const auto after = a.allocator().ordering().stats();
    const double ops = static_cast<double>(warm) * static_cast<double>(t.ops.size());
    auto per_op = [&](std::uint64_t x, std::uint64_t y) { return static_cast<double>(y - x) / ops; };
    std::printf("%-24s %8zu %10.4f %10.4f %10.4f %10.4f %10.4f %10.4f\n", t.name.c_str(), t.ops.size(),
                per_op(before.total(), after.total()), per_op(before.capture_checks, after.capture_checks),
                per_op(before.records, after.records), per_op(before.queries, after.queries),
                per_op(before.checks, after.checks), per_op(before.waits, after.waits));
  }
  return 0;
}
