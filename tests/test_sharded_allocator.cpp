// stash::sharded_allocator: threads draw from different shards, a block goes back to the shard it came
// from whatever thread frees it, stats() is the exact sum of the shards, errors change nothing, and
// empty_cache / trim_cache act on every shard. Over a paged backend (owner found from the address) and a
// segment backend over host memory (owner found by asking each shard; valgrind checks the memory).
// Threaded tests are tagged [stress] (the valgrind run skips them); the non-threaded ones are not.
#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "stash/backend/host_backend.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/error.hpp"
#include "stash/lock/spin_lock.hpp"
#include "stash/sharded_allocator.hpp"
#include "stash/stats/basic_stats.hpp"

namespace {

using namespace stash;

using paged_shard =
    caching_allocator<simulated_paged_backend, segregated_fit_buckets, spin_lock, basic_stats>;
using host_shard = caching_allocator<host_backend, segregated_fit_buckets, spin_lock, basic_stats>;
using paged_sharded = sharded_allocator<paged_shard, 4>;
using host_sharded = sharded_allocator<host_shard, 4>;

constexpr std::size_t KiB = std::size_t{1} << 10;
constexpr std::size_t MiB = std::size_t{1} << 20;

/// Runs f on a new thread (which takes a new shard on its first allocation) and waits for it.
template <class F>
auto on_new_thread(F f) {
  using R = decltype(f());
  R result{};
  std::thread t([&] { result = f(); });
  t.join();
  return result;
}

/// The one shard whose live allocation p is.
template <class Sharded>
std::size_t shard_of(Sharded& a, const void* p) {
  std::size_t found = Sharded::shard_count, count = 0;
  for (std::size_t i = 0; i < Sharded::shard_count; ++i)
    if (a.shard(i).owns(p)) {
      found = i;
      ++count;
    }
  REQUIRE(count == 1);
  return found;
}

template <class Sharded>
std::array<stats_snapshot, Sharded::shard_count> shard_stats(Sharded& a) {
  std::array<stats_snapshot, Sharded::shard_count> out;
  for (std::size_t i = 0; i < Sharded::shard_count; ++i) out[i] = a.shard(i).stats();
  return out;
}

/// stats() against the field-by-field sum of the shards' own stats.
template <class Sharded>
void require_stats_are_the_sum(Sharded& a) {
  stats_snapshot sum;
  for (const stats_snapshot& x : shard_stats(a)) {
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
  }
  const stats_snapshot s = a.stats();
  CHECK(s.allocated_bytes == sum.allocated_bytes);
  CHECK(s.requested_bytes == sum.requested_bytes);
  CHECK(s.cached_bytes == sum.cached_bytes);
  CHECK(s.reserved_bytes == sum.reserved_bytes);
  CHECK(s.peak_allocated_bytes == sum.peak_allocated_bytes);
  CHECK(s.peak_requested_bytes == sum.peak_requested_bytes);
  CHECK(s.peak_reserved_bytes == sum.peak_reserved_bytes);
  CHECK(s.allocations == sum.allocations);
  CHECK(s.deallocations == sum.deallocations);
  CHECK(s.cache_hits == sum.cache_hits);
  CHECK(s.backend_allocations == sum.backend_allocations);
  CHECK(s.backend_frees == sum.backend_frees);
  CHECK(s.oom_retries == sum.oom_retries);
  CHECK(s == sum);
}

template <class Sharded>
std::size_t reserved_sum(Sharded& a) {
  std::size_t sum = 0;
  for (std::size_t i = 0; i < Sharded::shard_count; ++i) sum += a.shard(i).reserved_bytes();
  return sum;
}

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Not threaded: also run under valgrind.

TEMPLATE_TEST_CASE("sharded_allocator: one thread gets its freed block back, from one shard", "[sharded]",
                   paged_sharded, host_sharded) {
  TestType a;
  STATIC_REQUIRE(TestType::shard_count == 4);
  void* p = a.allocate(1000);
  REQUIRE(p != nullptr);
  CHECK(addr(p) % 256 == 0);
  const std::size_t mine = shard_of(a, p);
  CHECK(a.owns(p));
  CHECK(a.allocation_size(p) == 1000);
  a.deallocate(p);
  CHECK_FALSE(a.owns(p));

  // Same size on the same thread: the same block, from the cache of the same shard.
  void* q = a.allocate(1000);
  CHECK(q == p);
  CHECK(shard_of(a, q) == mine);
  // This thread keeps its shard: every allocation lands there.
  void* r = a.allocate(64 * KiB);
  CHECK(shard_of(a, r) == mine);

  const auto per_shard = shard_stats(a);
  for (std::size_t i = 0; i < TestType::shard_count; ++i) {
    if (i == mine) {
      CHECK(per_shard[i].allocations == 3);
      CHECK(per_shard[i].deallocations == 1);
      CHECK(per_shard[i].cache_hits >= 1);
      CHECK(per_shard[i].allocated_bytes == 1024 + 64 * KiB);
      CHECK(per_shard[i].requested_bytes == 1000 + 64 * KiB);
    } else {
      CHECK(per_shard[i] == stats_snapshot{});
    }
  }
  require_stats_are_the_sum(a);
  const stats_snapshot s = a.stats();
  CHECK(s.allocations == 3);
  CHECK(s.deallocations == 1);
  CHECK(s.allocated_bytes == 1024 + 64 * KiB);
  CHECK(s.requested_bytes == 1000 + 64 * KiB);
  CHECK(s.cached_bytes == s.reserved_bytes - s.allocated_bytes);

  a.deallocate(q, 1000);
  a.deallocate(r, 64 * KiB);
  CHECK(a.stats().allocated_bytes == 0);
  CHECK(a.stats().deallocations == 3);
  a.deallocate(nullptr);  // a no-op
  CHECK(a.stats().deallocations == 3);
}

TEMPLATE_TEST_CASE("sharded_allocator: bad pointers and double frees throw and change nothing", "[sharded]",
                   paged_sharded, host_sharded) {
  TestType a;
  void* p = a.allocate(4096);
  void* keep = a.allocate(1024);  // keeps p's segment/arena held, so p's memory stays the shard's
  const stats_snapshot before = a.stats();

  // A pointer no shard handed out: invalid_pointer, and not reported as a double free.
  int local = 0;
  bool double_free_thrown = false;
  try {
    a.deallocate(&local);
    FAIL("no exception for a pointer that was never allocated");
  } catch (const stash::double_free&) {
    double_free_thrown = true;
  } catch (const stash::invalid_pointer& e) {
    CHECK(e.pointer() == &local);
  }
  CHECK_FALSE(double_free_thrown);
  CHECK_THROWS_AS(a.deallocate(&local, sizeof local), stash::invalid_pointer);
  CHECK_THROWS_AS(a.allocation_size(&local), stash::invalid_pointer);
  CHECK_FALSE(a.owns(&local));
  // Inside a live block but not at its start: invalid_pointer, not a double free.
  try {
    a.deallocate(static_cast<char*>(p) + 256);
    FAIL("no exception for a pointer inside a live block");
  } catch (const stash::double_free&) {
    FAIL("a pointer inside a live block was reported as a double free");
  } catch (const stash::invalid_pointer&) {
  }
  // Sized free with the wrong size: invalid_size, p stays live.
  CHECK_THROWS_AS(a.deallocate(p, 4095), stash::invalid_size);
  CHECK(a.owns(p));
  CHECK(a.stats() == before);

  a.deallocate(p);
  const stats_snapshot after_free = a.stats();
  CHECK(after_free.deallocations == before.deallocations + 1);
  try {
    a.deallocate(p);
    FAIL("no exception for a double free");
  } catch (const stash::double_free& e) {
    CHECK(e.pointer() == p);
  }
  CHECK_THROWS_AS(a.deallocate(p, 4096), stash::double_free);
  CHECK(a.stats() == after_free);
  require_stats_are_the_sum(a);

  a.deallocate(keep);
  CHECK(a.stats().allocated_bytes == 0);
  CHECK(a.stats().deallocations == 2);
}

TEMPLATE_TEST_CASE("sharded_allocator: empty_cache gives everything back when nothing is live", "[sharded]",
                   paged_sharded, host_sharded) {
  TestType a;
  std::vector<void*> blocks;
  for (std::size_t n : {300 * KiB, 3 * MiB, 1000 * KiB, 5 * MiB, 256ul}) blocks.push_back(a.allocate(n));
  CHECK(a.stats().reserved_bytes > 0);
  CHECK(reserved_sum(a) == a.stats().reserved_bytes);
  for (void* p : blocks) a.deallocate(p);
  CHECK(a.stats().allocated_bytes == 0);
  CHECK(a.stats().cached_bytes == a.stats().reserved_bytes);
  CHECK(a.stats().reserved_bytes > 0);

  a.empty_cache();
  CHECK(reserved_sum(a) == 0);
  const stats_snapshot s = a.stats();
  CHECK(s.reserved_bytes == 0);
  CHECK(s.cached_bytes == 0);
  CHECK(s.backend_frees == s.backend_allocations);
  CHECK(s.allocations == 5);
  CHECK(s.deallocations == 5);
  require_stats_are_the_sum(a);

  // It still works afterwards.
  void* p = a.allocate(100);
  CHECK(a.owns(p));
  a.deallocate(p);
}

// ---------------------------------------------------------------------------------------------------
// Threaded.

TEMPLATE_TEST_CASE("sharded_allocator: four threads draw from four different shards", "[sharded][stress]",
                   paged_sharded, host_sharded) {
  TestType a;
  std::vector<void*> blocks;
  std::set<std::size_t> shards;
  for (std::size_t t = 0; t < 4; ++t) {
    // Each thread allocates two blocks: both from the thread's one shard.
    const auto [p, q] = on_new_thread([&] { return std::pair{a.allocate(4096), a.allocate(100 * KiB)}; });
    const std::size_t s = shard_of(a, p);
    CHECK(shard_of(a, q) == s);
    shards.insert(s);
    blocks.push_back(p);
    blocks.push_back(q);
  }
  CHECK(shards.size() == 4);
  // Each shard holds exactly one thread's two blocks.
  for (const stats_snapshot& s : shard_stats(a)) {
    CHECK(s.allocations == 2);
    CHECK(s.allocated_bytes == 4096 + 100 * KiB);
  }
  require_stats_are_the_sum(a);
  // The shards' memory is disjoint: no block lies in another shard's memory.
  for (void* p : blocks) {
    const std::size_t s = shard_of(a, p);
    for (std::size_t i = 0; i < TestType::shard_count; ++i)
      if (i != s) CHECK_FALSE(a.shard(i).holds(p));
  }
  for (void* p : blocks) a.deallocate(p);
  CHECK(a.stats().allocated_bytes == 0);
  CHECK(a.stats().deallocations == 8);
}

TEMPLATE_TEST_CASE("sharded_allocator: a block freed on another thread goes back to its own shard",
                   "[sharded][stress]", paged_sharded, host_sharded) {
  TestType a;
  std::array<void*, 4> blocks{};
  std::array<std::size_t, 4> owner{};
  for (std::size_t t = 0; t < 4; ++t) {
    blocks[t] = on_new_thread([&] { return a.allocate(8 * KiB + t * 256); });
    owner[t] = shard_of(a, blocks[t]);
  }
  REQUIRE(std::set<std::size_t>(owner.begin(), owner.end()).size() == 4);

  // One more thread frees them all; it has a shard of its own (learned from an allocation of its own),
  // so at least three of the four frees come from a thread of another shard. The thread only records;
  // the checks run here.
  using per_shard = std::array<stats_snapshot, TestType::shard_count>;
  std::array<std::pair<per_shard, per_shard>, 4> around{};
  std::array<bool, 4> still_owned{};
  std::size_t my_shard = TestType::shard_count;
  std::thread freer([&] {
    void* mine = a.allocate(512);
    for (std::size_t i = 0; i < TestType::shard_count; ++i)
      if (a.shard(i).owns(mine)) my_shard = i;
    for (std::size_t t = 0; t < 4; ++t) {
      around[t].first = shard_stats(a);
      a.deallocate(blocks[t]);
      around[t].second = shard_stats(a);
      still_owned[t] = a.owns(blocks[t]);
    }
    a.deallocate(mine);
  });
  freer.join();
  REQUIRE(my_shard < TestType::shard_count);
  std::size_t foreign_frees = 0;
  for (std::size_t t = 0; t < 4; ++t) {
    INFO("block " << t << " of shard " << owner[t] << ", freed on a thread of shard " << my_shard);
    if (owner[t] != my_shard) ++foreign_frees;
    const auto& [before, after] = around[t];
    for (std::size_t i = 0; i < TestType::shard_count; ++i) {
      INFO("shard " << i);
      if (i == owner[t]) {
        CHECK(after[i].deallocations == before[i].deallocations + 1);
        CHECK(after[i].allocated_bytes == before[i].allocated_bytes - (8 * KiB + t * 256));
        CHECK(after[i].cached_bytes == before[i].cached_bytes + (8 * KiB + t * 256));
      } else {
        CHECK(after[i] == before[i]);
      }
    }
    CHECK_FALSE(still_owned[t]);
  }
  CHECK(foreign_frees == 3);

  for (const stats_snapshot& s : shard_stats(a)) CHECK(s.allocated_bytes == 0);
  require_stats_are_the_sum(a);
  CHECK(a.stats().allocations == 5);
  CHECK(a.stats().deallocations == 5);
}

TEMPLATE_TEST_CASE("sharded_allocator: stats() is the exact sum of the shards", "[sharded][stress]",
                   paged_sharded, host_sharded) {
  TestType a;
  const std::array<std::size_t, 4> sizes{1, 257, 3 * MiB + 1, 40 * KiB};
  std::vector<void*> live;
  std::mutex m;
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::vector<void*> mine;
      for (std::size_t k = 0; k <= t; ++k) mine.push_back(a.allocate(sizes[t]));
      a.deallocate(mine.back());  // one free per thread
      mine.pop_back();
      std::lock_guard g(m);
      live.insert(live.end(), mine.begin(), mine.end());
    });
  for (auto& t : threads) t.join();

  // Thread t allocated t+1 blocks of sizes[t] and freed one.
  std::size_t allocated = 0, requested = 0;
  for (std::size_t t = 0; t < 4; ++t) {
    allocated += t * TestType::good_size(sizes[t]);
    requested += t * sizes[t];
  }
  const stats_snapshot s = a.stats();
  CHECK(s.allocations == 1 + 2 + 3 + 4);
  CHECK(s.deallocations == 4);
  CHECK(s.allocated_bytes == allocated);
  CHECK(s.requested_bytes == requested);
  CHECK(s.cached_bytes == s.reserved_bytes - s.allocated_bytes);
  CHECK(s.reserved_bytes == reserved_sum(a));
  require_stats_are_the_sum(a);

  // Peaks: each shard's own peak, summed. One thread per shard allocated all it would before freeing.
  std::size_t peak = 0;
  for (std::size_t t = 0; t < 4; ++t) peak += (t + 1) * TestType::good_size(sizes[t]);
  CHECK(s.peak_allocated_bytes == peak);

  a.reset_peak();
  CHECK(a.stats().peak_allocated_bytes == allocated);
  CHECK(a.stats().peak_reserved_bytes == a.stats().reserved_bytes);
  for (void* p : live) a.deallocate(p);
  CHECK(a.stats().allocated_bytes == 0);
  CHECK(a.stats().requested_bytes == 0);
  CHECK(a.stats().deallocations == a.stats().allocations);
  require_stats_are_the_sum(a);
}

