// caching_allocator behaviour over every composition (backend x buckets x lock), checked against a
// reference model: addresses, byte counts, what the backend really holds, and what comes back.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "stash/caching_allocator.hpp"
#include "stash/detail/page_table.hpp"
#include "support/backend_probe.hpp"
#include "support/checked_backend.hpp"
#include "support/compositions.hpp"
#include "support/reference_model.hpp"

using namespace stash_test;

namespace {

constexpr std::size_t KiB = std::size_t{1} << 10;
constexpr std::size_t MiB = std::size_t{1} << 20;

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

template <class Allocator>
std::size_t page_bytes(const Allocator& a) {
  if constexpr (is_paged<Allocator>) return a.backend().page_size();
  else return 0;
}

/// Pages [at, at + pages * page) of every chunk a simulated_paged_backend maps, directly or under a
/// wrapper (failing_backend); false when the backend keeps no chunks.
template <class Backend, class F>
bool for_each_chunk(const Backend& b, F&& f) {
  if constexpr (requires { b.for_each_chunk(f); }) {
    b.for_each_chunk(f);
    return true;
  } else if constexpr (requires { b.upstream().for_each_chunk(f); }) {
    b.upstream().for_each_chunk(f);
    return true;
  } else {
    return false;
  }
}

/// What a paged allocator holds once its cache is emptied: every page a live block touches, and where
/// the backend maps chunks of several pages, the rest of each chunk one of them lies in (a chunk goes
/// back whole).
template <class Allocator>
std::size_t held_after_empty_cache(const Allocator& a, const reference_model& m) {
  const std::size_t page = page_bytes(a);
  std::size_t bytes = 0;
  const bool chunks = for_each_chunk(a.backend(), [&](std::uintptr_t at, std::size_t pages) {
    if (m.touches(at, at + pages * page)) bytes += pages * page;
  });
  return chunks ? bytes : m.touched_pages(page) * page;
}

/// Every counter the allocator reports, against the model and against the backend.
/// oom_allowed: the backend runs out at times, so failed backend calls may be counted and OOM retries
/// happen; everything else must still be exact.
template <class Allocator>
void require_exact(const Allocator& a, const reference_model& m, std::size_t peak_reserved_seen,
                   bool oom_allowed = false) {
  const stash::stats_snapshot s = a.stats();
  INFO("allocations " << s.allocations << ", live " << m.live().size());
  REQUIRE(s.allocated_bytes == m.allocated_bytes());
  REQUIRE(s.requested_bytes == m.requested_bytes());
  REQUIRE(s.allocations == m.allocations());
  REQUIRE(s.deallocations == m.deallocations());
  REQUIRE(s.peak_allocated_bytes == m.peak_allocated_bytes());
  REQUIRE(s.peak_requested_bytes == m.peak_requested_bytes());
  REQUIRE(s.peak_reserved_bytes == peak_reserved_seen);
  REQUIRE(s.reserved_bytes >= s.allocated_bytes);
  REQUIRE(s.cached_bytes == s.reserved_bytes - s.allocated_bytes);
  REQUIRE(a.reserved_bytes() == s.reserved_bytes);
  REQUIRE(a.cached_bytes() == s.cached_bytes);
  if (!oom_allowed) REQUIRE(s.oom_retries == 0);
  if (const auto held = held_bytes(a.backend())) REQUIRE(*held == s.reserved_bytes);
  REQUIRE(misuses(a.backend()) == 0);
  if (const auto c = calls(a.backend()); c && !oom_allowed) {
    REQUIRE(s.backend_allocations == c->takes);
    REQUIRE(s.backend_frees == c->gives);
  }
  if constexpr (is_paged<Allocator>) {
    // Every page a live block touches is backed.
    REQUIRE(s.reserved_bytes >= m.touched_pages(page_bytes(a)) * page_bytes(a));
  } else {
    // Only a new segment makes an allocation miss the cache.
    REQUIRE(s.allocations - s.cache_hits == s.backend_allocations);
  }
}

struct live_entry {
  void* p;
  std::size_t n;
  unsigned char fill;
};

/// `ops` random operations (mostly allocate/free, sometimes trim/empty/reset_peak) with sizes
/// log-uniform in [1, max_bytes], every counter checked after every operation.
template <class Allocator>
std::unique_ptr<Allocator> run_random_sequence(std::unique_ptr<Allocator> alloc, std::uint64_t seed,
                                               std::size_t ops, std::size_t max_bytes, std::size_t max_live,
                                               bool oom_allowed = false) {
  Allocator& a = *alloc;
  std::size_t out_of_memory = 0;
  reference_model model;
  std::mt19937_64 rng(seed);
  log_uniform_sizes sizes(max_bytes);
  std::vector<live_entry> live;
  std::size_t peak_reserved = 0;

  auto free_one = [&](std::size_t i) {
    const live_entry e = live[i];
    if constexpr (touches_memory<Allocator>) {
      const auto* bytes = static_cast<const unsigned char*>(e.p);
      REQUIRE(bytes[0] == e.fill);
      REQUIRE(bytes[e.n / 2] == e.fill);
      REQUIRE(bytes[e.n - 1] == e.fill);
    }
    if (rng() % 2) a.deallocate(e.p);
    else a.deallocate(e.p, e.n);
    model.deallocate(e.p);
    live[i] = live.back();
    live.pop_back();
  };

  for (std::size_t op = 0; op < ops; ++op) {
    INFO("seed " << seed << ", operation " << op);
    const std::uint64_t roll = rng() % 1000;
    if (live.empty() || (roll < 500 && live.size() < max_live)) {
      const std::size_t n = sizes(rng);
      void* p = nullptr;
      if (oom_allowed) {
        try {
          p = a.allocate(n);
        } catch (const stash::out_of_memory& e) {
          ++out_of_memory;
          REQUIRE(e.requested_bytes() == n);
          REQUIRE(e.reserved_bytes() == a.reserved_bytes());
          REQUIRE(e.cached_bytes() == a.cached_bytes());
          peak_reserved = std::max(peak_reserved, a.stats().reserved_bytes);
          require_exact(a, model, peak_reserved, oom_allowed);  // the model did not change either
          continue;
        }
      } else {
        p = a.allocate(n);
      }
      INFO("allocate(" << n << ") = " << p);
      REQUIRE(p != nullptr);
      REQUIRE(addr(p) % 256 == 0);
      REQUIRE(model.allocate(p, n, Allocator::good_size(n)));  // no overlap with any live block
      REQUIRE(a.allocation_size(p) == n);
      const auto fill = static_cast<unsigned char>(op | 1);
      if constexpr (touches_memory<Allocator>) std::memset(p, fill, n);  // valgrind checks every byte
      live.push_back({p, n, fill});
    } else if (roll < 990) {
      free_one(static_cast<std::size_t>(rng() % live.size()));
    } else if (roll < 996) {
      const std::size_t cached = a.cached_bytes();
      const std::size_t target = cached == 0 ? 0 : static_cast<std::size_t>(rng() % (cached + 1));
      a.trim_cache(target);
      // Short of the target only where nothing that could go is left: emptying the cache then gives
      // nothing more back. Checked on every trim, so that the assertion count does not depend on where
      // the host heap put the segments (which decides what a trim can reach).
      const std::size_t reserved = a.reserved_bytes();
      if (a.cached_bytes() > target) a.empty_cache();
      REQUIRE(a.reserved_bytes() == reserved);
    } else if (roll < 998) {
      a.empty_cache();
      if constexpr (is_paged<Allocator>) REQUIRE(a.reserved_bytes() == held_after_empty_cache(a, model));
    } else {
      a.reset_peak();
      model.reset_peak();
      peak_reserved = a.stats().reserved_bytes;
    }
    peak_reserved = std::max(peak_reserved, a.stats().reserved_bytes);
    require_exact(a, model, peak_reserved, oom_allowed);
  }
  while (!live.empty()) free_one(live.size() - 1);
  require_exact(a, model, peak_reserved, oom_allowed);
  REQUIRE(a.stats().allocated_bytes == 0);
  a.empty_cache();
  REQUIRE(a.stats().reserved_bytes == 0);
  REQUIRE(a.stats().cached_bytes == 0);
  require_exact(a, model, peak_reserved, oom_allowed);
  if (oom_allowed) REQUIRE(out_of_memory > 0);  // the sequence did drive the out-of-memory path
  return alloc;
}

}  // namespace

