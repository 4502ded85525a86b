// Randomized driver of the C interface's graph-pool entry points, host-backed (no GPU here).
// usage: c_fuzz seed steps
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "stash_c.h"
#include "support/failing_heap.hpp"

namespace fh = stash_test::failing_heap;
static int g_step;
static std::uint64_t n_alloc, n_graph, n_fallback, n_misuse, n_heapfail, n_returned;
#define EXPECT(c, ...)                                                              \
  do {                                                                              \
    if (!(c)) {                                                                     \
      std::fprintf(stderr, "FAIL step %d: %s: ", g_step, #c);                       \
      std::fprintf(stderr, __VA_ARGS__);                                            \
      std::fprintf(stderr, " (last error: %s)\n", stash_last_error());              \
      std::exit(1);                                                                 \
    }                                                                               \
  } while (0)

struct ctx {
  std::set<std::uintptr_t> accepts;
};
static int filter(void* c, stash_stream_t s) {
  return static_cast<ctx*>(c)->accepts.count(reinterpret_cast<std::uintptr_t>(s)) != 0;
}
struct gb {
  int dev;
  std::uint64_t a, b;
  std::size_t n;
  bool live;
  std::uintptr_t freed_on;
  std::uintptr_t on;
};
struct nb {
  int dev;
  std::size_t n;
  std::uintptr_t s;
};
struct route {
  int dev;
  std::uint64_t a, b;
  ctx* c;
};
struct mp {
  std::size_t users = 0;
  bool released = false;
};
using key = std::tuple<int, std::uint64_t, std::uint64_t>;

std::mt19937_64 rng;
static std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); }
static bool chance(int p) { return (int)pick(100) < p; }
std::map<void*, nb> nlive;
std::map<void*, gb> glive;
std::map<key, mp> pools;
std::vector<route> routes;
std::list<ctx> ctxs;
const std::uintptr_t streams[] = {0, 0x100, 0x200, 0x300};
static stash_stream_t S(std::uintptr_t s) { return reinterpret_cast<stash_stream_t>(s); }

