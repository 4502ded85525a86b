// reserved/live cold and settled with large requests rounded coarser
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "stash/allocators.hpp"
#include "stash/lock/null_lock.hpp"
#include "trace_reader.hpp"
static std::size_t g_above = SIZE_MAX; static unsigned g_div = 0; static std::size_t g_mult = 0;
struct coarse_buckets : stash::segregated_fit_buckets {
  static std::size_t round_up(std::size_t n) noexcept {
    std::size_t r = stash::segregated_fit_buckets::round_up(n);
    if (r <= g_above) return r;
    if (g_mult) return (r + g_mult - 1) / g_mult * g_mult;
    // power-of-two divisions: step = 2^floor(log2 r) / g_div
    unsigned top = 63 - __builtin_clzll(r);
    std::size_t step = (std::size_t{1} << top) / g_div; if (step < 256) step = 256;
    return (r + step - 1) / step * step;
  }
};
using A = stash::caching_allocator<stash::simulated_paged_backend, coarse_buckets, stash::null_lock>;
int main(int argc, char** argv) {
  if (const char* e = std::getenv("ABOVE")) g_above = std::strtoull(e, 0, 0);
  if (const char* e = std::getenv("DIV")) g_div = std::atoi(e);
  if (const char* e = std::getenv("MULT")) g_mult = std::strtoull(e, 0, 0);
  double worst = 0;
  for (auto& f : stash::bench::list_traces(argv[1])) {
    auto t = stash::bench::read_trace(f);
    A a;
    std::vector<void*> slots(t.slot_count);
    std::size_t peak = 0, cold = 0;
    for (int pass = 0; pass < 4; ++pass) {
      for (auto& op : t.ops) {
        if (op.is_free) a.deallocate(slots[op.slot]); else { slots[op.slot] = a.allocate(op.size); peak = std::max(peak, a.reserved_bytes()); }
      }
      for (auto& op : t.live_at_end) a.deallocate(slots[op.slot]);
      if (pass == 0) cold = peak;
    }
    double c = double(cold) / t.peak_live_bytes, s = double(peak) / t.peak_live_bytes;
    worst = std::max(worst, s);
    std::printf("%-26s cold %.4f settled %.4f\n", t.name.c_str(), c, s);
  }
  std::printf("worst settled %.4f\n", worst);
}
