// Randomized audit driver for stash::graph_pools' stream-order events (fence, fence_deferred,
// settle_completed, set_live) over one or two device pools ordered by simulated_ordering.
// usage: gpe_fuzz FIRST_SEED N_SEEDS STEPS [opt: 0 off, 1 on, 2 random per device (default)]
//
// Reference model: for each block, the set of streams whose work queued since their last use of it may
// still touch it ("pending"): a free on stream s adds s and every stream record_stream named for the
// block; complete_stream(s) / complete_all() removes them. A block that allocate hands out again must
// have no pending work on a stream other than its own.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/graph_pools.hpp"
#include "stash/memory_manager.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "support/failing_heap.hpp"

namespace fh = stash_test::failing_heap;
using stash::graph_pool_id;
using stash::stream;

using ordered_device = stash::caching_allocator<stash::simulated_backend, stash::segregated_fit_buckets, std::mutex,
                                                stash::basic_stats, stash::simulated_ordering>;

static constexpr std::size_t KiB = 1024, MiB = 1024 * KiB;
static const std::size_t kSizes[] = {512 * KiB, 1 * MiB, 2 * MiB, 2 * MiB};
static constexpr int kStreams = 4, kIds = 3;

static std::uint64_t g_steps = 0, g_reused = 0, g_waited_reuse = 0, g_heap_failures = 0, g_misuse = 0,
                     g_records = 0, g_settled = 0, g_returned = 0, g_setlive = 0, g_live_checks = 0,
                     g_live_misses = 0;
static std::vector<std::string> g_log;
static unsigned g_seed;
static int g_step;
static bool g_liveness = false;  // report liveness misses as failures

[[noreturn]] static void die(const std::string& why) {
  std::fprintf(stderr, "FAIL seed %u step %d: %s\nlast ops:\n", g_seed, g_step, why.c_str());
  const std::size_t from = getenv("GPE_ALL") || g_log.size() <= 60 ? 0 : g_log.size() - 60;
  for (std::size_t i = from; i < g_log.size(); ++i) std::fprintf(stderr, "  %s\n", g_log[i].c_str());
  std::exit(1);
}
#define EXPECT(c, msg)                      \
  do {                                      \
    if (!(c)) {                             \
      std::ostringstream os_;               \
      os_ << #c << " -- " << msg;           \
      die(os_.str());                       \
    }                                       \
  } while (0)
static void logop(const std::string& s) {
  g_log.push_back(std::to_string(g_step) + ": " + s);
  if (g_log.size() > 4000) g_log.erase(g_log.begin(), g_log.begin() + 2000);
}
static std::string P(const void* p) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

struct mblock {
  int dev;
  int id;  // graph pool index; -1: a plain device block
  int own;
  std::size_t bytes;
  bool live = true;
  unsigned users = 0;    // streams record_stream named (kept while the block lives, as the header keeps them)
  unsigned pending = 0;  // streams whose work may still touch it
  bool waited = false;   // (liveness) freed with other streams' work to wait for
  bool expect_back = false;  // (liveness) freed under the option with no capture / failure in the way
};
struct mpool {
  std::size_t users = 0;
  bool released = false;
};
struct mroute {
  int dev, id;
  unsigned accepts;
};

struct driver {
  std::mt19937_64 rng;
  int ndev;
  bool opt[2];
  std::vector<std::unique_ptr<stash::pool_of<ordered_device>>> dev;
  std::vector<stash::simulated_ordering*> ord;
  stash::graph_pools pools;
  stream s[kStreams];
  unsigned capturing = 0;
  std::map<void*, mblock> blocks;
  std::map<std::pair<int, int>, mpool> mp;
  std::vector<mroute> routes;

  driver(unsigned seed, int optmode) : rng(seed) {
    ndev = 1 + int(rng() % 2);
    for (int d = 0; d < ndev; ++d) {
      opt[d] = optmode == 2 ? (rng() & 1) : optmode == 1;
      stash::caching_options o;
      o.free_records_used_streams = opt[d];
      dev.push_back(std::make_unique<stash::pool_of<ordered_device>>(stash::simulated_backend{}, o));
      ord.push_back(&dev.back()->allocator().ordering());
      for (int i = 0; i < kStreams; ++i) {
        const stream t = ord.back()->make_stream();
        if (d == 0) s[i] = t;
        EXPECT(t == s[i], "streams differ across devices");
      }
    }
    logop("seed " + std::to_string(seed) + " devices " + std::to_string(ndev) + " opt " + std::to_string(opt[0]) +
          (ndev > 1 ? std::to_string(opt[1]) : ""));
    init_weights();
  }

