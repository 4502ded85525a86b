// Randomized audit driver for stash::graph_pools + caching_allocator::deallocate_completed.
// usage: gp_fuzz first_seed n_seeds steps [comp: 0 both, 1 segments, 2 paged]
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/graph_pools.hpp"
#include "stash/lock/null_lock.hpp"
#include "stash/memory_manager.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "support/failing_heap.hpp"

namespace fh = stash_test::failing_heap;
using stash::graph_pool_id;
using stash::stream;

using seg_alloc = stash::caching_allocator<stash::simulated_backend, stash::segregated_fit_buckets, stash::null_lock,
                                           stash::basic_stats, stash::simulated_ordering>;
using paged_alloc = stash::simulated_stream_allocator;

static constexpr std::size_t KiB = 1024, MiB = 1024 * KiB;
static std::uint64_t g_steps = 0, g_failed_calls = 0, g_heap_failures = 0, g_returned = 0, g_reused = 0,
                     g_misuse = 0, g_ooms = 0, g_behind = 0, g_setlive = 0, g_completed_rs = 0;

static std::vector<std::string> g_log;
static bool g_count_events = true;  // off around calls that may fail on the host heap (a due close records first)
static unsigned g_seed;
static int g_step;
[[noreturn]] static void die(const std::string& why) {
  std::fprintf(stderr, "FAIL seed %u step %d: %s\nlast ops:\n", g_seed, g_step, why.c_str());
  const std::size_t from = g_log.size() > 40 ? g_log.size() - 40 : 0;
  for (std::size_t i = from; i < g_log.size(); ++i) std::fprintf(stderr, "  %s\n", g_log[i].c_str());
  std::exit(1);
}
#define EXPECT(c, msg)                                         \
  do {                                                         \
    if (!(c)) {                                                \
      std::ostringstream os_;                                  \
      os_ << #c << " -- " << msg;                              \
      die(os_.str());                                          \
    }                                                          \
  } while (0)
static void logop(const std::string& s) {
  g_log.push_back(s);
  if (g_log.size() > 400) g_log.erase(g_log.begin(), g_log.begin() + 200);
}
static std::string P(const void* p) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

// ---- pending-free model (stream_model of the tests, plus forget) ----------------------------------------
struct pend {
  std::uintptr_t b, e;
  std::vector<stream> uses;
  stream own;
  bool has_own;
  std::size_t ev_before, syncs_before;
};
struct pend_model {
  const stash::simulated_ordering* o;
  std::vector<pend> v;
  void freed(const void* p, std::size_t n, std::vector<stream> uses, bool has_own, stream own, std::size_t ev,
             std::size_t sy) {
    auto a = reinterpret_cast<std::uintptr_t>(p);
    v.push_back({a, a + n, std::move(uses), own, has_own, ev, sy});
  }
  void forget(const void* p, std::size_t n) {
    auto a = reinterpret_cast<std::uintptr_t>(p);
    std::erase_if(v, [&](const pend& f) { return !(a >= f.e || f.b >= a + n); });
  }
  bool after_u(stream vv, std::size_t before, stream u, std::size_t since, int depth) const {
    for (const auto& w : o->waits()) {
      if (w.waiter != vv || w.after >= before || w.event <= since) continue;
      const stream from = o->stream_of(w.event);
      if (from == u) return true;
      if (depth < 4 && from != vv && after_u(from, w.event, u, since, depth + 1)) return true;
    }
    return false;
  }
  bool covered(const pend& f, stream u, stream to) const {
    if (o->device_syncs() > f.syncs_before) return true;
    for (std::size_t e = f.ev_before + 1; e <= o->records(); ++e)
      if (o->is_complete(e) && (o->stream_of(e) == u || after_u(o->stream_of(e), e, u, f.ev_before, 0))) return true;
    return after_u(to, SIZE_MAX, u, f.ev_before, 0);
  }
  bool violates(const void* p, std::size_t n, stream to) const {
    auto a = reinterpret_cast<std::uintptr_t>(p);
    for (const pend& f : v) {
      if (a >= f.e || f.b >= a + n) continue;
      for (stream u : f.uses) {
        if (f.has_own && u == to && f.own == to) continue;
        if (!covered(f, u, to)) return true;
      }
    }
    return false;
  }
};

// ---- the world ------------------------------------------------------------------------------------------
constexpr int DEVICES = 2;
constexpr int IDS = 4;

struct gblock {
  int dev;
  graph_pool_id id;
  std::size_t bytes;
  stream on;
  bool live;
  stream freed_on;
};
struct nblock {
  int dev;
  std::size_t n;
  stream s;
  std::vector<stream> extra;
};
struct mpool {
  std::size_t users = 0;
  bool released = false;
};
struct mroute {
  int dev;
  graph_pool_id id;
  std::set<std::uintptr_t> accepts;
  bool capture;
};
using pkey = std::pair<int, graph_pool_id>;

template <class Alloc>
struct world {
  std::vector<std::unique_ptr<stash::pool_of<Alloc>>> dev;
  stash::graph_pools pools;
  std::mt19937_64 rng;
  std::vector<std::vector<stream>> alive;  // per device
  std::map<void*, nblock> nlive;
  std::map<void*, gblock> glive;  // graph blocks not yet returned (live or freed)
  std::map<pkey, mpool> mpools;   // existing pools
  std::vector<mroute> routes;
  std::vector<pend_model> pm;
  std::vector<void*> history;  // pointers once freed (for misuse)
  bool heap_ok = fh::can_fail();

