// Where a trace's cold driver calls go (fifth session; bench/RESULTS.md, "Idle chunks move whole"): one
// cold replay in host order on the simulated device, and for each request that made driver calls, by
// its size in 2 MiB pages (powers of two), the calls and their kinds: physical allocations (cuMemCreate
// + cuMemMap), single-page moves (move_page: cuMemUnmap + cuMemMap + cuMemSetAccess), moves of chunks
// (move_pages: cuMemUnmap + cuMemMap; absent before them), chunks given back (cuMemUnmap +
// cuMemRelease) and access grants (the rest). run.sh builds it against main before and after.
#include <cstdio>
#include <map>
#include <vector>
#include "trace_reader.hpp"
#include "stash/allocators.hpp"
using namespace stash::bench;
template <class B>
std::size_t chunk_moves_of(const B& b) {
  if constexpr (requires { b.chunk_moves(); }) return b.chunk_moves();
  else return 0;
}
struct k { std::size_t reqs = 0, calls = 0, creates = 0, moves = 0, unmaps = 0, grants = 0, chunkmoves = 0; };
int main(int argc, char** argv) {
  for (int f = 1; f < argc; ++f) {
    auto t = read_trace(argv[f]);
    stash::simulated_caching_allocator a;
    const auto& b = a.backend();
    std::vector<void*> s(t.slot_count);
    std::map<int, k> by;  // log2 of pages
    k freeing;
    auto snap = [&] { k x; x.calls = b.driver_calls(); x.creates = b.map_calls(); x.moves = b.move_calls(); x.unmaps = b.unmap_calls();
      x.chunkmoves = chunk_moves_of(b);
      return x; };
    auto add = [](k& into, const k& a0, const k& a1) {
      into.calls += a1.calls - a0.calls; into.creates += a1.creates - a0.creates; into.moves += a1.moves - a0.moves;
      into.unmaps += a1.unmaps - a0.unmaps; into.chunkmoves += a1.chunkmoves - a0.chunkmoves; };
    for (const auto& op : t.ops) {
      const k before = snap();
      if (op.is_free) { a.deallocate(s[op.slot]); add(freeing, before, snap()); continue; }
      s[op.slot] = a.allocate(op.size);
      const k after = snap();
      if (after.calls == before.calls) continue;
      const std::size_t pages = (op.size + (2u << 20) - 1) >> 21;
      int c = 0; while ((std::size_t{1} << (c + 1)) <= pages) ++c;
      k& e = by[c]; ++e.reqs; add(e, before, after);
    }
    std::printf("%s cold: %zu calls, %zu pages moved\n", t.name.c_str(), b.driver_calls(), (size_t)a.page_moves());
    std::printf("  %-16s %6s %7s %7s %6s %6s %6s %7s\n", "request pages", "reqs", "calls", "creates", "moves", "chmov", "unmaps", "grants");
    for (auto& [c, e] : by) {
      const std::size_t grants = e.calls - 2 * e.creates - 3 * e.moves - 2 * e.unmaps - 2 * e.chunkmoves;
      std::printf("  [%5zu, %5zu)   %6zu %7zu %7zu %6zu %6zu %6zu %7zu\n", std::size_t{1} << c, std::size_t{2} << c, e.reqs, e.calls, e.creates, e.moves, e.chunkmoves, e.unmaps, grants);
    }
    std::printf("  frees: %zu calls\n", freeing.calls);
  }
}