  std::size_t pick(std::size_t n) { return n ? rng() % n : 0; }
  bool chance(int pct) { return int(rng() % 100) < pct; }
  static graph_pool_id gid(int id) { return {std::uint64_t(id + 1), 0}; }
  int stream_index(stream t) const {
    for (int i = 0; i < kStreams; ++i)
      if (s[i] == t) return i;
    return -1;
  }

  // ---- what can be observed, to check a failed call changed nothing ---------------------------------
  struct snapshot {
    std::vector<std::tuple<std::size_t, std::size_t, std::size_t, std::size_t, bool>> figs;
    std::vector<std::vector<void*>> live;
    std::size_t waiting, releasable;
    std::uint64_t frees;
    bool routing;
    std::vector<std::size_t> recs, unrel, alloc_bytes;
    bool operator==(const snapshot&) const = default;
  };
  snapshot snap() {
    snapshot x;
    for (int d = 0; d < ndev; ++d)
      for (int id = 0; id < kIds; ++id) {
        const auto f = pools.figures(d, gid(id));
        x.figs.emplace_back(f.users, f.blocks, f.freed_blocks, f.bytes, f.released);
        std::vector<void*> l;
        for (const auto& b : pools.live_blocks(d, gid(id))) l.push_back(b.ptr);
        std::sort(l.begin(), l.end());
        x.live.push_back(l);
      }
    x.waiting = pools.waiting();
    x.releasable = pools.releasable();
    x.frees = pools.frees_so_far();
    x.routing = pools.routing();
    for (int d = 0; d < ndev; ++d) {
      x.recs.push_back(ord[d]->records());
      x.unrel.push_back(ord[d]->unreleased_events());
      x.alloc_bytes.push_back(dev[d]->stats().allocated_bytes);
    }
    return x;
  }

  // Runs f, with an injected heap failure now and then; true when it ran (false: bad_alloc, and nothing
  // may have changed).
  template <class F>
  bool guarded(const char* what, F&& f) {
    const bool inject = chance(15);
    std::optional<snapshot> before;
    if (inject) before = snap();
    if (inject) fh::arm(1 + pick(8));
    try {
      f();
    } catch (const std::bad_alloc&) {
      fh::disarm();
      EXPECT(inject, what << ": bad_alloc without an injected failure");
      ++g_heap_failures;
      logop(std::string("  (bad_alloc in ") + what + ")");
      snapshot after = snap();
      // The device pool may record its own due events before its host heap fails (the earlier audit's
      // "a due close records first"): not the graph pools' change.
      if (std::string(what).find("allocate") != std::string::npos && what[0] != 'd') after.recs = before->recs, after.unrel = before->unrel;
      if (std::string(what) == "device allocate") after.recs = before->recs, after.unrel = before->unrel;
      EXPECT(after == *before, what << ": a call that threw bad_alloc changed something: figs "
                                    << (after.figs == before->figs) << " live " << (after.live == before->live)
                                    << " waiting " << before->waiting << "->" << after.waiting << " releasable "
                                    << before->releasable << "->" << after.releasable << " frees " << before->frees
                                    << "->" << after.frees << " records " << before->recs[0] << "->" << after.recs[0]
                                    << " unreleased " << before->unrel[0] << "->" << after.unrel[0] << " allocated "
                                    << before->alloc_bytes[0] << "->" << after.alloc_bytes[0]);
      return false;
    }
    if (inject && fh::disarm()) {
      // The failure happened and was absorbed (an event not recorded): the block waits for a settle.
      logop(std::string("  (absorbed heap failure in ") + what + ")");
      absorbed = true;
    }
    return true;
  }
  bool absorbed = false;

  const mroute* route_for(int d, int si) const {
    for (auto r = routes.rbegin(); r != routes.rend(); ++r)
      if (r->dev == d && (r->accepts >> si & 1)) return &*r;
    return nullptr;
  }
  bool routed(int d, int id) const {
    for (const auto& r : routes)
      if (r.dev == d && r.id == id) return true;
    return false;
  }
  void maybe_drop(int d, int id) {
    auto it = mp.find({d, id});
    if (it == mp.end() || !it->second.released || routed(d, id)) return;
    for (const auto& [p, b] : blocks)
      if (b.id == id && b.dev == d) return;
    mp.erase(it);
  }