  explicit world(std::uint64_t seed, std::size_t capacity) : rng(seed) {
    for (int d = 0; d < DEVICES; ++d) {
      if constexpr (std::is_same_v<Alloc, paged_alloc>)
        dev.push_back(std::make_unique<stash::pool_of<Alloc>>(stash::simulated_paged_backend(capacity, 2 * MiB)));
      else
        dev.push_back(std::make_unique<stash::pool_of<Alloc>>(stash::simulated_backend(capacity)));
      auto& o = ord(d);
      alive.push_back({stream{}, o.make_stream(), o.make_stream(), o.make_stream()});
    }
    for (int d = 0; d < DEVICES; ++d) pm.push_back(pend_model{&ord(d), {}});
  }
  stash::simulated_ordering& ord(int d) { return dev[d]->allocator().ordering(); }
  Alloc& al(int d) { return dev[d]->allocator(); }
  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); }
  bool chance(int pct) { return (int)pick(100) < pct; }
  graph_pool_id rid() { return {pick(IDS) + 1, pick(2)}; }
  stream rstream(int d) { return alive[d][pick(alive[d].size())]; }
  std::size_t rsize() {
    switch (pick(4)) {
      case 0: return 1 + pick(4 * KiB);
      case 1: return 64 * KiB + pick(2 * MiB);
      case 2: return 2 * MiB + pick(8 * MiB);
      default: return (1 + pick(24)) * MiB + pick(3) * 1000;
    }
  }

  // ---- snapshots -------------------------------------------------------------------------------------
  struct snap {
    std::vector<stash::stats_snapshot> st;
    std::vector<std::size_t> res, cached, recs;
    std::vector<std::map<std::uintptr_t, std::size_t>> livemem;
    std::vector<std::tuple<std::size_t, std::size_t, std::size_t, std::size_t, bool>> figs;
    std::vector<std::set<void*>> lb;
    std::size_t releasable;
    bool routing;
    bool raw_eq(const snap& o) const {
      return std::tie(st, res, cached, recs, livemem, figs, lb, releasable, routing) ==
             std::tie(o.st, o.res, o.cached, o.recs, o.livemem, o.figs, o.lb, o.releasable, o.routing);
    }
    bool operator==(const snap& o) const {
      if (g_count_events) return raw_eq(o);
      snap a = *this, b = o;
      for (auto& x : a.recs) x = 0;
      for (auto& x : b.recs) x = 0;
      return a.raw_eq(b);
    }
  };
  static snap mask(snap b2) {
    for (auto& x : b2.st) {
      stash::stats_snapshot y;
      y.allocated_bytes = x.allocated_bytes;
      y.requested_bytes = x.requested_bytes;
      y.allocations = x.allocations;
      y.deallocations = x.deallocations;
      x = y;
    }
    for (auto& x : b2.res) x = 0;
    for (auto& x : b2.cached) x = 0;
    for (auto& x : b2.recs) x = 0;
    return b2;
  }
  static std::string diff(const snap& a, const snap& b) {
    std::ostringstream os;
    for (std::size_t d = 0; d < a.st.size(); ++d) {
      const auto &x = a.st[d], &y = b.st[d];
#define F(f) if (x.f != y.f) os << " dev" << d << "." #f " " << x.f << "->" << y.f;
      F(allocated_bytes) F(requested_bytes) F(cached_bytes) F(reserved_bytes) F(peak_allocated_bytes)
      F(peak_requested_bytes) F(peak_reserved_bytes) F(allocations) F(deallocations) F(cache_hits)
      F(backend_allocations) F(backend_frees) F(oom_retries)
#undef F
      if (a.res[d] != b.res[d]) os << " reserved";
      if (a.cached[d] != b.cached[d]) os << " cached";
      if (a.recs[d] != b.recs[d]) os << " events " << a.recs[d] << "->" << b.recs[d];
      if (a.livemem[d] != b.livemem[d]) os << " livemem";
    }
    if (a.figs != b.figs) os << " figures";
    if (a.lb != b.lb) os << " live_blocks";
    if (a.releasable != b.releasable) os << " releasable " << a.releasable << "->" << b.releasable;
    if (a.routing != b.routing) os << " routing";
    return os.str();
  }
  std::map<std::uintptr_t, std::size_t> live_in_memory(int d) {
    std::map<std::uintptr_t, std::size_t> m;
    al(d).visit_memory([](std::uintptr_t, std::size_t) {},
                       [&](std::uintptr_t a, std::size_t, std::size_t req) {
                         if (req) m.emplace(a, req);
                       });
    return m;
  }
  snap take(bool full = true) {
    snap s;
    for (int d = 0; d < DEVICES; ++d) {
      auto st = dev[d]->stats();
      if (!full) {  // an out-of-memory may give the cache back: only what is live
        stash::stats_snapshot x;
        x.allocated_bytes = st.allocated_bytes;
        x.requested_bytes = st.requested_bytes;
        x.allocations = st.allocations;
        x.deallocations = st.deallocations;
        st = x;
      }
      s.st.push_back(st);
      s.res.push_back(full ? al(d).reserved_bytes() : 0);
      s.cached.push_back(full ? al(d).cached_bytes() : 0);
      s.recs.push_back(full ? ord(d).records() : 0);
      s.livemem.push_back(live_in_memory(d));
      for (std::uint64_t a = 1; a <= IDS; ++a)
        for (std::uint64_t b = 0; b < 2; ++b) {
          auto f = pools.figures(d, {a, b});
          s.figs.push_back({f.users, f.blocks, f.freed_blocks, f.bytes, f.released});
          std::set<void*> l;
          for (auto& x : pools.live_blocks(d, {a, b})) l.insert(x.ptr);
          s.lb.push_back(l);
        }
    }
    s.releasable = pools.releasable();
    s.routing = pools.routing();
    return s;
  }

  // ---- invariants ------------------------------------------------------------------------------------
  void check() {
    for (int d = 0; d < DEVICES; ++d) {
      EXPECT(ord(d).destroyed_stream_uses() == 0, "destroyed stream used on device " << d);
      EXPECT(ord(d).bad_releases() == 0, "bad event release");
      EXPECT(ord(d).capture_violations() == 0, "capture violation");
      // live extents never overlap; memory's live blocks are exactly the model's
      std::vector<std::pair<std::uintptr_t, std::uintptr_t>> ext;
      std::map<std::uintptr_t, std::size_t> want;
      std::size_t alloc = 0, req = 0;
      for (auto& [p, b] : nlive)
        if (b.dev == d) {
          auto a = reinterpret_cast<std::uintptr_t>(p);
          ext.push_back({a, a + Alloc::good_size(b.n)});
          want[a] = b.n;
          alloc += Alloc::good_size(b.n);
          req += b.n;
        }
      for (auto& [p, b] : glive)
        if (b.dev == d) {
          auto a = reinterpret_cast<std::uintptr_t>(p);
          ext.push_back({a, a + Alloc::good_size(b.bytes)});
          EXPECT(!want.count(a), "graph block also live outside " << P(p));
          want[a] = b.bytes;
          alloc += Alloc::good_size(b.bytes);
          req += b.bytes;
        }
      std::sort(ext.begin(), ext.end());
      for (std::size_t i = 1; i < ext.size(); ++i)
        EXPECT(ext[i - 1].second <= ext[i].first, "live blocks overlap at " << ext[i].first);
      const auto st = dev[d]->stats();
      EXPECT(st.allocated_bytes == alloc, "allocated " << st.allocated_bytes << " model " << alloc << " dev " << d);
      EXPECT(st.requested_bytes == req, "requested " << st.requested_bytes << " model " << req);
      EXPECT(st.reserved_bytes == al(d).reserved_bytes(), "reserved");
      EXPECT(al(d).reserved_bytes() >= alloc, "reserved < allocated");
      auto mem = live_in_memory(d);
      EXPECT(mem == want, "live blocks in memory differ from the model on device " << d << " (" << mem.size()
                                                                                    << " vs " << want.size() << ")");
    }
    // pools' figures
    std::size_t releasable = 0;
    for (int d = 0; d < DEVICES; ++d)
      for (std::uint64_t a = 1; a <= IDS; ++a)
        for (std::uint64_t b = 0; b < 2; ++b) {
          const graph_pool_id id{a, b};
          auto f = pools.figures(d, id);
          std::size_t blocks = 0, freed = 0, bytes = 0;
          std::set<void*> lv;
          for (auto& [p, g] : glive)
            if (g.dev == d && g.id == id) {
              ++blocks;
              bytes += g.bytes;
              if (!g.live) ++freed;
              else lv.insert(p);
            }
          auto it = mpools.find({d, id});
          const std::size_t users = it == mpools.end() ? 0 : it->second.users;
          const bool released = it != mpools.end() && it->second.released;
          if (released) releasable += freed;
          EXPECT(it != mpools.end() || blocks == 0, "model: blocks of a dropped pool");
          EXPECT(f.users == users && f.blocks == blocks && f.freed_blocks == freed && f.bytes == bytes &&
                     f.released == released,
                 "figures of pool " << d << ":" << a << "," << b << " users " << f.users << "/" << users << " blocks "
                                    << f.blocks << "/" << blocks << " freed " << f.freed_blocks << "/" << freed
                                    << " bytes " << f.bytes << "/" << bytes << " released " << f.released << "/"
                                    << released);
          std::set<void*> got;
          for (auto& x : pools.live_blocks(d, id)) {
            EXPECT(got.insert(x.ptr).second, "live_blocks lists twice");
            EXPECT(glive.count(x.ptr) && glive[x.ptr].bytes == x.bytes && glive[x.ptr].on == x.on, "live_blocks info");
          }
          EXPECT(got == lv, "live_blocks set of pool " << d << ":" << a << "," << b);
        }
    EXPECT(pools.releasable() == releasable, "releasable " << pools.releasable() << " model " << releasable);
    EXPECT(pools.routing() == !routes.empty(), "routing");
  }

  // ---- model helpers ------------------------------------------------------------------------------------
  const mroute* route_for(int d, stream s) const {
    for (auto r = routes.rbegin(); r != routes.rend(); ++r)
      if (r->dev == d && r->accepts.count(s.key())) return &*r;
    return nullptr;
  }
  bool routed_pool(int d, graph_pool_id id) const {
    for (auto& r : routes)
      if (r.dev == d && r.id == id) return true;
    return false;
  }
  std::size_t pool_blocks(int d, graph_pool_id id) const {
    std::size_t n = 0;
    for (auto& [p, g] : glive) n += g.dev == d && g.id == id;
    return n;
  }
  void maybe_drop(int d, graph_pool_id id) {
    auto it = mpools.find({d, id});
    if (it == mpools.end() || !it->second.released || pool_blocks(d, id) != 0 || routed_pool(d, id)) return;
    mpools.erase(it);
  }
  void sync_capture(int d) {
    auto& o = ord(d);
    for (stream s : alive[d]) {
      bool cap = false;
      for (auto& r : routes) cap = cap || (r.dev == d && r.capture && r.accepts.count(s.key()));
      o.set_capturing(s, cap);
    }
  }
  bool any_capture() const {
    for (auto& r : routes)
      if (r.capture) return true;
    return false;
  }
  bool is_alive(int d, stream s) const {
    return std::find(alive[d].begin(), alive[d].end(), s) != alive[d].end();
  }

  // Runs f, under an armed failing heap sometimes. Returns: 0 ok, 1 threw (exception in *err).
  template <class F>
  bool armed_call(F&& f, bool& heap_failed) {
    heap_failed = false;
    if (heap_ok && chance(15)) {
      const std::size_t k = 1 + (chance(70) ? pick(6) : pick(40));
      g_count_events = false;
      try {
        fh::arm(k);
        f();
        fh::disarm();
      } catch (const std::bad_alloc& e) {
        const bool failed = fh::disarm();
        if (failed && !dynamic_cast<const stash::out_of_memory*>(&e)) {
          heap_failed = true;
          ++g_heap_failures;
          return false;
        }
        throw;
      } catch (...) {
        fh::disarm();
        throw;
      }
      return true;
    }
    f();
    return true;
  }

  // ---- operations --------------------------------------------------------------------------------------
  void op_alloc() {
    const int d = (int)pick(DEVICES);
    const stream s = rstream(d);
    const std::size_t n = rsize();
    const mroute* r = route_for(d, s);
    std::optional<void*> expect_reuse_bytes_from;
    std::size_t best = SIZE_MAX;
    if (r)
      for (auto& [p, g] : glive)
        if (g.dev == d && g.id == r->id && !g.live && g.freed_on == s && g.bytes >= n) best = std::min(best, g.bytes);
    logop("alloc d" + std::to_string(d) + " n" + std::to_string(n) + " s" + std::to_string(s.key()) +
          (r ? " routed" : ""));
    const snap before = take();
    void* p = nullptr;
    bool graph = false, heap_failed = false;
    const std::size_t ev = ord(d).records(), sy = ord(d).device_syncs();
    (void)ev;
    (void)sy;
    try {
      const bool ok = armed_call(
          [&] {
            if (auto g = pools.allocate(*dev[d], d, n, s)) {
              p = *g;
              graph = true;
            } else {
              p = dev[d]->allocate(n, s);
            }
          },
          heap_failed);
      if (!ok) {
        snap after = take();
        bool retried = false;
        for (std::size_t d2 = 0; d2 < after.st.size(); ++d2) retried |= after.st[d2].oom_retries != before.st[d2].oom_retries;
        if (retried) {  // the out-of-memory retry gave the cache back before the host heap failed
          snap b2 = mask(before);
          after = mask(after);
          EXPECT(after == b2, "a failed (host heap, after oom retry) allocate changed what is live" << diff(b2, after));
          return;
        }
        EXPECT(after == before, "a failed (host heap) allocate changed something" << diff(before, after));
        return;
      }
    } catch (const stash::capture_error&) {
      ++g_ooms;
      { const snap a_ = take(); EXPECT(a_ == before, "a failed (capture) allocate changed something" << diff(before, a_)); }
      return;
    } catch (const stash::out_of_memory&) {
      ++g_ooms;
      const snap after = take(false);
      snap b2 = before;
      for (auto& x : b2.st) {
        stash::stats_snapshot y;
        y.allocated_bytes = x.allocated_bytes;
        y.requested_bytes = x.requested_bytes;
        y.allocations = x.allocations;
        y.deallocations = x.deallocations;
        x = y;
      }
      for (auto& x : b2.res) x = 0;
      for (auto& x : b2.cached) x = 0;
      for (auto& x : b2.recs) x = 0;
      EXPECT(after == b2, "a failed (oom) allocate changed what is live" << diff(b2, after));
      return;
    }
    EXPECT(p != nullptr, "null from allocate");
    EXPECT((r != nullptr) == graph, "routing differs from the model");
    if (graph) {
      if (auto it = glive.find(p); it != glive.end()) {
        gblock& g = it->second;
        EXPECT(!g.live, "reused a live graph block");
        EXPECT(g.dev == d && g.id == r->id, "reused another pool's block");
        EXPECT(g.freed_on == s, "reused a block freed on another stream");
        EXPECT(g.bytes >= n && g.bytes == best, "reuse not the smallest fitting: " << g.bytes << " vs " << best);
        g.live = true;
        ++g_reused;
      } else {
        EXPECT(best == SIZE_MAX, "a new block while a freed one fits");
        EXPECT(!pm[d].violates(p, Alloc::good_size(n), s), "new graph block over a pending free");
        EXPECT(!nlive.count(p), "graph block is a live block");
        glive[p] = {d, r->id, n, s, true, s};
      }
    } else {
      EXPECT(!glive.count(p), "device handed out a graph pool's block " << P(p));
      EXPECT(!nlive.count(p), "device handed out a live block");
      EXPECT(!pm[d].violates(p, Alloc::good_size(n), s), "handed out over a pending free " << P(p));
      nlive[p] = {d, n, s, {}};
    }
  }

  void op_free() {
    if (nlive.empty() && glive.empty()) return;
    const bool g = !glive.empty() && (nlive.empty() || chance(40));
    if (g) {
      auto it = glive.begin();
      std::advance(it, pick(glive.size()));
      void* p = it->first;
      gblock& b = it->second;
      const stream s = rstream(b.dev);
      logop("gfree " + P(p) + " live " + std::to_string(b.live) + " s" + std::to_string(s.key()));
      const snap before = take();
      bool heap_failed = false;
      try {
        const bool ok = armed_call([&] { EXPECT(pools.deallocate(p, s), "graph pools do not know " << P(p)); },
                                   heap_failed);
        if (!ok) {
          { const snap a_ = take(); EXPECT(a_ == before, "failed graph free changed something" << diff(before, a_)); };
          return;
        }
        EXPECT(b.live, "double free of a graph block accepted");
        b.live = false;
        b.freed_on = s;
      } catch (const stash::double_free&) {
        ++g_misuse;
        EXPECT(!b.live, "double_free for a live graph block");
        { const snap a_ = take(); EXPECT(a_ == before, "double free changed something" << diff(before, a_)); };
      }
      return;
    }
    auto it = nlive.begin();
    std::advance(it, pick(nlive.size()));
    void* p = it->first;
    nblock b = it->second;
    const int d = b.dev;
    const stream f = (chance(10) || !is_alive(d, b.s)) ? rstream(d) : b.s;
    logop("free " + P(p) + " d" + std::to_string(d) + " s" + std::to_string(f.key()));
    std::vector<stream> uses{b.s};
    for (auto x : b.extra) uses.push_back(x);
    if (std::find(uses.begin(), uses.end(), f) == uses.end()) uses.push_back(f);
    const bool cross = uses.size() > 1;
    const std::size_t ev = ord(d).records(), sy = ord(d).device_syncs();
    const snap before = take();
    bool heap_failed = false;
    const auto cross_before = al(d).stream_stats().cross_blocks;
    const bool ok = armed_call(
        [&] {
          if (!pools.deallocate(p, f)) dev[d]->deallocate(p, f);
        },
        heap_failed);
    if (!ok) {
      { const snap a_ = take(); EXPECT(a_ == before, "failed free changed something" << diff(before, a_)); };
      return;
    }
    EXPECT(al(d).stream_stats().cross_blocks == cross_before + (cross ? 1 : 0),
           "a free on its own stream, no record_stream, made a cross block (or not one for a cross free)");
    pm[d].freed(p, Alloc::good_size(b.n), uses, !cross, b.s, ev, sy);
    nlive.erase(p);
    history.push_back(p);
  }

  void op_record() {
    // on any live block of the device pool (a graph block too, as stash_record_stream does)
    std::vector<void*> c;
    for (auto& [p, b] : nlive) c.push_back(p);
    for (auto& [p, b] : glive)
      if (b.live) c.push_back(p);
    if (c.empty()) return;
    void* p = c[pick(c.size())];
    const int d = nlive.count(p) ? nlive[p].dev : glive[p].dev;
    const stream u = rstream(d);
    logop("record " + P(p) + " s" + std::to_string(u.key()));
    const snap before = take();
    bool hf = false;
    const bool ok = armed_call([&] { dev[d]->record_stream(p, u); }, hf);
    if (!ok) {
      { const snap a_ = take(); EXPECT(a_ == before, "failed record_stream changed something" << diff(before, a_)); };
      return;
    }
    if (nlive.count(p)) {
      if (u != nlive[p].s) nlive[p].extra.push_back(u);
    } else {
      ++g_completed_rs;
    }
  }

  void op_begin() {
    const int d = (int)pick(DEVICES);
    const graph_pool_id id = rid();
    std::set<std::uintptr_t> acc;
    for (stream s : alive[d])
      if (chance(35)) acc.insert(s.key());
    if (acc.empty()) acc.insert(rstream(d).key());
    const bool cap = chance(30);
    logop("begin d" + std::to_string(d) + " id" + std::to_string(id.first) + "," + std::to_string(id.second));
    stash::graph_pools::filter f = [acc](stream s) { return acc.count(s.key()) != 0; };
    const snap before = take();
    bool hf = false;
    const bool ok = armed_call([&] { pools.begin(d, id, std::move(f)); }, hf);
    if (!ok) {
      { const snap a_ = take(); EXPECT(a_ == before, "failed begin changed something" << diff(before, a_)); };
      return;
    }
    mpool& m = mpools[{d, id}];
    m.released = false;
    ++m.users;
    routes.push_back({d, id, acc, cap});
    sync_capture(d);
  }
  void op_retain() {
    const int d = (int)pick(DEVICES);
    const graph_pool_id id = rid();
    logop("retain d" + std::to_string(d) + " id" + std::to_string(id.first) + "," + std::to_string(id.second));
    const snap before = take();
    bool hf = false;
    if (!armed_call([&] { pools.retain(d, id); }, hf)) {
      { const snap a_ = take(); EXPECT(a_ == before, "failed retain changed something" << diff(before, a_)); };
      return;
    }
    mpool& m = mpools[{d, id}];
    m.released = false;
    ++m.users;
  }
  void op_end() {
    int d;
    graph_pool_id id;
    if (!routes.empty() && chance(85)) {
      const auto& r = routes[pick(routes.size())];
      d = r.dev;
      id = r.id;
    } else {
      d = (int)pick(DEVICES);
      id = rid();
    }
    logop("end d" + std::to_string(d) + " id" + std::to_string(id.first) + "," + std::to_string(id.second));
    const bool expect_ok = routed_pool(d, id);
    const snap before = take();
    try {
      pools.end(d, id);
    } catch (const stash::error&) {
      ++g_misuse;
      EXPECT(!expect_ok, "end failed with a routing");
      { const snap a_ = take(); EXPECT(a_ == before, "failed end changed something" << diff(before, a_)); };
      return;
    }
    EXPECT(expect_ok, "end without begin accepted");
    for (auto r = routes.rbegin(); r != routes.rend(); ++r)
      if (r->dev == d && r->id == id) {
        routes.erase(std::next(r).base());
        break;
      }
    sync_capture(d);
    maybe_drop(d, id);
  }
  void op_release() {
    int d;
    graph_pool_id id;
    if (!mpools.empty() && chance(85)) {
      auto it = mpools.begin();
      std::advance(it, pick(mpools.size()));
      d = it->first.first;
      id = it->first.second;
    } else {
      d = (int)pick(DEVICES);
      id = rid();
    }
    logop("release d" + std::to_string(d) + " id" + std::to_string(id.first) + "," + std::to_string(id.second));
    auto it = mpools.find({d, id});
    const bool expect_ok = it != mpools.end() && it->second.users > 0;
    const snap before = take();
    try {
      pools.release(d, id);
    } catch (const stash::error&) {
      ++g_misuse;
      EXPECT(!expect_ok, "release failed with a user");
      { const snap a_ = take(); EXPECT(a_ == before, "failed release changed something" << diff(before, a_)); };
      return;
    }
    EXPECT(expect_ok, "release without a user accepted");
    if (--it->second.users == 0) {
      it->second.released = true;
      maybe_drop(d, id);
    }
  }
  void op_set_live() {
    int d;
    graph_pool_id id;
    if (!mpools.empty() && chance(90)) {
      auto it = mpools.begin();
      std::advance(it, pick(mpools.size()));
      d = it->first.first;
      id = it->first.second;
    } else {
      d = (int)pick(DEVICES);
      id = rid();
    }
    std::vector<void*> live;
    for (auto& [p, g] : glive)
      if (g.dev == d && g.id == id && chance(50)) live.push_back(p);
    if (!live.empty() && chance(10)) live.push_back(live[0]);  // twice
    bool foreign = false;
    if (chance(8)) {
      foreign = true;
      if (!nlive.empty() && chance(50)) live.push_back(nlive.begin()->first);
      else if (!glive.empty() && chance(50)) {
        auto it = glive.begin();
        std::advance(it, pick(glive.size()));
        if (it->second.dev == d && it->second.id == id) foreign = false;
        live.push_back(it->first);
      } else {
        static int local;
        live.push_back(&local);
      }
    }
    auto mp = mpools.find({d, id});
    const bool expect_ok = mp != mpools.end() && !mp->second.released && !foreign;
    logop("set_live d" + std::to_string(d) + " id" + std::to_string(id.first) + "," + std::to_string(id.second) +
          " n" + std::to_string(live.size()) + (foreign ? " foreign" : ""));
    const snap before = take();
    bool hf = false;
    try {
      if (!armed_call([&] { pools.set_live(d, id, live); }, hf)) {
        { const snap a_ = take(); EXPECT(a_ == before, "set_live failing on the host heap changed something" << diff(before, a_)); };
        return;
      }
    } catch (const stash::error&) {
      ++g_misuse;
      EXPECT(!expect_ok, "set_live failed: valid call");
      { const snap a_ = take(); EXPECT(a_ == before, "failed set_live changed something" << diff(before, a_)); };
      return;
    }
    EXPECT(expect_ok, "set_live accepted a bad call");
    ++g_setlive;
    const std::set<void*> want(live.begin(), live.end());
    for (auto& [p, g] : glive)
      if (g.dev == d && g.id == id) {
        if (want.count(p)) g.live = true;
        else if (g.live) {
          g.live = false;
          g.freed_on = g.on;
        }
      }
  }
  void device_sync_all() {
    for (int d = 0; d < DEVICES; ++d) ord(d).complete_all();  // the caller's cudaDeviceSynchronize
  }
  void op_return_released() {
    if (any_capture()) return;  // the runtime would refuse the device-wide synchronize
    logop("return_released");
    device_sync_all();
    std::size_t expect = 0;
    for (auto& [p, g] : glive)
      if (!g.live && mpools.at({g.dev, g.id}).released) ++expect;
    const snap before = take();
    bool hf = false;
    std::size_t n = 0;
    if (!armed_call([&] { n = pools.return_released(); }, hf)) {
      { const snap a_ = take(); EXPECT(a_ == before, "failed return_released changed something" << diff(before, a_)); };
      return;
    }
    EXPECT(n == expect, "return_released returned " << n << " expected " << expect);
    g_returned += n;
    for (auto it = glive.begin(); it != glive.end();) {
      if (!it->second.live && mpools.at({it->second.dev, it->second.id}).released) {
        pm[it->second.dev].forget(it->first, Alloc::good_size(it->second.bytes));
        history.push_back(it->first);
        it = glive.erase(it);
      } else {
        ++it;
      }
    }
    std::vector<pkey> keys;
    for (auto& [k, m] : mpools) keys.push_back(k);
    for (auto& k : keys) maybe_drop(k.first, k.second);
  }
  // misuse: a freed block of a released pool freed behind the pools' back, then return_released
  void op_behind_back() {
    if (any_capture()) return;
    std::vector<void*> c;
    for (auto& [p, g] : glive)
      if (!g.live && mpools.at({g.dev, g.id}).released) c.push_back(p);
    if (c.empty()) return;
    void* p = c[pick(c.size())];
    gblock g = glive[p];
    const stream s = is_alive(g.dev, g.on) ? g.on : rstream(g.dev);
    logop("behind-back free " + P(p) + " then return_released");
    std::vector<stream> uses{g.on};
    if (s != g.on) uses.push_back(s);
    const std::size_t ev = ord(g.dev).records(), sy = ord(g.dev).device_syncs();
    dev[g.dev]->deallocate(p, s);
    device_sync_all();
    bool threw = false;
    try {
      (void)pools.return_released();
    } catch (const stash::double_free&) {
      threw = true;
    }
    EXPECT(threw, "return_released did not report the block freed behind its back");
    {
      std::size_t freed_now = 0;  // what a later call gives back: the counter must say so after the throw
      for (int d2 = 0; d2 < DEVICES; ++d2)
        for (std::uint64_t a = 1; a <= IDS; ++a)
          for (std::uint64_t b = 0; b < 2; ++b) {
            auto fg = pools.figures(d2, {a, b});
            if (fg.released) freed_now += fg.freed_blocks;
          }
      EXPECT(pools.releasable() == freed_now, "releasable " << pools.releasable() << " after a failed return_released, "
                                                            << freed_now << " freed blocks of released pools left");
    }
    ++g_behind;
    std::size_t more = pools.return_released();
    (void)more;
    glive.erase(p);
    pm[g.dev].freed(p, Alloc::good_size(g.bytes), uses, uses.size() == 1, g.on, ev, sy);
    for (auto it = glive.begin(); it != glive.end();) {
      if (!it->second.live && mpools.at({it->second.dev, it->second.id}).released) {
        pm[it->second.dev].forget(it->first, Alloc::good_size(it->second.bytes));
        it = glive.erase(it);
      } else {
        ++it;
      }
    }
    std::vector<pkey> keys;
    for (auto& [k, m] : mpools) keys.push_back(k);
    for (auto& k : keys) maybe_drop(k.first, k.second);
  }
  // a live block of the device pool freed as completed, after a device-wide synchronize
  void op_completed_free() {
    if (nlive.empty() || any_capture()) return;
    auto it = nlive.begin();
    std::advance(it, pick(nlive.size()));
    void* p = it->first;
    const nblock b = it->second;
    logop("completed free " + P(p) + " d" + std::to_string(b.dev) + " extra " + std::to_string(b.extra.size()));
    device_sync_all();
    dev[b.dev]->deallocate_completed(p);
    pm[b.dev].forget(p, Alloc::good_size(b.n));
    nlive.erase(it);
    history.push_back(p);
    ++g_completed_rs;
  }
  void op_misuse() {
    const int d = (int)pick(DEVICES);
    const snap before = take();
    const int what = (int)pick(7);
    bool threw = false;
    static int local;
    try {
      switch (what) {
        case 0: {  // unknown pointer freed
          logop("misuse: free foreign");
          void* p = &local;
          if (!nlive.empty() && chance(50)) p = static_cast<char*>(nlive.begin()->first) + 256;
          if (nlive.count(p) || glive.count(p)) return;
          if (!pools.deallocate(p, rstream(d))) dev[d]->deallocate(p, rstream(d));
          break;
        }
        case 1: {  // a freed pointer again
          if (history.empty()) return;
          void* p = history[pick(history.size())];
          bool inside = false;
          for (auto& [q, b] : nlive) inside = inside || q == p;
          if (inside || glive.count(p)) return;
          logop("misuse: free again " + P(p));
          if (!pools.deallocate(p, rstream(d))) dev[d]->deallocate(p, rstream(d));
          break;
        }
        case 2: {  // deallocate_completed of a free or foreign pointer
          void* p = &local;
          if (!history.empty() && chance(70)) p = history[pick(history.size())];
          if (nlive.count(p) || glive.count(p)) return;
          logop("misuse: deallocate_completed " + P(p));
          dev[d]->deallocate_completed(p);
          break;
        }
        case 3: {  // too large, and a stream that is not
          logop("misuse: huge / bad stream");
          if (chance(50)) {
            (void)dev[d]->allocate(Alloc::max_size() + 1, rstream(d));
          } else {
            const stream bad(reinterpret_cast<stream::native_handle_type>(0xdead00));
            if (pools.allocate(*dev[d], d, 4096, bad)) die("routed a bad stream");
            (void)dev[d]->allocate(4096, bad);
          }
          break;
        }
        case 4: {  // record_stream of a pointer not live
          logop("misuse: record_stream foreign");
          dev[d]->record_stream(&local, rstream(d));
          break;
        }
        case 5: {  // a graph pool's call on a pool not in use
          logop("misuse: set_live unknown");
          const graph_pool_id id{99, 99};
          pools.set_live(d, id, {});
          break;
        }
        default: {  // deallocate_completed through a pool of another device
          if (nlive.empty()) return;
          auto it = nlive.begin();
          std::advance(it, pick(nlive.size()));
          if (it->second.dev == d) return;
          logop("misuse: deallocate_completed on the wrong device " + P(it->first));
          dev[d]->deallocate_completed(it->first);
          break;
        }
      }
    } catch (const stash::error&) {
      threw = true;
    } catch (const std::exception& e) {
      die(std::string("misuse threw a non-stash exception: ") + e.what());
    }
    EXPECT(threw, "misuse " << what << " accepted");
    ++g_misuse;
    { const snap a_ = take(); EXPECT(a_ == before, "misuse " << what << " changed something" << diff(before, a_)); }
  }
  void op_device() {
    const int d = (int)pick(DEVICES);
    auto& o = ord(d);
    switch (pick(7)) {
      case 0:
        logop("trim");
        al(d).trim_cache(pick(64) * MiB);
        break;
      case 1:
        logop("empty_cache");
        al(d).empty_cache();
        break;
      case 2:
      case 3:
        if (o.records()) o.complete(1 + pick(o.records()));
        break;
      case 4:
        o.complete_stream(rstream(d));
        break;
      case 5: {  // destroy a stream (not the default one)
        if (alive[d].size() <= 2) break;
        const std::size_t i = 1 + pick(alive[d].size() - 1);
        const stream s = alive[d][i];
        logop("destroy d" + std::to_string(d) + " s" + std::to_string(s.key()));
        o.destroy(s);
        alive[d].erase(alive[d].begin() + i);
        break;
      }
      default:
        if (alive[d].size() < 6) {
          alive[d].push_back(o.make_stream());
          logop("make stream " + std::to_string(alive[d].back().key()));
          sync_capture(d);
        }
        break;
    }
  }

  void run(int steps) {
    for (g_step = 0; g_step < steps; ++g_step) {
      ++g_steps;
      const int w = (int)pick(100);
      const std::size_t live = nlive.size() + glive.size();
      if (w < 30 && live < 48) op_alloc();
      else if (w < 52) op_free();
      else if (w < 56) op_record();
      else if (w < 61) op_begin();
      else if (w < 67) op_end();
      else if (w < 69) op_retain();
      else if (w < 74) op_release();
      else if (w < 78) op_set_live();
      else if (w < 82) op_return_released();
      else if (w < 83) op_behind_back();
      else if (w < 86) op_misuse();
      else if (w < 89) op_completed_free();
      else op_device();
      check();
      g_count_events = true;
    }
    // the end: everything goes back
    g_step = -1;
    logop("teardown");
    while (!routes.empty()) {
      pools.end(routes.back().dev, routes.back().id);
      routes.pop_back();
    }
    for (int d = 0; d < DEVICES; ++d) sync_capture(d);
    for (auto& [k, m] : mpools)
      while (m.users) {
        pools.release(k.first, k.second);
        --m.users;
        m.released = true;
      }
    for (auto& [p, g] : glive)
      if (g.live) {
        EXPECT(pools.deallocate(p, alive[g.dev][0]), "teardown graph free");
        g.live = false;
        g.freed_on = alive[g.dev][0];
      }
    for (auto& [p, b] : nlive) {
      const stream f = is_alive(b.dev, b.s) ? b.s : alive[b.dev][0];
      dev[b.dev]->deallocate(p, f);
    }
    nlive.clear();
    device_sync_all();
    const std::size_t n = pools.return_released();
    g_returned += n;
    glive.clear();
    mpools.clear();
    check();
    for (int d = 0; d < DEVICES; ++d) {
      al(d).empty_cache();
      const auto st = dev[d]->stats();
      EXPECT(st.allocated_bytes == 0 && st.requested_bytes == 0, "teardown: allocated " << st.allocated_bytes);
      EXPECT(al(d).reserved_bytes() == 0, "teardown: reserved " << al(d).reserved_bytes() << " on device " << d);
      EXPECT(ord(d).unreleased_events() == 0, "teardown: unreleased events " << ord(d).unreleased_events());
      EXPECT(ord(d).destroyed_stream_uses() == 0, "teardown: destroyed stream use");
    }
    EXPECT(pools.releasable() == 0 && !pools.routing(), "teardown: pools not empty");
  }
};

