// Where large blocks land (2026-11-29, bench/RESULTS.md, "Keeping a freed large block's range for it"). Replays
// one trace four times (cold, then three warm) and prints every allocate and free of at least MIN MiB
// (second argument, default 256): replay, operation, size, offset in MiB from the first block handed out,
// and after an allocate the bytes reserved and live. Host order, or stream order with events LAG records
// late when the environment sets LAG (counting_ordering, as placement_sweep.cpp). Built against main's
// headers or against keep.patch's (XTOP and the other knobs are read from the environment there).
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "allocators/counting_ordering.hpp"
#include "allocators/ordered_allocator.hpp"
#include "trace_reader.hpp"
#include "stash/allocators.hpp"
using namespace stash::bench;

template <class A>
void replay(A& a, const trace& t, std::size_t min) {
  std::vector<void*> s(t.slot_count);
  std::uintptr_t base = 0;
  auto at = [&](void* p) { return (reinterpret_cast<std::uintptr_t>(p) - base) >> 20; };
  for (int rep = 0; rep < 4; ++rep) {
    std::size_t i = 0;
    for (const auto& op : t.ops) {
      ++i;
      if (op.is_free) {
        if (op.size >= min) std::printf("r%d %zu F %zu MiB at %zu\n", rep, i, op.size >> 20, at(s[op.slot]));
        a.deallocate(s[op.slot]);
      } else {
        s[op.slot] = a.allocate(op.size);
        if (!base) base = reinterpret_cast<std::uintptr_t>(s[op.slot]);
        if (op.size >= min)
          std::printf("r%d %zu A %zu MiB at %zu  reserved %zu live %zu\n", rep, i, op.size >> 20, at(s[op.slot]),
                      a.reserved_bytes() >> 20, a.stats().allocated_bytes >> 20);
      }
    }
    for (const auto& op : t.live_at_end) a.deallocate(s[op.slot]);
  }
}

int main(int argc, char** argv) {
  if (argc < 2) return std::fprintf(stderr, "usage: large_log TRACE.csv [MIN_MIB]\n"), 2;
  const auto t = read_trace(argv[1]);
  const std::size_t min = (argc > 2 ? std::strtoull(argv[2], nullptr, 0) : 256) << 20;
  if (const char* lag = std::getenv("LAG")) {
    simulated_ordered_allocator a(stash::simulated_paged_backend{}, {}, counting_ordering{std::strtoull(lag, nullptr, 0)});
    replay(a, t, min);
  } else {
    stash::simulated_caching_allocator a;
    replay(a, t, min);
  }
}