TEMPLATE_TEST_CASE("caching_allocator: a freed block is handed out again for the same size", "[allocator]",
                   STASH_TEST_COMPOSITIONS) {
  const std::size_t n = GENERATE(as<std::size_t>{}, 1, 255, 256, 257, 4 * KiB + 3, MiB, MiB + 1, 3 * MiB + 5);
  INFO("n = " << n);
  TestType a;
  void* keep = a.allocate(100);  // something else live, so the pool is not trivially empty
  void* p = a.allocate(n);
  const auto reserved = a.stats().reserved_bytes;
  a.deallocate(p);
  void* q = a.allocate(n);
  CHECK(q == p);
  CHECK(a.stats().reserved_bytes == reserved);  // served from the cache, not the backend
  CHECK(a.stats().cache_hits >= 1);
  a.deallocate(q);
  a.deallocate(keep);
}

TEMPLATE_TEST_CASE("caching_allocator: alignment, good_size, allocation_size and owns", "[allocator]",
                   STASH_TEST_COMPOSITIONS) {
  TestType a;
  std::vector<std::pair<void*, std::size_t>> blocks;
  std::size_t expected_allocated = 0;
  for (std::size_t n : {std::size_t{1}, std::size_t{100}, std::size_t{256}, std::size_t{257},
                        std::size_t{1000}, std::size_t{4096}, std::size_t{65537}, MiB - 1, 2 * MiB + 1}) {
    INFO("n = " << n);
    const std::size_t good = TestType::good_size(n);
    REQUIRE(good >= n);
    REQUIRE(good % 256 == 0);
    REQUIRE(good == TestType::buckets_type::round_up(n));
    const auto before = a.stats().allocated_bytes;
    void* p = a.allocate(n);
    REQUIRE(addr(p) % 256 == 0);
    REQUIRE(a.stats().allocated_bytes - before == good);  // good_size is what it really occupies
    REQUIRE(a.allocation_size(p) == n);
    REQUIRE(a.owns(p));
    REQUIRE_FALSE(a.owns(static_cast<char*>(p) + 1));  // inside a block is not a block
    expected_allocated += good;
    blocks.emplace_back(p, n);
  }
  REQUIRE(a.stats().allocated_bytes == expected_allocated);
  int on_stack = 0;
  REQUIRE_FALSE(a.owns(&on_stack));
  REQUIRE_FALSE(a.owns(nullptr));
  for (auto [p, n] : blocks) {
    a.deallocate(p, n);
    REQUIRE_FALSE(a.owns(p));
  }
  REQUIRE(a.stats().allocated_bytes == 0);
  REQUIRE(TestType::good_size(0) == 0);
  REQUIRE(TestType::good_size(TestType::max_size()) == TestType::max_size());
  REQUIRE(TestType::good_size(TestType::max_size() + 1) == 0);
}

TEMPLATE_TEST_CASE("caching_allocator: long random sequences keep every counter exact", "[allocator][random]",
                   STASH_TEST_COMPOSITIONS) {
  if constexpr (touches_memory<TestType>) {
    // Real memory, written end to end on every allocation (valgrind checks each byte): one seed, sizes
    // up to 4 MiB, so that the suite stays fast natively and under valgrind.
    run_random_sequence(std::make_unique<TestType>(), 0x5eed, 10000, 4 * MiB, 32);
  } else {
    const auto seed = GENERATE(as<std::uint64_t>{}, 0x5eed, 20261127);
    run_random_sequence(std::make_unique<TestType>(), seed, 10000, 64 * MiB, 64);
  }
}

