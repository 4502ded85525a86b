#include <cstdio>
#include <map>
#include <vector>
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/lock/null_lock.hpp"
#include "trace_reader.hpp"
std::map<std::size_t, int> chunks_hist, access_hist; int moves = 0, movesn = 0, unmaps = 0;
struct logged : stash::simulated_paged_backend {
  using stash::simulated_paged_backend::simulated_paged_backend;
  bool map_chunks(std::uintptr_t a, std::size_t n, std::size_t chunk) noexcept {
    if (chunk == 0 || chunk > n) chunk = n;
    for (std::size_t d = 0; d < n; d += chunk) chunks_hist[std::min(chunk, n - d)]++;
    return simulated_paged_backend::map_chunks(a, n, chunk);
  }
  bool map_pages(std::uintptr_t a, std::size_t n) noexcept { return map_chunks(a, n, n) && set_access(a, n); }
  bool set_access(std::uintptr_t a, std::size_t n) noexcept { access_hist[n]++; return simulated_paged_backend::set_access(a, n); }
};
int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    auto t = stash::bench::read_trace(argv[i]);
    chunks_hist.clear(); access_hist.clear();
    stash::caching_allocator<logged, stash::segregated_fit_buckets, stash::null_lock> a(logged{}, stash::caching_options{});
    std::vector<void*> slots(t.slot_count);
    for (const auto& op : t.ops) { if (op.is_free) a.deallocate(slots[op.slot]); else slots[op.slot] = a.allocate(op.size); }
    std::printf("%s: driver calls %zu, moves %zu\n  chunks (pages:count):", t.name.c_str(), a.backend().driver_calls(), (size_t)a.page_moves());
    int tc = 0; for (auto [k, v] : chunks_hist) { std::printf(" %zu:%d", k, v); tc += v; }
    std::printf("  total %d\n  access (pages:count):", tc);
    int ta = 0; for (auto [k, v] : access_hist) { std::printf(" %zu:%d", k, v); ta += v; }
    std::printf("  total %d\n", ta);
  }
}
