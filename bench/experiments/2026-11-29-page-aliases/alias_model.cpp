// A model, not the allocator: what the pages held and the driver calls of warm replays would be if a
// physical page could be mapped at several virtual pages at once (CUDA's cuMemMap maps a handle, or
// a granule-aligned part of it, at any number of reserved addresses), so that a page stays mapped
// wherever it was used, and only a conflict (two of its virtual pages touched at once) costs calls.
//
// The virtual layout is stash's own: each trace is replayed on simulated_caching_allocator (host
// order, default options), cold and then `warm` times, and the page spans of its blocks drive the
// model. The model keeps, per virtual page, how many live blocks touch it and which physical page
// backs it; per physical page, which of its virtual pages touches it now (at most one).
//   - a virtual page becomes touched: if its physical page is not touched elsewhere, nothing to do;
//     otherwise (a conflict) the virtual page is unmapped; then (or if it had none) an idle physical
//     page is mapped there (policy below), or a new one is made when none is idle.
// Physical pages made = the most virtual pages touched at once (a new one only when none is idle),
// plus what a slack lets a policy make to avoid a known conflict.
// Policies for the idle physical page a virtual page gets: lifo (the one idle last), fifo, learn (skip
// pages that back a virtual page known, from an earlier conflict, to conflict with this one), pred
// (skip pages one of whose virtual pages was touched, in the previous replay, during the time this one
// was touched then), tight (pred, and of those the page whose next other use comes soonest). learn,
// pred and tight make a new page, while the pages made stay within (1 + slack) x the most touched at
// once, rather than take one expected to conflict.
// Build and run from the root of a checkout (results.txt):
//   g++ -std=c++20 -O2 -Iinclude -Ibench bench/experiments/2026-11-29-page-aliases/alias_model.cpp -o /tmp/alias_model
//   WARM=6 /tmp/alias_model bench/traces/*.csv
#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <deque>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "stash/allocators.hpp"
#include "trace_reader.hpp"

using namespace stash;
using namespace stash::bench;

struct span { std::size_t first, last; bool alloc; };

static std::vector<std::vector<span>> layouts(const trace& t, int warm, double& stash_cold, double& stash_warm) {
  simulated_caching_allocator a;
  std::vector<void*> slots(t.slot_count);
  std::vector<std::size_t> sizes(t.slot_count);
  const std::size_t page = a.backend().page_size();
  std::vector<std::vector<span>> passes;
  for (int pass = 0; pass <= warm; ++pass) {
    std::vector<span> ev;
    auto note = [&](void* p, std::size_t size, bool alloc) {
      const auto addr = reinterpret_cast<std::uintptr_t>(p);
      ev.push_back({addr / page, (addr + size - 1) / page, alloc});
    };
    for (const auto& op : t.ops) {
      if (op.is_free) { note(slots[op.slot], sizes[op.slot], false); a.deallocate(slots[op.slot]); }
      else { slots[op.slot] = a.allocate(op.size); sizes[op.slot] = a.good_size(op.size); note(slots[op.slot], sizes[op.slot], true); }
    }
    for (const auto& op : t.live_at_end) { note(slots[op.slot], sizes[op.slot], false); a.deallocate(slots[op.slot]); }
    passes.push_back(std::move(ev));
    if (pass == 0) stash_cold = double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes);
  }
  stash_warm = double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes);
  return passes;
}

enum class policy { lifo, fifo, learn, predict, tight };

struct model {
  policy pol;
  double slack;
  std::unordered_map<std::size_t, std::uint32_t> touches;   // virtual page -> live blocks on it
  std::unordered_map<std::size_t, long> phys_of;             // virtual page -> physical page
  std::vector<long> owner;                                   // physical page -> virtual page touching it, or -1
  std::vector<std::unordered_set<std::size_t>> aliases;      // physical page -> virtual pages mapped to it
  std::deque<long> idle;                                     // idle physical pages (may hold stale ones)
  std::unordered_map<std::size_t, std::unordered_set<std::size_t>> conflicts;  // learned
  std::size_t touched_now = 0, touched_high = 0;
  // predict: each virtual page's touched intervals (event index within the replay) in the previous
  // replay and in this one; a page touched at t is predicted to stay touched until the end of the
  // previous replay's interval that contains t
  std::unordered_map<std::size_t, std::vector<std::pair<std::size_t, std::size_t>>> prev, cur;
  std::unordered_map<std::size_t, std::size_t> since;
  std::size_t now = 0;
  static constexpr std::size_t open = SIZE_MAX;
  std::size_t predicted_end(std::size_t v) {
    auto it = prev.find(v);
    if (it == prev.end()) return open;
    for (auto [s, e] : it->second) if (s <= now && now < e) return e;
    return open;
  }
  bool overlaps(std::size_t w, std::size_t from, std::size_t to) {
    auto it = prev.find(w);
    if (it == prev.end()) return false;
    for (auto [s, e] : it->second) if (s < to && from < e) return true;
    return false;
  }
  bool predicted_free(std::size_t v, long q) {
    const std::size_t end = predicted_end(v);
    for (std::size_t w : aliases[q]) if (w != v && overlaps(w, now, end)) return false;
    return true;
  }
  /// The earliest predicted touch, after `from`, of the virtual pages q backs (other than v).
  std::size_t next_use(std::size_t v, long q, std::size_t from) {
    std::size_t best = open;
    for (std::size_t w : aliases[q]) {
      if (w == v) continue;
      auto it = prev.find(w);
      if (it == prev.end()) continue;
      for (auto [s, e] : it->second) if (s >= from) { best = std::min(best, s); break; }
    }
    return best;
  }
  void next_replay() {
    for (auto& [v, s0] : since) cur[v].push_back({s0, open});  // still touched at the end
    since.clear();
    prev = std::move(cur);
    cur.clear();
    now = 0;
  }
  std::size_t creates = 0, maps = 0, unmaps = 0, conflicts_seen = 0;

