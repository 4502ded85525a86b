// Twin driver: two identical stream-ordered allocators run the same random program; a call that fails
// on A (injected: host heap k-th allocation, invalid stream, capture, backend capacity) is skipped on B.
// After the failed call: A's figures against its own snapshot before it (every field), then A and B must
// keep agreeing (figures, addresses handed out) on every later step. The first divergence is printed.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "stash/backend/simulated_backend.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "support/failing_heap.hpp"

namespace fh = stash_test::failing_heap;
using stash::stream;

template <class Backend>
using alloc_t = stash::caching_allocator<Backend, stash::segregated_fit_buckets, std::mutex, stash::basic_stats,
                                         stash::simulated_ordering>;

struct figs {
  stash::stats_snapshot st;
  std::size_t reserved, cached;
  std::uint64_t rec, ret, cross, waits, closereq, dsync, hwaits, skips, forgot;
  std::size_t ord_records, ord_waits, ord_hw;
  std::string diff(const figs& o) const {
    std::string d;
    auto f = [&](const char* n, std::uint64_t a, std::uint64_t b) {
      if (a != b) d += std::string(" ") + n + ":" + std::to_string(a) + "->" + std::to_string(b);
    };
    f("alloc_b", st.allocated_bytes, o.st.allocated_bytes);
    f("req_b", st.requested_bytes, o.st.requested_bytes);
    f("cached_s", st.cached_bytes, o.st.cached_bytes);
    f("reserved_s", st.reserved_bytes, o.st.reserved_bytes);
    f("peak_alloc", st.peak_allocated_bytes, o.st.peak_allocated_bytes);
    f("peak_req", st.peak_requested_bytes, o.st.peak_requested_bytes);
    f("peak_res", st.peak_reserved_bytes, o.st.peak_reserved_bytes);
    f("allocs", st.allocations, o.st.allocations);
    f("deallocs", st.deallocations, o.st.deallocations);
    f("hits", st.cache_hits, o.st.cache_hits);
    f("be_allocs", st.backend_allocations, o.st.backend_allocations);
    f("be_frees", st.backend_frees, o.st.backend_frees);
    f("oom_retries", st.oom_retries, o.st.oom_retries);
    f("reserved", reserved, o.reserved);
    f("cached", cached, o.cached);
    f("ev_recorded", rec, o.rec);
    f("ev_retired", ret, o.ret);
    f("cross", cross, o.cross);
    f("waits", waits, o.waits);
    f("close_req", closereq, o.closereq);
    f("dev_syncs", dsync, o.dsync);
    f("host_waits", hwaits, o.hwaits);
    f("capture_skips", skips, o.skips);
    f("forgotten", forgot, o.forgot);
    f("ord_records", ord_records, o.ord_records);
    f("ord_waits", ord_waits, o.ord_waits);
    f("ord_hostwaits", ord_hw, o.ord_hw);
    return d;
  }
};

template <class A>
figs figures(A& a) {
  auto s = a.stream_stats();
  return {a.stats(), a.reserved_bytes(), a.cached_bytes(), s.epochs_recorded, s.epochs_retired, s.cross_blocks,
          s.waits, s.close_requests, s.device_syncs, s.host_waits, s.capture_skips, s.streams_forgotten,
          a.ordering().records(), a.ordering().waits().size(), a.ordering().host_waits()};
}

enum class kind { none, heap, badstream, capture, oom, other };
const char* kname(kind k) {
  switch (k) {
    case kind::heap: return "bad_alloc(heap)";
    case kind::badstream: return "invalid_stream";
    case kind::capture: return "capture_error";
    case kind::oom: return "out_of_memory";
    case kind::other: return "other";
    default: return "none";
  }
}

template <class F>
kind attempt(F&& f) {
  try {
    f();
    return kind::none;
  } catch (const stash::out_of_memory&) {
    return kind::oom;
  } catch (const std::bad_alloc&) {
    return kind::heap;
  } catch (const stash::invalid_stream&) {
    return kind::badstream;
  } catch (const stash::capture_error&) {
    return kind::capture;
  } catch (const std::exception& e) {
    std::printf("  other exception: %s\n", e.what());
    return kind::other;
  }
}

