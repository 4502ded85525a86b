// Many threads on one shared allocator. Every block is filled with a pattern unique to its thread and
// allocation and checked before it is freed, so two threads ever getting overlapping memory shows up
// as a corrupted pattern; at the end every counter must balance exactly. Built with
// -fsanitize=thread in CI, which also checks that the lock policies really exclude.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "stash/caching_allocator.hpp"
#include "stash/memory_manager.hpp"
#include "support/compositions.hpp"

using namespace stash_test;

namespace {

constexpr int thread_count = 8;
constexpr int allocations_per_thread = 20000;

struct filled_block {
  void* p;
  std::size_t n;
  std::uint64_t pattern;
};

/// Fills every byte of [p, p + n) from the pattern (words, then the tail).
void fill(void* p, std::size_t n, std::uint64_t pattern) {
  auto* bytes = static_cast<unsigned char*>(p);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) std::memcpy(bytes + i, &pattern, 8);
  for (; i < n; ++i) bytes[i] = static_cast<unsigned char>(pattern >> (8 * (i % 8)));
}

/// Whether every byte still holds the pattern.
bool intact(const void* p, std::size_t n, std::uint64_t pattern) {
  const auto* bytes = static_cast<const unsigned char*>(p);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes + i, 8);
    if (word != pattern) return false;
  }
  for (; i < n; ++i)
    if (bytes[i] != static_cast<unsigned char>(pattern >> (8 * (i % 8)))) return false;
  return true;
}

std::uint64_t pattern_for(int thread, std::uint64_t serial) {
  return (std::uint64_t(thread + 1) << 56) ^ (serial * 0x9E3779B97F4A7C15ull) ^ 0x5a5a;
}

}  // namespace

