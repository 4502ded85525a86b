// Randomized model-based driver of stash::memory_manager (host-backed), with host-heap failures.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "stash/memory_manager.hpp"
#include "support/failing_heap.hpp"

using namespace stash;
namespace fh = stash_test::failing_heap;

static int failures = 0;
#define CHECKM(c, msg)                                                                          \
  do {                                                                                          \
    if (!(c)) {                                                                                 \
      std::fprintf(stderr, "FAIL step %ld op %s: %s (%s:%d)\n", step, op.c_str(), msg, __FILE__, __LINE__); \
      if (++failures > 20) std::exit(1);                                                        \
    }                                                                                           \
  } while (0)

struct live_t { int dev; std::size_t n; };  // dev -1: pinned

int main(int argc, char** argv) {
  unsigned seed = argc > 1 ? std::atoi(argv[1]) : 1;
  long steps = argc > 2 ? std::atol(argv[2]) : 20000;
  std::mt19937_64 rng(seed);
  const int N = 3;
  memory_manager mm(memory_manager::backing::host, N);
  std::map<void*, live_t> live;
  std::vector<void*> freed;  // pointers freed (may be reused)
  std::uint64_t ooms_seen = 0, observed = 0, ooms_total = 0, lost_ooms = 0;
  mm.attach_out_of_memory_observer([&](const out_of_memory&) { ++observed; });
  auto good = [](std::size_t n) { return host_caching_allocator::good_size(n); };
  long step = 0;
  std::string op;
  auto snap = [&] {
    std::vector<memory_stats> v;
    for (int d = 0; d < N; ++d) v.push_back(mm.get_stats(d));
    v.push_back(mm.get_pinned_stats());
    return v;
  };
  auto same = [](const std::vector<memory_stats>& a, const std::vector<memory_stats>& b, bool cache_may_drop) {
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (a[i].total_allocated != b[i].total_allocated || a[i].peak_allocated != b[i].peak_allocated) return false;
      if (a[i].detail.allocations != b[i].detail.allocations || a[i].detail.deallocations != b[i].detail.deallocations) return false;
      if (!cache_may_drop && !(a[i].detail == b[i].detail)) return false;
    }
    return true;
  };
  auto check_model = [&] {
    for (int d = -1; d < N; ++d) {
      std::size_t sum = 0, cnt = 0;
      for (auto& [p, l] : live) if (l.dev == d) sum += good(l.n), ++cnt;
      const memory_stats s = d < 0 ? mm.get_pinned_stats() : mm.get_stats(d);
      CHECKM(s.total_allocated == sum, ("allocated != model on dev " + std::to_string(d) + ": " + std::to_string(s.total_allocated) + " vs " + std::to_string(sum)).c_str());
      CHECKM(s.total_cached + s.total_allocated == s.total_reserved, "cached+allocated != reserved");
      CHECKM(s.peak_allocated >= s.total_allocated, "peak < allocated");
      CHECKM(s.detail.allocations - s.detail.deallocations == cnt, "live count != model");
      if (d >= 0) {
        pool* p = mm.existing_device_pool(d);
        if (p) CHECKM(s.limit_bytes == mm.memory_limit(d), "limit mismatch");
      }
    }
    for (auto& [p, l] : live) {
      CHECKM(l.dev < 0 ? !mm.owns(p) : mm.owns(p), "owns() disagrees with model");
    }
  };
  const int bad_devs[] = {-2, N, INT_MAX, INT_MIN, -1000};
  auto pick_size = [&]() -> std::size_t {
    switch (rng() % 12) {
      case 0: return 0;
      case 1: return SIZE_MAX;
      case 2: return host_caching_allocator::max_size() + (rng() % 2);
      case 3: return SIZE_MAX - rng() % 4096;
      case 4: return std::size_t{1} << (40 + rng() % 20);  // huge, heap says no
      default: return 1 + rng() % (rng() % 3 ? 5000 : 3 << 20);
    }
  };
  auto pick_dev = [&]() -> int {
    if (rng() % 8 == 0) return bad_devs[rng() % 5];
    return static_cast<int>(rng() % (N + 1)) - 1;  // -1..N-1
  };
  for (step = 0; step < steps; ++step) {
    const auto before = snap();
    const bool arm = rng() % 4 == 0;
    const std::size_t k = 1 + rng() % 6;
    bool threw = false, oom = false;
    std::string what;
    int r = static_cast<int>(rng() % 16);
    try {
      if (arm) fh::arm(k);
      switch (r) {
        case 0: case 1: case 2: {
          op = "allocate";
          std::size_t n = pick_size();
          int d = pick_dev();
          memory_type t = rng() % 10 == 0 ? static_cast<memory_type>(2 + rng() % 5) : (rng() % 4 ? memory_type::device : memory_type::pinned);
          bool badtype = t != memory_type::device && t != memory_type::pinned;
          op += " n=" + std::to_string(n) + " d=" + std::to_string(d) + " t=" + std::to_string((int)t);
          void* p = mm.allocate(n, t, d);
          fh::disarm();
          if (badtype) { static int once = 0; if (!once++) CHECKM(false, "bad memory_type accepted"); }
          bool devbad = t == memory_type::device && (d < -1 || d >= N);
          CHECKM(!devbad, "bad device accepted");
          if (p) {
            CHECKM(!live.count(p), "pointer handed out twice");
            live[p] = {t == memory_type::pinned ? -1 : (d == -1 ? 0 : d), n};
          } else CHECKM(n == 0, "null for n>0");
          break;
        }
        case 3: {
          op = "allocate_pinned";
          std::size_t n = pick_size();
          void* p = mm.allocate_pinned(n);
          fh::disarm();
          if (p) live[p] = {-1, n};
          break;
        }
        case 4: case 5: case 6: {
          op = "deallocate live";
          if (live.empty()) break;
          auto it = live.begin(); std::advance(it, rng() % live.size());
          void* p = it->first;
          if (rng() % 3 == 0) {  // via a pool: right or wrong device
            int d = it->second.dev < 0 ? 0 : it->second.dev;
            if (rng() % 2) d = (d + 1) % N;
            op = "pool(" + std::to_string(d) + ").deallocate of dev " + std::to_string(it->second.dev);
            if (rng() % 2 && it->second.dev >= 0) {
              std::size_t n = rng() % 2 ? it->second.n : it->second.n + 1;
              op += " sized n ok=" + std::to_string(n == it->second.n);
              mm.device_pool(d).deallocate(p, n);
              fh::disarm();
              CHECKM(n == it->second.n && d == it->second.dev, "bad sized free accepted");
            } else {
              mm.device_pool(d).deallocate(p, stream{});
              fh::disarm();
              CHECKM(d == it->second.dev, "free to wrong device accepted");
            }
          } else {
            mm.deallocate(p);
            fh::disarm();
          }
          live.erase(it);
          freed.push_back(p);
          break;
        }
        case 7: {
          op = "deallocate bad";
          void* p;
          int c = rng() % 4;
          int stackvar = 0;
          if (c == 0 && !freed.empty()) p = freed[rng() % freed.size()];
          else if (c == 1 && !live.empty()) { auto it = live.begin(); std::advance(it, rng() % live.size()); p = static_cast<char*>(it->first) + 8 * (1 + rng() % 64); }
          else if (c == 2) p = &stackvar;
          else p = reinterpret_cast<void*>(std::uintptr_t{0x1000} * (1 + rng() % 100));
          if (live.count(p)) break;  // reused
          bool inside_live = false;
          for (auto& [q, l] : live) if (p > q && static_cast<char*>(p) < static_cast<char*>(q) + l.n) inside_live = true;
          op += " c=" + std::to_string(c);
          mm.deallocate(p);
          fh::disarm();
          CHECKM(false, "bad free accepted");
          (void)inside_live;
          break;
        }
        case 8: {
          op = "record_stream";
          if (live.empty() || rng() % 3 == 0) {
            void* p = freed.empty() ? nullptr : freed[rng() % freed.size()];
            if (live.count(p)) break;
            op += " bad";
            mm.record_stream(p, stream{});
            fh::disarm();
            CHECKM(false, "record_stream of non-live accepted");
          } else {
            auto it = live.begin(); std::advance(it, rng() % live.size());
            mm.record_stream(it->first, stream{});
          }
          break;
        }
        case 9: { op = "empty_cache"; int d = pick_dev(); op += std::to_string(d); mm.empty_cache(d); fh::disarm(); CHECKM(d >= -1 && d < N, "bad dev accepted"); break; }
        case 10: { op = "trim_cache"; int d = pick_dev(); std::size_t t = rng() % 3 ? rng() % (8 << 20) : SIZE_MAX; mm.trim_cache(t, d); fh::disarm(); CHECKM(d >= -1 && d < N, "bad dev accepted");
                   if (mm.existing_device_pool(d)) CHECKM(mm.get_stats(d).total_cached <= t || true, ""); break; }
        case 11: { op = "reset_peak"; int d = pick_dev(); mm.reset_peak(d); fh::disarm(); CHECKM(d >= -1 && d < N, "bad dev accepted");
                   CHECKM(mm.get_stats(d).peak_allocated == mm.get_stats(d).total_allocated, "peak != allocated after reset"); break; }
        case 12: { op = "set_memory_limit"; int d = pick_dev(); std::size_t l = rng() % 3 ? (std::size_t)(rng() % (64 << 20)) : memory_manager::unlimited;
                   mm.set_memory_limit(l, d); fh::disarm(); CHECKM(d >= -1 && d < N, "bad dev accepted"); CHECKM(mm.memory_limit(d) == l, "limit not set"); break; }
        case 13: { op = "get_stats/existing"; int d = pick_dev(); (void)mm.get_stats(d); (void)mm.existing_device_pool(d); (void)mm.memory_limit(d); fh::disarm(); CHECKM(d >= -1 && d < N, "bad dev accepted"); break; }
        case 14: { op = "empty_pinned"; mm.empty_pinned_cache(); break; }
        case 15: { op = "device_pool/grant"; int d = pick_dev(); int peer = pick_dev(); bool g = mm.grant_peer_access(d, peer); fh::disarm();
                   CHECKM(!g, "host grant true"); CHECKM(d >= -1 && d < N && peer >= 0 && peer < N, "bad dev accepted"); break; }
      }
      fh::disarm();
    } catch (const out_of_memory& e) {
      fh::disarm(); threw = oom = true; what = e.what(); ++ooms_seen;
    } catch (const std::bad_alloc& e) {
      bool injected = fh::disarm(); threw = true; what = "bad_alloc";
      CHECKM(injected, "bad_alloc without injection");
      std::uint64_t o = 0; for (int d = 0; d < N; ++d) o += mm.get_stats(d).num_ooms; o += mm.get_pinned_stats().num_ooms;
      if (o != ooms_total) { static int once = 0; if (!once++) CHECKM(false, "out_of_memory counted but caller got plain std::bad_alloc (report failed)"); oom = true; ++lost_ooms; }
    } catch (const stash::error& e) {
      fh::disarm(); threw = true; what = e.what();
    } catch (const std::exception& e) {
      fh::disarm(); threw = true; what = std::string("UNTYPED ") + e.what();
      CHECKM(false, ("untyped exception " + what).c_str());
    }
    { std::uint64_t o = 0; for (int d = 0; d < N; ++d) o += mm.get_stats(d).num_ooms; o += mm.get_pinned_stats().num_ooms;
      CHECKM(o == ooms_seen + lost_ooms, "num_ooms != out_of_memory thrown"); ooms_total = o; }
    CHECKM(observed == ooms_seen, "observers told != ooms thrown");
    if (threw) {
      const auto after = snap();
      for (std::size_t i = 0; i < after.size(); ++i) if (after[i].detail.oom_retries != before[i].detail.oom_retries) oom = true;
      if (!same(before, after, oom)) {
        std::string d;
        for (std::size_t i = 0; i < after.size(); ++i) {
          const auto& a = before[i].detail; const auto& b = after[i].detail;
          if (!(a == b)) d += " pool" + std::to_string(i) + ": alloc " + std::to_string(a.allocated_bytes) + "->" + std::to_string(b.allocated_bytes) +
            " reserved " + std::to_string(a.reserved_bytes) + "->" + std::to_string(b.reserved_bytes) + " allocs " + std::to_string(a.allocations) + "->" + std::to_string(b.allocations) +
            " bfrees " + std::to_string(a.backend_frees) + "->" + std::to_string(b.backend_frees) + " retries " + std::to_string(a.oom_retries) + "->" + std::to_string(b.oom_retries) +
            " ooms " + std::to_string(before[i].num_ooms) + "->" + std::to_string(after[i].num_ooms);
        }
        CHECKM(false, ("state changed by failed call: " + what + d).c_str());
      }
    }
    check_model();
  }
  std::uint64_t ooms = 0;
  for (int d = 0; d < N; ++d) ooms += mm.get_stats(d).num_ooms;
  ooms += mm.get_pinned_stats().num_ooms;
  std::printf("seed %u steps %ld live %zu ooms %llu/%llu observed %llu failures %d\n", seed, steps, live.size(),
              (unsigned long long)ooms_seen, (unsigned long long)ooms, (unsigned long long)observed, failures);
  for (auto& [p, l] : live) mm.deallocate(p);
  return failures ? 1 : 0;
}
