// Time-disjoint page aliasing, modelled (the tenth session's bench/experiments/2026-11-29-page-aliases
// asked the same question with other policies). The default allocator's layout (host order, simulated
// device) says when each 2 MiB virtual page is touched by a live block. A physical page may be mapped at
// several virtual pages (cuMemMap of one handle at several addresses) as long as at most one of them is
// touched at a time. A virtual page touched again keeps its mapping, free of driver calls, when its
// physical page is not in use through another of its virtual pages; else (a conflict) it is unmapped
// (1 call) and gets another physical page. Physical pages are made eagerly (create, map, set access: 3
// calls) while they number less than (1 + SLACK) x the most pages touched at once so far; after that an
// idle one is mapped (map, set access: 2 calls): the one idle last (default), the one idle longest
// (FIFO=1), or (LEARN=1) the one idle longest none of whose virtual pages ever conflicted with this one.
// SWAP=1: a page reclaimed in place leaves the idle list by a swap with its last entry (FIFO order lost).
// Calls are counted per page (the model maps no chunks, so its cold figures are not stash's).
//   g++ -std=c++20 -O2 -DNDEBUG -Iinclude -Ibench bench/experiments/2026-12-01-warm-path-and-rounding/alias_sim.cpp -o alias_sim
//   SLACK=0.04 LEARN=1 PASSES=10 ./alias_sim bench/traces
#include <cstdio>
#include <cstdlib>
#include <unordered_map>
#include <vector>
#include <deque>
#include <algorithm>
#include "stash/allocators.hpp"
#include "stash/lock/null_lock.hpp"
#include "trace_reader.hpp"
using A = stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets, stash::null_lock>;
int main(int argc, char** argv) {
  const double slack = std::getenv("SLACK") ? std::atof(std::getenv("SLACK")) : 0.0;
  const int passes = std::getenv("PASSES") ? std::atoi(std::getenv("PASSES")) : 6;
  for (auto& f : stash::bench::list_traces(argv[1])) {
    auto t = stash::bench::read_trace(f);
    A a;
    std::vector<void*> slots(t.slot_count);
    std::vector<std::size_t> sizes(t.slot_count);
    std::unordered_map<std::uintptr_t, int> ref;   // virtual page -> live blocks on it
    std::unordered_map<std::uintptr_t, long> map;  // virtual page -> physical page
    std::vector<std::uintptr_t> active;            // physical -> the touched virtual home, or 0
    std::vector<long> free_phys;                   // physical pages with no touched home, oldest first
    std::vector<std::vector<std::uintptr_t>> homes; // physical -> virtual pages it is mapped at
    std::unordered_map<std::uintptr_t, std::vector<std::uintptr_t>> clash; // virtual -> virtual pages once touched with it
    const bool learn = std::getenv("LEARN") != nullptr;
    const bool pred = std::getenv("PRED") != nullptr;
    std::size_t now = 0;  // op index within the pass
    std::unordered_map<std::uintptr_t, std::vector<std::pair<std::size_t, std::size_t>>> prev_iv, cur_iv;  // [start, end)
    std::unordered_map<std::uintptr_t, std::size_t> since;
    // the first time, in the previous pass, that w is touched during [a, b); SIZE_MAX if never
    auto first_overlap = [&](std::uintptr_t w, std::size_t a, std::size_t b) -> std::size_t {
      auto it = prev_iv.find(w);
      if (it == prev_iv.end()) return SIZE_MAX;
      for (auto& [s0, e0] : it->second) if (s0 < b && e0 > a) return std::max(s0, a);
      return SIZE_MAX;
    };
    auto predicted_end = [&](std::uintptr_t v, std::size_t t) -> std::size_t {
      auto it = prev_iv.find(v);
      if (it == prev_iv.end()) return t + 1;
      std::size_t best = t + 1, dist = SIZE_MAX;
      for (auto& [s0, e0] : it->second) { std::size_t d = s0 > t ? s0 - t : t - s0; if (d < dist) { dist = d; best = std::max(e0, t + 1); } }
      return best;
    };
    std::size_t touched = 0, peak_touched = 0;
    std::size_t calls = 0;
    std::vector<std::size_t> calls_per_pass;
    auto unhome = [&](long p, std::uintptr_t v) { auto& h = homes[p]; h.erase(std::find(h.begin(), h.end(), v)); };
    auto compatible = [&](long q, std::uintptr_t v) {
      auto c = clash.find(v);
      if (c == clash.end()) return true;
      for (auto w : homes[q]) if (std::find(c->second.begin(), c->second.end(), w) != c->second.end()) return false;
      return true;
    };
    auto grab = [&](std::uintptr_t v) {
      auto it = map.find(v);
      if (it != map.end() && active[it->second] == 0) {  // its own mapping is free: no call
        long p = it->second; active[p] = v;
        for (auto q = free_phys.begin(); q != free_phys.end(); ++q)
          if (*q == p) {
            if (std::getenv("SWAP")) *q = free_phys.back(), free_phys.pop_back();  // SWAP=1: order lost here
            else free_phys.erase(q);
            break;
          }
        return;
      }
      if (it != map.end()) {  // unmap the alias whose memory is busy; remember the clash
        calls += 1;
        const std::uintptr_t w = active[it->second];
        clash[v].push_back(w); clash[w].push_back(v);
        unhome(it->second, v); map.erase(it);
      }
      long p = -1;
      const bool may_make = double(active.size()) < double(peak_touched) * (1 + slack);
      if (!may_make && !free_phys.empty()) {
        auto pick = free_phys.begin();
        if (pred) {
          const std::size_t end = predicted_end(v, now);
          std::size_t best = 0;
          for (auto q = free_phys.begin(); q != free_phys.end(); ++q) {
            std::size_t first = SIZE_MAX;
            for (auto w : homes[*q]) if (w != v) first = std::min(first, first_overlap(w, now, end));
            if (first == SIZE_MAX) { pick = q; break; }
            if (first > best) { best = first; pick = q; }
          }
        } else if (learn) { for (auto q = free_phys.begin(); q != free_phys.end(); ++q) if (compatible(*q, v)) { pick = q; break; } }
        else if (!std::getenv("FIFO")) pick = free_phys.end() - 1;
        p = *pick; free_phys.erase(pick); calls += 2;  // map + set access
      }
      if (p < 0) { p = (long)active.size(); active.push_back(0); homes.emplace_back(); calls += 3; }  // create, map, set access
      active[p] = v; map[v] = p; homes[p].push_back(v);
    };
    auto release = [&](std::uintptr_t v) { long p = map.at(v); active[p] = 0; free_phys.push_back(p); };
    auto pages = [](std::uintptr_t a, std::size_t n, auto f) { for (std::uintptr_t v = a >> 21; v <= (a + n - 1) >> 21; ++v) f(v); };
    std::size_t phys_peak_cold = 0;
    for (int pass = 0; pass < passes; ++pass) {
      std::size_t c0 = calls;
      now = 0;
      for (auto& op : t.ops) {
        ++now;
        if (op.is_free) {
          void* p = slots[op.slot];
          pages(reinterpret_cast<std::uintptr_t>(p), sizes[op.slot], [&](std::uintptr_t v) { if (--ref[v] == 0) { --touched; cur_iv[v].push_back({since[v], now + 1}); release(v); } });
          a.deallocate(p);
        } else {
          void* p = a.allocate(op.size); slots[op.slot] = p; sizes[op.slot] = stash::segregated_fit_buckets::round_up(op.size);
          pages(reinterpret_cast<std::uintptr_t>(p), sizes[op.slot], [&](std::uintptr_t v) { if (ref[v]++ == 0) { ++touched; peak_touched = std::max(peak_touched, touched); since[v] = now; grab(v); } });
        }
      }
      for (auto& op : t.live_at_end) {
        void* p = slots[op.slot];
        pages(reinterpret_cast<std::uintptr_t>(p), sizes[op.slot], [&](std::uintptr_t v) { if (--ref[v] == 0) { --touched; cur_iv[v].push_back({since[v], now + 1}); release(v); } });
        a.deallocate(p);
      }
      prev_iv.swap(cur_iv); cur_iv.clear();
      if (pass == 0) phys_peak_cold = active.size();
      calls_per_pass.push_back(calls - c0);
    }
    std::printf("%-26s physical/live cold %.4f settled %.4f (touched peak %.4f, default %.4f)  mappings %zu  calls/replay:",
                t.name.c_str(), double(phys_peak_cold << 21) / t.peak_live_bytes, double(active.size() << 21) / t.peak_live_bytes,
                double(peak_touched << 21) / t.peak_live_bytes, double(a.stats().peak_reserved_bytes) / t.peak_live_bytes, map.size());
    for (auto c : calls_per_pass) std::printf(" %zu", c);
    std::printf("\n");
  }
}
