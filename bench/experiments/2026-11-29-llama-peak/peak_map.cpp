// Build from the root of a checkout: g++ -std=c++20 -O2 -Iinclude -Ibench bench/experiments/2026-11-29-llama-peak/peak_map.cpp bench/allocators/ordered_allocator.cpp -o /tmp/peak_map
// Run: [LAG=0|2] [AT=op] [MINB=MiB] /tmp/peak_map TRACE.csv REPLAY (0 cold, 3 third warm): the memory map (mapped runs, blocks of at least MINB MiB)
// at the op where the trace's live bytes peak, and at op AT.
// At the op where live bytes (requested) peak in replay 3 (warm), dump the memory map.
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <map>
#include "allocators/counting_ordering.hpp"
#include "allocators/ordered_allocator.hpp"
#include "trace_reader.hpp"
#include "stash/allocators.hpp"
using namespace stash::bench;

template <class A>
void run(A& a, const trace& t, int rep_at) { std::size_t at_op = getenv("AT") ? atoi(getenv("AT")) : 0;
  std::vector<void*> s(t.slot_count);
  // find peak op
  std::size_t live = 0, peak = 0, peak_i = 0, i = 0;
  for (const auto& op : t.ops) { ++i; if (op.is_free) live -= op.size; else { live += op.size; if (live > peak) peak = live, peak_i = i; } }
  std::printf("trace peak live %.1f MiB at op %zu\n", peak / 1048576.0, peak_i);
  std::uintptr_t base = 0;
  for (int rep = 0; rep <= rep_at; ++rep) {
    i = 0;
    for (const auto& op : t.ops) {
      ++i;
      if (op.is_free) a.deallocate(s[op.slot]); else { s[op.slot] = a.allocate(op.size); if (!base) base = (std::uintptr_t)s[op.slot]; }
      if (rep == rep_at && (i == peak_i || i == at_op)) {
        std::printf("rep %d op %zu reserved %.1f MiB allocated %.1f MiB peak_reserved %.1f\n", rep, i, a.reserved_bytes() / 1048576.0,
                    a.stats().allocated_bytes / 1048576.0, a.stats().peak_reserved_bytes / 1048576.0);
        double freemapped = 0, wholefree = 0;
        std::uintptr_t lo = ~0ull;
        a.visit_memory([&](std::uintptr_t b, std::size_t n) { if (b < lo) lo = b; std::printf("REGION %.1f +%.1f MiB\n", (b - base) / 1048576.0, n / 1048576.0); },
                       [&](std::uintptr_t b, std::size_t n, std::size_t req) {
                         if (!req) { freemapped += n; std::uintptr_t P=2u<<20; std::uintptr_t f=(b+P-1)/P, e=(b+n)/P; if (e>f) wholefree += double(e-f)*2; }
                         if (n >= (std::size_t(getenv("MINB") ? atoi(getenv("MINB")) : 1) << 20)) std::printf("  %s %10.2f +%9.2f MiB%s\n", req ? "LIVE" : "free", (double)((long long)(b - base)) / 1048576.0, n / 1048576.0, "");
                       });
        std::printf("free mapped %.1f MiB, in whole pages %.0f MiB\n", freemapped / 1048576.0, wholefree);
      }
    }
    for (const auto& op : t.live_at_end) a.deallocate(s[op.slot]);
  }
}
int main(int argc, char** argv) {
  const auto t = read_trace(argv[1]);
  int rep = argc > 2 ? atoi(argv[2]) : 3;
  stash::caching_options o;
  if (const char* lag = std::getenv("LAG")) {
    simulated_ordered_allocator a(stash::simulated_paged_backend{}, o, counting_ordering{std::strtoull(lag, nullptr, 0)});
    run(a, t, rep);
  } else { stash::simulated_caching_allocator a(stash::simulated_paged_backend{}, o); run(a, t, rep); }
}
