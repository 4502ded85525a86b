// Settling: the driver calls of each replay and the peak reserved/live so far, over many replays of one
// trace in host order (rules.patch applied, as for backing_sweep.cpp).
// g++ -std=c++20 -O2 -Iinclude -Ibench -I/usr/local/cuda/include <this folder>/settling.cpp -o /tmp/settling
// /tmp/settling 16,0,8 12 bench/traces/gpt2_varlen_e2e.csv   (chunks,moves,rule[,allowance %]; replays; trace)
// settling.txt: for c in 16,0,0 8,8,0 16,0,5 16,0,10 16,0,8 16,0,8,75 16,0,8,20 16,0,8,0 16,0,11; do for f in ddp_gpt2_rank0 gpt2_varlen_e2e; do echo "$f $c"; /tmp/settling $c 12 bench/traces/$f.csv; done; done
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "trace_reader.hpp"
#include "stash/allocators.hpp"
using namespace stash::bench;
int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: settling chunks,moves,rule[,allowance in percent] replays trace.csv\n");
    return 2;
  }
  int c = 0, m = 0, r = 0, k = 100;
  std::sscanf(argv[1], "%d,%d,%d,%d", &c, &m, &r, &k);
  int reps = std::atoi(argv[2]);
  auto t = read_trace(argv[3]);
  stash::caching_options o; o.chunks_per_block = c; o.moves_per_block = m; o.large_block_backing = r;
  o.large_block_allowance = k / 100.0;
  stash::simulated_caching_allocator a(stash::simulated_paged_backend{}, o);
  std::vector<void*> s(t.slot_count);
  std::size_t last = 0;
  for (int i = 0; i < reps; ++i) {
    for (const auto& op : t.ops) { if (op.is_free) a.deallocate(s[op.slot]); else s[op.slot] = a.allocate(op.size); }
    for (const auto& op : t.live_at_end) a.deallocate(s[op.slot]);
    std::printf("%zu/%.4f ", a.backend().driver_calls() - last, double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes));
    last = a.backend().driver_calls();
  }
  std::printf("\n");
}