  bool known_conflict(std::size_t v, long q) {
    auto it = conflicts.find(v);
    if (it == conflicts.end()) return false;
    for (std::size_t w : aliases[q]) if (it->second.count(w)) return true;
    return false;
  }
  long take_idle(std::size_t v) {
    // drop stale entries
    std::deque<long> kept;
    long chosen = -1;
    if (pol == policy::predict || pol == policy::tight) {
      std::size_t best = open;
      const std::size_t end = predicted_end(v);
      for (auto it = idle.rbegin(); it != idle.rend(); ++it) {
        if (owner[*it] != -1) continue;
        if (!predicted_free(v, *it)) continue;
        if (pol == policy::predict) { chosen = *it; break; }
        // tight: the page whose next other use comes soonest after v's predicted end (an interval
        // graph's best fit); a page no other virtual page uses counts last
        const std::size_t next = end == open ? open : next_use(v, *it, end);
        if (chosen == -1 || next < best) { chosen = *it; best = next; }
      }
      const bool may_make = double(owner.size() + 1) <= (1 + slack) * double(touched_high);
      if (chosen == -1 && !may_make)
        for (auto it = idle.rbegin(); it != idle.rend(); ++it) if (owner[*it] == -1) { chosen = *it; break; }
      if (chosen != -1) idle.erase(std::find(idle.begin(), idle.end(), chosen));
      return chosen;
    }
    if (pol == policy::learn) {
      for (auto it = idle.rbegin(); it != idle.rend(); ++it) {
        if (owner[*it] != -1) continue;
        if (!known_conflict(v, *it)) { chosen = *it; break; }
      }
      const bool may_make = double(owner.size() + 1) <= (1 + slack) * double(touched_high);
      if (chosen == -1 && !may_make) {
        for (auto it = idle.rbegin(); it != idle.rend(); ++it) if (owner[*it] == -1) { chosen = *it; break; }
      }
    } else {
      while (!idle.empty() && chosen == -1) {
        long q;
        if (pol == policy::lifo) { q = idle.back(); idle.pop_back(); } else { q = idle.front(); idle.pop_front(); }
        if (owner[q] == -1) chosen = q;
      }
    }
    if (chosen != -1 && pol == policy::learn) idle.erase(std::find(idle.begin(), idle.end(), chosen));
    return chosen;
  }
  void touch(std::size_t v) {
    if (touches[v]++ != 0) return;
    since[v] = now;
    touched_high = std::max(touched_high, ++touched_now);
    auto it = phys_of.find(v);
    if (it != phys_of.end()) {
      const long p = it->second;
      if (owner[p] == -1) { owner[p] = long(v); return; }
      ++conflicts_seen;
      conflicts[v].insert(std::size_t(owner[p]));
      conflicts[std::size_t(owner[p])].insert(v);
      aliases[p].erase(v);
      phys_of.erase(it);
      ++unmaps;
    }
    long q = take_idle(v);
    if (q == -1) { q = long(owner.size()); owner.push_back(-1); aliases.emplace_back(); ++creates; }
    owner[q] = long(v);
    aliases[q].insert(v);
    phys_of[v] = q;
    ++maps;
  }
  void untouch(std::size_t v) {
    if (--touches[v] != 0) return;
    --touched_now;
    cur[v].push_back({since[v], now});
    since.erase(v);
    const long p = phys_of.at(v);
    owner[p] = -1;
    idle.push_back(p);
  }
  void run(const std::vector<span>& ev) {
    for (const auto& e : ev)
      { for (std::size_t v = e.first; v <= e.last; ++v) e.alloc ? touch(v) : untouch(v); ++now; }
    next_replay();
  }
};

int main(int argc, char** argv) {
  const int warm = argc > 0 ? std::atoi(std::getenv("WARM") ? std::getenv("WARM") : "4") : 4;
  std::printf("%-26s %8s %8s | %-6s %5s %8s %8s | %s\n", "trace", "stash", "settled", "policy", "slack", "held", "cold", "calls (maps+unmaps) per warm replay");
  for (int i = 1; i < argc; ++i) {
    const trace t = read_trace(argv[i]);
    double sc, sw;
    const auto passes = layouts(t, warm, sc, sw);
    const std::size_t page = std::size_t{2} << 20;
    struct cfg { policy p; double slack; const char* name; };
    for (cfg c : {cfg{policy::lifo, 0, "lifo"}, cfg{policy::fifo, 0, "fifo"}, cfg{policy::predict, 0.0, "pred"}, cfg{policy::predict, 0.02, "pred"}, cfg{policy::predict, 0.05, "pred"}, cfg{policy::predict, 0.10, "pred"}, cfg{policy::predict, 0.20, "pred"}}) {
      model m{c.p, c.slack};
      std::string warm_calls;
      double cold_held = 0;
      for (std::size_t k = 0; k < passes.size(); ++k) {
        const std::size_t before = m.maps + m.unmaps;
        m.run(passes[k]);
        if (k == 0) cold_held = double(m.owner.size() * page) / double(t.peak_live_bytes);
        else warm_calls += std::to_string(m.maps + m.unmaps - before) + " ";
      }
      std::printf("%-26s %8.4f %8.4f | %-6s %5.2f %8.4f %8.4f | %s\n", t.name.c_str(), sc, sw, c.name, c.slack,
                  double(m.owner.size() * page) / double(t.peak_live_bytes), cold_held, warm_calls.c_str());
    }
  }
}