TEST_CASE("caching_allocator: random sequences that run out of memory keep every counter exact",
          "[allocator][random][oom]") {
  constexpr std::size_t capacity = 256 * MiB;
  const auto seed = GENERATE(as<std::uint64_t>{}, 1, 2);
  SECTION("segments, segregated fit") {
    using allocator = caching_allocator<simulated_backend, segregated_fit_buckets, null_lock, basic_stats>;
    run_random_sequence(std::make_unique<allocator>(simulated_backend(capacity)), seed, 10000, 64 * MiB, 64,
                        true);
  }
  SECTION("segments, power of two") {
    using allocator = caching_allocator<simulated_backend, power_of_two_buckets, null_lock, basic_stats>;
    run_random_sequence(std::make_unique<allocator>(simulated_backend(capacity, 256)), seed, 10000, 64 * MiB,
                        64, true);
  }
  SECTION("segments behind failing_backend's byte limit") {
    using allocator =
        caching_allocator<failing_backend<simulated_backend>, segregated_fit_buckets, null_lock>;
    failing_backend<simulated_backend> limited;
    limited.set_byte_limit(capacity);
    run_random_sequence(std::make_unique<allocator>(std::move(limited)), seed, 10000, 64 * MiB, 64, true);
  }
  SECTION("pages") {
    using allocator =
        caching_allocator<simulated_paged_backend, segregated_fit_buckets, null_lock, basic_stats>;
    run_random_sequence(std::make_unique<allocator>(simulated_paged_backend(capacity)), seed, 10000, 64 * MiB,
                        64, true);
  }
  SECTION("small pages shared by many blocks, every page move allowed") {
    using allocator =
        caching_allocator<simulated_paged_backend, segregated_fit_buckets, null_lock, basic_stats>;
    stash::caching_options options;
    options.page_slack = 0;
    options.pages_between_moves = 0;
    options.reserve_bytes = 4 * capacity;
    const auto a = run_random_sequence(
        std::make_unique<allocator>(simulated_paged_backend(capacity / 4, 64 * KiB), options), seed, 10000,
        16 * MiB, 64, true);
    REQUIRE(a->page_moves() > 0);
  }
}

TEST_CASE("caching_allocator: random sequences over small pages with every page move allowed",
          "[allocator][random][paged]") {
  using allocator =
      caching_allocator<simulated_paged_backend, segregated_fit_buckets, null_lock, basic_stats>;
  stash::caching_options options;
  options.page_slack = 0;
  options.pages_between_moves = 0;
  options.reserve_bytes = std::size_t{1} << 30;
  const auto page = GENERATE(as<std::size_t>{}, 16 * KiB, 64 * KiB, 2 * MiB);
  // Edge pages alone, then in chunks (the default), where fewer pages are alone and free to move.
  options.edge_pages_in_chunks = GENERATE(false, true);
  const auto a = run_random_sequence(
      std::make_unique<allocator>(simulated_paged_backend(simulated_paged_backend::unlimited, page), options),
      page, 10000, 4 * MiB, 64);
  if (!options.edge_pages_in_chunks) REQUIRE(a->page_moves() > 0);  // the sequence did move pages
  REQUIRE(a->backend().moved_pages() == a->page_moves());
}

TEMPLATE_TEST_CASE("caching_allocator: trim_cache and empty_cache give what they release to the backend",
                   "[allocator]", STASH_TEST_COMPOSITIONS) {
  using backend = typename TestType::backend_type;
  using checked = typename rebind_backend<TestType, checked_backend<backend>>::type;
  auto ledger = std::make_shared<backend_ledger>();
  auto owner = std::make_unique<checked>(checked_backend<backend>(ledger));
  checked& a = *owner;

  // Every segment still held has a live block in it; with pages, exactly the touched pages are mapped.
  auto require_only_live_memory_held = [&](const std::vector<std::pair<void*, std::size_t>>& live) {
    if constexpr (is_paged<TestType>) {
      const std::size_t page = a.backend().page_size();
      std::set<std::uintptr_t> touched;
      for (auto [p, n] : live)
        for (std::uintptr_t q = addr(p) / page * page; q < addr(p) + TestType::good_size(n); q += page)
          touched.insert(q);
      REQUIRE(ledger->pages == touched);
    } else {
      for (const auto& [base, bytes] : ledger->segments) {
        bool used = false;
        for (auto [p, n] : live) used = used || (addr(p) >= base && addr(p) < base + bytes);
        REQUIRE(used);
      }
    }
  };

  void* small = a.allocate(1000);
  std::vector<void*> big;
  for (std::size_t n : {3 * MiB, 5 * MiB, 9 * MiB, 17 * MiB}) big.push_back(a.allocate(n));
  for (void* p : big) a.deallocate(p);
  const auto s0 = a.stats();
  REQUIRE(s0.cached_bytes >= (3 + 5 + 9 + 17) * MiB);
  REQUIRE(ledger->held_bytes == s0.reserved_bytes);

  a.trim_cache(SIZE_MAX);  // nothing to do
  REQUIRE(a.stats() == s0);

  const std::size_t target = s0.cached_bytes - 1;
  a.trim_cache(target);
  const auto s1 = a.stats();
  REQUIRE(s1.cached_bytes <= target);
  REQUIRE(s1.reserved_bytes < s0.reserved_bytes);
  REQUIRE(s1.backend_frees > s0.backend_frees);
  REQUIRE(ledger->held_bytes == s1.reserved_bytes);  // what was released reached the backend
  REQUIRE(s1.allocated_bytes == s0.allocated_bytes);

  a.trim_cache(0);  // as much as can go: only memory next to the live block stays
  REQUIRE(ledger->held_bytes == a.stats().reserved_bytes);
  require_only_live_memory_held({{small, 1000}});
  a.empty_cache();
  require_only_live_memory_held({{small, 1000}});
  REQUIRE(a.owns(small));
  REQUIRE(a.allocation_size(small) == 1000);

  a.deallocate(small);
  a.empty_cache();
  const auto s2 = a.stats();
  REQUIRE(s2.reserved_bytes == 0);
  REQUIRE(s2.cached_bytes == 0);
  REQUIRE(s2.backend_allocations == s2.backend_frees);
  REQUIRE(ledger->held_bytes == 0);
  REQUIRE(ledger->segments.empty());
  REQUIRE(ledger->pages.empty());
  REQUIRE(ledger->misuses == 0);

  // Still works after everything went back.
  void* again = a.allocate(5 * MiB);
  REQUIRE(a.owns(again));
  REQUIRE(ledger->held_bytes == a.stats().reserved_bytes);
  a.deallocate(again);
}