int main(int argc, char** argv) {
  const unsigned seed = argc > 1 ? std::atoi(argv[1]) : 1;
  const int steps = argc > 2 ? std::atoi(argv[2]) : 2000;
  const int which = argc > 3 ? std::atoi(argv[3]) : 0;  // 0 paged, 1 segments
  const bool immediate_only = argc > 4 && std::atoi(argv[4]) != 0;  // 1: report only the immediate diffs
  std::mt19937_64 rng(seed);
  stash::caching_options opt;
  opt.cross_stream_wait = rng() % 3 == 0;
  opt.remap_pending_pages = rng() % 3 == 0;
  opt.free_records_used_streams = rng() % 2 == 0;
  constexpr std::size_t MiB = 1 << 20;
  const std::size_t cap = (rng() % 2 ? 64 : 256) * MiB;
  if (std::getenv("TRACE")) std::printf("options: cross_stream_wait %d remap %d free_records_used_streams %d cap %zu\n", opt.cross_stream_wait, opt.remap_pending_pages, opt.free_records_used_streams, cap);
  auto run = [&](auto& a, auto& b) -> int {
    std::vector<stream> streams{stream{}, a.ordering().make_stream(), a.ordering().make_stream(),
                                a.ordering().make_stream()};
    for (int i = 1; i < 4; ++i) (void)b.ordering().make_stream();
    const stream bad(reinterpret_cast<stream::native_handle_type>(std::uintptr_t{0xdead000}));
    struct live_t {
      void *pa, *pb;
      std::size_t n;
      int s;
    };
    std::vector<live_t> live;
    bool diverged_reported = false;
    std::string last_failure;
    int failure_step = -1;
    for (int step = 0; step < steps; ++step) {
      const auto roll = rng() % 100;
      const int si = static_cast<int>(rng() % 4);
      const stream s = streams[si];
      bool inject = rng() % 4 == 0;
      std::string op;
      kind ka = kind::none, kb = kind::none;
      figs before = figures(a);
      std::size_t k = 1 + rng() % 6;
      if (roll < 45) {
        std::size_t n = std::size_t{1} << (rng() % 25);
        n += rng() % n;
        stream use = s;
        int mode = inject ? static_cast<int>(rng() % 4) : -1;  // 0 heap, 1 bad stream, 2 capture, 3 oom
        if (mode == 1) use = bad;
        if (mode == 3) n = cap;  // too large to fit with what is held
        if (mode == 2) { a.ordering().set_capturing(use, true); b.ordering().set_capturing(use, true); n += 8 * MiB; }
        op = "allocate(" + std::to_string(n) + ", s" + std::to_string(si) + (mode == 1 ? "bad" : "") + ")" +
             (mode == 0 ? " heap k=" + std::to_string(k) : "") + (mode == 2 ? " capturing" : "");
        void* pa = nullptr;
        void* pb = nullptr;
        if (mode == 0) fh::arm(k);
        ka = attempt([&] { pa = a.allocate(n, use); });
        const bool heap_failed = mode == 0 && fh::disarm();
        const bool retried = figures(a).st.oom_retries != before.st.oom_retries;
        if (ka == kind::none || !(ka == kind::heap && heap_failed) || retried) {
          kb = attempt([&] { pb = b.allocate(n, use); });
          if (ka == kind::heap && heap_failed && retried)
            std::printf("seed %u step %d: HEAP-AFTER-RETRY %s: B (no failure) -> %s\n", seed, step, op.c_str(), kname(kb));
          if (ka == kind::heap && kb == kind::oom) kb = kind::heap;
        } else kb = kind::heap;  // skipped on B
        if (mode == 2) { a.ordering().set_capturing(use, false); b.ordering().set_capturing(use, false); }
        if (ka == kind::none && kb == kind::none) {
          if (((reinterpret_cast<std::uintptr_t>(pa) ^ reinterpret_cast<std::uintptr_t>(pb)) & ((std::uintptr_t{1} << 44) - 1)) != 0 && !diverged_reported) {
            std::printf("seed %u step %d: DIVERGED address %p vs %p after %s (last failure: step %d %s)\n", seed, step,
                        pa, pb, op.c_str(), failure_step, last_failure.c_str());
            diverged_reported = true;
            if (!immediate_only) return 1;
          }
          live.push_back({pa, pb, n, si});
        } else if (ka == kind::none) {
          live.push_back({pa, nullptr, n, si});
          std::printf("seed %u step %d: A succeeded, B failed %s: %s\n", seed, step, kname(kb), op.c_str());
          return 1;
        } else if (kb == kind::none) {
          std::printf("seed %u step %d: B succeeded, A failed %s: %s\n", seed, step, kname(ka), op.c_str());
          return 1;
        }
      } else if (roll < 80 && !live.empty()) {
        const std::size_t i = rng() % live.size();
        live_t l = live[i];
        const int fs = rng() % 3 == 0 ? si : l.s;
        op = "deallocate(n=" + std::to_string(l.n) + " of s" + std::to_string(l.s) + ", on s" + std::to_string(fs) +
             ")" + (inject ? " heap k=" + std::to_string(k) : "");
        if (inject) fh::arm(k);
        ka = attempt([&] { a.deallocate(l.pa, streams[fs]); });
        const bool hf = inject && fh::disarm();
        if (ka == kind::heap && hf) kb = kind::heap;
        else kb = attempt([&] { b.deallocate(l.pb, streams[fs]); });
        if (ka == kind::none && kb == kind::none) {
          live[i] = live.back();
          live.pop_back();
        } else if (ka != kb) {
          std::printf("seed %u step %d: free outcomes differ %s %s\n", seed, step, kname(ka), kname(kb));
          return 1;
        }
      } else if (roll < 88 && !live.empty()) {
        const std::size_t i = rng() % live.size();
        op = "record_stream(s" + std::to_string(si) + ")" + (inject ? " heap k=" + std::to_string(k) : "");
        if (inject) fh::arm(k);
        ka = attempt([&] { a.record_stream(live[i].pa, s); });
        const bool hf = inject && fh::disarm();
        if (ka == kind::heap && hf) kb = kind::heap;
        else kb = attempt([&] { b.record_stream(live[i].pb, s); });
      } else if (roll < 92) {
        op = "flush_stream(s" + std::to_string(si) + ")" + (inject ? " heap k=" + std::to_string(k) : "");
        if (inject) fh::arm(k);
        ka = attempt([&] { a.flush_stream(s); });
        const bool hf = inject && fh::disarm();
        if (ka == kind::heap && hf) kb = kind::heap;
        else kb = attempt([&] { b.flush_stream(s); });
      } else if (roll < 97) {
        op = "complete_stream(s" + std::to_string(si) + ")";
        a.ordering().complete_stream(s);
        b.ordering().complete_stream(s);
      } else if (roll < 99) {
        const std::size_t t = a.cached_bytes() / 2;
        op = "trim_cache(" + std::to_string(t) + ")";
        a.trim_cache(t);
        b.trim_cache(t);
      } else {
        op = "empty_cache";
        a.empty_cache();
        b.empty_cache();
      }
      if (std::getenv("TRACE")) std::printf("  step %d: %s -> %s/%s hits %llu/%llu rec %llu/%llu streams? \n", step, op.c_str(), kname(ka), kname(kb), (unsigned long long)a.stats().cache_hits, (unsigned long long)b.stats().cache_hits, (unsigned long long)a.stream_stats().epochs_recorded, (unsigned long long)b.stream_stats().epochs_recorded);
      if (ka != kind::none) {
        const figs after = figures(a);
        const std::string d = before.diff(after);
        std::printf("seed %u step %d: FAIL %s threw %s; changed:%s\n", seed, step, op.c_str(), kname(ka),
                    d.empty() ? " nothing" : d.c_str());
        if (kb != kind::heap) {
          // failed on both: compare A and B
        }
        last_failure = op + " -> " + kname(ka) + (d.empty() ? "" : " [" + d + "]");
        failure_step = step;
      }
      const figs fa = figures(a), fb = figures(b);
      const std::string d = fb.diff(fa);
      if (!diverged_reported) {
        // stream-layer counters may differ by design (events recorded early); the user's figures may not
        figs fa2 = fa, fb2 = fb;
        const bool user_same = fa.st == fb.st && fa.reserved == fb.reserved && fa.cached == fb.cached;
        (void)fa2, (void)fb2;
        if (!user_same) {
          std::printf("seed %u step %d: DIVERGED figures after %s (B->A):%s (last failure: step %d %s)\n", seed, step,
                      op.c_str(), d.c_str(), failure_step, last_failure.c_str());
          diverged_reported = true;
          if (!immediate_only) return 1;
        }
      }
    }
    return 0;
  };
  if (which == 0) {
    alloc_t<stash::simulated_paged_backend> a(stash::simulated_paged_backend(cap), opt), b(stash::simulated_paged_backend(cap), opt);
    return run(a, b);
  } else {
    alloc_t<stash::simulated_backend> a(stash::simulated_backend(cap), opt), b(stash::simulated_backend(cap), opt);
    return run(a, b);
  }
}