TEMPLATE_TEST_CASE("sharded_allocator: empty_cache and trim_cache act on every shard", "[sharded][stress]",
                   paged_sharded, host_sharded) {
  TestType a;
  // Four threads (four shards) each take four 2 MiB blocks: four pages (paged) or four segments of
  // their own (host) per shard, 8 MiB per shard.
  std::vector<void*> blocks;
  for (std::size_t t = 0; t < 4; ++t) {
    const auto mine = on_new_thread([&] {
      std::vector<void*> v;
      for (int k = 0; k < 4; ++k) v.push_back(a.allocate(2 * MiB));
      return v;
    });
    blocks.insert(blocks.end(), mine.begin(), mine.end());
  }
  for (std::size_t i = 0; i < 4; ++i) REQUIRE(a.shard(i).reserved_bytes() == 8 * MiB);
  for (void* p : blocks) a.deallocate(p);
  CHECK(a.stats().cached_bytes == 32 * MiB);

  SECTION("trim_cache(t) trims each shard to t / 4") {
    // 20 MiB: each shard may keep 5 MiB, so it drops 2 MiB units down to 4 MiB. A trim of the total to
    // 20 MiB would keep 20; a trim of each shard to 20 MiB would keep all 32.
    a.trim_cache(20 * MiB);
    for (std::size_t i = 0; i < 4; ++i) {
      CHECK(a.shard(i).cached_bytes() == 4 * MiB);
      CHECK(a.shard(i).reserved_bytes() == 4 * MiB);
      CHECK(a.shard(i).stats().backend_frees == 2);
    }
    CHECK(a.stats().cached_bytes == 16 * MiB);
    CHECK(a.stats().backend_frees == 8);
    require_stats_are_the_sum(a);

    a.trim_cache(7 * MiB);  // 1.75 MiB per shard: nothing can stay
    CHECK(reserved_sum(a) == 0);
    CHECK(a.stats().reserved_bytes == 0);
    CHECK(a.stats().backend_frees == 16);
  }
  SECTION("empty_cache leaves only what live blocks need") {
    // One live block in one shard keeps one 2 MiB unit there; every other shard gives all back.
    void* live = on_new_thread([&] { return a.allocate(1000); });
    const std::size_t s = shard_of(a, live);
    a.empty_cache();
    for (std::size_t i = 0; i < 4; ++i) CHECK(a.shard(i).reserved_bytes() == (i == s ? 2 * MiB : 0));
    a.deallocate(live);
    a.empty_cache();
    CHECK(reserved_sum(a) == 0);
    const stats_snapshot st = a.stats();
    CHECK(st.reserved_bytes == 0);
    CHECK(st.backend_frees == st.backend_allocations);
    require_stats_are_the_sum(a);
  }
}