  // ---- operations ------------------------------------------------------------------------------------
  void op_begin() {
    if (routes.size() >= 4) return;
    const int d = int(pick(ndev)), id = int(pick(kIds));
    unsigned acc = unsigned(rng() % (1u << kStreams));
    if (!acc) acc = 1u << pick(kStreams);
    logop("begin d" + std::to_string(d) + " id" + std::to_string(id) + " accepts " + std::to_string(acc));
    if (!guarded("begin", [&] {
          pools.begin(d, gid(id), [this, acc](stream t) {
            const int i = stream_index(t);
            return i >= 0 && (acc >> i & 1);
          });
        }))
      return;
    routes.push_back({d, id, acc});
    auto& p = mp[{d, id}];
    p.released = false;
    ++p.users;
  }
  void op_end() {
    if (routes.empty() || chance(3)) {
      const int d = int(pick(ndev)), id = int(pick(kIds));
      if (routed(d, id)) return;
      logop("end (misuse) d" + std::to_string(d) + " id" + std::to_string(id));
      bool threw = false;
      try {
        pools.end(d, gid(id));
      } catch (const stash::error&) {
        threw = true;
      }
      EXPECT(threw, "end without routing did not throw");
      ++g_misuse;
      return;
    }
    const mroute r = routes[pick(routes.size())];
    logop("end d" + std::to_string(r.dev) + " id" + std::to_string(r.id));
    pools.end(r.dev, gid(r.id));
    for (auto it = routes.rbegin(); it != routes.rend(); ++it)
      if (it->dev == r.dev && it->id == r.id) {
        routes.erase(std::next(it).base());
        break;
      }
    maybe_drop(r.dev, r.id);
  }
  void op_retain() {
    const int d = int(pick(ndev)), id = int(pick(kIds));
    logop("retain d" + std::to_string(d) + " id" + std::to_string(id));
    if (!guarded("retain", [&] { pools.retain(d, gid(id)); })) return;
    auto& p = mp[{d, id}];
    p.released = false;
    ++p.users;
  }
  void op_release() {
    int d = int(pick(ndev)), id = int(pick(kIds));
    if (!chance(5)) {  // mostly a pool in use
      std::vector<std::pair<int, int>> used;
      for (const auto& [k, p] : mp)
        if (p.users) used.push_back(k);
      if (used.empty()) return;
      std::tie(d, id) = used[pick(used.size())];
    }
    auto it = mp.find({d, id});
    const bool ok = it != mp.end() && it->second.users > 0;
    logop(std::string("release") + (ok ? "" : " (misuse)") + " d" + std::to_string(d) + " id" + std::to_string(id));
    bool threw = false;
    try {
      pools.release(d, gid(id));
    } catch (const stash::error&) {
      threw = true;
    }
    EXPECT(threw == !ok, "release threw " << threw);
    if (!ok) {
      ++g_misuse;
      return;
    }
    if (--it->second.users == 0) it->second.released = true;
    maybe_drop(d, id);
  }
  std::size_t live_cap = 8;
  void op_allocate() {
    std::size_t nlive = 0;
    for (const auto& [p, b] : blocks) nlive += b.live;
    if (nlive >= live_cap) return op_deallocate();  // few blocks: the ones that wait get asked for
    int d = int(pick(ndev)), si = int(pick(kStreams));
    const std::size_t bytes = kSizes[pick(std::size(kSizes))];
    const mroute* r = route_for(d, si);
    if (!r && !routes.empty() && chance(80)) {  // mostly a routed request
      const mroute& q = routes[pick(routes.size())];
      d = q.dev;
      for (int i = 0; i < kStreams; ++i)
        if (q.accepts >> i & 1) si = i;
      r = route_for(d, si);
    }
    logop("allocate d" + std::to_string(d) + " s" + std::to_string(si) + " " + std::to_string(bytes / KiB) + "K" +
          (r ? " -> id" + std::to_string(r->id) : " (unrouted)"));
    if (!r) {
      EXPECT(!pools.allocate(*dev[d], d, bytes, s[si]), "an unrouted request was taken");
      if (capturing >> si & 1) return;
      void* p = nullptr;
      if (!guarded("device allocate", [&] { p = dev[d]->allocate(bytes, s[si]); })) return;
      check_new(p, bytes);
      blocks[p] = mblock{d, -1, si, bytes};
      logop("  = " + P(p) + " (device)");
      return;
    }
    std::optional<void*> got;
    if (!guarded("allocate", [&] { got = pools.allocate(*dev[d], d, bytes, s[si]); })) return;
    EXPECT(got && *got, "a routed request was not taken");
    void* p = *got;
    auto it = blocks.find(p);
    if (it == blocks.end()) {
      check_new(p, bytes);
      blocks[p] = mblock{d, r->id, si, bytes};
      logop("  = " + P(p) + " (new)");
      return;
    }
    mblock& b = it->second;
    logop("  = " + P(p) + " (reused, pending " + std::to_string(b.pending) + ")");
    EXPECT(!b.live, "a live block was handed out again: " << P(p));
    EXPECT(b.dev == d && b.id == r->id, "a block of another pool was handed out: " << P(p));
    EXPECT(b.own == si, "a block was handed out on another stream than its own: " << P(p) << " own s" << b.own);
    EXPECT(b.bytes >= bytes, "a block too small was handed out");
    const unsigned others = b.pending & ~(1u << b.own);
    EXPECT(others == 0, "SAFETY: " << P(p) << " handed out on s" << si << " while streams (mask " << others
                                   << ") may still use it");
    ++g_reused;
    if (b.waited) ++g_waited_reuse;
    b.live = true;
    b.users = 0;
    b.waited = b.expect_back = false;
  }
  void check_new(void* p, std::size_t bytes) {
    EXPECT(p, "null block");
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    for (const auto& [q, b] : blocks) {
      const auto c = reinterpret_cast<std::uintptr_t>(q);
      EXPECT(a + bytes <= c || c + b.bytes <= a, "new block " << P(p) << " overlaps " << P(q));
    }
  }
  void* pick_block(bool want_live, bool graph_only) {
    std::vector<void*> v;
    for (const auto& [p, b] : blocks)
      if (b.live == want_live && (!graph_only || b.id >= 0)) v.push_back(p);
    return v.empty() ? nullptr : v[pick(v.size())];
  }
  void op_deallocate() {
    if (chance(4)) {  // misuse: a freed graph block freed again
      void* p = pick_block(false, true);
      if (!p) return;
      logop("deallocate (double) " + P(p));
      bool threw = false;
      try {
        pools.deallocate(p, s[pick(kStreams)]);
      } catch (const stash::double_free&) {
        threw = true;
      }
      EXPECT(threw, "double free not refused");
      ++g_misuse;
      return;
    }
    void* p = pick_block(true, false);
    if (!p) return;
    mblock& b = blocks.at(p);
    const int si = b.id < 0 ? b.own : int(pick(kStreams));
    logop("deallocate " + P(p) + " on s" + std::to_string(si) + (b.id < 0 ? " (device)" : ""));
    bool kept = false;
    if (!guarded("deallocate", [&] { kept = pools.deallocate(p, s[si]); })) return;
    EXPECT(kept == (b.id >= 0), "deallocate said " << kept);
    if (b.id < 0) {
      dev[b.dev]->deallocate(p, s[si]);
      blocks.erase(p);
      return;
    }
    freed(b, si, absorbed);
  }
  void freed(mblock& b, int si, bool failed) {
    b.live = false;
    const unsigned add = b.users | (1u << si);
    b.pending |= add;
    b.waited = (b.pending & ~(1u << b.own)) != 0;
    // liveness: under the option, no routing, no stream involved capturing, no absorbed failure, no
    // earlier wait carried over.
    const unsigned involved = add & ~(1u << b.own);
    b.expect_back = b.waited && opt[b.dev] && routes.empty() && !(involved & capturing) && !failed &&
                    (b.pending & ~(1u << b.own)) == involved;
  }
  void op_record_stream() {
    if (chance(4)) {
      void* p = pick_block(false, true);
      if (!p) return;
      logop("record_stream (freed) " + P(p));
      bool threw = false;
      try {
        pools.record_stream(p, s[pick(kStreams)]);
      } catch (const stash::double_free&) {
        threw = true;
      }
      EXPECT(threw, "record_stream of a freed block not refused");
      ++g_misuse;
      return;
    }
    void* p = pick_block(true, true);
    if (!p) return;
    mblock& b = blocks.at(p);
    const int si = int(pick(kStreams));
    logop("record_stream " + P(p) + " s" + std::to_string(si));
    bool held = false;
    if (!guarded("record_stream", [&] { held = pools.record_stream(p, s[si]); })) return;
    EXPECT(held, "record_stream: not held");
    if (si != b.own) b.users |= 1u << si;
  }
  void op_set_live() {
    int d = int(pick(ndev)), id = int(pick(kIds));
    if (!chance(5)) {  // mostly a pool in use
      std::vector<std::pair<int, int>> used;
      for (const auto& [k, p] : mp)
        if (!p.released) used.push_back(k);
      if (used.empty()) return;
      std::tie(d, id) = used[pick(used.size())];
    }
    auto it = mp.find({d, id});
    std::vector<void*> mine;
    for (const auto& [p, b] : blocks)
      if (b.dev == d && b.id == id) mine.push_back(p);
    const bool ok = it != mp.end() && !it->second.released;
    std::vector<void*> live;
    for (void* p : mine)
      if (chance(blocks.at(p).live ? 50 : 75)) live.push_back(p);
    bool bad = false;
    if (chance(3)) {  // misuse: a block of another pool
      void* q = pick_block(true, false);
      if (q && (blocks.at(q).dev != d || blocks.at(q).id != id)) live.push_back(q), bad = true;
    }
    if (live.size() > 1 && chance(10)) live.push_back(live[0]);  // a duplicate
    std::string names;
    for (void* p : live) names += " " + P(p);
    logop("set_live d" + std::to_string(d) + " id" + std::to_string(id) + " {" + names + " }" +
          (ok && !bad ? "" : " (misuse)"));
    if (!ok || bad) {
      const snapshot before = snap();
      bool threw = false;
      try {
        pools.set_live(d, gid(id), live);
      } catch (const stash::error&) {
        threw = true;
      }
      EXPECT(threw, "set_live misuse accepted");
      EXPECT(snap() == before, "set_live misuse changed something");
      ++g_misuse;
      return;
    }
    if (!guarded("set_live", [&] { pools.set_live(d, gid(id), live); })) return;
    ++g_setlive;
    const std::set<void*> wanted(live.begin(), live.end());
    for (void* p : mine) {
      mblock& b = blocks.at(p);
      if (wanted.count(p)) {
        if (!b.live) b.live = true, b.waited = b.expect_back = false;
      } else if (b.live) {
        freed(b, b.own, absorbed);
      }
    }
  }
  void op_capture() {
    const int si = int(pick(kStreams));
    const bool on = chance(50);
    logop(std::string("set_capturing s") + std::to_string(si) + (on ? " on" : " off"));
    for (auto* o : ord) o->set_capturing(s[si], on);
    if (on) capturing |= 1u << si;
    else capturing &= ~(1u << si);
  }
  void op_complete_stream() {
    const int si = int(pick(kStreams));
    logop("complete_stream s" + std::to_string(si));
    for (auto* o : ord) o->complete_stream(s[si]);
    for (auto& [p, b] : blocks) b.pending &= ~(1u << si);
  }
  void complete_all() {
    for (auto* o : ord) o->complete_all();
    for (auto& [p, b] : blocks) b.pending = 0;
  }
  void op_sync() {
    logop("complete_all");
    complete_all();
    if (!routes.empty()) return;
    const int what = int(pick(4));
    if (what == 0 || what == 2) {
      logop("settle_completed");
      std::size_t n = 0;
      if (!guarded("settle_completed", [&] { n = pools.settle_completed(); })) return;
      g_settled += n;
      EXPECT(pools.waiting() == 0, "blocks still waiting after settle_completed");
    }
    if (what == 1 || what == 2) return_released();
    if (what == 3) liveness();
  }
  void return_released() {
    std::size_t expect = 0;
    for (const auto& [p, b] : blocks)
      if (b.id >= 0 && !b.live && mp.at({b.dev, b.id}).released) ++expect;
    logop("return_released (expect " + std::to_string(expect) + ")");
    std::size_t n = 0;
    if (!guarded("return_released", [&] { n = pools.return_released(); })) return;
    EXPECT(n == expect, "return_released gave back " << n);
    g_returned += n;
    std::set<std::pair<int, int>> touched;
    for (auto it = blocks.begin(); it != blocks.end();) {
      const mblock& b = it->second;
      if (b.id >= 0 && !b.live && mp.at({b.dev, b.id}).released) {
        touched.insert({b.dev, b.id});
        it = blocks.erase(it);
      } else {
        ++it;
      }
    }
    for (auto [d, id] : touched) maybe_drop(d, id);
  }
  // Weak liveness: every stream completed (complete_all above), no routing: a block of a pool in use
  // freed under the option with its events recorded should come back to a request on its own stream.
  void liveness() {
    std::vector<std::pair<void*, mblock>> cand;
    for (const auto& [p, b] : blocks)
      if (b.id >= 0 && !b.live && b.expect_back && !mp.at({b.dev, b.id}).released) cand.push_back({p, b});
    if (cand.empty()) return;
    const auto [p, b] = cand[pick(cand.size())];
    // Ask with a routing of its own, for its own stream alone, for exactly its size; other freed blocks of
    // the pool of that size on that stream may come first: take them all, then give them back.
    logop("liveness " + P(p));
    ++g_live_checks;
    pools.begin(b.dev, gid(b.id), [t = s[b.own]](stream x) { return x == t; });
    routes.push_back({b.dev, b.id, 1u << b.own});
    mp[{b.dev, b.id}].users++;
    std::vector<void*> took;
    bool found = false;
    for (int i = 0; i < 64 && !found; ++i) {
      void* q = *pools.allocate(*dev[b.dev], b.dev, b.bytes, s[b.own]);
      took.push_back(q);
      auto it = blocks.find(q);
      if (it == blocks.end()) {
        blocks[q] = mblock{b.dev, b.id, b.own, b.bytes};
        break;  // a new block: nothing freed fits any more
      }
      EXPECT((it->second.pending & ~(1u << b.own)) == 0, "SAFETY (liveness probe)");
      it->second.live = true;
      it->second.users = 0;
      it->second.waited = it->second.expect_back = false;
      found = q == p;
    }
    if (!found) {
      ++g_live_misses;
      logop("  LIVENESS MISS " + P(p));
      if (g_liveness) die("liveness: " + P(p) + " did not come back after every stream completed");
    }
    for (void* q : took) {
      EXPECT(pools.deallocate(q, s[b.own]), "probe free");
      freed(blocks.at(q), b.own, false);
    }
    pools.end(b.dev, gid(b.id));
    routes.pop_back();
    pools.release(b.dev, gid(b.id));
    mp[{b.dev, b.id}].users--;
  }

