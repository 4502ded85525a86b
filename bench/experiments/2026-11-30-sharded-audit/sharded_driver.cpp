// Randomized, model-checked driver for stash::sharded_allocator (and describe_memory over its shards).
// Operations run on S persistent worker threads, one per shard, handed over one at a time (so the run is
// deterministic per seed); the main thread frees, trims, empties, completes events and checks.
// Usage: sharded_driver SEED STEPS [composition: 0 paged+streams, 1 segments+streams, 2 host, -1 all]
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "stash/backend/host_backend.hpp"
#include "stash/backend/simulated_backend.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/lock/spin_lock.hpp"
#include "stash/memory_report.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "stash/sharded_allocator.hpp"
#include "stash/stats/basic_stats.hpp"
#include "stash/timeline.hpp"
#include "support/failing_heap.hpp"

using namespace stash;
namespace fh = stash_test::failing_heap;

constexpr std::size_t S = 3;
constexpr std::size_t KiB = 1024, MiB = 1024 * KiB;

using paged_shard = caching_allocator<simulated_paged_backend, segregated_fit_buckets, spin_lock, basic_stats, simulated_ordering>;
using seg_shard = caching_allocator<simulated_backend, segregated_fit_buckets, std::mutex, basic_stats, simulated_ordering>;
using host_shard = caching_allocator<host_backend, segregated_fit_buckets, spin_lock, basic_stats>;

static unsigned long long g_seed;
static long g_step;
#define FAILF(...)                                                                          \
  do {                                                                                      \
    std::fprintf(stderr, "FAIL seed=%llu step=%ld line %d: ", g_seed, g_step, __LINE__);   \
    std::fprintf(stderr, __VA_ARGS__);                                                      \
    std::fprintf(stderr, "\n");                                                             \
    std::exit(1);                                                                           \
  } while (0)