TEMPLATE_TEST_CASE("caching_allocator: the destructor gives everything back, leaked blocks too",
                   "[allocator]", STASH_TEST_COMPOSITIONS) {
  using backend = typename TestType::backend_type;
  using checked = typename rebind_backend<TestType, checked_backend<backend>>::type;
  auto ledger = std::make_shared<backend_ledger>();
  {
    checked a{checked_backend<backend>(ledger)};
    std::mt19937_64 rng(7);
    log_uniform_sizes sizes(8 * MiB);
    std::vector<void*> live;
    for (int i = 0; i < 300; ++i) {
      if (live.empty() || rng() % 3 != 0) {
        live.push_back(a.allocate(sizes(rng)));
      } else {
        const std::size_t k = rng() % live.size();
        a.deallocate(live[k]);
        live[k] = live.back();
        live.pop_back();
      }
    }
    REQUIRE_FALSE(live.empty());  // these are leaked on purpose
    REQUIRE(a.stats().cached_bytes > 0);
    REQUIRE(ledger->held_bytes == a.stats().reserved_bytes);
    REQUIRE(ledger->held_bytes > 0);
  }
  REQUIRE(ledger->held_bytes == 0);
  REQUIRE(ledger->segments.empty());
  REQUIRE(ledger->pages.empty());
  REQUIRE(ledger->misuses == 0);
  REQUIRE(ledger->misaligned == 0);
}

TEMPLATE_TEST_CASE("caching_allocator: reset_peak restarts the high tides from the current values",
                   "[allocator]", STASH_TEST_COMPOSITIONS) {
  TestType a;
  void* p2 = a.allocate(1000);      // first, so that the 3 MiB block gets a segment (or pages) of its own
  void* p1 = a.allocate(3 * MiB);
  const auto high = a.stats();
  REQUIRE(high.peak_allocated_bytes == TestType::good_size(3 * MiB) + TestType::good_size(1000));
  REQUIRE(high.peak_requested_bytes == 3 * MiB + 1000);
  a.deallocate(p1);
  a.empty_cache();
  const auto low = a.stats();
  REQUIRE(low.peak_allocated_bytes == high.peak_allocated_bytes);  // peaks stay until reset
  REQUIRE(low.peak_reserved_bytes == high.peak_reserved_bytes);
  REQUIRE(low.reserved_bytes < high.reserved_bytes);

  a.reset_peak();
  const auto reset = a.stats();
  REQUIRE(reset.peak_allocated_bytes == reset.allocated_bytes);
  REQUIRE(reset.peak_requested_bytes == 1000);
  REQUIRE(reset.peak_reserved_bytes == reset.reserved_bytes);
  REQUIRE(reset.allocations == 2);  // counts are not peaks
  REQUIRE(reset.deallocations == 1);

  void* p3 = a.allocate(4096);
  const auto after = a.stats();
  REQUIRE(after.peak_allocated_bytes == TestType::good_size(1000) + TestType::good_size(4096));
  REQUIRE(after.peak_requested_bytes == 1000 + 4096);
  REQUIRE(after.peak_reserved_bytes == after.reserved_bytes);
  a.deallocate(p3);
  a.deallocate(p2);
  REQUIRE(a.stats().peak_allocated_bytes == after.peak_allocated_bytes);
}

// ---- composition-specific behaviour ----------------------------------------------------------------

TEST_CASE("segregated fit: small blocks are carved side by side from one segment and merge back",
          "[allocator][segregated]") {
  simulated_segregated a;
  void* p1 = a.allocate(1000);  // 1024
  void* p2 = a.allocate(300);   // 512
  void* p3 = a.allocate(256);   // 256
  REQUIRE(addr(p2) == addr(p1) + 1024);
  REQUIRE(addr(p3) == addr(p2) + 512);
  REQUIRE(a.backend().allocate_calls() == 1);
  REQUIRE(a.stats().reserved_bytes == 2 * MiB);  // segregated_fit_buckets::small_segment
  a.deallocate(p1);
  a.deallocate(p3);
  a.deallocate(p2);  // merges with both neighbours and the rest of the segment
  const auto s = a.stats();
  void* whole = a.allocate(MiB);  // the largest small request, from the start of the merged block
  REQUIRE(addr(whole) == addr(p1));
  REQUIRE(a.stats().cache_hits == s.cache_hits + 1);
  REQUIRE(a.backend().allocate_calls() == 1);
  a.deallocate(whole);
  a.empty_cache();  // goes back only if the segment is one free block again
  REQUIRE(a.stats().reserved_bytes == 0);
  REQUIRE(a.backend().in_use_bytes() == 0);
}

TEST_CASE("segregated fit: a large request gets a segment of its own, rounded to 2 MiB",
          "[allocator][segregated]") {
  simulated_segregated a;
  void* p = a.allocate(5 * MiB + 1);
  REQUIRE(a.backend().in_use_bytes() == 6 * MiB);
  REQUIRE(a.stats().reserved_bytes == 6 * MiB);
  REQUIRE(a.stats().allocated_bytes == 5 * MiB + 256);
  a.deallocate(p);
  a.empty_cache();
  REQUIRE(a.backend().in_use_bytes() == 0);
}