struct snap {
  std::uint64_t req[2], alloc_n[2], dealloc_n[2];
  std::map<key, std::pair<std::size_t, std::set<void*>>> figs;
  bool operator==(const snap& o) const {
    return std::equal(req, req + 2, o.req) && std::equal(alloc_n, alloc_n + 2, o.alloc_n) &&
           std::equal(dealloc_n, dealloc_n + 2, o.dealloc_n) && figs == o.figs;
  }
};
static snap take() {
  snap s;
  for (int d = 0; d < 2; ++d) {
    stash_stats st;
    EXPECT(stash_get_stats(d, &st) == STASH_OK, "stats");
    s.req[d] = st.requested_bytes;
    s.alloc_n[d] = st.allocations;
    s.dealloc_n[d] = st.deallocations;
    for (std::uint64_t a = 1; a <= 3; ++a) {
      size_t users = 0, count = 0;
      EXPECT(stash_graph_pool_users(d, a, 0, &users) == STASH_OK, "users");
      std::vector<stash_pool_block> out(64);
      EXPECT(stash_graph_pool_live_blocks(d, a, 0, out.data(), out.size(), &count) == STASH_OK, "live_blocks");
      std::set<void*> l;
      for (size_t i = 0; i < std::min<size_t>(count, 64); ++i) l.insert(out[i].ptr);
      s.figs[{d, a, 0}] = {users, l};
    }
  }
  return s;
}
static bool routed(int d, std::uint64_t a) {
  for (auto& r : routes)
    if (r.dev == d && r.a == a) return true;
  return false;
}
static std::size_t releasable() {
  std::size_t n = 0;
  for (auto& [p, g] : glive)
    if (!g.live && pools[{g.dev, g.a, g.b}].released) ++n;
  return n;
}
static void drop_if_empty(int d, std::uint64_t a) {
  auto it = pools.find({d, a, 0});
  if (it == pools.end() || !it->second.released || routed(d, a)) return;
  for (auto& [p, g] : glive)
    if (g.dev == d && g.a == a) return;
  pools.erase(it);
}
static void returned_all() {  // the model of return_released
  for (auto it = glive.begin(); it != glive.end();)
    if (!it->second.live && pools[{it->second.dev, it->second.a, it->second.b}].released) {
      it = glive.erase(it);
      ++n_returned;
    } else {
      ++it;
    }
  std::vector<key> ks;
  for (auto& [k, m] : pools) ks.push_back(k);
  for (auto& k : ks) drop_if_empty(std::get<0>(k), std::get<1>(k));
}
static void check() {
  for (int d = 0; d < 2; ++d) {
    std::uint64_t req = 0;
    for (auto& [p, b] : nlive) req += b.dev == d ? b.n : 0;
    for (auto& [p, g] : glive) req += g.dev == d ? g.n : 0;
    stash_stats st;
    EXPECT(stash_get_stats(d, &st) == STASH_OK, "stats");
    EXPECT(st.requested_bytes == req, "device %d requested %llu model %llu", d, (unsigned long long)st.requested_bytes,
           (unsigned long long)req);
  }
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> ext;
  for (auto& [p, b] : nlive) ext.push_back({(std::uintptr_t)p, (std::uintptr_t)p + b.n});
  for (auto& [p, g] : glive) ext.push_back({(std::uintptr_t)p, (std::uintptr_t)p + g.n});
  std::sort(ext.begin(), ext.end());
  for (std::size_t i = 1; i < ext.size(); ++i) EXPECT(ext[i - 1].second <= ext[i].first, "overlap");
  for (int d = 0; d < 2; ++d)
    for (std::uint64_t a = 1; a <= 3; ++a) {
      size_t users = 0;
      EXPECT(stash_graph_pool_users(d, a, 0, &users) == STASH_OK, "users");
      auto it = pools.find({d, a, 0});
      EXPECT(users == (it == pools.end() ? 0 : it->second.users), "users of %d:%llu", d, (unsigned long long)a);
      size_t count = 0;
      EXPECT(stash_graph_pool_live_blocks(d, a, 0, nullptr, 0, &count) == STASH_OK, "count");
      std::vector<stash_pool_block> out(count + 1);
      size_t c2 = 0;
      EXPECT(stash_graph_pool_live_blocks(d, a, 0, out.data(), out.size(), &c2) == STASH_OK && c2 == count, "lb");
      std::set<void*> got, want;
      for (size_t i = 0; i < count; ++i) got.insert(out[i].ptr);
      for (auto& [p, g] : glive)
        if (g.dev == d && g.a == a && g.live) want.insert(p);
      EXPECT(got == want, "live blocks of %d:%llu", d, (unsigned long long)a);
    }
}

