// Sweep of caching_options::chunks_per_block and moves_per_block over traces (fourth session, bench/RESULTS.md):
// reserved/live and physical allocations, host order and stream order with counting_ordering's lag LAGV.
// Build: g++ -std=c++20 -O2 -DLAGV=0 -Iinclude -Ibench -I/usr/local/cuda/include docs/gpu-logs/2026-11-28-h200-d/commands/option_sweep.cpp bench/allocators/ordered_allocator.cpp -o /tmp/opts0
// Run:   /tmp/opts0 bench/traces/*.csv
#include <cstdio>
#include <vector>
#include "allocators/counting_ordering.hpp"
#include "allocators/ordered_allocator.hpp"
#include "trace_reader.hpp"
#include "stash/allocators.hpp"
using namespace stash::bench;
template <class A>
void run(const trace& t, A& a, const char* name) {
  std::vector<void*> s(t.slot_count);
  for (const auto& op : t.ops) {
    if (op.is_free) a.deallocate(s[op.slot]); else s[op.slot] = a.allocate(op.size);
  }
  std::printf("  %-26s peak %.0f MiB  res/live %.4f  backend %llu  moves %llu\n", name, a.stats().peak_reserved_bytes / 1048576.0,
              double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes), (unsigned long long)a.stats().backend_allocations,
              (unsigned long long)a.page_moves());
}
int main(int argc, char** argv) {
  for (int f = 1; f < argc; ++f) {
    auto t = read_trace(argv[f]);
    std::printf("%s\n", argv[f]);
    for (auto [c, m] : {std::pair{0, 0}, {8, 8}, {8, 0}, {16, 0}}) {
      stash::caching_options o; o.chunks_per_block = c; o.moves_per_block = m;
      char name[64];
      std::snprintf(name, sizeof name, "host chunks %d moves %d", c, m);
      { stash::simulated_caching_allocator a(stash::simulated_paged_backend{}, o); run(t, a, name); }
      std::snprintf(name, sizeof name, "lagN chunks %d moves %d", c, m);
      { simulated_ordered_allocator a(stash::simulated_paged_backend{}, o, counting_ordering{LAGV}); run(t, a, name); }
    }
  }
}