TEST_CASE("power of two: a block serves only its own size class", "[allocator][pow2]") {
  host_pow2 a;
  void* p = a.allocate(1000);
  REQUIRE(a.stats().allocated_bytes == 1024);
  a.deallocate(p);
  void* same_class = a.allocate(600);
  REQUIRE(same_class == p);
  void* smaller_class = a.allocate(300);  // 512: not served by the free 1024-byte block
  REQUIRE(smaller_class != p);
  a.deallocate(same_class);
  void* larger_class = a.allocate(1025);  // 2048: neither
  REQUIRE(larger_class != p);
  REQUIRE(a.stats().reserved_bytes == 1024 + 512 + 2048);
  a.deallocate(smaller_class);
  a.deallocate(larger_class);
}

TEST_CASE("power of two: blocks are sized by the class even when the backend's granularity is coarser",
          "[allocator][pow2]") {
  // simulated_backend rounds segments to 512 bytes (as cuda_device_backend does). A 256-byte class
  // request must still be accounted as good_size(n) and be reused for the same request.
  simulated_pow2 a;
  void* p = a.allocate(100);
  CHECK(a.stats().allocated_bytes == simulated_pow2::good_size(100));
  a.deallocate(p);
  void* q = a.allocate(100);
  CHECK(q == p);
  CHECK(a.backend().allocate_calls() == 1);
  a.deallocate(q);
}

TEST_CASE("paged: with edge pages alone, exactly the pages live blocks touch are mapped after empty_cache",
          "[allocator][paged]") {
  stash::caching_options options;
  options.edge_pages_in_chunks = false;  // by default a neighbour on a freed
                                         // block's edge page keeps its chunk
  paged_segregated a(simulated_paged_backend{}, options);  // 2 MiB pages
  void* p1 = a.allocate(MiB);          // page 0
  void* p2 = a.allocate(3 * MiB);      // [1, 4) MiB: pages 0..1
  void* p3 = a.allocate(5 * MiB);      // [4, 9) MiB: pages 2..4
  REQUIRE(a.backend().mapped_bytes() == 5 * 2 * MiB);
  REQUIRE(a.stats().reserved_bytes == 10 * MiB);
  a.deallocate(p2);  // page 0 still touched by p1; page 1 now idle
  REQUIRE(a.stats().reserved_bytes == 10 * MiB);  // idle pages are the cache
  a.empty_cache();
  REQUIRE(a.backend().mapped_bytes() == 4 * 2 * MiB);
  REQUIRE(a.stats().reserved_bytes == 8 * MiB);
  REQUIRE(a.stats().backend_frees == 1);
  a.deallocate(p3);
  a.deallocate(p1);
  a.empty_cache();
  REQUIRE(a.backend().mapped_bytes() == 0);
  REQUIRE(a.backend().misuses() == 0);
}

TEST_CASE("paged: an idle page is moved where it is needed instead of a new one mapped",
          "[allocator][paged]") {
  stash::caching_options options;
  options.page_slack = 0;
  options.pages_between_moves = 0;  // a move is always due
  options.small_region = false;     // the page-sized blocks below share the one region
  caching_allocator<simulated_paged_backend, segregated_fit_buckets, null_lock, basic_stats> a(
      simulated_paged_backend{}, options);
  void* a1 = a.allocate(2 * MiB);  // page 0
  void* x = a.allocate(2 * MiB);   // page 1
  a.deallocate(a1);                // page 0 idle
  void* big = a.allocate(4 * MiB); // does not fit at page 0: pages 2..3
  REQUIRE(addr(big) == addr(x) + 2 * MiB);
  REQUIRE(a.page_moves() == 1);    // page 0 moved to page 2 (high tide 3 pages, no slack)
  REQUIRE(a.backend().chunk_moves() == 1);  // a page mapped alone is a chunk of one: it moves as one
  REQUIRE(a.backend().mapped_bytes() == 3 * 2 * MiB);
  REQUIRE(a.stats().reserved_bytes == 3 * 2 * MiB);
  REQUIRE(a.backend().misuses() == 0);
  a.deallocate(big);
  a.deallocate(x);
}

TEMPLATE_TEST_CASE("caching_allocator: try_deallocate frees live blocks only, holds tells held memory",
                   "[allocator]", STASH_TEST_COMPOSITIONS) {
  TestType a;
  void* keep = a.allocate(1000);
  void* p = a.allocate(3000);
  REQUIRE(a.holds(p));
  REQUIRE(a.holds(static_cast<char*>(p) + 100));  // inside a live block: memory it holds
  int on_stack = 0;
  REQUIRE_FALSE(a.holds(&on_stack));

  const auto before = a.stats();
  const auto backend_before = counters(a.backend());
  REQUIRE_FALSE(a.try_deallocate(nullptr));
  REQUIRE_FALSE(a.try_deallocate(&on_stack));
  REQUIRE_FALSE(a.try_deallocate(static_cast<char*>(p) + 256));
  REQUIRE(a.stats() == before);
  REQUIRE(counters(a.backend()) == backend_before);

  REQUIRE(a.try_deallocate(p));
  REQUIRE_FALSE(a.owns(p));
  REQUIRE(a.holds(p));  // cached, still held
  REQUIRE(a.stats().deallocations == before.deallocations + 1);
  REQUIRE(a.stats().allocated_bytes == before.allocated_bytes - TestType::good_size(3000));
  const auto freed = a.stats();
  REQUIRE_FALSE(a.try_deallocate(p));  // a second time: not live, nothing changes
  REQUIRE(a.stats() == freed);
  a.deallocate(keep);
  a.empty_cache();
  if constexpr (!is_paged<TestType>) REQUIRE_FALSE(a.holds(keep));  // its segment went back
}