int main(int argc, char** argv) {
  const unsigned seed = argc > 1 ? std::atoi(argv[1]) : 1;
  const int steps = argc > 2 ? std::atoi(argv[2]) : 3000;
  rng.seed(seed);
  EXPECT(stash_configure("backing:host,host_devices:2") == STASH_OK, "configure");
  for (int d = 0; d < 2; ++d) EXPECT(stash_set_memory_limit(d, 96u << 20) == STASH_OK, "limit");
  const bool heap = fh::can_fail();
  for (g_step = 0; g_step < steps; ++g_step) {
    const int w = (int)pick(100);
    const int d = (int)pick(2);
    const std::uintptr_t s = streams[pick(4)];
    const std::uint64_t a = 1 + pick(3);
    if (w < 32 && nlive.size() + glive.size() < 40) {
      const std::size_t n = chance(50) ? 1 + pick(8192) : (1 + pick(20)) << 20;
      const route* r = nullptr;
      for (auto it = routes.rbegin(); it != routes.rend(); ++it)
        if (it->dev == d && it->c->accepts.count(s)) {
          r = &*it;
          break;
        }
      const std::size_t rel = releasable();
      stash_stats before;
      stash_get_stats(d, &before);
      const snap sb = take();
      const bool arm = heap && chance(10);
      if (arm) fh::arm(1 + pick(8));
      stash_clear_error();
      void* p = stash_alloc((ssize_t)n, d, S(s));
      const bool hf = arm && fh::disarm();
      if (arm && !hf) fh::disarm();
      ++n_alloc;
      if (!p) {
        EXPECT(*stash_last_error() != 0, "null without an error");
        if (hf) {
          ++n_heapfail;
          EXPECT(take() == sb, "a failed alloc (host heap) changed something");
          continue;
        }
        // out of memory: the fallback may have returned released blocks
        stash_stats after;
        stash_get_stats(d, &after);
        if (rel && routes.empty()) {
          ++n_fallback;
          returned_all();
        }
        check();
        continue;
      }
      EXPECT(!nlive.count(p), "handed out a live block %p", p);
      if (r) {
        ++n_graph;
        // a freed block of the pool freed on s, the smallest that fits, or a new one
        std::size_t best = SIZE_MAX;
        for (auto& [q, g] : glive)
          if (g.dev == d && g.a == r->a && !g.live && g.freed_on == s && g.n >= n) best = std::min(best, g.n);
        if (auto it = glive.find(p); it != glive.end()) {
          EXPECT(!it->second.live && it->second.dev == d && it->second.a == r->a && it->second.freed_on == s &&
                     it->second.n == best, "bad reuse %p", p);
          it->second.live = true;
        } else {
          EXPECT(best == SIZE_MAX, "new block while a freed one fits");
          glive[p] = {d, r->a, 0, n, true, s, s};
        }
      } else {
        // the fallback may have run: the returned blocks' bytes left the device's requested
        if (rel && routes.empty() && !hf) {
          // compare requested: if it dropped by the released blocks, they went back
          stash_stats after;
          stash_get_stats(d, &after);
          std::uint64_t req = 0;
          for (auto& [q, b] : nlive) req += b.dev == d ? b.n : 0;
          for (auto& [q, g] : glive) req += g.dev == d ? g.n : 0;
          if (after.requested_bytes != req + n) {
            ++n_fallback;
            returned_all();
          }
        }
        EXPECT(!glive.count(p), "handed out a graph pool's block %p", p);
        nlive[p] = {d, n, s};
      }
    } else if (w < 55) {
      if (nlive.empty() && glive.empty()) continue;
      const bool g = !glive.empty() && (nlive.empty() || chance(45));
      void* p;
      if (g) {
        auto it = glive.begin();
        std::advance(it, pick(glive.size()));
        p = it->first;
      } else {
        auto it = nlive.begin();
        std::advance(it, pick(nlive.size()));
        p = it->first;
      }
      const snap sb = take();
      stash_clear_error();
      const int wrong_dev = chance(10) ? 1 - d : d;
      stash_free(p, 0, wrong_dev, S(s));
      if (g) {
        gb& b = glive[p];
        if (b.live) {
          EXPECT(*stash_last_error() == 0, "graph free failed");
          b.live = false;
          b.freed_on = s;
        } else {
          ++n_misuse;
          EXPECT(*stash_last_error() != 0, "double free of a graph block accepted");
          EXPECT(take() == sb, "double free changed something");
        }
      } else {
        EXPECT(*stash_last_error() == 0, "free failed");
        nlive.erase(p);
      }
    } else if (w < 60) {
      ctxs.push_back({});
      ctx* c = &ctxs.back();
      for (auto x : streams)
        if (chance(40)) c->accepts.insert(x);
      EXPECT(stash_graph_pool_begin(d, a, 0, filter, c) == STASH_OK, "begin");
      routes.push_back({d, a, 0, c});
      auto& m = pools[{d, a, 0}];
      m.released = false;
      ++m.users;
    } else if (w < 67) {
      if (!routes.empty() && chance(80)) {
        const route r = routes[pick(routes.size())];
        EXPECT(stash_graph_pool_end(r.dev, r.a, 0) == STASH_OK, "end");
        for (auto it = routes.rbegin(); it != routes.rend(); ++it)
          if (it->dev == r.dev && it->a == r.a) {
            routes.erase(std::next(it).base());
            break;
          }
        drop_if_empty(r.dev, r.a);
      } else if (!routed(d, a)) {
        const snap sb = take();
        EXPECT(stash_graph_pool_end(d, a, 0) == STASH_ERROR_INVALID_ARGUMENT, "end without begin");
        EXPECT(take() == sb, "end without begin changed something");
        ++n_misuse;
      }
    } else if (w < 69) {
      EXPECT(stash_graph_pool_retain(d, a, 0) == STASH_OK, "retain");
      auto& m = pools[{d, a, 0}];
      m.released = false;
      ++m.users;
    } else if (w < 75) {
      auto it = pools.find({d, a, 0});
      const snap sb = take();
      const int st = stash_graph_pool_release(d, a, 0);
      if (it != pools.end() && it->second.users > 0) {
        EXPECT(st == STASH_OK, "release");
        if (--it->second.users == 0) {
          it->second.released = true;
          drop_if_empty(d, a);
        }
      } else {
        ++n_misuse;
        EXPECT(st == STASH_ERROR_INVALID_ARGUMENT, "release unknown: %d", st);
        EXPECT(take() == sb, "release unknown changed something");
      }
    } else if (w < 80) {
      std::vector<void*> live;
      for (auto& [p, g] : glive)
        if (g.dev == d && g.a == a && chance(50)) live.push_back(p);
      bool foreign = false;
      if (chance(10) && !nlive.empty()) {
        live.push_back(nlive.begin()->first);
        foreign = true;
      }
      auto it = pools.find({d, a, 0});
      const bool ok = it != pools.end() && !it->second.released && !foreign;
      const snap sb = take();
      const bool arm = heap && chance(20);
      if (arm) fh::arm(1 + pick(30));
      const int st = stash_graph_pool_set_live(d, a, 0, live.data(), live.size());
      const bool hf = arm && fh::disarm();
      if (hf && st == STASH_ERROR_OUT_OF_MEMORY) {
        ++n_heapfail;
        EXPECT(take() == sb, "set_live failing on the host heap changed something");
        continue;
      }
      if (!ok) {
        ++n_misuse;
        EXPECT(st == STASH_ERROR_INVALID_ARGUMENT, "set_live bad: %d", st);
        EXPECT(take() == sb, "failed set_live changed something");
        continue;
      }
      EXPECT(st == STASH_OK, "set_live: %d", st);
      std::set<void*> want(live.begin(), live.end());
      for (auto& [p, g] : glive)
        if (g.dev == d && g.a == a) {
          if (want.count(p)) g.live = true;
          else if (g.live) {
            g.live = false;
            g.freed_on = g.on;  // on the stream it was allocated on
          }
        }
    } else if (w < 85) {
      const int dv = chance(50) ? -1 : d;
      EXPECT(stash_empty_cache(dv) == STASH_OK, "empty_cache");
      if (routes.empty()) returned_all();
    } else if (w < 92) {  // misuse
      const snap sb = take();
      int st = STASH_OK;
      static int local;
      switch (pick(6)) {
        case 0:
          stash_clear_error();
          stash_free(&local, 0, d, S(s));
          st = *stash_last_error() ? STASH_ERROR_INVALID_POINTER : STASH_OK;
          break;
        case 1: st = stash_graph_pool_users(5, a, 0, nullptr); break;
        case 2: st = stash_graph_pool_begin(7, a, 0, filter, nullptr); break;
        case 3: st = stash_graph_pool_set_live(d, a, 0, nullptr, 3); break;
        case 4: st = stash_graph_pool_release(d, 77, 0); break;
        default: st = stash_graph_pool_live_blocks(d, a, 0, nullptr, 4, nullptr); break;
      }
      ++n_misuse;
      EXPECT(st != STASH_OK, "misuse accepted");
      EXPECT(take() == sb, "misuse changed something");
    }
    check();
  }
  // teardown
  while (!routes.empty()) {
    EXPECT(stash_graph_pool_end(routes.back().dev, routes.back().a, 0) == STASH_OK, "teardown end");
    routes.pop_back();
  }
  for (auto& [k, m] : pools)
    for (; m.users; --m.users) EXPECT(stash_graph_pool_release(std::get<0>(k), std::get<1>(k), 0) == STASH_OK, "rel");
  for (auto& [p, g] : glive)
    if (g.live) stash_free(p, 0, g.dev, nullptr);
  for (auto& [p, b] : nlive) stash_free(p, 0, b.dev, nullptr);
  EXPECT(stash_empty_cache(-1) == STASH_OK, "empty");
  for (int d = 0; d < 2; ++d) {
    stash_stats st;
    stash_get_stats(d, &st);
    EXPECT(st.allocated_bytes == 0 && st.reserved_bytes == 0, "teardown device %d: allocated %llu reserved %llu", d,
           (unsigned long long)st.allocated_bytes, (unsigned long long)st.reserved_bytes);
  }
  std::printf("ok seed %u: steps %d allocs %llu graph %llu fallbacks %llu misuse %llu heap-failures %llu returned %llu\n",
              seed, steps, (unsigned long long)n_alloc, (unsigned long long)n_graph, (unsigned long long)n_fallback,
              (unsigned long long)n_misuse, (unsigned long long)n_heapfail, (unsigned long long)n_returned);
}
