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
  o.small_fill_mapped = std::getenv("SFILL") != nullptr;
  A a(stash::simulated_paged_backend{}, o);
  std::vector<void*> slots(t.slot_count);
  std::size_t peak = 0, live = 0; std::uintptr_t base = 0;
  int passes = 4;
  for (int pass = 0; pass < passes; ++pass) {
    std::size_t i = 0;
    for (auto& op : t.ops) {
      ++i;
      if (op.is_free) { a.deallocate(slots[op.slot]); live -= op.size; }
      else {
        std::size_t before = a.reserved_bytes();
        slots[op.slot] = a.allocate(op.size); live += op.size;
        auto p = reinterpret_cast<std::uintptr_t>(slots[op.slot]);
        if (!base) base = p;
        if (a.reserved_bytes() > peak) {
          std::printf("pass %d op %zu size %zu off %.1fM %s reserved %.1fM live %.1fM\n", pass, i, op.size, (p - base) / 1048576.0,
                      (p - base) >= (std::size_t{1} << 40) ? "S" : "L", a.reserved_bytes() / 1048576.0, live / 1048576.0);
          peak = a.reserved_bytes();
        }
      }
    }
    for (auto& op : t.live_at_end) { a.deallocate(slots[op.slot]); live -= op.size; }
  }
  std::printf("peak %.4f\n", double(peak) / t.peak_live_bytes);
}