TEST_CASE("segregated fit: trim_cache gives back the largest idle segments first",
          "[allocator][segregated]") {
  simulated_segregated a;
  void* live = a.allocate(1000);                                    // 2 MiB segment, stays
  std::vector<void*> big{a.allocate(3 * MiB), a.allocate(9 * MiB), a.allocate(5 * MiB)};  // 4, 10, 6 MiB
  for (void* p : big) a.deallocate(p);
  const auto s0 = a.stats();
  REQUIRE(s0.reserved_bytes == 22 * MiB);
  a.trim_cache(s0.cached_bytes - 1);  // one segment is enough: the 10 MiB one
  REQUIRE(a.stats().reserved_bytes == 12 * MiB);
  REQUIRE(a.stats().backend_frees == s0.backend_frees + 1);
  a.trim_cache(6 * MiB);  // cached is 12 MiB - 1 KiB: the 6 MiB segment goes, leaving 6 MiB - 1 KiB
  REQUIRE(a.stats().reserved_bytes == 6 * MiB);
  REQUIRE(a.backend().in_use_bytes() == 6 * MiB);
  a.deallocate(live);
}

TEST_CASE("paged: a block that fits is found even behind many smaller ones in its list",
          "[allocator][paged]") {
  // Holes of 1 MiB and one of 1 MiB + 32 KiB share a free list. With the arena used up, the larger
  // hole is the only place a 1 MiB + 32 KiB request fits, and the allocator must find it.
  stash::caching_options options;
  options.reserve_bytes = 32 * MiB;
  options.small_region = false;  // the holes and the wide block share one region's free lists
  caching_allocator<simulated_paged_backend, segregated_fit_buckets, null_lock, basic_stats> a(
      simulated_paged_backend{}, options);
  const std::size_t wide = MiB + 32 * 1024;
  REQUIRE(segregated_fit_buckets::bucket_index(wide) == segregated_fit_buckets::bucket_index(MiB));
  std::vector<void*> separators;
  void* wide_hole = a.allocate(wide);
  separators.push_back(a.allocate(256));
  std::vector<void*> holes;
  for (int i = 0; i < 9; ++i) {
    holes.push_back(a.allocate(MiB));
    separators.push_back(a.allocate(256));
  }
  const std::size_t used = wide + 9 * MiB + 10 * 256;
  void* rest = a.allocate(32 * MiB - used);  // the arena is now full
  REQUIRE(a.stats().allocated_bytes == 32 * MiB);
  const void* wide_address = wide_hole;
  a.deallocate(wide_hole);  // filed first: it ends up behind the nine others
  for (void* h : holes) a.deallocate(h);

  void* p = nullptr;
  CHECK_NOTHROW(p = a.allocate(wide));
  CHECK(p == wide_address);
  if (p) a.deallocate(p);
  a.deallocate(rest);
  for (void* s : separators) a.deallocate(s);
  REQUIRE(a.stats().allocated_bytes == 0);
}

TEMPLATE_TEST_CASE("segments: a small live block never keeps a large idle segment", "[allocator][segregated]",
                   stash_test::simulated_segregated, stash_test::host_segregated) {
  TestType a;
  void* large = a.allocate(64 * MiB);
  a.deallocate(large);
  void* small = a.allocate(4000);  // from a small segment of its own, not carved from the 64 MiB one
  a.empty_cache();
  REQUIRE(a.stats().reserved_bytes == 2 * MiB);  // segregated_fit_buckets::small_segment
  REQUIRE(a.owns(small));
  // And the other way round: a large request is not carved from a small segment's free space.
  void* large_again = a.allocate(MiB + 256);
  REQUIRE(a.stats().reserved_bytes == 4 * MiB);
  a.deallocate(small);
  a.empty_cache();
  REQUIRE(a.stats().reserved_bytes == 2 * MiB);
  a.deallocate(large_again);
  a.empty_cache();
  REQUIRE(a.stats().reserved_bytes == 0);
}

TEST_CASE("page table: the highest idle page is exact under random changes", "[allocator][paged]") {
  // Checked against the definition (mapped and not touched) over a table of 3 summary levels; and the
  // first unmapped page of a random range (inside one word of pages or across several) likewise, and
  // whether any page of it is touched. Runs of pages are mapped and unmapped at once as well (a kept
  // alias taken back marks its whole chunk), and the count of mapped pages stays exact.
  constexpr std::size_t pages = 64 * 64 * 3 + 17;
  stash::detail::page_table t;
  t.resize(pages);
  std::vector<std::pair<std::size_t, std::size_t>> live;  // blocks as [first, last] pages
  std::mt19937_64 rng(7);
  std::mt19937_64 ranges(11);  // for the first_unmapped checks, apart from the changes' sequence
  auto brute_highest = [&] {
    for (std::size_t p = pages; p-- > 0;)
      if (t.mapped(p) && !t.touched(p)) return p;
    return stash::detail::page_table::none;
  };
  for (int step = 0; step < 20000; ++step) {
    const auto op = rng() % 5;
    if (op == 0 || live.empty()) {
      // A block placed where no live block lies: at random, skipped if it would overlap one.
      const std::size_t first = rng() % pages, last = std::min(pages - 1, first + rng() % 200);
      bool overlaps = false;
      for (auto [f, l] : live) overlaps |= !(last < f || first > l) && !(first == l || last == f);
      if (overlaps) continue;
      t.touch(first, last);
      live.emplace_back(first, last);
      for (std::size_t p = first; p <= last; ++p)
        if (!t.mapped(p) && rng() % 2) t.set_mapped(p, true);
    } else if (op == 1) {
      const std::size_t i = rng() % live.size();
      t.untouch(live[i].first, live[i].second);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    } else if (op == 2) {
      const std::size_t p = t.highest_idle();
      if (p != stash::detail::page_table::none) t.set_mapped(p, false);
    } else if (op == 3) {
      const std::size_t p = rng() % pages;
      if (!t.mapped(p)) t.set_mapped(p, true);
    } else {
      const std::size_t first = rng() % pages, last = std::min(pages - 1, first + rng() % 150);
      t.set_mapped(first, last, rng() % 3 != 0);  // mapped pages among them stay counted once
    }
    REQUIRE(t.highest_idle() == brute_highest());
    std::size_t mapped = 0;
    for (std::size_t p = 0; p < pages; ++p) mapped += t.mapped(p) ? 1 : 0;
    REQUIRE(t.mapped_count() == mapped);
    const std::size_t from = ranges() % pages, to = std::min(pages - 1, from + ranges() % 130);
    std::size_t hole = stash::detail::page_table::none;
    bool touched = false;
    for (std::size_t p = to + 1; p-- > from;) {
      if (!t.mapped(p)) hole = p;
      touched |= t.touched(p);
    }
    REQUIRE(t.first_unmapped(from, to) == hole);
    REQUIRE(t.touched_any(from, to) == touched);
  }
}