int main(int argc, char** argv) {
  const unsigned first = argc > 1 ? std::atoi(argv[1]) : 1;
  const unsigned count = argc > 2 ? std::atoi(argv[2]) : 10;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 2000;
  const int comp = argc > 4 ? std::atoi(argv[4]) : 0;
  if (!fh::can_fail()) std::fprintf(stderr, "note: the failing heap cannot fail here\n");
  for (unsigned seed = first; seed < first + count; ++seed) {
    g_seed = seed;
    g_log.clear();
    const std::size_t cap = (seed % 3 == 0) ? 160 * MiB : 1024 * MiB;
    if (comp != 2) {
      world<seg_alloc> w(seed, cap);
      w.run(steps);
    }
    if (comp != 1) {
      g_log.clear();
      world<paged_alloc> w(seed * 7919u, cap);
      w.run(steps);
    }
  }
  std::printf("ok: seeds %u..%u steps %llu reused %llu returned %llu misuse %llu heap-failures %llu ooms %llu "
              "behind-back %llu set_live %llu graph-record_stream+completed-frees %llu\n",
              first, first + count - 1, (unsigned long long)g_steps, (unsigned long long)g_reused,
              (unsigned long long)g_returned, (unsigned long long)g_misuse, (unsigned long long)g_heap_failures,
              (unsigned long long)g_ooms, (unsigned long long)g_behind, (unsigned long long)g_setlive,
              (unsigned long long)g_completed_rs);
}
