// Where warm replays make driver calls: each op of passes >= 1 that changed driver_calls.
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "stash/allocators.hpp"
#include "stash/lock/null_lock.hpp"
#include "trace_reader.hpp"
using A = stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets, stash::null_lock>;
int main(int argc, char** argv) {
  auto t = stash::bench::read_trace(argv[1]);
  stash::caching_options o;
  if (std::getenv("NOFILL")) o.fill_mapped_above = SIZE_MAX;
  A a(stash::simulated_paged_backend{}, o);
  std::vector<void*> slots(t.slot_count);
  std::uintptr_t base = 0;
  for (int pass = 0; pass < 4; ++pass) {
    std::size_t i = 0, live = 0;
    for (auto& op : t.ops) {
      ++i;
      const std::size_t c = a.backend().driver_calls(), r = a.reserved_bytes();
      if (op.is_free) { a.deallocate(slots[op.slot]); live -= op.size; }
      else { slots[op.slot] = a.allocate(op.size); live += op.size; if (!base) base = reinterpret_cast<std::uintptr_t>(slots[op.slot]); }
      if (pass >= 1 && a.backend().driver_calls() != c)
        std::printf("pass %d op %zu %s size %zu at %+.2fM calls %zu reserved %.1f -> %.1fM live %.1fM\n", pass, i, op.is_free ? "free" : "alloc",
                    op.size, (double)(reinterpret_cast<std::uintptr_t>(slots[op.slot]) - base) / 1048576.0, a.backend().driver_calls() - c, r / 1048576.0,
                    a.reserved_bytes() / 1048576.0, live / 1048576.0);
    }
    for (auto& op : t.live_at_end) a.deallocate(slots[op.slot]);
  }
}