TEST_CASE("paged: small blocks are carved from a region of their own and never split a large hole",
          "[allocator][paged]") {
  stash::caching_options options;
  options.reserve_bytes = 64 * MiB;  // the large region; the small one is [64, 72) MiB above it
  caching_allocator<simulated_paged_backend, segregated_fit_buckets, null_lock, basic_stats> a(
      simulated_paged_backend{}, options);
  void* big1 = a.allocate(4 * MiB);        // pages 0..1
  void* small = a.allocate(4096);          // page 32, the small region's first
  void* big2 = a.allocate(4 * MiB);        // pages 2..3: right after big1, the small block is elsewhere
  void* half_page = a.allocate(MiB);       // at most half a page: small region too, after `small`
  REQUIRE(addr(small) == addr(big1) + 64 * MiB);
  REQUIRE(addr(big2) == addr(big1) + 4 * MiB);
  REQUIRE(addr(half_page) == addr(small) + 4096);
  REQUIRE(a.stats().reserved_bytes == 5 * 2 * MiB);  // pages 0..3 and 32
  REQUIRE(a.backend().mapped_bytes() == 5 * 2 * MiB);
  REQUIRE(a.in_arena(static_cast<char*>(small) + 8 * MiB - 4097));  // the reservation ends at 72 MiB
  REQUIRE_FALSE(a.in_arena(static_cast<char*>(small) + 8 * MiB));

  a.deallocate(big1);               // pages 0..1 idle: a whole hole
  void* small2 = a.allocate(4096);  // not in the hole: after half_page in the small region
  REQUIRE(addr(small2) == addr(half_page) + MiB);
  void* big3 = a.allocate(4 * MiB);  // the hole, whole: no new page
  REQUIRE(big3 == big1);
  REQUIRE(a.stats().reserved_bytes == 5 * 2 * MiB);  // small2 lies on page 32, mapped already
  REQUIRE(a.page_moves() == 0);
  void* one_page = a.allocate(2 * MiB);  // more than half a page: the large region, after big2
  REQUIRE(addr(one_page) == addr(big2) + 4 * MiB);

  // The regions never merge: with everything freed, the whole large region (64 MiB, all of
  // reserve_bytes) is one block again, and a larger request is not carved across the boundary.
  for (void* p : {big2, big3, small, small2, half_page, one_page}) a.deallocate(p);
  a.empty_cache();
  REQUIRE(a.stats().reserved_bytes == 0);
  void* whole = a.allocate(64 * MiB);
  REQUIRE(addr(whole) == addr(big1));
  REQUIRE_THROWS_AS(a.allocate(8 * MiB + 256), stash::out_of_memory);
  a.deallocate(whole);
  REQUIRE(a.backend().misuses() == 0);
}

TEST_CASE("paged: a small request is carved from the large region once its own is full",
          "[allocator][paged]") {
  stash::caching_options options;
  options.reserve_bytes = 16 * MiB;  // the small region: [16, 18) MiB
  caching_allocator<simulated_paged_backend, segregated_fit_buckets, null_lock, basic_stats> a(
      simulated_paged_backend{}, options);
  void* s1 = a.allocate(MiB);
  void* s2 = a.allocate(MiB);  // the small region is full
  REQUIRE(addr(s2) == addr(s1) + MiB);
  void* spill = a.allocate(MiB);  // the start of the large region
  REQUIRE(addr(spill) == addr(s1) - 16 * MiB);
  REQUIRE(a.stats().allocated_bytes == 3 * MiB);
  for (void* p : {s1, s2, spill}) a.deallocate(p);
  a.empty_cache();
  REQUIRE(a.stats().reserved_bytes == 0);
  REQUIRE(a.backend().misuses() == 0);
}