  // ---- checks after every step ------------------------------------------------------------------------
  void check() {
    for (int d = 0; d < ndev; ++d) {
      EXPECT(ord[d]->capture_violations() == 0, "capture violation on device " << d);
      EXPECT(ord[d]->destroyed_stream_uses() == 0, "destroyed stream used");
      EXPECT(ord[d]->host_waits() == 0, "host wait");
      EXPECT(ord[d]->bad_releases() == 0, "event released twice");
    }
    EXPECT(pools.routing() == !routes.empty(), "routing()");
    for (int d = 0; d < ndev; ++d)
      for (int id = 0; id < kIds; ++id) {
        const auto f = pools.figures(d, gid(id));
        std::size_t nb = 0, nf = 0, by = 0;
        std::vector<void*> live;
        for (const auto& [p, b] : blocks)
          if (b.dev == d && b.id == id) {
            ++nb, by += b.bytes;
            if (b.live) live.push_back(p);
            else ++nf;
          }
        const auto it = mp.find({d, id});
        const std::size_t users = it == mp.end() ? 0 : it->second.users;
        const bool rel = it == mp.end() ? false : it->second.released;
        EXPECT(f.users == users && f.blocks == nb && f.freed_blocks == nf && f.bytes == by && f.released == rel,
               "figures of d" << d << " id" << id << ": users " << f.users << "/" << users << " blocks " << f.blocks
                              << "/" << nb << " freed " << f.freed_blocks << "/" << nf << " released "
                              << f.released << "/" << rel);
        std::vector<void*> got;
        for (const auto& x : pools.live_blocks(d, gid(id))) got.push_back(x.ptr);
        std::sort(got.begin(), got.end());
        EXPECT(got == live, "live_blocks of d" << d << " id" << id);
      }
    // no two blocks (live or kept by a pool) overlap: checked at each new block (check_new)
  }