TEMPLATE_TEST_CASE("stress: threads share one allocator and never share a block", "[stress]",
                   (caching_allocator<host_backend, segregated_fit_buckets, std::mutex, basic_stats>),
                   (caching_allocator<host_backend, segregated_fit_buckets, spin_lock, basic_stats>),
                   (caching_allocator<host_backend, power_of_two_buckets, spin_lock, basic_stats>)) {
  auto owner = std::make_unique<TestType>();
  TestType& a = *owner;
  std::atomic<int> corrupted{0}, wrong_size{0}, misaligned{0};
  std::atomic<bool> done{false};

  auto worker = [&](int id) {
    std::mt19937_64 rng(1000 + static_cast<std::uint64_t>(id));
    log_uniform_sizes sizes(64 * 1024);
    std::vector<filled_block> live;
    int allocated = 0;
    auto free_one = [&](std::size_t k) {
      const filled_block b = live[k];
      if (!intact(b.p, b.n, b.pattern)) ++corrupted;
      if (a.allocation_size(b.p) != b.n) ++wrong_size;
      if (rng() % 2) a.deallocate(b.p);
      else a.deallocate(b.p, b.n);
      live[k] = live.back();
      live.pop_back();
    };
    while (allocated < allocations_per_thread) {
      if (live.empty() || (rng() % 2 == 0 && live.size() < 64)) {
        const std::size_t n = sizes(rng);
        void* p = a.allocate(n);
        if (reinterpret_cast<std::uintptr_t>(p) % 256 != 0) ++misaligned;
        const std::uint64_t pattern = pattern_for(id, static_cast<std::uint64_t>(allocated));
        fill(p, n, pattern);
        live.push_back({p, n, pattern});
        ++allocated;
      } else {
        free_one(static_cast<std::size_t>(rng() % live.size()));
      }
      if (rng() % 4096 == 0) a.trim_cache(static_cast<std::size_t>(rng() % (8 << 20)));
    }
    while (!live.empty()) free_one(live.size() - 1);
  };

  // A reader that watches the counters while the workers run: they must always be consistent.
  std::atomic<int> inconsistent{0};
  std::thread reader([&] {
    while (!done.load()) {
      const auto s = a.stats();
      if (s.cached_bytes != s.reserved_bytes - s.allocated_bytes || s.allocated_bytes > s.reserved_bytes ||
          s.requested_bytes > s.allocated_bytes || s.deallocations > s.allocations)
        ++inconsistent;
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int id = 0; id < thread_count; ++id) threads.emplace_back(worker, id);
  for (auto& t : threads) t.join();
  done = true;
  reader.join();

  REQUIRE(corrupted == 0);
  REQUIRE(wrong_size == 0);
  REQUIRE(misaligned == 0);
  REQUIRE(inconsistent == 0);
  const auto s = a.stats();
  REQUIRE(s.allocations == std::uint64_t{thread_count} * allocations_per_thread);
  REQUIRE(s.deallocations == s.allocations);
  REQUIRE(s.allocated_bytes == 0);
  REQUIRE(s.requested_bytes == 0);
  REQUIRE(s.cached_bytes == s.reserved_bytes);
  REQUIRE(s.peak_allocated_bytes > 0);
  a.empty_cache();
  REQUIRE(a.stats().reserved_bytes == 0);
  REQUIRE(a.stats().backend_frees == a.stats().backend_allocations);
}

TEMPLATE_TEST_CASE("stress: blocks freed by another thread than the one that allocated them", "[stress]",
                   (caching_allocator<host_backend, segregated_fit_buckets, std::mutex, basic_stats>),
                   (caching_allocator<host_backend, segregated_fit_buckets, spin_lock, basic_stats>)) {
  auto owner = std::make_unique<TestType>();
  TestType& a = *owner;
  constexpr int per_thread = 5000;
  // Thread i hands every block it allocates to thread (i + 1) % n through a locked queue.
  struct mailbox {
    std::mutex m;
    std::deque<filled_block> q;
  };
  std::vector<mailbox> boxes(thread_count);
  std::atomic<int> corrupted{0}, freed{0};

  auto worker = [&](int id) {
    std::mt19937_64 rng(77 + static_cast<std::uint64_t>(id));
    log_uniform_sizes sizes(16 * 1024);
    mailbox& out = boxes[static_cast<std::size_t>((id + 1) % thread_count)];
    mailbox& in = boxes[static_cast<std::size_t>(id)];
    auto drain = [&] {
      std::deque<filled_block> got;
      {
        std::lock_guard g(in.m);
        got.swap(in.q);
      }
      for (const filled_block& b : got) {
        if (!intact(b.p, b.n, b.pattern)) ++corrupted;
        a.deallocate(b.p, b.n);
        ++freed;
      }
    };
    for (int i = 0; i < per_thread; ++i) {
      const std::size_t n = sizes(rng);
      void* p = a.allocate(n);
      const std::uint64_t pattern = pattern_for(id, static_cast<std::uint64_t>(i));
      fill(p, n, pattern);
      {
        std::lock_guard g(out.m);
        out.q.push_back({p, n, pattern});
      }
      if (i % 16 == 0) drain();
    }
    while (freed.load() < thread_count * per_thread) {
      drain();
      std::this_thread::yield();
    }
  };
  std::vector<std::thread> threads;
  for (int id = 0; id < thread_count; ++id) threads.emplace_back(worker, id);
  for (auto& t : threads) t.join();

  REQUIRE(corrupted == 0);
  const auto s = a.stats();
  REQUIRE(s.allocations == std::uint64_t{thread_count} * per_thread);
  REQUIRE(s.deallocations == s.allocations);
  REQUIRE(s.allocated_bytes == 0);
  REQUIRE(s.cached_bytes == s.reserved_bytes);
}

TEST_CASE("stress: a manager's limit changes while threads allocate on two devices",
          "[stress][manager][limit]") {
  constexpr std::size_t MiB = std::size_t{1} << 20;
  stash::memory_manager mm(stash::memory_manager::backing::host, 2);
  mm.set_memory_limit(24 * MiB, 0);  // below what one thread's live blocks reach: requests are refused
  mm.set_memory_limit(48 * MiB, 1);
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<int> corrupted{0};  // Catch2's assertions are not thread safe: count, check after join
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      std::deque<std::pair<unsigned char*, std::size_t>> live;
      for (int i = 0; i < 2000; ++i) {
        const std::size_t n = 256 + rng() % (8 * MiB);
        try {
          auto* p = static_cast<unsigned char*>(mm.allocate(n, stash::memory_type::device, t % 2));
          p[0] = p[n - 1] = static_cast<unsigned char>(t);
          live.emplace_back(p, n);
        } catch (const stash::out_of_memory&) {
          ++refused;
        }
        if (live.size() > 8 || (!live.empty() && rng() % 4 == 0)) {
          auto [q, m] = live.front();
          if (q[0] != static_cast<unsigned char>(t) || q[m - 1] != static_cast<unsigned char>(t)) ++corrupted;
          mm.deallocate(q);
          live.pop_front();
        }
      }
      for (auto [q, m] : live) mm.deallocate(q);
    });
  }
  std::thread limiter([&] {  // lowers and raises device 1's limit, never above 48 MiB
    for (std::size_t i = 0; !done.load(); ++i) {
      mm.set_memory_limit((16 + 8 * (i % 5)) * MiB, 1);
      std::this_thread::yield();
    }
  });
  for (auto& w : workers) w.join();
  done = true;
  limiter.join();
  REQUIRE(corrupted == 0);
  REQUIRE(refused.load() > 0);
  REQUIRE(mm.get_stats(0).num_ooms + mm.get_stats(1).num_ooms == refused.load());
  REQUIRE(mm.get_stats(0).peak_reserved <= 24 * MiB);
  REQUIRE(mm.get_stats(1).peak_reserved <= 48 * MiB);
  for (int device : {0, 1}) REQUIRE(mm.get_stats(device).total_allocated == 0);
}
