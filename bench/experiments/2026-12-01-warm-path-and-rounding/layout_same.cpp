// Whether the default layout repeats: how many allocations of each replay land at another address than in
// the replay before (host order, default options). g++ -std=c++20 -O2 -Iinclude -Ibench THIS -o layout_same
#include <cstdio>
#include <vector>
#include "stash/allocators.hpp"
#include "stash/lock/null_lock.hpp"
#include "trace_reader.hpp"
using A = stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets, stash::null_lock>;
int main(int argc, char** argv) {
  for (int ai = 1; ai < argc; ++ai) {
    auto t = stash::bench::read_trace(argv[ai]);
    A a; std::vector<void*> slots(t.slot_count);
    std::vector<std::vector<void*>> seq(6);
    for (int pass = 0; pass < 6; ++pass) {
      for (auto& op : t.ops) { if (op.is_free) a.deallocate(slots[op.slot]); else { slots[op.slot] = a.allocate(op.size); seq[pass].push_back(slots[op.slot]); } }
      for (auto& op : t.live_at_end) a.deallocate(slots[op.slot]);
    }
    std::printf("%-26s differing addresses vs previous pass:", t.name.c_str());
    for (int p = 1; p < 6; ++p) { std::size_t d = 0; for (std::size_t i = 0; i < seq[p].size(); ++i) d += seq[p][i] != seq[p-1][i]; std::printf(" %zu", d); }
    std::printf("\n");
  }
}