#define CHECKF(c, ...) \
  do {                 \
    if (!(c)) FAILF("check failed: %s :: %s", (std::string() + __VA_ARGS__).c_str(), #c); \
  } while (0)

// ---- workers -----------------------------------------------------------------------------------------
class worker {
 public:
  worker() : t_([this] { loop(); }) {}
  ~worker() {
    {
      std::lock_guard g(m_);
      stop_ = true;
    }
    cv_.notify_all();
    t_.join();
  }
  void run(const std::function<void()>& f) {
    std::unique_lock g(m_);
    job_ = &f;
    done_ = false;
    cv_.notify_all();
    cv_.wait(g, [&] { return done_; });
  }

 private:
  void loop() {
    std::unique_lock g(m_);
    for (;;) {
      cv_.wait(g, [&] { return stop_ || job_; });
      if (stop_) return;
      (*job_)();
      job_ = nullptr;
      done_ = true;
      cv_.notify_all();
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  const std::function<void()>* job_ = nullptr;
  bool done_ = false, stop_ = false;
  std::thread t_;
};

enum class outcome { ok, invalid_size, double_free, invalid_pointer, invalid_stream, invalid_device, oom, bad_alloc, other_stash, other };
const char* name(outcome o) {
  const char* n[] = {"ok", "invalid_size", "double_free", "invalid_pointer", "invalid_stream", "invalid_device", "oom", "bad_alloc", "other_stash", "other"};
  return n[int(o)];
}
static std::string last_what;
template <class F>
outcome classify(F&& f, std::size_t arm = 0) {
  try {
    if (arm) {
      fh::armed g(arm);
      f();
    } else {
      f();
    }
    return outcome::ok;
  } catch (const out_of_memory&) {
    return outcome::oom;
  } catch (const std::bad_alloc&) {
    return outcome::bad_alloc;
  } catch (const double_free& e) {
    last_what = e.what();
    return outcome::double_free;
  } catch (const invalid_pointer& e) {
    last_what = e.what();
    return outcome::invalid_pointer;
  } catch (const invalid_size& e) {
    last_what = e.what();
    return outcome::invalid_size;
  } catch (const invalid_stream& e) {
    last_what = e.what();
    return outcome::invalid_stream;
  } catch (const invalid_device& e) {
    last_what = e.what();
    return outcome::invalid_device;
  } catch (const stash::error& e) {
    last_what = e.what();
    return outcome::other_stash;
  } catch (const std::exception& e) {
    last_what = e.what();
    return outcome::other;
  }
}

// ---- compositions ----------------------------------------------------------------------------------
template <class Shard>
struct traits;
template <>
struct traits<paged_shard> {
  static constexpr bool streamed = true;
  static constexpr const char* name = "paged+streams";
  static simulated_paged_backend make(std::size_t i) { return simulated_paged_backend((48 + 32 * i) * MiB); }
};
template <>
struct traits<seg_shard> {
  static constexpr bool streamed = true;
  static constexpr const char* name = "segments+streams";
  static simulated_backend make(std::size_t i) { return simulated_backend((48 + 32 * i) * MiB); }
};
template <>
struct traits<host_shard> {
  static constexpr bool streamed = false;
  static constexpr const char* name = "host";
  static host_backend make(std::size_t) { return host_backend{}; }
};

// A stream as the model keys it: the handle's key, the per-thread stream per worker.
using skey = std::uintptr_t;

template <class Shard>
int run(unsigned long long seed, long steps) {
  using T = traits<Shard>;
  using sharded = sharded_allocator<Shard, S>;
  g_seed = seed;
  std::mt19937_64 rng(seed);
  auto rnd = [&](std::uint64_t n) { return n == 0 ? 0 : rng() % n; };
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };

  caching_options opts;
  sharded a([](std::size_t i) { return T::make(i); }, opts);
  std::vector<std::unique_ptr<worker>> ws;
  for (std::size_t i = 0; i < S; ++i) ws.push_back(std::make_unique<worker>());

  // Streams: the same handles made in every shard's simulation.
  std::vector<stream> made;
  if constexpr (T::streamed) {
    for (int k = 0; k < 3; ++k) {
      stream s;
      for (std::size_t i = 0; i < S; ++i) s = a.shard(i).ordering().make_stream();
      made.push_back(s);
    }
  } else {
    for (int k = 0; k < 3; ++k) made.push_back(stream(reinterpret_cast<CUstream_st*>(0x5000 + 0x100 * k)));
  }
  const stream bad_stream(reinterpret_cast<CUstream_st*>(0x7777000));
  auto pick_stream = [&](bool allow_bad) -> stream {
    switch (rnd(allow_bad ? 7 : 6)) {
      case 0: return stream{};
      case 1: return stream(reinterpret_cast<CUstream_st*>(std::uintptr_t{1}));
      case 2: return stream::per_thread();
      case 3: return made[0];
      case 4: return made[1];
      case 5: return made[2];
      default: return bad_stream;
    }
  };
  auto model_key = [&](stream s, std::size_t w) -> skey { return s.key() == 2 ? 0x10000 + w : s.key(); };

  // Which shard each worker draws from: learned from one allocation each, in order.
  std::vector<std::size_t> shard_of_worker(S);
  for (std::size_t w = 0; w < S; ++w) {
    void* p = nullptr;
    ws[w]->run([&] { p = a.allocate(256); });
    std::size_t found = S, count = 0;
    for (std::size_t i = 0; i < S; ++i)
      if (a.shard(i).owns(p)) found = i, ++count;
    CHECKF(count == 1, "probe owned by " + std::to_string(count));
    shard_of_worker[w] = found;
    a.deallocate(p);
  }
  CHECKF(std::set<std::size_t>(shard_of_worker.begin(), shard_of_worker.end()).size() == S, "workers share a shard");
  a.empty_cache();

  // Model.
  struct live_block {
    std::size_t n, shard;
    skey alloc_stream;
    std::set<skey> uses;
  };
  std::map<std::uintptr_t, live_block> live;
  std::set<std::uintptr_t> freed;  // pointers freed and not handed out again
  struct shard_model {
    std::size_t allocated = 0, requested = 0, peak_allocated = 0, peak_requested = 0, peak_reserved = 0;
    std::uint64_t allocations = 0, deallocations = 0, oom_retries = 0;
    std::uint64_t device_syncs = 0, host_waits = 0;
  };
  std::vector<shard_model> sm(S);
  {
    const auto s0 = a.stats();
    for (std::size_t i = 0; i < S; ++i) {
      const auto x = a.shard(i).stats();
      sm[i].allocations = x.allocations;
      sm[i].deallocations = x.deallocations;
      sm[i].peak_allocated = x.peak_allocated_bytes;
      sm[i].peak_requested = x.peak_requested_bytes;
      sm[i].peak_reserved = x.peak_reserved_bytes;
    }
    (void)s0;
  }
  // Pending frees (stream order): memory freed on a set of streams whose work may still run. An
  // allocation on a stream outside the set that overlaps it is a stream-order violation. Cleared
  // conservatively (the model may forget too early, never too late).
  struct pending_free {
    std::uintptr_t addr;
    std::size_t bytes;
    std::size_t shard;
    std::set<skey> streams;
  };
  std::vector<pending_free> pending;
  std::set<int> peers_granted;
  timeline tl("steps");
  const auto series = tl.add_series("sharded", a);
  std::uint64_t n_ok = 0, n_err = 0, n_oom = 0, n_heapfail = 0;

  auto snapshot_all = [&] {
    std::vector<stats_snapshot> v;
    for (std::size_t i = 0; i < S; ++i) v.push_back(a.shard(i).stats());
    return v;
  };
  auto sync_counts = [&](std::size_t i) {
    if constexpr (T::streamed) return std::pair<std::size_t, std::size_t>{a.shard(i).ordering().device_syncs(), a.shard(i).ordering().host_waits()};
    else return std::pair<std::size_t, std::size_t>{0, 0};
  };
  auto forget_pending_if_synced = [&] {
    for (std::size_t i = 0; i < S; ++i) {
      auto [d, h] = sync_counts(i);
      if (d != sm[i].device_syncs || h != sm[i].host_waits) {
        sm[i].device_syncs = d;
        sm[i].host_waits = h;
        std::erase_if(pending, [&](const pending_free& f) { return f.shard == i; });
      }
    }
  };

  auto check_all = [&](bool deep) {
    const auto per = snapshot_all();
    stats_snapshot sum;
    for (std::size_t i = 0; i < S; ++i) {
      const auto& x = per[i];
      const auto& m = sm[i];
      CHECKF(x.allocated_bytes == m.allocated, "shard " + std::to_string(i) + " allocated " + std::to_string(x.allocated_bytes) + " model " + std::to_string(m.allocated));
      CHECKF(x.requested_bytes == m.requested, "shard requested");
      CHECKF(x.allocations == m.allocations, "allocations " + std::to_string(x.allocations) + " model " + std::to_string(m.allocations));
      CHECKF(x.deallocations == m.deallocations, "deallocations");
      CHECKF(x.cached_bytes == x.reserved_bytes - x.allocated_bytes, "cached");
      CHECKF(x.reserved_bytes >= x.allocated_bytes, "reserved < allocated");
      CHECKF(x.reserved_bytes == a.shard(i).reserved_bytes(), "reserved_bytes()");
      CHECKF(x.cached_bytes == a.shard(i).cached_bytes(), "cached_bytes()");
      CHECKF(x.peak_allocated_bytes == m.peak_allocated, "peak_allocated " + std::to_string(x.peak_allocated_bytes) + " model " + std::to_string(m.peak_allocated));
      CHECKF(x.peak_requested_bytes == m.peak_requested, "peak_requested");
      CHECKF(x.peak_reserved_bytes >= x.reserved_bytes && x.peak_reserved_bytes >= m.peak_reserved, "peak_reserved");
      CHECKF(x.backend_frees <= x.backend_allocations, "backend frees");
      CHECKF(x.cache_hits <= x.allocations, "cache hits");
      CHECKF(x.oom_retries >= m.oom_retries, "oom retries went down");
      sm[i].peak_reserved = x.peak_reserved_bytes;
      sm[i].oom_retries = x.oom_retries;
      sum.allocated_bytes += x.allocated_bytes;
      sum.requested_bytes += x.requested_bytes;
      sum.cached_bytes += x.cached_bytes;
      sum.reserved_bytes += x.reserved_bytes;
      sum.peak_allocated_bytes += x.peak_allocated_bytes;
      sum.peak_requested_bytes += x.peak_requested_bytes;
      sum.peak_reserved_bytes += x.peak_reserved_bytes;
      sum.allocations += x.allocations;
      sum.deallocations += x.deallocations;
      sum.cache_hits += x.cache_hits;
      sum.backend_allocations += x.backend_allocations;
      sum.backend_frees += x.backend_frees;
      sum.oom_retries += x.oom_retries;
      if constexpr (T::streamed) {
        CHECKF(a.shard(i).ordering().destroyed_stream_uses() == 0, "destroyed stream used");
        CHECKF(a.shard(i).ordering().bad_releases() == 0, "bad event releases");
      }
    }
    CHECKF(a.stats() == sum, "sharded stats() is not the sum of the shards");
    if (!deep) return;
    // Every live block: owned by exactly its shard, size known, no overlap.
    std::vector<std::size_t> live_count(S, 0), live_bytes(S, 0);
    std::uintptr_t prev_end = 0;
    for (const auto& [p, b] : live) {
      void* vp = reinterpret_cast<void*>(p);
      CHECKF(a.owns(vp), "live block not owned");
      for (std::size_t i = 0; i < S; ++i) CHECKF(a.shard(i).owns(vp) == (i == b.shard), "owned by the wrong shard");
      CHECKF(a.allocation_size(vp) == b.n, "allocation_size");
      CHECKF(p % 256 == 0, "alignment");
      CHECKF(p >= prev_end, "live blocks overlap");
      prev_end = p + sharded::good_size(b.n);
      ++live_count[b.shard];
      live_bytes[b.shard] += sharded::good_size(b.n);
    }
    for (std::uintptr_t p : freed) CHECKF(!a.owns(reinterpret_cast<void*>(p)), "freed pointer still owned");
    // describe_memory of each shard against its figures.
    for (std::size_t i = 0; i < S; ++i) {
      const memory_report r = describe_memory(a.shard(i), 1000000);
      const auto& x = per[i];
      CHECKF(r.reserved_bytes == x.reserved_bytes, "report reserved " + std::to_string(r.reserved_bytes) + " stats " + std::to_string(x.reserved_bytes));
      CHECKF(r.cached_bytes == x.cached_bytes, "report cached " + std::to_string(r.cached_bytes) + " stats " + std::to_string(x.cached_bytes));
      CHECKF(r.largest_free_block <= r.cached_bytes, "largest free > cached");
      {  // the model's own walk: the largest run of free blocks next to each other within one region
        std::size_t run = 0, best = 0;
        std::uintptr_t run_end = 0;
        a.shard(i).visit_memory([&](std::uintptr_t, std::size_t) { run = 0; },
                                [&](std::uintptr_t at, std::size_t bytes, std::size_t requested) {
                                  if (requested != 0) {
                                    run = 0;
                                    return;
                                  }
                                  run = (run > 0 && at == run_end) ? run + bytes : bytes;
                                  run_end = at + bytes;
                                  best = std::max(best, run);
                                });
        CHECKF(r.largest_free_block == best, "report largest free " + std::to_string(r.largest_free_block) + " walk " + std::to_string(best));
      }
      CHECKF(r.fragmentation >= 0 && r.fragmentation <= 1, "fragmentation range");
      std::size_t cnt = 0, bytes = 0;
      for (const auto& c : r.top_size_classes) cnt += c.count, bytes += c.total_bytes;
      CHECKF(cnt == live_count[i], "report live count " + std::to_string(cnt) + " model " + std::to_string(live_count[i]));
      CHECKF(bytes == live_bytes[i], "report live bytes");
      const memory_report top2 = describe_memory(a.shard(i), 2);
      CHECKF(top2.top_size_classes.size() == std::min<std::size_t>(2, r.top_size_classes.size()), "top 2");
      for (std::size_t k = 0; k + 1 < r.top_size_classes.size(); ++k)
        CHECKF(r.top_size_classes[k].total_bytes >= r.top_size_classes[k + 1].total_bytes, "report order");
      (void)to_string(r);
    }
    if constexpr (requires { a.shard(0).backend().peers(); }) {
      for (std::size_t i = 0; i < S; ++i) {
        auto p = a.shard(i).backend().peers();
        CHECKF(std::set<int>(p.begin(), p.end()) == peers_granted, "peers differ from the model");
      }
    }
  };

  auto stats_unchanged = [&](const std::vector<stats_snapshot>& before, const char* what) {
    const auto after = snapshot_all();
    for (std::size_t i = 0; i < S; ++i) {
      if (after[i] == before[i]) continue;
      const auto& x = before[i];
      const auto& y = after[i];
      std::fprintf(stderr, "shard %zu before/after: alloc %zu/%zu req %zu/%zu reserved %zu/%zu allocs %llu/%llu deallocs %llu/%llu hits %llu/%llu balloc %llu/%llu bfree %llu/%llu oomr %llu/%llu peakres %zu/%zu\n", i,
                   x.allocated_bytes, y.allocated_bytes, x.requested_bytes, y.requested_bytes, x.reserved_bytes, y.reserved_bytes,
                   (unsigned long long)x.allocations, (unsigned long long)y.allocations, (unsigned long long)x.deallocations, (unsigned long long)y.deallocations,
                   (unsigned long long)x.cache_hits, (unsigned long long)y.cache_hits, (unsigned long long)x.backend_allocations, (unsigned long long)y.backend_allocations,
                   (unsigned long long)x.backend_frees, (unsigned long long)y.backend_frees, (unsigned long long)x.oom_retries, (unsigned long long)y.oom_retries,
                   x.peak_reserved_bytes, y.peak_reserved_bytes);
      FAILF("%s: a failed call changed shard %zu (last error: %s)", what, i, last_what.c_str());
    }
  };

  std::uint64_t n_heapfail_in_retry = 0;
  // A host-heap failure inside the out-of-memory retry leaves the retry's effects (cache released,
  // oom_retries + 1), as out_of_memory does; anywhere else it leaves everything as it was.
  auto heap_failure_unchanged = [&](const std::vector<stats_snapshot>& before, const char* what) {
    const auto after = snapshot_all();
    bool retried = false;
    for (std::size_t i = 0; i < S; ++i)
      if (after[i].oom_retries > before[i].oom_retries) {
        retried = true;
        auto x = after[i];
        CHECKF(x.allocated_bytes == before[i].allocated_bytes && x.requested_bytes == before[i].requested_bytes &&
                   x.allocations == before[i].allocations && x.deallocations == before[i].deallocations &&
                   x.reserved_bytes <= before[i].reserved_bytes && x.backend_allocations == before[i].backend_allocations,
               std::string(what) + ": heap failure in the retry changed live figures");
      } else {
        if (!(after[i] == before[i])) stats_unchanged(before, what);
      }
    if (retried) ++n_heapfail_in_retry;
  };
  check_all(true);
  for (g_step = 0; g_step < steps; ++g_step) {
    const unsigned op = rnd(100);
    const auto before = snapshot_all();
    if (op < 38) {  // allocate on a worker
      const std::size_t w = rnd(S);
      const std::size_t sh = shard_of_worker[w];
      std::size_t n;
      const unsigned kind = rnd(100);
      if (kind < 55) n = 1 + rnd(4096);
      else if (kind < 80) n = 4096 + rnd(1 * MiB);
      else if (kind < 93) n = 1 * MiB + rnd(12 * MiB);
      else if (kind < 95) n = 0;
      else if (kind < 97) n = sharded::max_size() + 1 + rnd(3);
      else if (kind < 98) n = SIZE_MAX - rnd(3);
      else if (kind < 99) n = T::streamed ? sharded::max_size() : 400 * MiB;
      else n = 40 * MiB + rnd(40 * MiB);
      const bool use_bad = T::streamed && chance(0.04);
      const stream s = use_bad ? bad_stream : pick_stream(false);
      const std::size_t arm = chance(0.08) ? 1 + rnd(4) : 0;
      void* p = nullptr;
      outcome o;
      ws[w]->run([&] { o = classify([&] { p = a.allocate(n, s); }, arm); });
      forget_pending_if_synced();
      if (o == outcome::bad_alloc && arm && (n == 0 || n > sharded::max_size() || use_bad)) {
        ++n_heapfail;  // the heap failed building the error's message
        stats_unchanged(before, "allocate error (heap failure)");
      } else if (n == 0) {
        CHECKF(o == outcome::ok && p == nullptr, std::string("allocate(0): ") + name(o));
        stats_unchanged(before, "allocate(0)");
      } else if (n > sharded::max_size()) {
        CHECKF(o == outcome::invalid_size, std::string("allocate(huge): ") + name(o));
        stats_unchanged(before, "allocate(huge)");
      } else if (use_bad && o != outcome::bad_alloc) {
        CHECKF(o == outcome::invalid_stream, std::string("allocate on a bad stream: ") + name(o));
        stats_unchanged(before, "allocate(bad stream)");
      } else if (o == outcome::ok) {
        const std::uintptr_t addr = reinterpret_cast<std::uintptr_t>(p);
        CHECKF(p != nullptr, "nullptr for n > 0");
        CHECKF(!live.count(addr), "address handed out twice");
        CHECKF(a.shard(sh).owns(p), "allocated from another shard than the worker's");
        const skey k = model_key(s, w);
        for (const auto& f : pending)
          if (f.shard == sh && addr < f.addr + f.bytes && f.addr < addr + sharded::good_size(n) &&
              !(f.streams.size() == 1 && f.streams.count(k)))
            FAILF("stream order: block %#lx+%zu on stream %#lx overlaps a pending free on %zu stream(s)", (unsigned long)addr, n, (unsigned long)k, f.streams.size());
        live[addr] = {n, sh, k, {k}};
        freed.erase(addr);
        auto& m = sm[sh];
        m.allocated += sharded::good_size(n);
        m.requested += n;
        m.peak_allocated = std::max(m.peak_allocated, m.allocated);
        m.peak_requested = std::max(m.peak_requested, m.requested);
        ++m.allocations;
        ++n_ok;
      } else if (o == outcome::oom) {
        ++n_oom;
        const auto after = snapshot_all();
        for (std::size_t i = 0; i < S; ++i) {
          CHECKF(after[i].allocated_bytes == before[i].allocated_bytes && after[i].allocations == before[i].allocations &&
                     after[i].requested_bytes == before[i].requested_bytes && after[i].deallocations == before[i].deallocations,
                 "out_of_memory changed live figures");
          CHECKF(after[i].reserved_bytes <= before[i].reserved_bytes, "out_of_memory grew the memory held");
          if (i != sh) CHECKF(after[i] == before[i], "out_of_memory changed another shard");
        }
      } else if (o == outcome::bad_alloc) {
        CHECKF(arm != 0, "bad_alloc without an injected failure");
        ++n_heapfail;
        heap_failure_unchanged(before, "allocate(heap failure)");
      } else {
        FAILF("allocate(%zu): unexpected %s: %s", n, name(o), last_what.c_str());
      }
    } else if (op < 68 && !live.empty()) {  // free a live block, on a random worker and stream
      auto it = live.begin();
      std::advance(it, rnd(live.size()));
      const std::uintptr_t addr = it->first;
      live_block b = it->second;
      const std::size_t w = rnd(S);
      const bool use_bad = T::streamed && chance(0.05);
      const stream s = use_bad ? bad_stream : (chance(0.7) ? stream(reinterpret_cast<CUstream_st*>(b.alloc_stream >= 0x10000 ? 2 : b.alloc_stream)) : pick_stream(false));
      const bool sized = chance(0.5);
      const bool wrong_size = sized && chance(0.1);
      const std::size_t nn = wrong_size ? b.n + 1 + rnd(3) : b.n;
      const std::size_t arm = chance(0.08) ? 1 + rnd(4) : 0;
      outcome o;
      const std::function<void()> job = [&] {
        o = classify([&] {
          if (sized) a.deallocate(reinterpret_cast<void*>(addr), nn, s);
          else a.deallocate(reinterpret_cast<void*>(addr), s);
        }, arm);
      };
      if (chance(0.2)) job();  // the main thread (no shard of its own)
      else ws[w]->run(job);
      forget_pending_if_synced();
      if (wrong_size && o == outcome::bad_alloc && arm) {  // the heap failed building the message
        stats_unchanged(before, "wrong-size free (heap failure)");
      } else if (wrong_size) {
        CHECKF(o == outcome::invalid_size, std::string("wrong-size free: ") + name(o));
        stats_unchanged(before, "wrong-size free");
      } else if (use_bad && o != outcome::bad_alloc && !(b.uses.size() == 1 && false)) {
        CHECKF(o == outcome::invalid_stream, std::string("free on a bad stream: ") + name(o) + " " + last_what);
        stats_unchanged(before, "free(bad stream)");
      } else if (o == outcome::ok) {
        live.erase(addr);
        freed.insert(addr);
        auto& m = sm[b.shard];
        m.allocated -= sharded::good_size(b.n);
        m.requested -= b.n;
        ++m.deallocations;
        if constexpr (T::streamed) {
          std::set<skey> streams = b.uses;
          // the per-thread stream means the freeing thread's own
          const skey fk = s.key() == 2 ? model_key(s, w) : s.key();
          streams.insert(fk);
          pending.push_back({addr, sharded::good_size(b.n), b.shard, streams});
        }
      } else if (o == outcome::bad_alloc) {
        CHECKF(arm != 0, "bad_alloc without an injected failure");
        ++n_heapfail;
        stats_unchanged(before, "free(heap failure)");
      } else {
        FAILF("free: unexpected %s: %s", name(o), last_what.c_str());
      }
    } else if (op < 74 && !live.empty()) {  // record_stream
      auto it = live.begin();
      std::advance(it, rnd(live.size()));
      const std::size_t w = rnd(S);
      const bool use_bad = T::streamed && chance(0.1);
      const stream s = use_bad ? bad_stream : pick_stream(false);
      const std::size_t arm = chance(0.1) ? 1 + rnd(3) : 0;
      outcome o;
      ws[w]->run([&] { o = classify([&] { a.record_stream(reinterpret_cast<void*>(it->first), s); }, arm); });
      if (use_bad && o != outcome::bad_alloc) {
        CHECKF(o == outcome::invalid_stream, std::string("record_stream(bad): ") + name(o));
      } else if (o == outcome::ok) {
        it->second.uses.insert(model_key(s, w));
      } else if (o == outcome::bad_alloc) {
        CHECKF(arm != 0, "bad_alloc unarmed");
      } else {
        FAILF("record_stream: unexpected %s: %s", name(o), last_what.c_str());
      }
      stats_unchanged(before, "record_stream");
    } else if (op < 82) {  // misuse: foreign, interior, double free, null
      int local = 0;
      const unsigned m = rnd(7);
      outcome o = outcome::ok, want = outcome::invalid_pointer;
      bool maybe_double = false;
      const std::size_t w = rnd(S);
      std::function<void()> job;
      if (m == 0) job = [&] { o = classify([&] { a.deallocate(&local); }); };
      else if (m == 1) job = [&] { o = classify([&] { a.record_stream(&local, stream{}); }); };
      else if (m == 2) job = [&] { o = classify([&] { (void)a.allocation_size(&local); }); };
      else if (m == 3) job = [&] { o = classify([&] { a.record_stream(nullptr, stream{}); }); };
      else if (m == 4 && !live.empty()) {
        auto it = live.begin();
        std::advance(it, rnd(live.size()));
        if (sharded::good_size(it->second.n) <= 256) {
          job = [&] { o = classify([&] { a.deallocate(&local, 1); }); };
        } else {
          const std::uintptr_t inner = it->first + 256;
          job = [&, inner] { o = classify([&] { a.deallocate(reinterpret_cast<void*>(inner)); }); };
        }
      } else if (!freed.empty()) {
        auto it = freed.begin();
        std::advance(it, rnd(freed.size()));
        const std::uintptr_t p = *it;
        maybe_double = true;
        want = outcome::double_free;
        // Memory a shard still holds: a double free, whichever shard the freeing thread draws from.
        bool inside_live = false;
        if (auto nx = live.upper_bound(p); nx != live.begin()) {
          --nx;
          inside_live = p < nx->first + sharded::good_size(nx->second.n);
        }
        if (inside_live) maybe_double = false, want = outcome::invalid_pointer;
        else
          for (std::size_t i = 0; i < S; ++i)
            if (a.shard(i).holds(reinterpret_cast<void*>(p))) maybe_double = false;
        if (m == 5) job = [&, p] { o = classify([&] { a.deallocate(reinterpret_cast<void*>(p)); }); };
        else job = [&, p] { o = classify([&] { a.deallocate(reinterpret_cast<void*>(p), 1 + rnd(100)); }); };
      } else {
        job = [&] { o = classify([&] { a.deallocate(&local, 1); }); };
      }
      if (chance(0.5)) job();
      else ws[w]->run(job);
      if (maybe_double) CHECKF(o == outcome::double_free || o == outcome::invalid_pointer, std::string("double free: ") + name(o));
      else CHECKF(o == want, std::string("misuse ") + std::to_string(m) + ": " + name(o) + " " + last_what);
      CHECKF(!a.owns(&local), "owns a stack address");
      ++n_err;
      stats_unchanged(before, "misuse");
    } else if (op < 86) {  // trim_cache
      std::size_t target;
      switch (rnd(4)) {
        case 0: target = 0; break;
        case 1: target = rnd(S); break;
        case 2: target = rnd(64 * MiB); break;
        default: target = SIZE_MAX - rnd(2); break;
      }
      const std::size_t arm = chance(0.2) ? 1 + rnd(3) : 0;  // trim asks the heap for nothing
      outcome o;
      ws[rnd(S)]->run([&] { o = classify([&] { a.trim_cache(target); }, arm); });
      CHECKF(o == outcome::ok, std::string("trim_cache: ") + name(o) + " " + last_what);
      forget_pending_if_synced();
      const auto after = snapshot_all();
      for (std::size_t i = 0; i < S; ++i) {
        CHECKF(after[i].reserved_bytes <= before[i].reserved_bytes, "trim grew the memory held");
        CHECKF(after[i].allocated_bytes == before[i].allocated_bytes, "trim changed live bytes");
        if constexpr (!T::streamed) {
          // Host order, segments: each shard gives back whole free segments until at most target / S
          // stays cached; so either it is there, or no segment of the shard is wholly free.
          if (after[i].cached_bytes > target / S) {
            bool all_free = false, any = false;
            a.shard(i).visit_memory(
                [&](std::uintptr_t, std::size_t) {
                  if (any && all_free) FAILF("trim_cache(%zu): shard %zu keeps %zu cached and a free segment", target, i, after[i].cached_bytes);
                  any = true, all_free = true;
                },
                [&](std::uintptr_t, std::size_t, std::size_t requested) { all_free = all_free && requested == 0; });
            if (any && all_free) FAILF("trim_cache(%zu): shard %zu keeps %zu cached and a free segment", target, i, after[i].cached_bytes);
          }
        }
      }
    } else if (op < 88) {  // empty_cache
      const std::size_t arm = chance(0.2) ? 1 + rnd(3) : 0;
      outcome o = classify([&] { a.empty_cache(); }, arm);
      CHECKF(o == outcome::ok, std::string("empty_cache: ") + name(o) + " " + last_what);
      forget_pending_if_synced();
      if constexpr (T::streamed) {
        // every frees' epoch is complete now (device synchronized), unless nothing was pending
        pending.clear();
      }
      // nothing cached that is not inside a page or segment a live block uses
      if (live.empty())
        for (std::size_t i = 0; i < S; ++i) CHECKF(a.shard(i).reserved_bytes() == 0, "empty_cache with nothing live left memory held");
    } else if (op < 93) {  // events complete
      if constexpr (T::streamed) {
        const std::size_t i = rnd(S);
        auto& ord = a.shard(i).ordering();
        if (chance(0.5)) ord.complete_all();
        else ord.complete_stream(made[rnd(made.size())]);
        // complete_all completes only what was recorded; the model forgets (never wrongly flags)
        std::erase_if(pending, [&](const pending_free& f) { return f.shard == i; });
      }
    } else if (op < 95) {  // reset_peak
      a.reset_peak();
      for (std::size_t i = 0; i < S; ++i) {
        sm[i].peak_allocated = sm[i].allocated;
        sm[i].peak_requested = sm[i].requested;
        sm[i].peak_reserved = a.shard(i).reserved_bytes();
      }
      const auto x = a.stats();
      CHECKF(x.peak_reserved_bytes == x.reserved_bytes, "reset_peak reserved");
    } else if (op < 97) {  // grant_peer
      if constexpr (requires { a.grant_peer(1); }) {
        const int peer = static_cast<int>(rnd(80)) - 8;
        const outcome o = classify([&] { a.grant_peer(peer); });
        if (peer < 0 || peer >= 64) CHECKF(o == outcome::invalid_device, std::string("grant_peer bad: ") + name(o));
        else {
          CHECKF(o == outcome::ok, std::string("grant_peer: ") + name(o));
          if (peer != a.device()) peers_granted.insert(peer);
        }
      }
    } else if (op < 98) {  // flush_stream (a stream the caller is done with); then destroy and reuse it
      if constexpr (T::streamed) {
        const stream s = made[rnd(made.size())];
        const std::size_t arm = chance(0.2) ? 1 + rnd(3) : 0;
        outcome o;
        ws[rnd(S)]->run([&] { o = classify([&] { a.flush_stream(s); }, arm); });
        CHECKF(o == outcome::ok || (arm && o == outcome::bad_alloc), std::string("flush_stream: ") + name(o));
        stats_unchanged(before, "flush_stream");
        if (o == outcome::ok && chance(0.5)) {
          // Destroyed: the allocator must never pass its handle again (the simulation counts it), while
          // every worker allocates and frees on the legacy stream (misses reclaim, other streams' epochs).
          for (std::size_t i = 0; i < S; ++i) a.shard(i).ordering().destroy(s);
          for (std::size_t w = 0; w < S; ++w) {
            void* q = nullptr;
            outcome o2;
            const std::size_t qn = 1 + rnd(2 * MiB);
            ws[w]->run([&] { o2 = classify([&] { q = a.allocate(qn); }); });
            if (o2 == outcome::ok) {
              ws[w]->run([&] { o2 = classify([&] { a.deallocate(q); }); });
              CHECKF(o2 == outcome::ok, std::string("free after destroy: ") + name(o2));
              pending.push_back({reinterpret_cast<std::uintptr_t>(q), 2 * MiB + 4096, shard_of_worker[w], {0}});
            } else {
              CHECKF(o2 == outcome::oom, std::string("allocate after destroy: ") + name(o2) + " " + last_what);
            }
            if (o2 == outcome::ok) {
              auto& m = sm[shard_of_worker[w]];
              m.peak_allocated = std::max(m.peak_allocated, m.allocated + sharded::good_size(qn));
              m.peak_requested = std::max(m.peak_requested, m.requested + qn);
              ++m.allocations, ++m.deallocations;
            }
          }
          for (std::size_t i = 0; i < S; ++i) CHECKF(a.shard(i).ordering().destroyed_stream_uses() == 0, "a destroyed stream's handle was used");
          for (std::size_t i = 0; i < S; ++i) (void)a.shard(i).ordering().reuse_handle(s);  // its work is done
          pending.clear();  // events completed: the model forgets (never flags wrongly)
        }
      }
    } else {  // timeline sample
      tl.sample(series, a);
      const auto v = tl.samples(series);
      CHECKF(v.back().live_bytes == a.stats().requested_bytes, "timeline live");
    }
    check_all(g_step % 16 == 0 || op >= 82);
  }
  // Free everything, empty, and everything goes back.
  for (const auto& [p, b] : live) a.deallocate(reinterpret_cast<void*>(p), b.n);
  a.empty_cache();
  for (std::size_t i = 0; i < S; ++i) {
    CHECKF(a.shard(i).reserved_bytes() == 0, "memory held at the end");
    if constexpr (T::streamed) {
      CHECKF(a.shard(i).ordering().destroyed_stream_uses() == 0, "destroyed");
    }
  }
  CHECKF(a.stats().allocated_bytes == 0, "allocated at the end");
  (void)tl.html("x");
  std::printf("%s seed %llu: %ld steps ok; %llu allocations, %llu refused misuses, %llu oom, %llu heap failures (%llu in an OOM retry)\n", T::name, seed, steps,
              (unsigned long long)n_ok, (unsigned long long)n_err, (unsigned long long)n_oom, (unsigned long long)n_heapfail, (unsigned long long)n_heapfail_in_retry);
  return 0;
}

int main(int argc, char** argv) {
  const unsigned long long seed = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 1;
  const long steps = argc > 2 ? std::strtol(argv[2], nullptr, 0) : 20000;
  const int which = argc > 3 ? std::atoi(argv[3]) : -1;
  if (which == -1 || which == 0) run<paged_shard>(seed, steps);
  if (which == -1 || which == 1) run<seg_shard>(seed, steps);
  if (which == -1 || which == 2) run<host_shard>(seed, steps);
  return 0;
}
