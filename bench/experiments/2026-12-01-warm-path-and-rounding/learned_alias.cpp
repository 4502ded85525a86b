// The learned fixed alias map, modelled: in each replay, virtual pages are served as alias_sim.cpp's
// PRED-free FIFO policy serves them (a conflict costs an unmap; a page mapped costs a map and a grant),
// and their touched intervals are recorded. Between replays (a step boundary), first-fit coloring of
// those intervals gives each virtual page one physical page for the next replay; every virtual page
// whose physical page changes is remapped then (3 calls: unmap, map, grant). Reports physical pages over
// the live peak, and per replay: conflicts' calls within it, and the remap calls before it.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <unordered_map>
#include <vector>
#include "stash/allocators.hpp"
#include "stash/lock/null_lock.hpp"
#include "trace_reader.hpp"
using A = stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets, stash::null_lock>;
using iv = std::pair<std::size_t, std::size_t>;
int main(int argc, char** argv) {
  const int passes = std::getenv("PASSES") ? std::atoi(std::getenv("PASSES")) : 6;
  for (int ai = 1; ai < argc; ++ai) {
    auto t = stash::bench::read_trace(argv[ai]);
    A a;
    std::vector<void*> slots(t.slot_count);
    std::vector<std::size_t> sizes(t.slot_count);
    std::unordered_map<std::uintptr_t, int> ref;
    std::unordered_map<std::uintptr_t, long> map;      // virtual page -> physical page
    std::vector<std::uintptr_t> active;                // physical -> touched virtual page, or 0
    std::vector<long> idle;                            // physical pages nobody touches, oldest first
    std::unordered_map<std::uintptr_t, std::size_t> since;
    std::map<std::uintptr_t, std::vector<iv>> ivs;     // this replay's touched intervals
    std::size_t now = 0, calls = 0, peak_phys = 0;
    auto take_idle = [&](long p) { idle.erase(std::find(idle.begin(), idle.end(), p)); };
    auto touch = [&](std::uintptr_t v) {
      since[v] = now;
      auto it = map.find(v);
      if (it != map.end() && active[it->second] == 0) { active[it->second] = v; take_idle(it->second); return; }
      if (it != map.end()) { ++calls; map.erase(it); }  // conflict: unmap v
      long p;
      if (!idle.empty()) { p = idle.front(); idle.erase(idle.begin()); calls += 2; }
      else { p = (long)active.size(); active.push_back(0); calls += 3; }
      active[p] = v; map[v] = p;
    };
    auto untouch = [&](std::uintptr_t v) { ivs[v].push_back({since[v], now + 1}); long p = map.at(v); active[p] = 0; idle.push_back(p); };
    auto pages = [](std::uintptr_t x, std::size_t n, auto f) { for (std::uintptr_t v = x >> 21; v <= (x + n - 1) >> 21; ++v) f(v); };
    std::printf("%-26s", t.name.c_str());
    for (int pass = 0; pass < passes; ++pass) {
      std::size_t remap_calls = 0;
      if (pass >= 2) {  // recolor from the replay before
        std::vector<std::pair<std::uintptr_t, std::vector<iv>*>> order;
        for (auto& [v, l] : ivs) order.push_back({v, &l});
        auto total = [](const std::vector<iv>& l) { std::size_t s = 0; for (auto& x : l) s += x.second - x.first; return s; };
        std::stable_sort(order.begin(), order.end(), [&](auto& x, auto& y) { return total(*x.second) > total(*y.second); });
        std::vector<std::vector<iv>> colors;
        std::vector<long> color_phys;  // the physical page of each color: the one most of its pages have now
        std::unordered_map<std::uintptr_t, std::size_t> color_of;
        auto fits = [](const std::vector<iv>& c, const std::vector<iv>& l) {
          for (auto& x : l) {
            auto it = std::lower_bound(c.begin(), c.end(), iv{x.second, 0});
            if (it != c.begin() && std::prev(it)->second > x.first) return false;
          }
          return true;
        };
        for (auto& [v, l] : order) {
          std::size_t k = 0;
          while (k < colors.size() && !fits(colors[k], *l)) ++k;
          if (k == colors.size()) colors.emplace_back();
          colors[k].insert(colors[k].end(), l->begin(), l->end());
          std::sort(colors[k].begin(), colors[k].end());
          color_of[v] = k;
        }
        // give each color a physical page: the one its first page has now if still free to claim
        std::vector<char> claimed(active.size(), 0);
        color_phys.assign(colors.size(), -1);
        for (auto& [v, l] : order) { std::size_t k = color_of[v]; auto it = map.find(v); if (color_phys[k] < 0 && it != map.end() && !claimed[it->second]) { color_phys[k] = it->second; claimed[it->second] = 1; } }
        for (auto& c : color_phys) if (c < 0) { long p = -1; for (std::size_t q = 0; q < claimed.size(); ++q) if (!claimed[q]) { p = (long)q; break; } if (p < 0) { p = (long)active.size(); active.push_back(0); claimed.push_back(0); } claimed[p] = 1; c = p; }
        // remap every page whose physical page changes; pages no color names keep what they have
        for (auto& [v, k] : color_of) { auto it = map.find(v); if (it == map.end() || it->second != color_phys[k]) { remap_calls += it == map.end() ? 2 : 3; map[v] = color_phys[k]; } }
        // mappings of other pages onto the colors' physical pages stay (aliases); idle list: everything
        idle.clear(); for (std::size_t q = 0; q < active.size(); ++q) idle.push_back((long)q);
      }
      ivs.clear();
      std::size_t c0 = calls;
      now = 0;
      for (auto& op : t.ops) {
        ++now;
        if (op.is_free) {
          pages(reinterpret_cast<std::uintptr_t>(slots[op.slot]), sizes[op.slot], [&](std::uintptr_t v) { if (--ref[v] == 0) untouch(v); });
          a.deallocate(slots[op.slot]);
        } else {
          void* p = a.allocate(op.size); slots[op.slot] = p; sizes[op.slot] = stash::segregated_fit_buckets::round_up(op.size);
          pages(reinterpret_cast<std::uintptr_t>(p), sizes[op.slot], [&](std::uintptr_t v) { if (ref[v]++ == 0) touch(v); });
        }
      }
      ++now;
      for (auto& op : t.live_at_end) {
        pages(reinterpret_cast<std::uintptr_t>(slots[op.slot]), sizes[op.slot], [&](std::uintptr_t v) { if (--ref[v] == 0) untouch(v); });
        a.deallocate(slots[op.slot]);
      }
      peak_phys = std::max(peak_phys, active.size());
      std::printf(" | %zu+%zu", remap_calls, calls - c0);
    }
    std::printf("  | physical %.4f of live\n", double(peak_phys << 21) / t.peak_live_bytes);
    std::fflush(stdout);
  }
}
