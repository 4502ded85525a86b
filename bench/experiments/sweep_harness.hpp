#pragma once
// What the options sweeps in this folder share (2026-11-28-placement/placement_sweep.cpp,
// 2026-11-28-chunk-moves/options_sweep.cpp, 2026-11-29-pending-remap/options_sweep.cpp): a trace
// replayed cold and then three times warm on the simulated paged device, in host order and in stream
// order, and what each sweep prints of it. Header-only, built by hand with each sweep (its folder's
// run.sh); it compiles against the older headers those scripts build with too, so the counters that
// came later are read only where the backend has them.
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "allocators/counting_ordering.hpp"
#include "allocators/ordered_allocator.hpp"
#include "stash/allocators.hpp"
#include "trace_reader.hpp"

namespace stash::bench::sweep {

/// One replay of t on a: every op, then a free of each block still live at the end. s holds the
/// pointer of each slot.
template <class A>
void pass(const trace& t, A& a, std::vector<void*>& s) {
  for (const auto& op : t.ops) {
    if (op.is_free) a.deallocate(s[op.slot]); else s[op.slot] = a.allocate(op.size);
  }
  for (const auto& op : t.live_at_end) a.deallocate(s[op.slot]);
}

/// Peak reserved over peak live bytes after the cold replay (cold) and over it and three warm ones
/// (warm); the backend's calls in the cold replay (cuMemCreate, move_page, move_pages, unmaps, every
/// driver call, remap_pages) and in the three warm ones (every driver call, remap_pages).
/// chunk_moves and the remaps stay 0 on a backend that does not count them.
struct result {
  double cold, warm;
  std::size_t creates, moves, chunk_moves, unmaps, calls, warm_calls, remaps, warm_remaps;
};

/// The cold replay and three warm ones of t on a, with a line `MISUSES n` on stdout where the backend
/// counted a misuse.
template <class A>
result run(const trace& t, A& a) {
  std::vector<void*> s(t.slot_count);
  pass(t, a, s);
  result r{};
  const auto& b = a.backend();
  r.cold = double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes);
  r.creates = b.map_calls(), r.moves = b.move_calls(), r.unmaps = b.unmap_calls(), r.calls = b.driver_calls();
  if constexpr (requires { b.chunk_moves(); }) r.chunk_moves = b.chunk_moves();
  if constexpr (requires { b.remap_calls(); }) r.remaps = b.remap_calls();
  for (int i = 0; i < 3; ++i) pass(t, a, s);
  if constexpr (requires { b.remap_calls(); }) r.warm_remaps = b.remap_calls() - r.remaps;
  r.warm = double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes);
  r.warm_calls = b.driver_calls() - r.calls;
  if (b.misuses() != 0) std::printf("MISUSES %zu\n", b.misuses());
  return r;
}

/// t replayed (run) with options o in host order and in stream order (counting_ordering) with events
/// that complete at once (lag 0) or two records late (lag 2), each on a new allocator.
struct orders {
  result host, lag0, lag2;
};
inline orders run_orders(const trace& t, const stash::caching_options& o) {
  orders r;
  { stash::simulated_caching_allocator a(stash::simulated_paged_backend{}, o); r.host = run(t, a); }
  { simulated_ordered_allocator a(stash::simulated_paged_backend{}, o, counting_ordering{0}); r.lag0 = run(t, a); }
  { simulated_ordered_allocator a(stash::simulated_paged_backend{}, o, counting_ordering{2}); r.lag2 = run(t, a); }
  return r;
}

/// caching_options with these from the environment where set: XCPB chunks_per_block, XMPB
/// moves_per_block, XPBM pages_between_moves, XMHOL max_held_over_live, XMCP max_chunk_pages.
inline stash::caching_options options_from_env() {
  stash::caching_options o;
  if (const char* e = std::getenv("XCPB")) o.chunks_per_block = std::strtoul(e, nullptr, 10);
  if (const char* e = std::getenv("XMPB")) o.moves_per_block = std::strtoul(e, nullptr, 10);
  if (const char* e = std::getenv("XPBM")) o.pages_between_moves = std::strtoul(e, nullptr, 10);
  if (const char* e = std::getenv("XMHOL")) o.max_held_over_live = std::strtod(e, nullptr);
  if (const char* e = std::getenv("XMCP")) o.max_chunk_pages = std::strtoul(e, nullptr, 10);
  return o;
}

}  // namespace stash::bench::sweep
