// Splits per allocation and merges per free, warm (replays 3-4), on simulated_stream_allocator. Needs
// counters in a copy of include/: in stash/detail/block_heap.hpp, namespace-scope
//   inline std::uint64_t g_split = 0, g_mnext = 0, g_mprev = 0, g_frees = 0, g_allocs = 0;
// ++g_allocs at the top of split() and ++g_split inside its `if (b->size > size)`; ++g_frees at the top
// of merge_and_push(), ++g_mnext / ++g_mprev where it removes the upper / lower neighbour. Then
//   g++ -std=c++20 -O2 -I<that copy> -Ibench splits_and_merges.cpp -o splits && ./splits bench/traces/*.csv
#include <cstdio>
#include <vector>
#include "stash/allocators.hpp"
#include "trace_reader.hpp"
using namespace stash::detail;
int main(int argc, char** argv) {
  for (int ai = 1; ai < argc; ++ai) {
    auto t = stash::bench::read_trace(argv[ai]);
    stash::simulated_stream_allocator a;
    std::vector<void*> slots(t.slot_count);
    for (int pass = 0; pass < 4; ++pass) {
      if (pass == 2) g_split = g_mnext = g_mprev = g_frees = g_allocs = 0;
      for (auto& op : t.ops) { if (op.is_free) a.deallocate(slots[op.slot]); else slots[op.slot] = a.allocate(op.size); }
      for (auto& op : t.live_at_end) a.deallocate(slots[op.slot]);
    }
    std::printf("%-26s per alloc: split %.2f | per free: merge next %.2f prev %.2f\n", t.name.c_str(), double(g_split)/g_allocs, double(g_mnext)/g_frees, double(g_mprev)/g_frees);
  }
}
