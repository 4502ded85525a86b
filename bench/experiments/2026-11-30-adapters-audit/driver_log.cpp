// Randomized driver over logging_adaptor (and sharded_allocator under it): every allocate and free
// logged once with its pointer, size and stream; failures logged and rethrown; rejected frees leave no
// line; the log parses with bench/trace_reader.hpp and matches a model.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "../audit-adapt/bench/trace_reader.hpp"
#include "stash/allocators.hpp"
#include "stash/logging_adaptor.hpp"
#include "stash/sharded_allocator.hpp"
#include "support/compositions.hpp"
#include "support/failing_heap.hpp"

#define ENSURE(c)                                                                                        \
  do {                                                                                                   \
    if (!(c)) {                                                                                          \
      std::fprintf(stderr, "%s:%d: ENSURE(%s) failed (seed %u step %d)\n", __FILE__, __LINE__, #c, g_seed, g_step); \
      std::abort();                                                                                      \
    }                                                                                                    \
  } while (0)

static unsigned g_seed;
static int g_step;

using sim_stream_pool = stash::caching_allocator<stash::failing_backend<stash::simulated_paged_backend>,
                                                 stash::segregated_fit_buckets, stash::spin_lock,
                                                 stash::basic_stats, stash::simulated_ordering>;
using sharded_failing = stash::sharded_allocator<stash_test::failing_host_segregated, 4>;

struct expect_line {
  std::string action;
  std::uintptr_t p;
  std::size_t n;
  std::uintptr_t stream;
};

template <class Pool, class Backends>
void run(std::mt19937& rng, Pool& pool, Backends&& backends, std::vector<stash::stream> streams) {
  std::ostringstream out;
  stash::logging_adaptor<Pool> logged(pool, out);
  std::vector<expect_line> expect;
  std::map<std::uintptr_t, std::pair<std::size_t, std::uintptr_t>> live;
  int failures = 0;
  for (int step = 0; step < 2000; ++step) {
    g_step = step;
    const int what = static_cast<int>(rng() % 10);
    if (what < 5 || live.empty()) {
      std::size_t n = 1 + rng() % 100000;
      if (rng() % 30 == 0) n = 0;
      if (rng() % 40 == 0) n = Pool::max_size() + 1 + rng() % 10;
      const bool fail = rng() % 6 == 0;
      if (fail) backends([&](auto& b) { b.fail_all(true); });
      const int si = static_cast<int>(rng() % (streams.size() + 1));
      void* p = nullptr;
      const std::size_t lines_before = expect.size();
      try {
        if (si == 0) p = logged.allocate(n);
        else p = logged.allocate(n, streams[si - 1]);
      } catch (const std::bad_alloc&) {
        expect.push_back({"allocate failure", 0, n, si == 0 ? 0 : streams[si - 1].key()});
        ++failures;
      } catch (const stash::invalid_size&) {
        expect.push_back({"allocate failure", 0, n, si == 0 ? 0 : streams[si - 1].key()});
        ++failures;
      }
      backends([&](auto& b) { b.fail_all(false); });
      if (p) {
        ENSURE(n > 0);
        const std::uintptr_t s = si == 0 ? 0 : streams[si - 1].key();
        expect.push_back({"allocate", reinterpret_cast<std::uintptr_t>(p), n, s});
        ENSURE(live.emplace(reinterpret_cast<std::uintptr_t>(p), std::make_pair(n, s)).second);
      } else if (expect.size() == lines_before) {
        ENSURE(n == 0);
      }
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      void* p = reinterpret_cast<void*>(it->first);
      const auto [n, s] = it->second;
      const int how = static_cast<int>(rng() % 4);
      // bad frees first: foreign pointer, wrong size; each rejected with no line
      if (rng() % 5 == 0) {
        int local = 0;
        try {
          logged.deallocate(&local);
          ENSURE(false);
        } catch (const stash::invalid_pointer&) {
        }
        try {
          logged.deallocate(p, n + 1);
          ENSURE(false);
        } catch (const stash::invalid_size&) {
        }
      }
      std::uintptr_t logged_stream = 0;
      switch (how) {
        case 0: logged.deallocate(p); break;
        case 1: logged.deallocate(p, n); break;
        case 2:
        case 3: {
          const stash::stream st = s == 0 ? stash::stream{} : stash::stream(reinterpret_cast<CUstream_st*>(s));
          logged.deallocate(p, st);
          logged_stream = s;
          break;
        }
      }
      expect.push_back({"free", it->first, n, logged_stream});
      live.erase(it);
      // double free: rejected, no line
      if (rng() % 5 == 0 && !pool.owns(p)) {
        try {
          logged.deallocate(p);
          ENSURE(false);
        } catch (const stash::invalid_pointer&) {
        }
      }
    }
  }
  for (auto& [a, v] : live) {
    logged.deallocate(reinterpret_cast<void*>(a), v.first);
    expect.push_back({"free", a, v.first, 0});
  }
  ENSURE(logged.flush());
  ENSURE(logged.lines_lost() == 0);
  // Compare the lines with the model.
  std::istringstream in(out.str());
  std::string line;
  std::getline(in, line);
  ENSURE(line == "Thread,Time,Action,Pointer,Size,Stream");
  std::size_t i = 0;
  while (std::getline(in, line)) {
    ENSURE(i < expect.size());
    const auto f = stash::bench::detail::split_csv(line);
    ENSURE(f.size() == 6);
    const auto& e = expect[i++];
    ENSURE(f[2] == e.action);
    std::uint64_t p = 0, n = 0, s = 0;
    ENSURE(stash::bench::detail::parse_pointer(f[3], p));
    ENSURE(stash::bench::detail::parse_number(f[4], 10, n));
    ENSURE(stash::bench::detail::parse_pointer(f[5], s));
    ENSURE(p == e.p);
    ENSURE(n == e.n);
    ENSURE(s == e.stream);
  }
  ENSURE(i == expect.size());
  const auto t = stash::bench::parse_trace_string(out.str());
  ENSURE(t.skipped_frees == 0);
  ENSURE(t.skipped_failures == static_cast<std::size_t>(failures));
  ENSURE(t.allocations == t.frees);
  ENSURE(pool.stats().allocated_bytes == 0);
}

int main(int argc, char** argv) {
  const unsigned seeds = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 10;
  for (g_seed = 1; g_seed <= seeds; ++g_seed) {
    std::mt19937 rng(g_seed);
    {
      stash_test::failing_host_segregated pool;
      run(rng, pool, [&](auto f) { f(pool.backend()); },
          {stash::stream(reinterpret_cast<CUstream_st*>(std::uintptr_t{0x1100}))});
    }
    {
      sim_stream_pool pool;
      std::vector<stash::stream> ss{pool.ordering().make_stream(), pool.ordering().make_stream()};
      run(rng, pool, [&](auto f) { f(pool.backend()); }, ss);
    }
    {
      sharded_failing pool;
      run(rng, pool, [&](auto f) { for (std::size_t i = 0; i < 4; ++i) f(pool.shard(i).backend()); },
          {stash::stream(reinterpret_cast<CUstream_st*>(std::uintptr_t{0x1100}))});
    }
  }
  std::printf("log driver: %u seeds ok\n", seeds);
}