  // Per-seed weights of the operations (some seeds complete streams rarely, some set_live often).
  int w[11];
  void init_weights() {
    const int base[11] = {8, 8, 3, 4, 22, 17, 6, 5, 6, 14, 7};
    for (int i = 0; i < 11; ++i) w[i] = 1 + int(pick(2 * base[i] + 1));
    live_cap = 2 + pick(12);
    logop("weights, live cap " + std::to_string(live_cap));
  }
  void step() {
    absorbed = false;
    int total = 0;
    for (int x : w) total += x;
    int r = int(pick(total)), k = 0;
    while (r >= w[k]) r -= w[k++];
    switch (k) {
      case 0: op_begin(); break;
      case 1: op_end(); break;
      case 2: op_retain(); break;
      case 3: op_release(); break;
      case 4: op_allocate(); break;
      case 5: op_deallocate(); break;
      case 6: op_record_stream(); break;
      case 7: op_set_live(); break;
      case 8: op_capture(); break;
      case 9: op_complete_stream(); break;
      default: op_sync(); break;
    }
    check();
  }

  void finish() {
    logop("finish");
    for (int si = 0; si < kStreams; ++si)
      for (auto* o : ord) o->set_capturing(s[si], false);
    capturing = 0;
    while (!routes.empty()) {
      pools.end(routes.back().dev, gid(routes.back().id));
      routes.pop_back();
    }
    for (auto& [k, p] : mp)
      while (p.users) pools.release(k.first, gid(k.second)), --p.users;
    std::vector<void*> live;
    for (auto& [p, b] : blocks)
      if (b.live) live.push_back(p);
    for (void* p : live) {
      mblock& b = blocks.at(p);
      const bool kept = pools.deallocate(p, s[b.own]);
      EXPECT(kept == (b.id >= 0), "final free");
      if (!kept) dev[b.dev]->deallocate(p, s[b.own]), blocks.erase(p);
      else b.live = false;
    }
    complete_all();
    pools.return_released();
    for (int d = 0; d < ndev; ++d) {
      for (int id = 0; id < kIds; ++id) {
        const auto f = pools.figures(d, gid(id));
        EXPECT(f.blocks == 0 && f.users == 0, "pool left at the end");
      }
      EXPECT(dev[d]->stats().allocated_bytes == 0, "device " << d << " allocated bytes "
                                                             << dev[d]->stats().allocated_bytes);
      dev[d]->empty_cache();
      EXPECT(ord[d]->unreleased_events() == 0, "device " << d << " unreleased events " << ord[d]->unreleased_events());
      EXPECT(ord[d]->capture_violations() == 0, "capture violation");
      g_records += ord[d]->records();
    }
  }
};

