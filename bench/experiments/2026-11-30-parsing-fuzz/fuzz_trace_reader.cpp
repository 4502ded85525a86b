// libFuzzer harness for bench/trace_reader.hpp (RMM logging_resource_adaptor CSV traces).
// Contract: parse_trace_string throws only trace_error ("source:line: why"), or returns a trace whose ops a
// replay can run: every slot < slot_count, a free names a slot live at that point with the size it was
// allocated with, sizes in (0, max_allocation_size], stream indices < streams.size() <= 256, counts add up,
// live_at_end frees exactly the slots left live, peak_live_bytes is the high tide.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "trace_reader.hpp"

namespace {
[[noreturn]] void fail_here(const char* what) {
  std::fprintf(stderr, "CONTRACT: %s\n", what);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  stash::bench::trace t;
  try {
    t = stash::bench::parse_trace_string(in, "fuzz");
  } catch (const stash::bench::trace_error& e) {
    if (std::string(e.what()).rfind("fuzz:", 0) != 0) fail_here("trace_error does not name the source");
    return 0;
  } catch (...) {
    fail_here("parse_trace threw something other than trace_error");
  }
  if (t.streams.empty() || t.streams.size() > 256) fail_here("stream count");
  std::vector<std::size_t> live(t.slot_count, 0);  // 0: free
  std::size_t bytes = 0, peak = 0, allocs = 0, frees = 0;
  for (const auto& op : t.ops) {
    if (op.slot >= t.slot_count) fail_here("slot out of range");
    if (op.stream >= t.streams.size()) fail_here("stream out of range");
    if (op.is_free) {
      if (live[op.slot] == 0 || live[op.slot] != op.size) fail_here("free of a slot not live, or another size");
      bytes -= op.size;
      live[op.slot] = 0;
      ++frees;
    } else {
      if (op.size == 0 || op.size > stash::bench::max_allocation_size) fail_here("size out of range");
      if (live[op.slot] != 0) fail_here("allocation into a live slot");
      live[op.slot] = op.size;
      bytes += op.size;
      peak = std::max(peak, bytes);
      ++allocs;
    }
  }
  if (allocs != t.allocations || frees != t.frees || peak != t.peak_live_bytes) fail_here("counts");
  for (const auto& op : t.live_at_end) {
    if (!op.is_free || op.slot >= t.slot_count || live[op.slot] != op.size) fail_here("live_at_end");
    live[op.slot] = 0;
  }
  for (const std::size_t s : live)
    if (s != 0) fail_here("a live block missing from live_at_end");
  return 0;
}
