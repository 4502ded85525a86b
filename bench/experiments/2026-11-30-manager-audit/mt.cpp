// Multi-threaded driver of the memory manager (host-backed): TSan and final consistency.
#include <atomic>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>
#include <barrier>

#include "stash/memory_manager.hpp"

using namespace stash;

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 3;
  int bad = 0;
  for (int round = 0; round < rounds; ++round) {
    const int N = 3, T = 6;
    memory_manager mm(memory_manager::backing::host, N);
    std::atomic<long> ooms{0}, observed{0};
    mm.attach_out_of_memory_observer([&](const out_of_memory&) { observed.fetch_add(1); });
    std::atomic<bool> stop{false};
    std::vector<std::thread> ts;
    std::vector<std::vector<std::pair<void*, int>>> kept(T);
    for (int t = 0; t < T; ++t) {
      ts.emplace_back([&, t] {
        std::mt19937_64 rng(round * 100 + t);
        std::vector<std::pair<void*, int>> mine;
        for (int i = 0; i < 4000; ++i) {
          int r = rng() % 20;
          try {
            if (r < 8) {
              int d = static_cast<int>(rng() % N);
              std::size_t n = 1 + rng() % (rng() % 4 ? 4000 : 3 << 20);
              void* p = rng() % 5 ? mm.allocate(n, memory_type::device, d) : mm.allocate_pinned(n);
              mine.push_back({p, d});
            } else if (r < 15) {
              if (!mine.empty()) {
                std::size_t k = rng() % mine.size();
                if (rng() % 2) mm.deallocate(mine[k].first); else { mm.record_stream(mine[k].first, stream{}); mm.deallocate(mine[k].first); }
                mine.erase(mine.begin() + static_cast<long>(k));
              }
            } else if (r == 15) mm.empty_cache(static_cast<int>(rng() % N));
            else if (r == 16) mm.trim_cache(rng() % (4 << 20), static_cast<int>(rng() % N));
            else if (r == 17) { auto s = mm.get_stats(static_cast<int>(rng() % N)); if (s.total_cached + s.total_allocated != s.total_reserved) std::printf("inconsistent snapshot\n"); }
            else if (r == 18) mm.set_memory_limit(rng() % 3 ? memory_manager::unlimited : (16u << 20), static_cast<int>(rng() % N));
            else { if (rng() % 64 == 0) mm.attach_out_of_memory_observer([](const out_of_memory&) {}); mm.reset_peak(static_cast<int>(rng() % N)); (void)mm.memory_limit(static_cast<int>(rng() % N)); mm.empty_pinned_cache(); (void)mm.get_pinned_stats();
                   if (!mine.empty()) { (void)mm.owns(mine[0].first); (void)mm.live_block_containing(mine[0].first); } }
          } catch (const out_of_memory&) {
            ooms.fetch_add(1);
          }
        }
        kept[t] = std::move(mine);
      });
    }
    for (auto& th : ts) th.join();
    // quiescent: figures match what is live
    std::vector<std::size_t> want(N + 1, 0);
    for (auto& v : kept) for (auto& [p, d] : v) (void)p, (void)d;
    long total_ooms = 0;
    for (int d = 0; d < N; ++d) total_ooms += static_cast<long>(mm.get_stats(d).num_ooms);
    total_ooms += static_cast<long>(mm.get_pinned_stats().num_ooms);
    if (total_ooms != ooms.load() || observed.load() != ooms.load()) { std::printf("oom counts differ %ld %ld %ld\n", total_ooms, ooms.load(), observed.load()); ++bad; }
    for (auto& v : kept) for (auto& [p, d] : v) mm.deallocate(p);
    for (int d = 0; d < N; ++d) { auto s = mm.get_stats(d); if (s.total_allocated != 0 || s.detail.allocations != s.detail.deallocations) { std::printf("dev %d not zero\n", d); ++bad; } }
    auto s = mm.get_pinned_stats(); if (s.total_allocated != 0) { std::printf("pinned not zero\n"); ++bad; }
    std::printf("round %d ooms %ld\n", round, ooms.load());
  }
  return bad;
}
