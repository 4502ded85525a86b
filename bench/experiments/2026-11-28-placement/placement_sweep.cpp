// Placement of large blocks where their pages are (fifth session; bench/RESULTS.md, "Placement of large
// blocks where their pages are"). Per trace: reserved/live after the cold replay and the peak over it and
// three warm ones, in host order and in stream order (counting_ordering: events complete at once, lag 0,
// or two records late, lag 2), and in host order the driver calls of the cold replay (cuMemCreate, moves,
// unmaps, all calls) and of the three warm ones. The placement lives in placement.patch (applies to main
// at f3ece35; not part of the library), steered by environment variables: XMODE (bits: 1 the end of a
// free block, 2 the start of another, 4 either end of a run of adjacent usable free blocks), XMIN (only
// requests of at least this many 2 MiB pages), XGAIN (a placement is taken only if it saves at least this
// share of the chosen block's new pages; 2: never, look only), XLOG (log requests of at least 256 MiB that
// need pages to stderr). The replays are ../sweep_harness.hpp's, which the later sweeps share. run.sh
// builds it against main's headers and the patched ones and makes every file in this folder.
#include <cstdio>

#include "../sweep_harness.hpp"
using namespace stash::bench;

int main(int argc, char** argv) {
  std::printf("%-24s %-15s %-15s %-15s  cold: creates moves unmaps calls | warm x3 calls\n", "trace", "host cold/peak",
              "lag0 cold/peak", "lag2 cold/peak");
  for (int f = 1; f < argc; ++f) {
    auto t = read_trace(argv[f]);
    const auto [h, l0, l2] = sweep::run_orders(t, stash::caching_options{});
    std::printf("%-24s %.4f/%.4f   %.4f/%.4f   %.4f/%.4f   %5zu %4zu %4zu %5zu | %5zu\n", t.name.c_str(), h.cold, h.warm,
                l0.cold, l0.warm, l2.cold, l2.warm, h.creates, h.moves, h.unmaps, h.calls, h.warm_calls);
    std::fflush(stdout);
  }
}
