// Built from a checkout with mapped_top.patch applied; XTOP (MiB) sets caching_options::large_at_mapped_top.
// cold, after 3 warm replays and after 8, in host order and in stream order (lag 0, lag 2)
#include <cstdio>
#include "experiments/sweep_harness.hpp"
#include <cstdlib>
// Build from the root of a checkout: g++ -std=c++20 -O2 -Iinclude -Ibench bench/experiments/2026-11-29-below-top/orders_sweep.cpp bench/allocators/ordered_allocator.cpp -o /tmp/orders_sweep
// then: /tmp/orders_sweep bench/traces/*.csv (before.txt: main at a56f7cc; after.txt: with the change)
using namespace stash; using namespace stash::bench;
template <class A> void passes(const trace& t, A& a, double out[3]) {
  std::vector<void*> s(t.slot_count);
  for (int p = 0; p <= 8; ++p) {
    sweep::pass(t, a, s);
    const double r = double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes);
    if (p == 0) out[0] = r; if (p == 3) out[1] = r; if (p == 8) out[2] = r;
  }
}
int main(int argc, char** argv) {
  caching_options o;
  if (std::getenv("XFILL")) o.small_fill_mapped = true;
  if (const char* x = std::getenv("XTOP")) o.large_at_mapped_top = std::size_t(std::atoll(x)) << 20;
  std::printf("%-24s %-24s %-24s %-24s\n", "trace", "host cold/3/8", "lag0 cold/3/8", "lag2 cold/3/8");
  for (int f = 1; f < argc; ++f) {
    auto t = read_trace(argv[f]);
    double h[3], l0[3], l2[3];
    { simulated_caching_allocator a(simulated_paged_backend{}, o); passes(t, a, h); }
    { simulated_ordered_allocator a(simulated_paged_backend{}, o, counting_ordering{0}); passes(t, a, l0); }
    { simulated_ordered_allocator a(simulated_paged_backend{}, o, counting_ordering{2}); passes(t, a, l2); }
    std::printf("%-24s %.4f/%.4f/%.4f  %.4f/%.4f/%.4f  %.4f/%.4f/%.4f\n", t.name.c_str(), h[0], h[1], h[2], l0[0], l0[1], l0[2], l2[0], l2[1], l2[2]);
    std::fflush(stdout);
  }
}
