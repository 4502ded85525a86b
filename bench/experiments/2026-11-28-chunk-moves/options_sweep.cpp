// Idle chunks moved whole (fifth session; bench/RESULTS.md, "Idle chunks move whole"): the placement
// sweep's replays (../sweep_harness.hpp) with caching_options from the environment (options_from_env):
// XCPB chunks_per_block, XMPB moves_per_block, XPBM pages_between_moves, XMHOL max_held_over_live,
// XMCP max_chunk_pages. Per trace: reserved/live after the cold replay and the peak over it and three
// warm ones, in host order and in stream order (events at once, lag 0; two records late, lag 2), and in
// host order the cold replay's driver calls (cuMemCreate, move_page calls, move_pages calls, unmaps, all) and those of
// the three warm replays. run.sh builds it against main before and after the change.
#include <cstdio>

#include "../sweep_harness.hpp"
using namespace stash::bench;

int main(int argc, char** argv) {
  std::printf("%-24s %-15s %-15s %-15s  cold: creates moves chmoves unmaps calls | warm x3 calls\n", "trace", "host cold/peak",
              "lag0 cold/peak", "lag2 cold/peak");
  for (int f = 1; f < argc; ++f) {
    auto t = read_trace(argv[f]);
    const auto [h, l0, l2] = sweep::run_orders(t, sweep::options_from_env());
    std::printf("%-24s %.4f/%.4f   %.4f/%.4f   %.4f/%.4f   %5zu %4zu %4zu %4zu %5zu | %5zu\n", t.name.c_str(), h.cold, h.warm,
                l0.cold, l0.warm, l2.cold, l2.warm, h.creates, h.moves, h.chunk_moves, h.unmaps, h.calls, h.warm_calls);
    std::fflush(stdout);
  }
}