int main(int argc, char** argv) {
  const unsigned first = argc > 1 ? unsigned(std::atoi(argv[1])) : 1;
  const unsigned n = argc > 2 ? unsigned(std::atoi(argv[2])) : 100;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 2000;
  const int optmode = argc > 4 ? std::atoi(argv[4]) : 2;
  g_liveness = argc > 5 && std::atoi(argv[5]) != 0;
  if (getenv("GPE_TRACE")) { g_seed = first; driver dr(first, optmode); for (g_step = 0; g_step < steps; ++g_step) dr.step(); for (auto& l : g_log) std::puts(l.c_str()); return 0; }
  if (!fh::can_fail()) std::fprintf(stderr, "warning: the failing heap cannot fail here\n");
  for (unsigned seed = first; seed < first + n; ++seed) {
    g_seed = seed;
    g_log.clear();
    {
      driver dr(seed, optmode);
      for (g_step = 0; g_step < steps; ++g_step, ++g_steps) dr.step();
      dr.finish();
    }
  }
  std::printf("ok: %u seeds x %d steps: %llu reused (%llu after waiting), %llu heap failures, %llu misuse, "
              "%llu events, %llu settled, %llu returned, %llu set_live, liveness %llu probes %llu misses\n",
              n, steps, (unsigned long long)g_reused, (unsigned long long)g_waited_reuse,
              (unsigned long long)g_heap_failures, (unsigned long long)g_misuse, (unsigned long long)g_records,
              (unsigned long long)g_settled, (unsigned long long)g_returned, (unsigned long long)g_setlive,
              (unsigned long long)g_live_checks, (unsigned long long)g_live_misses);
}
