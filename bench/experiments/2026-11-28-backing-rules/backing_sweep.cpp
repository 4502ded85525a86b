// Rules for backing large blocks past the slack (fifth session; bench/RESULTS.md, "Rules for backing large
// blocks past the slack"). Per trace and option set: reserved/live after the cold replay and over it and
// three warm ones, in host order and in stream order (counting_ordering: events complete at once, lag 0,
// or two records late, lag 2), and in host order the driver calls of the cold replay by kind
// (cuMemCreate, moves, unmap+release pairs, cuMemSetAccess for new pages), the GiB created
// (cuMemCreate'd) by it, and the calls of the three warm replays. The rules live in rules.patch, which
// adds caching_options::large_block_backing (its comment lists them) and the simulated device's
// move_pages and created_bytes; the patch applies to main at 017a28b and is not part of the library.
//
// git worktree add --detach /tmp/rules 017a28b && cd /tmp/rules && git apply <this folder>/rules.patch
// g++ -std=c++20 -O2 -Iinclude -Ibench -I/usr/local/cuda/include <this folder>/backing_sweep.cpp bench/allocators/ordered_allocator.cpp -o /tmp/sweep
// /tmp/sweep 16,0,0 8,8,0 16,0,0,0 16,0,1 16,0,2 16,0,3 16,0,7 16,0,5 16,0,10 16,0,8 16,0,8,8,75 16,0,8,8,50 16,0,8,8,20 16,0,8,8,10 16,0,8,8,0 16,0,11 16,0,12 -- bench/traces/*.csv > sweep.txt
// python3 <this folder>/summarize.py sweep.txt
// An option set is chunks_per_block,moves_per_block,large_block_backing[,pages_between_moves (8)[,
// large_block_allowance in percent (100)]].
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include "allocators/counting_ordering.hpp"
#include "allocators/ordered_allocator.hpp"
#include "trace_reader.hpp"
#include "stash/allocators.hpp"
using namespace stash::bench;

struct counts { std::size_t creates, moves, unmaps, grants, calls, gib; };
template <class A>
counts count(A& a) {
  const auto& b = a.backend();
  return {b.map_calls(), b.move_calls(), b.unmap_calls(),
          b.driver_calls() - 2 * b.map_calls() - 3 * b.move_calls() - 2 * b.unmap_calls(), b.driver_calls(), b.created_bytes() >> 30};
}
template <class A>
void pass(const trace& t, A& a, std::vector<void*>& s) {
  for (const auto& op : t.ops) {
    if (op.is_free) a.deallocate(s[op.slot]); else s[op.slot] = a.allocate(op.size);
  }
  for (const auto& op : t.live_at_end) a.deallocate(s[op.slot]);
}
struct result { double cold, warm; counts c, w; };
template <class A>
result run(const trace& t, A& a) {
  std::vector<void*> s(t.slot_count);
  pass(t, a, s);
  result r{};
  r.cold = double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes);
  r.c = count(a);
  for (int i = 0; i < 3; ++i) pass(t, a, s);
  r.warm = double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes);
  counts all = count(a);
  r.w = {all.creates - r.c.creates, all.moves - r.c.moves, all.unmaps - r.c.unmaps, all.grants - r.c.grants, all.calls - r.c.calls, all.gib - r.c.gib};
  if (a.backend().misuses() != 0) std::printf("MISUSES %zu\n", a.backend().misuses());
  return r;
}
int main(int argc, char** argv) {
  std::vector<std::array<int, 5>> configs;
  int f = 1;
  for (; f < argc && std::string(argv[f]) != "--"; ++f) {
    std::array<int, 5> c{0, 0, 0, 8, 100};
    std::sscanf(argv[f], "%d,%d,%d,%d,%d", &c[0], &c[1], &c[2], &c[3], &c[4]);
    configs.push_back(c);
  }
  std::printf("%-24s %-8s %-15s %-15s %-15s  cold: creates moves unmaps grants calls | warm x3 calls (creates moves unmaps)\n",
              "trace", "c,m,r", "host cold/warm", "lag0 cold/warm", "lag2 cold/warm");
  for (++f; f < argc; ++f) {
    auto t = read_trace(argv[f]);
    for (auto [c, m, r, b, k] : configs) {
      stash::caching_options o; o.chunks_per_block = std::size_t(c); o.moves_per_block = std::size_t(m);
      o.large_block_backing = r; o.pages_between_moves = std::uint64_t(b);
      o.large_block_allowance = k / 100.0;
      result h, l0, l2;
      { stash::simulated_caching_allocator a(stash::simulated_paged_backend{}, o); h = run(t, a); }
      { simulated_ordered_allocator a(stash::simulated_paged_backend{}, o, counting_ordering{0}); l0 = run(t, a); }
      { simulated_ordered_allocator a(stash::simulated_paged_backend{}, o, counting_ordering{2}); l2 = run(t, a); }
      std::printf("%-24s %2d,%d,%d,%d,%d  %.4f/%.4f   %.4f/%.4f   %.4f/%.4f   %5zu %4zu %4zu %4zu %5zu %3zu GiB | %5zu (%zu %zu %zu) %zu GiB\n",
                  t.name.c_str(), c, m, r, b, k, h.cold, h.warm, l0.cold, l0.warm, l2.cold, l2.warm, h.c.creates, h.c.moves,
                  h.c.unmaps, h.c.grants, h.c.calls, h.c.gib, h.w.calls, h.w.creates, h.w.moves, h.w.unmaps, h.w.gib);
      std::fflush(stdout);
    }
  }
}
