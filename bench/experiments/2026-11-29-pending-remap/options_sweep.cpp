// Remapping pages under pending frees (bench/RESULTS.md, "Remapping pages under pending frees"): the
// sweep of ../2026-11-28-chunk-moves/options_sweep.cpp with two more options from the environment:
// XREMAP remap_pending_pages (1: on), XRMA remap_min_age, XRMP remap_min_pages; and XCPB chunks_per_block, XMPB
// moves_per_block, XPBM pages_between_moves, XMHOL max_held_over_live, XMCP max_chunk_pages as there. Per trace: reserved/live after the cold replay and the peak over it and three
// warm ones, in host order and in stream order (events at once, lag 0; two records late, lag 2), and in
// host order the cold replay's driver calls (cuMemCreate, move_page calls, move_pages calls, unmaps, all) and those of
// the three warm replays; with events two records late (lag 2), the driver calls and the remap_pages
// calls, cold and over the three warm replays (with events at once, lag 0, nothing is pending when
// pages are backed, so nothing is remapped).
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "allocators/counting_ordering.hpp"
#include "allocators/ordered_allocator.hpp"
#include "trace_reader.hpp"
#include "stash/allocators.hpp"
using namespace stash::bench;

template <class A>
void pass(const trace& t, A& a, std::vector<void*>& s) {
  for (const auto& op : t.ops) {
    if (op.is_free) a.deallocate(s[op.slot]); else s[op.slot] = a.allocate(op.size);
  }
  for (const auto& op : t.live_at_end) a.deallocate(s[op.slot]);
}
struct result { double cold, warm; std::size_t creates, moves, chunk_moves, unmaps, calls, warm_calls, remaps, warm_remaps; };
template <class A>
result run(const trace& t, A& a) {
  std::vector<void*> s(t.slot_count);
  pass(t, a, s);
  result r{};
  const auto& b = a.backend();
  r.cold = double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes);
  r.creates = b.map_calls(), r.moves = b.move_calls(), r.unmaps = b.unmap_calls(), r.calls = b.driver_calls();
  if constexpr (requires { b.chunk_moves(); }) r.chunk_moves = b.chunk_moves();
  r.remaps = b.remap_calls();
  for (int i = 0; i < 3; ++i) pass(t, a, s);
  r.warm_remaps = b.remap_calls() - r.remaps;
  r.warm = double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes);
  r.warm_calls = b.driver_calls() - r.calls;
  if (b.misuses() != 0) std::printf("MISUSES %zu\n", b.misuses());
  return r;
}
stash::caching_options opts() {
  stash::caching_options o;
  if (const char* e = std::getenv("XCPB")) o.chunks_per_block = std::strtoul(e, nullptr, 10);
  if (const char* e = std::getenv("XMPB")) o.moves_per_block = std::strtoul(e, nullptr, 10);
  if (const char* e = std::getenv("XPBM")) o.pages_between_moves = std::strtoul(e, nullptr, 10);
  if (const char* e = std::getenv("XMHOL")) o.max_held_over_live = std::strtod(e, nullptr);
  if (const char* e = std::getenv("XMCP")) o.max_chunk_pages = std::strtoul(e, nullptr, 10);
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
    result h, l0, l2;
    { stash::simulated_caching_allocator a(stash::simulated_paged_backend{}, opts()); h = run(t, a); }
    { simulated_ordered_allocator a(stash::simulated_paged_backend{}, opts(), counting_ordering{0}); l0 = run(t, a); }
    { simulated_ordered_allocator a(stash::simulated_paged_backend{}, opts(), counting_ordering{2}); l2 = run(t, a); }
    std::printf("%-24s %.4f/%.4f   %.4f/%.4f   %.4f/%.4f   %5zu %4zu %4zu %4zu %5zu | %5zu | %zu/%zu %zu/%zu\n", t.name.c_str(), h.cold, h.warm,
                l0.cold, l0.warm, l2.cold, l2.warm, h.creates, h.moves, h.chunk_moves, h.unmaps, h.calls, h.warm_calls,
                l2.calls, l2.warm_calls, l2.remaps, l2.warm_remaps);
    std::fflush(stdout);
  }
}