TEST_CASE("sharded_allocator: 8 threads x 5000 random operations over host memory", "[sharded][stress]") {
  host_sharded a;
  constexpr int threads = 8, ops = 5000;

  struct record {
    unsigned char* p;
    std::size_t n;
    unsigned char seed;
  };
  auto fill = [](const record& r) {
    for (std::size_t i = 0; i < r.n; ++i) r.p[i] = static_cast<unsigned char>(r.seed + i * 7);
  };
  auto intact = [](const record& r) {
    for (std::size_t i = 0; i < r.n; ++i)
      if (r.p[i] != static_cast<unsigned char>(r.seed + i * 7)) return false;
    return true;
  };

  // Blocks handed between threads, so that many frees happen on a thread of another shard.
  std::mutex exchange_lock;
  std::vector<record> exchange;
  std::atomic<std::uint64_t> allocations{0}, deallocations{0}, corrupt{0}, errors{0};

  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::mt19937_64 rng(1234 + t);
      std::vector<record> live;
      auto release = [&](const record& r) {
        if (!intact(r)) ++corrupt;
        if (a.allocation_size(r.p) != r.n) ++errors;
        a.deallocate(r.p, r.n);
        ++deallocations;
      };
      try {
        for (int op = 0; op < ops; ++op) {
          const unsigned roll = static_cast<unsigned>(rng() % 100);
          if (roll < 55 || live.empty()) {
            const unsigned kind = static_cast<unsigned>(rng() % 100);
            const std::size_t n = kind < 80   ? 1 + rng() % 2048
                                  : kind < 98 ? 2048 + rng() % (62 * KiB)
                                              : 64 * KiB + rng() % (1536 * KiB);
            record r{static_cast<unsigned char*>(a.allocate(n)), n, static_cast<unsigned char>(rng())};
            ++allocations;
            if (addr(r.p) % 256 != 0) ++errors;
            fill(r);
            live.push_back(r);
          } else if (roll < 85) {
            const std::size_t i = rng() % live.size();
            release(live[i]);
            live[i] = live.back();
            live.pop_back();
          } else if (roll < 95) {
            const std::size_t i = rng() % live.size();
            std::lock_guard g(exchange_lock);
            exchange.push_back(live[i]);
            live[i] = live.back();
            live.pop_back();
          } else {
            record r{};
            {
              std::lock_guard g(exchange_lock);
              if (exchange.empty()) continue;
              r = exchange.back();
              exchange.pop_back();
            }
            release(r);
          }
        }
        for (const record& r : live) release(r);
      } catch (...) {
        ++errors;
      }
    });
  for (auto& t : pool) t.join();
  for (const record& r : exchange) {
    CHECK(intact(r));
    a.deallocate(r.p);
    ++deallocations;
  }

  CHECK(corrupt == 0);
  CHECK(errors == 0);
  const stats_snapshot s = a.stats();
  CHECK(allocations == deallocations);
  CHECK(s.allocations == allocations.load());
  CHECK(s.deallocations == deallocations.load());
  CHECK(s.allocations == s.deallocations);
  CHECK(s.allocated_bytes == 0);
  CHECK(s.requested_bytes == 0);
  CHECK(s.cached_bytes == s.reserved_bytes);
  CHECK(s.reserved_bytes == reserved_sum(a));
  require_stats_are_the_sum(a);
  // 8 threads over 4 shards: every shard was used.
  for (const stats_snapshot& x : shard_stats(a)) CHECK(x.allocations > 0);

  a.empty_cache();
  CHECK(reserved_sum(a) == 0);
  CHECK(a.stats().backend_frees == a.stats().backend_allocations);
}

TEST_CASE("sharded_allocator: shards over simulated devices larger than a fake window keep their own frees",
          "[sharded]") {
  constexpr std::size_t TiB = std::size_t{1} << 40;
  paged_sharded a([](std::size_t) { return simulated_paged_backend(10 * TiB); });  // each reserves 20 TiB
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < paged_sharded::shard_count; ++i) blocks.push_back(a.shard(i).allocate(4096));
  for (std::size_t i = 0; i < blocks.size(); ++i)
    for (std::size_t j = 0; j < paged_sharded::shard_count; ++j)
      CHECK(a.shard(j).in_arena(blocks[i]) == (i == j));
  for (void* p : blocks) a.deallocate(p);  // each found in its own shard
  for (std::size_t i = 0; i < paged_sharded::shard_count; ++i) CHECK(a.shard(i).stats().allocated_bytes == 0);
  CHECK(a.stats().deallocations == paged_sharded::shard_count);
  CHECK(a.allocate(0) == nullptr);
  CHECK(a.stats().allocations == paged_sharded::shard_count);
}