TEST_CASE("paged: with small_fill_mapped, a small request fills mapped memory of the large region before it "
          "maps a page of its own",
          "[allocator][paged]") {
  stash::caching_options options;
  options.reserve_bytes = 64 * MiB;  // the small region: [64, 72) MiB, pages 32..35
  options.small_fill_mapped = true;
  caching_allocator<simulated_paged_backend, segregated_fit_buckets, null_lock, basic_stats> a(
      simulated_paged_backend{}, options);
  void* s1 = a.allocate(MiB);        // page 32, the small region's first: nothing else is mapped yet
  void* s2 = a.allocate(MiB);        // page 32 is full
  void* big1 = a.allocate(4 * MiB);  // pages 0..1
  void* big2 = a.allocate(3 * MiB);  // pages 2..3, the upper half of page 3 free
  REQUIRE(addr(s1) == addr(big1) + 64 * MiB);
  REQUIRE(a.stats().reserved_bytes == 5 * 2 * MiB);

  // The small region would need page 33: the free end of page 3 holds the request instead.
  void* s3 = a.allocate(MiB);
  REQUIRE(addr(s3) == addr(big2) + 3 * MiB);
  REQUIRE(a.stats().reserved_bytes == 5 * 2 * MiB);
  REQUIRE(a.backend().mapped_bytes() == 5 * 2 * MiB);

  // Idle pages a large block left serve the same way, at the hole's start.
  a.deallocate(big1);
  void* s4 = a.allocate(512 * 1024);
  REQUIRE(s4 == big1);
  REQUIRE(a.stats().reserved_bytes == 5 * 2 * MiB);

  // Room in the small region's own mapped pages comes first.
  a.deallocate(s1);
  void* s5 = a.allocate(MiB);
  REQUIRE(s5 == s1);

  // With every mapped byte in use, the small region maps its next page.
  void* big3 = a.allocate(3 * MiB + 512 * 1024);  // the rest of pages 0..1, after s4
  REQUIRE(addr(big3) == addr(s4) + 512 * 1024);
  void* s6 = a.allocate(4096);
  REQUIRE(addr(s6) == addr(s1) + 2 * MiB);  // page 33
  REQUIRE(a.stats().reserved_bytes == 6 * 2 * MiB);
  for (void* p : {big2, s2, s3, s4, s5, big3, s6}) a.deallocate(p);
  a.empty_cache();
  REQUIRE(a.stats().reserved_bytes == 0);
  REQUIRE(a.backend().misuses() == 0);
}

TEST_CASE("paged: by default (fill_mapped_above at 8 KiB), small requests fill mapped memory of the large "
          "region, those of at most 8 KiB never its top; with it off, or with max_held_over_live, none does",
          "[allocator][paged]") {
  stash::caching_options fill_8k, bounded, off;
  REQUIRE_FALSE(fill_8k.small_fill_mapped);
  REQUIRE(fill_8k.fill_mapped_above == 8 * 1024);  // the default
  bounded.max_held_over_live = 1.05;
  off.fill_mapped_above = SIZE_MAX;
  const stash::caching_options all[] = {fill_8k, bounded, off};
  for (int i = 0; i < 3; ++i) {
    stash::caching_options options = all[i];
    options.reserve_bytes = 64 * MiB;
    caching_allocator<simulated_paged_backend, segregated_fit_buckets, null_lock, basic_stats> a(
        simulated_paged_backend{}, options);
    void* s1 = a.allocate(MiB);
    void* s2 = a.allocate(MiB);       // page 32 is full
    void* big = a.allocate(3 * MiB);  // pages 0..1: the upper half of page 1 is the top's mapped head
    void* s3 = a.allocate(MiB);
    if (i == 0) {  // more than 8 KiB: the top's mapped head
      REQUIRE(addr(s3) == addr(big) + 3 * MiB);
      REQUIRE(a.stats().reserved_bytes == 3 * 2 * MiB);
    } else {  // page 33
      REQUIRE(addr(s3) == addr(s1) + 2 * MiB);
      REQUIRE(a.stats().reserved_bytes == 4 * 2 * MiB);
    }
    void* big2 = a.allocate(4 * MiB);  // above s3: big's pages become a hole below the top once it is freed
    a.deallocate(big);
    const std::size_t reserved = a.stats().reserved_bytes;
    void* tiny = a.allocate(8 * 1024);
    if (i == 0) {  // at most 8 KiB: the mapped hole big left, not a page of its own region
      REQUIRE(addr(tiny) == addr(big));
    } else {  // page 33, mapped for s3
      REQUIRE(addr(tiny) >= addr(s1) + 2 * MiB);
      REQUIRE(addr(tiny) < addr(s1) + 4 * MiB);
    }
    REQUIRE(a.stats().reserved_bytes == reserved);
    for (void* p : {s1, s2, s3, big2, tiny}) a.deallocate(p);
    REQUIRE(a.backend().misuses() == 0);
  }
}

TEST_CASE("paged: with fill_mapped_above, a request of at most its bytes never takes the large region's top",
          "[allocator][paged]") {
  stash::caching_options options;
  options.fill_mapped_above = 8 * 1024;
  options.reserve_bytes = 64 * MiB;
  caching_allocator<simulated_paged_backend, segregated_fit_buckets, null_lock, basic_stats> a(
      simulated_paged_backend{}, options);
  void* s1 = a.allocate(MiB);
  void* s2 = a.allocate(MiB);       // page 32 is full
  void* big = a.allocate(3 * MiB);  // pages 0..1: the top's first MiB lies on mapped page 1
  // The top is the untouched rest of the range: a tiny block there would keep page 1 touched under
  // the next large block's start. A page of the small region is mapped for it instead.
  void* tiny = a.allocate(8 * 1024);
  REQUIRE(addr(tiny) == addr(s1) + 2 * MiB);  // page 33
  REQUIRE(a.stats().reserved_bytes == 4 * 2 * MiB);
  void* next = a.allocate(3 * MiB);  // the top still starts where big ends
  REQUIRE(addr(next) == addr(big) + 3 * MiB);
  for (void* p : {s1, s2, big, tiny, next}) a.deallocate(p);
  REQUIRE(a.backend().misuses() == 0);
}

TEST_CASE("paged: with small_region off, one region serves every size", "[allocator][paged]") {
  stash::caching_options options;
  options.reserve_bytes = 64 * MiB;
  options.small_region = false;
  caching_allocator<simulated_paged_backend, segregated_fit_buckets, null_lock, basic_stats> a(
      simulated_paged_backend{}, options);
  void* big1 = a.allocate(4 * MiB);
  void* small = a.allocate(4096);
  void* big2 = a.allocate(4 * MiB);
  REQUIRE(addr(small) == addr(big1) + 4 * MiB);
  REQUIRE(addr(big2) == addr(small) + 4096);
  REQUIRE_FALSE(a.in_arena(static_cast<char*>(big1) + 64 * MiB));  // no range above reserve_bytes
  for (void* p : {big1, small, big2}) a.deallocate(p);
}
