// A lower-bound style question: given one warm pass of the default layout (every pass repeats it), can
// each 2 MiB virtual page be given ONE physical page for good (aliases never change: no driver call in
// any later pass) so that pages sharing a physical page are never touched at once? First-fit coloring of
// the virtual pages' touched intervals; reports colors (physical pages) / live peak. CHUNK=k (default 1)
// colors aligned groups of k virtual pages instead (one physical allocation of k pages each, aliased
// whole: the driver maps no part of a handle), a group touched while any of its pages is.
#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <map>
#include <unordered_map>
#include <vector>
#include "stash/allocators.hpp"
#include "stash/lock/null_lock.hpp"
#include "trace_reader.hpp"
using A = stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets, stash::null_lock>;
using iv = std::pair<std::size_t, std::size_t>;
int main(int argc, char** argv) {
  for (int ai = 1; ai < argc; ++ai) {
    auto t = stash::bench::read_trace(argv[ai]);
    A a;
    std::vector<void*> slots(t.slot_count);
    std::vector<std::size_t> sizes(t.slot_count);
    std::unordered_map<std::uintptr_t, int> ref;
    std::unordered_map<std::uintptr_t, std::size_t> since;
    std::map<std::uintptr_t, std::vector<iv>> ivs;
    std::size_t now = 0, touched = 0, peak = 0;
    static const std::size_t chunk = std::getenv("CHUNK") ? std::strtoul(std::getenv("CHUNK"), nullptr, 10) : 1;
    auto pages = [](std::uintptr_t x, std::size_t n, auto f) { for (std::uintptr_t v = (x >> 21) / chunk; v <= ((x + n - 1) >> 21) / chunk; ++v) f(v); };
    for (int pass = 0; pass < 3; ++pass) {
      now = 0;
      const bool rec = pass == 2;
      auto untouch = [&](std::uintptr_t v) { if (--ref[v] == 0) { --touched; if (rec) ivs[v].push_back({since[v], now + 1}); } };
      for (auto& op : t.ops) {
        ++now;
        if (op.is_free) { pages(reinterpret_cast<std::uintptr_t>(slots[op.slot]), sizes[op.slot], untouch); a.deallocate(slots[op.slot]); }
        else {
          void* p = a.allocate(op.size); slots[op.slot] = p; sizes[op.slot] = stash::segregated_fit_buckets::round_up(op.size);
          pages(reinterpret_cast<std::uintptr_t>(p), sizes[op.slot], [&](std::uintptr_t v) { if (ref[v]++ == 0) { ++touched; if (rec) peak = std::max(peak, touched); since[v] = now; } });
        }
      }
      ++now;
      for (auto& op : t.live_at_end) { pages(reinterpret_cast<std::uintptr_t>(slots[op.slot]), sizes[op.slot], untouch); a.deallocate(slots[op.slot]); }
    }
    // order: longest total touched time first (big, long-lived pages take colors first)
    std::vector<std::pair<std::uintptr_t, std::vector<iv>*>> order;
    for (auto& [v, l] : ivs) order.push_back({v, &l});
    auto total = [](const std::vector<iv>& l) { std::size_t s = 0; for (auto& x : l) s += x.second - x.first; return s; };
    std::sort(order.begin(), order.end(), [&](auto& x, auto& y) { return total(*x.second) > total(*y.second); });
    std::vector<std::vector<iv>> colors;  // each sorted by start, disjoint
    auto fits = [](const std::vector<iv>& c, const std::vector<iv>& l) {
      for (auto& x : l) {
        auto it = std::lower_bound(c.begin(), c.end(), iv{x.second, 0});  // first starting at or after x's end
        if (it != c.begin() && std::prev(it)->second > x.first) return false;
      }
      return true;
    };
    for (auto& [v, l] : order) {
      std::size_t k = 0;
      while (k < colors.size() && !fits(colors[k], *l)) ++k;
      if (k == colors.size()) colors.emplace_back();
      auto& c = colors[k];
      c.insert(c.end(), l->begin(), l->end());
      std::sort(c.begin(), c.end());
    }
    std::printf("%-26s virtual %s %zu  touched peak %.4f  static physical %.4f of live\n", t.name.c_str(),
                chunk == 1 ? "pages" : "chunks", ivs.size(), double((peak * chunk) << 21) / t.peak_live_bytes,
                double((colors.size() * chunk) << 21) / t.peak_live_bytes);
    std::fflush(stdout);
  }
}
