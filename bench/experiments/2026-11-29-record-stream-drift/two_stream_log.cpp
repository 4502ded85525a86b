// Two-stream replays of a trace on the simulated device (stash-ordered: paged, simulated events counted, LAG records
// late), printing each warm allocation that grew the reserved bytes and reserved/live after each replay. Knobs: XFR=1
// free_records_used_streams, XCW=1 cross_stream_wait, XFILL=1 small_fill_mapped, XREC=1 record_stream(p, default
// stream) after every allocation on another stream (what PyTorch's copy stream does with a batch), DUMPALL=1 the map.
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "allocators/counting_ordering.hpp"
#include "allocators/ordered_allocator.hpp"
#include "replay.hpp"
#include "trace_reader.hpp"
using namespace stash::bench;
int main(int argc, char** argv) {
  const auto t = read_trace(argv[1]);
  const int reps = argc > 2 ? std::atoi(argv[2]) : 6;
  stash::caching_options o;
  if (std::getenv("XFR")) o.free_records_used_streams = true;
  if (std::getenv("XCW")) o.cross_stream_wait = true;
  if (std::getenv("XFILL")) o.small_fill_mapped = true;
  simulated_ordered_allocator a(stash::simulated_paged_backend{}, o, counting_ordering{std::getenv("LAG") ? std::strtoull(std::getenv("LAG"), nullptr, 0) : 0});
  auto handles = simulated_stream_handles(t);
  std::vector<void*> s(t.slot_count);
  std::uintptr_t base = 0;
  auto st = [&](std::uint8_t i) { return stash::stream{static_cast<stash::stream::native_handle_type>(handles[i])}; };
  for (int rep = 0; rep < reps; ++rep) { std::fprintf(stderr, "=== replay %d\n", rep);
    std::size_t i = 0;
    for (const auto& op : t.ops) {
      ++i;
      if (op.is_free) { a.deallocate(s[op.slot], st(op.stream)); continue; }
      const std::size_t before = a.reserved_bytes();
      s[op.slot] = a.allocate(op.size, st(op.stream));
      if (std::getenv("XREC") && op.stream != 0) a.record_stream(s[op.slot], st(0));
      if (!base) base = reinterpret_cast<std::uintptr_t>(s[op.slot]);
      if (a.reserved_bytes() > before && rep > 0)
        std::printf("r%d %zu A %zu KiB s%d at %lld KiB  reserved %zu MiB live %zu MiB\n", rep, i, op.size >> 10, op.stream,
                    (long long)(reinterpret_cast<std::uintptr_t>(s[op.slot]) - base) >> 10, a.reserved_bytes() >> 20,
                    a.stats().allocated_bytes >> 20);
    }
    for (const auto& op : t.live_at_end) a.deallocate(s[op.slot], st(op.stream));
    if (rep == 0 || std::getenv("DUMPALL")) {
      a.visit_memory([&](std::uintptr_t b, std::size_t n) { std::printf("  region %lld KiB +%zu KiB\n", (long long)(b - base) >> 10, n >> 10); },
                     [&](std::uintptr_t b, std::size_t n, std::size_t req) { std::printf("    block %lld KiB +%zu KiB %s\n", (long long)(b - base) >> 10, n >> 10, req ? "live" : "free"); });
    }
    std::printf("== after replay %d: peak reserved %.4f of live peak\n", rep, double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes));
  }
}
