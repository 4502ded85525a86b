#include <cstdio>
#include <cstdlib>
#include <vector>
#include "stash/allocators.hpp"
#include "stash/lock/null_lock.hpp"
#include "trace_reader.hpp"
using A = stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets, stash::null_lock>;
int main(int argc, char** argv) {
  for (auto& f : stash::bench::list_traces(argv[1])) {
    auto t = stash::bench::read_trace(f);
    stash::caching_options o; o.fill_mapped_above = 8192;
    A a(stash::simulated_paged_backend{}, o);
    std::vector<void*> slots(t.slot_count);
    std::size_t* c = A::arena_type::tiny_calls();
    std::printf("%-24s", t.name.c_str());
    for (int pass = 0; pass < 4; ++pass) {
      std::size_t c0 = c[0], c1 = c[1], allocs = 0, tiny = 0;
      for (auto& op : t.ops) {
        if (op.is_free) a.deallocate(slots[op.slot]); else { slots[op.slot] = a.allocate(op.size); ++allocs; tiny += op.size <= 8192; }
      }
      for (auto& op : t.live_at_end) a.deallocate(slots[op.slot]);
      std::printf(" | allocs %zu tiny %zu fill-ok %zu fill-miss %zu", allocs, tiny, c[1] - c1, c[0] - c0);
    }
    std::printf("\n");
  }
}
