// Build: g++ -std=c++20 -O2 -Iinclude -Ibench bench/experiments/2026-11-29-llama-peak/moves_knobs.cpp bench/allocators/ordered_allocator.cpp -o /tmp/moves_knobs
// Run: [XMHOL=.. XPBM=.. XMPB=..] /tmp/moves_knobs TRACE.csv: host order, cold and settled (3 warm) reserved/live and driver calls (sweep_harness.hpp options_from_env)
#include "experiments/sweep_harness.hpp"
using namespace stash; using namespace stash::bench;
int main(int argc, char** argv) {
  auto o = sweep::options_from_env();
  for (int f = 1; f < argc; ++f) {
    auto t = read_trace(argv[f]);
    simulated_caching_allocator a(simulated_paged_backend{}, o);
    auto r = sweep::run(t, a);
    std::printf("%-24s cold %.4f warm %.4f cold calls %zu moves %zu chunkmoves %zu warm calls (3 replays) %zu\n", t.name.c_str(), r.cold, r.warm, r.calls, r.moves, r.chunk_moves, r.warm_calls);
  }
}
