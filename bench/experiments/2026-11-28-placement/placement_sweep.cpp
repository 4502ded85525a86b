// Placement of large blocks where their pages are (fifth session; bench/RESULTS.md, "Placement of large
// blocks where their pages are"). Per trace: reserved/live after the cold replay and the peak over it and
// three warm ones, in host order and in stream order (counting_ordering: events complete at once, lag 0,
// or two records late, lag 2), and in host order the driver calls of the cold replay (cuMemCreate, moves,
// unmaps, all calls) and of the three warm ones. The placement lives in placement.patch (applies to main
// at f3ece35; not part of the library), steered by environment variables: XMODE (bits: 1 the end of a
// free block, 2 the start of another, 4 either end of a run of adjacent usable free blocks), XMIN (only
// requests of at least this many 2 MiB pages), XGAIN (a placement is taken only if it saves at least this
// share of the chosen block's new pages; 2: never, look only), XLOG (log requests of at least 256 MiB that
// need pages to stderr). run.sh builds it against main's headers and the patched ones and makes every
// file in this folder.
#include <cstdio>
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
struct result { double cold, warm; std::size_t creates, moves, unmaps, calls, warm_calls; };
template <class A>
result run(const trace& t, A& a) {
  std::vector<void*> s(t.slot_count);
  pass(t, a, s);
  result r{};
  const auto& b = a.backend();
  r.cold = double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes);
  r.creates = b.map_calls(), r.moves = b.move_calls(), r.unmaps = b.unmap_calls(), r.calls = b.driver_calls();
  for (int i = 0; i < 3; ++i) pass(t, a, s);
  r.warm = double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes);
  r.warm_calls = b.driver_calls() - r.calls;
  if (b.misuses() != 0) std::printf("MISUSES %zu\n", b.misuses());
  return r;
}
int main(int argc, char** argv) {
  std::printf("%-24s %-15s %-15s %-15s  cold: creates moves unmaps calls | warm x3 calls\n", "trace", "host cold/peak",
              "lag0 cold/peak", "lag2 cold/peak");
  for (int f = 1; f < argc; ++f) {
    auto t = read_trace(argv[f]);
    result h, l0, l2;
    { stash::simulated_caching_allocator a; h = run(t, a); }
    { simulated_ordered_allocator a(stash::simulated_paged_backend{}, {}, counting_ordering{0}); l0 = run(t, a); }
    { simulated_ordered_allocator a(stash::simulated_paged_backend{}, {}, counting_ordering{2}); l2 = run(t, a); }
    std::printf("%-24s %.4f/%.4f   %.4f/%.4f   %.4f/%.4f   %5zu %4zu %4zu %5zu | %5zu\n", t.name.c_str(), h.cold, h.warm,
                l0.cold, l0.warm, l2.cold, l2.warm, h.creates, h.moves, h.unmaps, h.calls, h.warm_calls);
    std::fflush(stdout);
  }
}
