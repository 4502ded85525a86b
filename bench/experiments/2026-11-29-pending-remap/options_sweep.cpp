// Remapping pages under pending frees (bench/RESULTS.md, "Remapping pages under pending frees"): the
// sweep of ../2026-11-28-chunk-moves/options_sweep.cpp with three more options from the environment:
// XREMAP remap_pending_pages (1: on), XRMA remap_min_age, XRMP remap_min_pages; and XCPB chunks_per_block, XMPB
// moves_per_block, XPBM pages_between_moves, XMHOL max_held_over_live, XMCP max_chunk_pages as there. Per trace: reserved/live after the cold replay and the peak over it and three
// warm ones, in host order and in stream order (events at once, lag 0; two records late, lag 2), and in
// host order the cold replay's driver calls (cuMemCreate, move_page calls, move_pages calls, unmaps, all) and those of
// the three warm replays; with events two records late (lag 2), the driver calls and the remap_pages
// calls, cold and over the three warm replays (with events at once, lag 0, nothing is pending when
// pages are backed, so nothing is remapped).
#include <cstdio>
#include <cstdlib>

#include "../sweep_harness.hpp"
using namespace stash::bench;

/// The options of the chunk-moves sweep (sweep::options_from_env) and the remap options.
stash::caching_options opts() {
  stash::caching_options o = sweep::options_from_env();
  if (const char* e = std::getenv("XREMAP")) o.remap_pending_pages = std::strtoul(e, nullptr, 10) != 0;
  if (const char* e = std::getenv("XRMA")) o.remap_min_age = std::strtoul(e, nullptr, 10);
  if (const char* e = std::getenv("XRMP")) o.remap_min_pages = std::strtoul(e, nullptr, 10);
  return o;
}
int main(int argc, char** argv) {
  std::printf("%-24s %-15s %-15s %-15s  cold: creates moves chmoves unmaps calls | warm x3 calls | lag2: calls remaps (cold/warm x3)\n", "trace", "host cold/peak",
              "lag0 cold/peak", "lag2 cold/peak");
  for (int f = 1; f < argc; ++f) {
    auto t = read_trace(argv[f]);
    const auto [h, l0, l2] = sweep::run_orders(t, opts());
    std::printf("%-24s %.4f/%.4f   %.4f/%.4f   %.4f/%.4f   %5zu %4zu %4zu %4zu %5zu | %5zu | %zu/%zu %zu/%zu\n", t.name.c_str(), h.cold, h.warm,
                l0.cold, l0.warm, l2.cold, l2.warm, h.creates, h.moves, h.chunk_moves, h.unmaps, h.calls, h.warm_calls,
                l2.calls, l2.warm_calls, l2.remaps, l2.warm_remaps);
    std::fflush(stdout);
  }
}
