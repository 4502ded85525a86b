// Concurrent stress of stash::sharded_allocator for TSan: T threads allocate on random streams, free
// their own blocks and blocks other threads handed over (so frees cross shards), record_stream, read
// stats and owns; one more thread trims, empties, resets peaks, samples a timeline. At quiescence the
// figures must match what the threads counted.
// Usage: sharded_mt SEED ROUNDS [threads]
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "stash/backend/simulated_backend.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/backend/host_backend.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/lock/spin_lock.hpp"
#include "stash/memory_report.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "stash/sharded_allocator.hpp"
#include "stash/timeline.hpp"

using namespace stash;
using paged_shard = caching_allocator<simulated_paged_backend, segregated_fit_buckets, spin_lock, basic_stats, simulated_ordering>;
using seg_shard = caching_allocator<simulated_backend, segregated_fit_buckets, std::mutex, basic_stats, simulated_ordering>;
using host_shard = caching_allocator<host_backend, segregated_fit_buckets, spin_lock, basic_stats>;

#define CHECKF(c, what)                                                                 \
  do {                                                                                  \
    if (!(c)) {                                                                         \
      std::fprintf(stderr, "FAIL line %d: %s :: %s\n", __LINE__, #c, what);             \
      std::exit(1);                                                                     \
    }                                                                                   \
  } while (0)

template <class Shard, bool Streamed>
void round(unsigned long long seed, int threads, int ops) {
  constexpr std::size_t S = 4;
  sharded_allocator<Shard, S> a;
  std::vector<stream> made;
  if constexpr (Streamed) {
    for (int k = 0; k < 2; ++k) {
      stream s;
      for (std::size_t i = 0; i < S; ++i) s = a.shard(i).ordering().make_stream();
      made.push_back(s);
    }
  }
  std::mutex handoff_m;
  std::deque<std::pair<void*, std::size_t>> handoff;
  std::atomic<std::uint64_t> allocs{0}, frees{0};
  std::atomic<bool> stop{false};
  timeline tl;
  const auto id = tl.add_series("sharded", a);
  std::thread admin([&] {
    std::mt19937_64 r(seed ^ 0xabc);
    while (!stop) {
      switch (r() % 6) {
        case 0: a.trim_cache(r() % (64 << 20)); break;
        case 1: a.empty_cache(); break;  // each shard's simulation is called under that shard's lock
        case 2: a.reset_peak(); break;
        case 3: (void)a.stats(); break;
        case 4: tl.sample(id, a); break;
        default: (void)describe_memory(a.shard(r() % S)); break;
      }
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      std::mt19937_64 r(seed * 7919 + t);
      std::vector<std::pair<void*, std::size_t>> mine;
      auto pick = [&]() -> stream {
        if constexpr (Streamed) {
          switch (r() % 4) {
            case 0: return stream{};
            case 1: return stream::per_thread();
            default: return made[r() % made.size()];
          }
        } else {
          return stream{};
        }
      };
      for (int k = 0; k < ops; ++k) {
        const unsigned op = r() % 10;
        if (op < 5) {
          const std::size_t n = 1 + r() % (r() % 8 == 0 ? (4 << 20) : 8192);
          void* p = a.allocate(n, pick());
          ++allocs;
          if (r() % 3 == 0) {
            std::lock_guard g(handoff_m);
            handoff.emplace_back(p, n);
          } else {
            mine.emplace_back(p, n);
          }
        } else if (op < 8 && !mine.empty()) {
          auto [p, n] = mine.back();
          mine.pop_back();
          CHECKF(a.owns(p) && a.allocation_size(p) == n, "live block lost");
          if (r() % 2) a.deallocate(p, n, pick());
          else a.deallocate(p, pick());
          ++frees;
        } else if (op < 9) {
          std::pair<void*, std::size_t> b{nullptr, 0};
          {
            std::lock_guard g(handoff_m);
            if (!handoff.empty()) b = handoff.front(), handoff.pop_front();
          }
          if (b.first) {
            if (r() % 2 && Streamed) a.record_stream(b.first, pick());
            a.deallocate(b.first, b.second, pick());
            ++frees;
          }
        } else {
          int local;
          try {
            a.deallocate(&local);
            CHECKF(false, "foreign pointer accepted");
          } catch (const invalid_pointer&) {
          }
        }
      }
      for (auto [p, n] : mine) a.deallocate(p, n), ++frees;
    });
  for (auto& t : ts) t.join();
  stop = true;
  admin.join();
  for (auto [p, n] : handoff) a.deallocate(p, n), ++frees;
  const auto s = a.stats();
  CHECKF(s.allocations == allocs && s.deallocations == frees, "counts");
  CHECKF(s.allocated_bytes == 0 && s.requested_bytes == 0, "bytes left");
  a.empty_cache();
  CHECKF(a.stats().reserved_bytes == 0, "held at the end");
}

int main(int argc, char** argv) {
  const unsigned long long seed = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 1;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 4;
  for (int i = 0; i < rounds; ++i) {
    round<paged_shard, true>(seed + i, threads, 3000);
    round<seg_shard, true>(seed + i, threads, 3000);
    round<host_shard, false>(seed + i, threads, 3000);
  }
  std::printf("sharded_mt seed %llu: %d rounds x 3 compositions, %d threads: ok\n", seed, rounds, threads);
}
