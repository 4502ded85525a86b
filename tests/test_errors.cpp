// Every error the allocator reports: its type, the figures it carries, and that nothing changed
// (stats snapshot, backend counters, live blocks) when it was thrown. Out-of-memory paths are driven
// with failing_backend and capacity-limited simulated backends.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/error.hpp"
#include "support/backend_probe.hpp"
#include "support/compositions.hpp"

using namespace stash_test;

namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;
constexpr std::size_t GiB = std::size_t{1} << 30;
constexpr std::size_t TiB = std::size_t{1} << 40;

/// The most derived stash error type f throws ("none" if it returns).
template <class F>
std::string thrown_by(F&& f) {
  try {
    f();
  } catch (const stash::double_free&) {
    return "double_free";
  } catch (const stash::invalid_pointer&) {
    return "invalid_pointer";
  } catch (const stash::invalid_size&) {
    return "invalid_size";
  } catch (const stash::cuda_error&) {
    return "cuda_error";
  } catch (const stash::out_of_memory&) {
    return "out_of_memory";
  } catch (...) {
    return "something else";
  }
  return "none";
}

/// What must not change when an operation fails.
template <class Allocator>
struct frozen_state {
  explicit frozen_state(const Allocator& a)
      : stats(a.stats()),
        backend(counters(a.backend())),
        reserved(a.reserved_bytes()),
        cached(a.cached_bytes()) {}
  stash::stats_snapshot stats;
  std::vector<std::size_t> backend;
  std::size_t reserved, cached;
};

template <class Allocator>
void require_unchanged(const Allocator& a, const frozen_state<Allocator>& before) {
  REQUIRE(a.stats() == before.stats);
  REQUIRE(counters(a.backend()) == before.backend);
  REQUIRE(a.reserved_bytes() == before.reserved);
  REQUIRE(a.cached_bytes() == before.cached);
}

/// An allocator with live blocks of a few sizes and some cached memory, the state errors must keep.
template <class Allocator>
struct busy_allocator {
  busy_allocator() {
    for (std::size_t n : {std::size_t{1000}, std::size_t{3000}, 3 * MiB, std::size_t{70000}, 5 * MiB + 7})
      live.emplace_back(a->allocate(n), n);
    void* cached = a->allocate(2 * MiB + 1);
    a->deallocate(cached);
  }
  void require_live_intact() const {
    for (auto [p, n] : live) {
      REQUIRE(a->owns(p));
      REQUIRE(a->allocation_size(p) == n);
    }
  }
  ~busy_allocator() {
    for (auto [p, n] : live) a->deallocate(p, n);
  }
  std::unique_ptr<Allocator> a = std::make_unique<Allocator>();
  std::vector<std::pair<void*, std::size_t>> live;
};

/// Snapshot with the counter an out-of-memory is allowed to move put back.
stash::stats_snapshot without_oom_retries(stash::stats_snapshot s, std::uint64_t retries) {
  s.oom_retries = retries;
  return s;
}

}  // namespace

// ---- sizes ---------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("errors: allocate(0) returns nullptr and changes nothing", "[errors]",
                   STASH_TEST_COMPOSITIONS) {
  busy_allocator<TestType> busy;
  TestType& a = *busy.a;
  const frozen_state<TestType> before(a);
  REQUIRE(a.allocate(0) == nullptr);
  REQUIRE(a.allocate(0) == nullptr);
  require_unchanged(a, before);
  REQUIRE(TestType::good_size(0) == 0);
  a.deallocate(nullptr);  // what allocate(0) returned goes back as a no-op, sized or not
  a.deallocate(nullptr, 0);
  require_unchanged(a, before);
  busy.require_live_intact();
}

TEMPLATE_TEST_CASE("errors: sizes above max_size are invalid_size and change nothing", "[errors]",
                   STASH_TEST_COMPOSITIONS) {
  busy_allocator<TestType> busy;
  TestType& a = *busy.a;
  const frozen_state<TestType> before(a);
  for (std::size_t n : {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 255, TestType::max_size() + 1,
                        TestType::max_size() + 256}) {
    INFO("n = " << n);
    try {
      (void)a.allocate(n);
      FAIL("allocate(" << n << ") did not throw");
    } catch (const stash::invalid_size& e) {
      REQUIRE(e.size() == n);
      REQUIRE(std::string(e.what()).find(std::to_string(n)) != std::string::npos);
    }
    require_unchanged(a, before);
  }
  busy.require_live_intact();
}

TEMPLATE_TEST_CASE("errors: good_size never wraps around", "[errors]", STASH_TEST_COMPOSITIONS) {
  constexpr std::size_t max = TestType::max_size();
  for (std::size_t n : {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 255, SIZE_MAX / 2 + 1, max + 1}) {
    INFO("n = " << n);
    REQUIRE(TestType::good_size(n) == 0);
  }
  for (std::size_t n = max - 1024; n <= max; ++n) {
    const std::size_t good = TestType::good_size(n);
    REQUIRE(good >= n);
    REQUIRE(good <= max);
    REQUIRE(good % 256 == 0);
  }
  STATIC_REQUIRE(TestType::good_size(max) == max);
}

TEMPLATE_TEST_CASE("errors: a sized deallocate with the wrong size is invalid_size and changes nothing",
                   "[errors]", STASH_TEST_COMPOSITIONS) {
  busy_allocator<TestType> busy;
  TestType& a = *busy.a;
  void* p = a.allocate(1000);
  const frozen_state<TestType> before(a);
  for (std::size_t wrong : {std::size_t{999}, std::size_t{1001}, TestType::good_size(1000), std::size_t{0},
                            SIZE_MAX}) {
    INFO("wrong size " << wrong);
    REQUIRE(thrown_by([&] { a.deallocate(p, wrong); }) == "invalid_size");
    require_unchanged(a, before);
    REQUIRE(a.owns(p));
  }
  a.deallocate(p, 1000);
  REQUIRE_FALSE(a.owns(p));
  busy.require_live_intact();
}

// ---- pointers ------------------------------------------------------------------------------------

TEMPLATE_TEST_CASE("errors: a pointer not handed out is invalid_pointer and changes nothing", "[errors]",
                   STASH_TEST_COMPOSITIONS) {
  busy_allocator<TestType> busy;
  TestType& a = *busy.a;
  const frozen_state<TestType> before(a);
  int on_stack = 0;
  auto* inside = static_cast<char*>(busy.live[2].first);  // a 3 MiB live block
  auto* inside_small = static_cast<char*>(busy.live[0].first);

  for (const void* p : {static_cast<const void*>(&on_stack), static_cast<const void*>(inside + 1),
                        static_cast<const void*>(inside + 256), static_cast<const void*>(inside + MiB),
                        static_cast<const void*>(inside_small + 512)}) {
    INFO("pointer " << p);
    void* q = const_cast<void*>(p);
    REQUIRE(thrown_by([&] { a.deallocate(q); }) == "invalid_pointer");
    REQUIRE(thrown_by([&] { a.deallocate(q, 1000); }) == "invalid_pointer");
    REQUIRE(thrown_by([&] { (void)a.allocation_size(q); }) == "invalid_pointer");
    REQUIRE_FALSE(a.owns(q));
    require_unchanged(a, before);
  }

  // A pointer from another allocator of the same composition. Simulated backends of two allocators
  // hand out the same fake addresses, so take one beyond everything `a` holds: the third segment of
  // an allocator that got two large ones first (for paged ones, beyond what `a` ever carved).
  TestType other;
  std::vector<void*> others;
  for (std::size_t n : {256 * MiB, 256 * MiB, 1000ul}) others.push_back(other.allocate(n));
  void* foreign = others.back();
  try {
    a.deallocate(foreign);
    FAIL("freeing another allocator's pointer did not throw");
  } catch (const stash::invalid_pointer& e) {  // double_free is an invalid_pointer too
    REQUIRE(e.pointer() == foreign);
    if constexpr (touches_memory<TestType>) {  // distinct real memory: exactly "never handed out"
      REQUIRE(dynamic_cast<const stash::double_free*>(&e) == nullptr);
    }
  }
  require_unchanged(a, before);
  REQUIRE(other.owns(foreign));
  for (void* p : others) other.deallocate(p);

  // Freeing nullptr is a no-op, sized or not.
  a.deallocate(nullptr);
  a.deallocate(nullptr, 0);
  a.deallocate(nullptr, 123);
  require_unchanged(a, before);
  busy.require_live_intact();
}

TEMPLATE_TEST_CASE("errors: a second free is double_free, also after the block merged with its neighbours",
                   "[errors]", STASH_TEST_COMPOSITIONS) {
  busy_allocator<TestType> busy;
  TestType& a = *busy.a;
  void* x = a.allocate(1000);
  void* y = a.allocate(1000);
  void* z = a.allocate(1000);
  void* big = a.allocate(3 * MiB);
  a.deallocate(x);
  a.deallocate(z);
  a.deallocate(y);  // with segregated fit, y merges with x and z into one free block
  a.deallocate(big, 3 * MiB);
  const frozen_state<TestType> before(a);
  for (void* p : {x, y, z, big}) {
    INFO("pointer " << p);
    try {
      a.deallocate(p);
      FAIL("second free did not throw");
    } catch (const stash::double_free& e) {
      REQUIRE(e.pointer() == p);
    }
    REQUIRE(thrown_by([&] { a.deallocate(p, 1000); }) == "double_free");
    require_unchanged(a, before);
  }
  // Blocks of the merged region are handed out again and freed normally.
  void* again = a.allocate(1000);
  REQUIRE(a.owns(again));
  a.deallocate(again);
  busy.require_live_intact();
}

// ---- out of memory: capacity-limited simulated backends ------------------------------------------

TEMPLATE_TEST_CASE("errors: a request between 1 TiB and max_size on a limited backend is out_of_memory",
                   "[errors][oom]", (caching_allocator<simulated_backend, segregated_fit_buckets, null_lock>),
                   (caching_allocator<simulated_backend, power_of_two_buckets, null_lock>),
                   (caching_allocator<simulated_paged_backend, segregated_fit_buckets, null_lock>)) {
  using backend = typename TestType::backend_type;
  backend limited(64 * GiB);
  limited.set_device(3);
  TestType a(std::move(limited));
  std::vector<void*> live{a.allocate(1000), a.allocate(5 * MiB)};  // live blocks, no free segment
  const auto n = GENERATE(as<std::size_t>{}, TiB + 1, 64 * TiB, std::size_t{1} << 61, TestType::max_size());
  INFO("n = " << n);
  const auto before = a.stats();
  const auto backend_before = counters(a.backend());
  try {
    (void)a.allocate(n);
    FAIL("allocate(" << n << ") did not throw");
  } catch (const stash::out_of_memory& e) {
    REQUIRE(e.requested_bytes() == n);
    REQUIRE(e.device() == 3);
    REQUIRE(e.reserved_bytes() == a.stats().reserved_bytes);
    REQUIRE(e.cached_bytes() == a.stats().cached_bytes);
    REQUIRE(e.reserved_bytes() == before.reserved_bytes);
    REQUIRE(std::string(e.what()).find(std::to_string(n)) != std::string::npos);
  }
  REQUIRE(without_oom_retries(a.stats(), before.oom_retries) == before);
  REQUIRE(a.stats().oom_retries <= before.oom_retries + 1);
  REQUIRE(held_bytes(a.backend()).value() == a.stats().reserved_bytes);
  REQUIRE(counters(a.backend())[0] == backend_before[0]);  // bytes held by the backend
  // It is a std::bad_alloc, for code written against operator new.
  REQUIRE_THROWS_AS(a.allocate(n), std::bad_alloc);
  for (void* p : live) REQUIRE(a.owns(p));
  for (void* p : live) a.deallocate(p);
}

// ---- out of memory: failing_backend over segments ------------------------------------------------

namespace {
using failing_segments =
    caching_allocator<failing_backend<simulated_backend>, segregated_fit_buckets, null_lock>;
}

TEST_CASE("errors: backend out of memory once releases the cache and the retry succeeds", "[errors][oom]") {
  failing_segments a;
  void* small = a.allocate(1000);  // its 2 MiB segment stays (live)
  void* c1 = a.allocate(3 * MiB);  // 4 MiB segment
  void* c2 = a.allocate(5 * MiB);  // 6 MiB segment
  a.deallocate(c1);
  a.deallocate(c2);
  const auto before = a.stats();
  REQUIRE(before.reserved_bytes == 12 * MiB);
  REQUIRE(before.cached_bytes == 12 * MiB - 1024);

  a.backend().fail_call(1);
  void* p = a.allocate(9 * MiB);  // fits no cached block: a new 10 MiB segment, refused once
  REQUIRE(p != nullptr);
  const auto after = a.stats();
  REQUIRE(after.oom_retries == before.oom_retries + 1);
  REQUIRE(a.backend().failures() == 1);
  REQUIRE(after.backend_frees == before.backend_frees + 2);  // both idle segments went back
  REQUIRE(after.reserved_bytes == 2 * MiB + 10 * MiB);
  REQUIRE(a.backend().held_bytes() == after.reserved_bytes);
  REQUIRE(a.backend().upstream().in_use_bytes() == after.reserved_bytes);
  REQUIRE(a.backend().upstream().live_segments() == 2);
  REQUIRE(after.allocated_bytes == 1024 + 9 * MiB);
  REQUIRE(after.allocations == before.allocations + 1);
  REQUIRE(a.allocation_size(p) == 9 * MiB);
  a.deallocate(p);
  a.deallocate(small);
}

TEST_CASE("errors: backend out of memory for good is out_of_memory and changes nothing else",
          "[errors][oom]") {
  failing_segments a;
  a.backend().upstream().set_device(2);
  std::vector<std::pair<void*, std::size_t>> live;
  for (std::size_t n : {std::size_t{1000}, 3 * MiB, std::size_t{70000}}) live.emplace_back(a.allocate(n), n);
  const auto before = a.stats();
  const auto upstream_before = counters(a.backend().upstream());

  a.backend().fail_all(true);
  try {
    (void)a.allocate(9 * MiB);
    FAIL("allocate did not throw");
  } catch (const stash::out_of_memory& e) {
    REQUIRE(e.requested_bytes() == 9 * MiB);
    REQUIRE(e.device() == 2);
    REQUIRE(e.reserved_bytes() == before.reserved_bytes);
    REQUIRE(e.cached_bytes() == before.cached_bytes);
  }
  const auto after = a.stats();
  REQUIRE(after.oom_retries == before.oom_retries + 1);
  REQUIRE(without_oom_retries(after, before.oom_retries) == before);
  REQUIRE(counters(a.backend().upstream()) == upstream_before);
  REQUIRE(a.backend().held_bytes() == before.reserved_bytes);
  for (auto [p, n] : live) {
    REQUIRE(a.owns(p));
    REQUIRE(a.allocation_size(p) == n);
  }

  // While the backend refuses everything, what the cache holds is still handed out.
  void* from_cache = a.allocate(512);
  REQUIRE(a.stats().cache_hits == after.cache_hits + 1);
  a.deallocate(from_cache);

  a.backend().fail_all(false);
  void* p = a.allocate(9 * MiB);
  REQUIRE(a.owns(p));
  REQUIRE(a.stats().oom_retries == after.oom_retries);
  REQUIRE(a.backend().held_bytes() == a.stats().reserved_bytes);
  a.deallocate(p);
  for (auto [q, n] : live) a.deallocate(q, n);
  REQUIRE(a.stats().allocated_bytes == 0);
}

TEST_CASE("errors: out of memory for good releases the cache first, and says so", "[errors][oom]") {
  failing_segments a;
  void* small = a.allocate(1000);
  void* c1 = a.allocate(3 * MiB);
  a.deallocate(c1);  // a 4 MiB idle segment
  a.backend().fail_all(true);
  try {
    (void)a.allocate(9 * MiB);
    FAIL("allocate did not throw");
  } catch (const stash::out_of_memory& e) {
    REQUIRE(e.reserved_bytes() == 2 * MiB);  // the idle segment went back before giving up
    REQUIRE(e.cached_bytes() == 2 * MiB - 1024);
  }
  REQUIRE(a.stats().reserved_bytes == 2 * MiB);
  REQUIRE(a.stats().oom_retries == 1);
  REQUIRE(a.backend().held_bytes() == 2 * MiB);
  REQUIRE(a.backend().upstream().in_use_bytes() == 2 * MiB);
  REQUIRE(a.owns(small));
  a.deallocate(small);
}

TEST_CASE("errors: a backend that throws propagates cuda_error and changes nothing", "[errors][oom]") {
  failing_segments a;
  void* small = a.allocate(1000);
  const auto before = a.stats();
  const auto upstream_before = counters(a.backend().upstream());
  a.backend().throw_on_call(1);
  try {
    (void)a.allocate(9 * MiB);
    FAIL("allocate did not throw");
  } catch (const stash::cuda_error& e) {
    REQUIRE(e.code() == 2);
  }
  REQUIRE(a.stats() == before);
  REQUIRE(counters(a.backend().upstream()) == upstream_before);
  REQUIRE(a.backend().held_bytes() == before.reserved_bytes);

  // Thrown on the retry after an out-of-memory: the cache was released, the books still balance.
  void* c1 = a.allocate(3 * MiB);
  a.deallocate(c1);
  a.backend().fail_call(1);
  a.backend().throw_on_call(2);
  REQUIRE(thrown_by([&] { (void)a.allocate(9 * MiB); }) == "cuda_error");
  REQUIRE(a.stats().oom_retries == 1);
  REQUIRE(a.stats().reserved_bytes == 2 * MiB);
  REQUIRE(a.backend().held_bytes() == a.stats().reserved_bytes);
  REQUIRE(a.backend().upstream().in_use_bytes() == a.stats().reserved_bytes);
  REQUIRE(a.stats().allocated_bytes == 1024);

  void* p = a.allocate(9 * MiB);
  REQUIRE(a.owns(p));
  a.deallocate(p);
  a.deallocate(small);
}

// ---- out of memory: paged backends ---------------------------------------------------------------

namespace {
using failing_pages =
    caching_allocator<failing_backend<simulated_paged_backend>, segregated_fit_buckets, null_lock>;
using limited_pages = caching_allocator<simulated_paged_backend, segregated_fit_buckets, null_lock>;

template <class Allocator>
void require_pages_exact(const Allocator& a) {
  const auto s = a.stats();
  REQUIRE(s.cached_bytes == s.reserved_bytes - s.allocated_bytes);
  REQUIRE(held_bytes(a.backend()).value() == s.reserved_bytes);
  REQUIRE(misuses(a.backend()) == 0);
}
}  // namespace

TEST_CASE("errors: a paged backend that throws while mapping leaves no page counted as in use",
          "[errors][oom][paged]") {
  failing_pages a;
  const auto before = a.stats();
  a.backend().throw_on_call(1);
  REQUIRE(thrown_by([&] { (void)a.allocate(MiB); }) == "cuda_error");
  REQUIRE(a.stats() == before);
  REQUIRE(a.backend().upstream().mapped_bytes() == 0);

  void* p = a.allocate(MiB);  // the same address again
  REQUIRE(a.backend().upstream().mapped_bytes() == 2 * MiB);
  a.deallocate(p);
  a.empty_cache();
  // The failed allocation must not keep its page touched: with nothing live, nothing stays mapped.
  CHECK(a.backend().upstream().mapped_bytes() == 0);
  CHECK(a.stats().reserved_bytes == 0);
  require_pages_exact(a);
}

TEST_CASE("errors: a paged backend that throws on a later page of a block keeps the books exact",
          "[errors][oom][paged]") {
  stash::caching_options options;
  options.edge_pages_in_chunks = false;  // the block's last page is then mapped by a second call
  failing_pages a(failing_backend<simulated_paged_backend>{}, options);
  void* live = a.allocate(MiB);  // the small region's first page
  a.backend().throw_on_call(2);   // the second page the next block needs
  const auto before = a.stats();
  REQUIRE(thrown_by([&] { (void)a.allocate(5 * MiB); }) == "cuda_error");  // [0, 5) MiB: pages 0..2
  require_pages_exact(a);
  REQUIRE(a.stats() == before);  // page 0, mapped before the error, was unmapped again
  REQUIRE(a.backend().upstream().mapped_bytes() == 2 * MiB);
  a.empty_cache();
  REQUIRE(a.backend().upstream().mapped_bytes() == 2 * MiB);
  require_pages_exact(a);
  void* p = a.allocate(5 * MiB);
  REQUIRE(a.backend().upstream().mapped_bytes() == 8 * MiB);
  require_pages_exact(a);
  a.deallocate(p);
  a.deallocate(live);
  a.empty_cache();
  REQUIRE(a.backend().upstream().mapped_bytes() == 0);
  require_pages_exact(a);
}

TEST_CASE("errors: a capacity-limited paged backend moves idle pages before it fails",
          "[errors][oom][paged]") {
  limited_pages a(simulated_paged_backend(8 * MiB));  // 4 pages of 2 MiB, an arena of 16 MiB
  void* a1 = a.allocate(2 * MiB);  // page 0
  void* x = a.allocate(2 * MiB);   // page 1
  void* a2 = a.allocate(2 * MiB);  // page 2
  void* b = a.allocate(2 * MiB);   // page 3: the backend is full
  REQUIRE(a.backend().mapped_bytes() == 8 * MiB);
  a.deallocate(a1);
  a.deallocate(a2);  // pages 0 and 2 idle, not adjacent: no free block of 4 MiB below page 4

  void* c = a.allocate(4 * MiB);  // pages 4 and 5: no new memory, so both idle pages move there
  REQUIRE(c != nullptr);
  REQUIRE(a.page_moves() == 2);
  REQUIRE(a.backend().chunk_moves() == 2);  // through limited_backend, which never refuses a move
  REQUIRE(a.backend().mapped_bytes() == 8 * MiB);
  REQUIRE(a.stats().reserved_bytes == 8 * MiB);
  REQUIRE(a.stats().allocated_bytes == 8 * MiB);
  REQUIRE(a.stats().cached_bytes == 0);
  REQUIRE(a.stats().oom_retries == 1);  // one request retried, though two of its pages were moved
  require_pages_exact(a);

  // Nothing idle is left: the next page cannot be backed.
  const auto before = a.stats();
  try {
    (void)a.allocate(2 * MiB);
    FAIL("allocate did not throw");
  } catch (const stash::out_of_memory& e) {
    REQUIRE(e.requested_bytes() == 2 * MiB);
    REQUIRE(e.reserved_bytes() == 8 * MiB);
    REQUIRE(e.cached_bytes() == 0);
  }
  require_pages_exact(a);
  REQUIRE(without_oom_retries(a.stats(), before.oom_retries) == before);
  CHECK(a.stats().oom_retries == before.oom_retries + 1);  // one failed allocate, retried once
  for (void* p : {x, b, c}) REQUIRE(a.owns(p));

  // Once a page is idle again, the same request succeeds by moving it.
  a.deallocate(x);
  void* d = a.allocate(2 * MiB);
  REQUIRE(a.owns(d));
  REQUIRE(a.backend().mapped_bytes() == 8 * MiB);
  require_pages_exact(a);
  for (void* p : {b, c, d}) a.deallocate(p);
  a.empty_cache();
  REQUIRE(a.backend().mapped_bytes() == 0);
  require_pages_exact(a);
}

TEST_CASE("errors: a paged allocation that runs out halfway keeps the books exact", "[errors][oom][paged]") {
  limited_pages a(simulated_paged_backend(8 * MiB));
  void* live = a.allocate(3 * MiB);  // pages 0..1
  const auto before = a.stats();
  REQUIRE(thrown_by([&] { (void)a.allocate(6 * MiB + 1); }) == "out_of_memory");  // needs 4 more pages
  // The pages it got mapped before failing are unmapped again: the figures are as before.
  REQUIRE(without_oom_retries(a.stats(), before.oom_retries) == before);
  REQUIRE(a.backend().mapped_bytes() == 4 * MiB);
  require_pages_exact(a);
  a.empty_cache();
  REQUIRE(a.backend().mapped_bytes() == 4 * MiB);  // only the live block's pages
  REQUIRE(a.owns(live));
  void* fits = a.allocate(4 * MiB);
  require_pages_exact(a);
  a.deallocate(fits);
  a.deallocate(live);
  a.empty_cache();
  REQUIRE(a.backend().mapped_bytes() == 0);
}

TEMPLATE_TEST_CASE("errors: a backend whose capacity drops below what it holds refuses new memory",
                   "[errors][oom]", (caching_allocator<simulated_backend, segregated_fit_buckets, null_lock>),
                   (caching_allocator<simulated_paged_backend, segregated_fit_buckets, null_lock>)) {
  TestType a;
  void* live = a.allocate(6 * MiB);  // the backend holds 6 MiB (three pages, or one segment)
  a.backend().set_capacity(4 * MiB);
  const auto before = a.stats();
  CHECK(thrown_by([&] { (void)a.allocate(9 * MiB); }) == "out_of_memory");
  CHECK(a.stats().reserved_bytes == before.reserved_bytes);
  CHECK(held_bytes(a.backend()).value() == before.reserved_bytes);
  a.deallocate(live);
}

// ---- after out of memory, the memory held is what it was ------------------------------------------

TEST_CASE("errors: an oversized paged request maps nothing that stays", "[errors][oom][paged]") {
  // A 16 MiB device with nothing reserved: the request maps all 8 pages, fails on the 9th, and must
  // give all 8 back (else "find the batch size by catching OOM" keeps the whole device).
  limited_pages a(simulated_paged_backend(16 * MiB));
  const auto before = a.stats();
  REQUIRE(thrown_by([&] { (void)a.allocate(20 * MiB); }) == "out_of_memory");
  REQUIRE(a.backend().map_calls() >= 8);  // it did map pages before it failed
  REQUIRE(a.reserved_bytes() == 0);
  REQUIRE(a.cached_bytes() == 0);
  REQUIRE(a.backend().mapped_bytes() == 0);
  REQUIRE(without_oom_retries(a.stats(), before.oom_retries) == before);
  require_pages_exact(a);

  // The batch-size loop: each failed try leaves reserved as it was; the first that fits succeeds.
  void* live = a.allocate(3 * MiB);
  const std::size_t held = a.reserved_bytes();
  const auto cached_before = a.cached_bytes();
  std::size_t n = 32 * MiB;
  void* p = nullptr;
  for (; n > 0; n -= MiB) {
    try {
      p = a.allocate(n);
      break;
    } catch (const stash::out_of_memory& e) {
      REQUIRE(e.reserved_bytes() == held);
      REQUIRE(a.reserved_bytes() == held);
      REQUIRE(a.cached_bytes() == cached_before);
      require_pages_exact(a);
    }
  }
  REQUIRE(p != nullptr);
  REQUIRE(n == 13 * MiB);  // placed at 3 MiB, it may reach the end of the device's 16 MiB
  a.deallocate(p);
  a.deallocate(live);
}

TEMPLATE_TEST_CASE("errors: out of memory at any backend call leaves the memory held as it was",
                   "[errors][oom]", stash_test::failing_host_segregated, stash_test::failing_simulated_pow2,
                   stash_test::failing_paged_segregated) {
  // Each call index of a large request fails in turn, out of memory for good from there on.
  for (std::size_t k = 1; k <= 12; ++k) {
    INFO("backend call " << k << " fails");
    busy_allocator<TestType> busy;
    TestType& a = *busy.a;
    a.empty_cache();  // nothing cached: an out-of-memory cannot release anything
    const frozen_state<TestType> before(a);
    const auto held = held_bytes(a.backend());
    a.backend().set_byte_limit(held.value() + (k - 1) * 2 * MiB);  // k - 1 more pages or MiBs fit
    const std::string thrown = thrown_by([&] { (void)a.allocate(24 * MiB + 1); });
    if (thrown == "none") break;
    REQUIRE(thrown == "out_of_memory");
    REQUIRE(a.reserved_bytes() == before.reserved);
    REQUIRE(a.cached_bytes() == before.cached);
    REQUIRE(without_oom_retries(a.stats(), before.stats.oom_retries) == before.stats);
    REQUIRE(held_bytes(a.backend()) == held);
    REQUIRE(misuses(a.backend()) == 0);
    busy.require_live_intact();
  }
}

// ---- paged: what counts as memory held ----------------------------------------------------------

TEST_CASE("errors: a paged free of an address in the reservation but never mapped is invalid_pointer",
          "[errors][paged]") {
  limited_pages a;  // 1 TiB reserved, nothing mapped yet
  void* only = a.allocate(1000);
  void* cached = a.allocate(3 * MiB);
  a.deallocate(cached);  // its pages stay mapped (cached)
  const auto before = a.stats();
  auto* far = static_cast<char*>(cached) + 512 * GiB;  // cached: at the start of the range
  REQUIRE(a.in_arena(far));
  REQUIRE_FALSE(a.holds(far));
  REQUIRE(thrown_by([&] { a.deallocate(far); }) == "invalid_pointer");
  REQUIRE(thrown_by([&] { a.deallocate(far, 1000); }) == "invalid_pointer");
  // A free block in a mapped page is held: freeing it again is a double free.
  REQUIRE(a.holds(cached));
  REQUIRE(thrown_by([&] { a.deallocate(cached); }) == "double_free");
  REQUIRE(a.stats() == before);
  a.deallocate(only);
  a.empty_cache();
  REQUIRE_FALSE(a.holds(only));  // unmapped: no longer held
  REQUIRE(thrown_by([&] { a.deallocate(only); }) == "invalid_pointer");
}

// ---- simulated backends: fake address windows never overlap ---------------------------------------

TEST_CASE("errors: simulated paged devices larger than a window do not overlap", "[errors][paged]") {
  limited_pages big(simulated_paged_backend(12 * TiB));  // reserves 18 TiB (and the small region)
  limited_pages next(simulated_paged_backend(12 * TiB));
  void* a = big.allocate(4 * MiB);  // larger than half a page: at the start of the range
  void* b = next.allocate(4 * MiB);
  const auto base_a = reinterpret_cast<std::uintptr_t>(a), base_b = reinterpret_cast<std::uintptr_t>(b);
  REQUIRE((base_b >= base_a + 18 * TiB || base_a >= base_b + 18 * TiB));
  REQUIRE_FALSE(big.in_arena(b));
  REQUIRE_FALSE(next.in_arena(a));
  REQUIRE(big.in_arena(reinterpret_cast<void*>(base_a + 18 * TiB - 1)));
  big.deallocate(a);
  next.deallocate(b);
}

TEST_CASE("errors: simulated segments never share addresses across backends", "[errors]") {
  stash::simulated_backend one, two;
  std::vector<std::pair<std::uintptr_t, std::size_t>> spans;
  for (std::size_t bytes : {10 * TiB, 10 * TiB, 2 * MiB, 40 * TiB, 4096ul}) {
    for (auto* b : {&one, &two}) {
      void* p = b->allocate(bytes);
      REQUIRE(p != nullptr);
      spans.emplace_back(reinterpret_cast<std::uintptr_t>(p), bytes);
    }
  }
  std::sort(spans.begin(), spans.end());
  for (std::size_t i = 1; i < spans.size(); ++i)
    REQUIRE(spans[i - 1].first + spans[i - 1].second <= spans[i].first);
  REQUIRE(one.mismatched_frees() == 0);
}

// caching_options no allocator can use are refused when the allocator is made, naming the option;
// finite values of any size are used as given.
TEST_CASE("errors: options no allocator can use are invalid_option at construction", "[errors][options]") {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (const double bad : {-0.5, nan, inf, -inf}) {
    INFO("value " << bad);
    stash::caching_options slack;
    slack.page_slack = bad;
    try {
      stash::simulated_caching_allocator a(stash::simulated_paged_backend{}, slack);
      FAIL("page_slack accepted");
    } catch (const stash::invalid_option& e) {
      CHECK(e.option() == "page_slack");
    }
    stash::caching_options bound;
    bound.max_held_over_live = bad;
    CHECK_THROWS_AS(stash::simulated_caching_allocator(stash::simulated_paged_backend{}, bound),
                    stash::invalid_option);
  }
  stash::caching_options reserve;
  reserve.reserve_bytes = SIZE_MAX;  // rounded up to whole pages it would wrap to 0
  try {
    stash::simulated_caching_allocator a(stash::simulated_paged_backend{}, reserve);
    FAIL("reserve_bytes accepted");
  } catch (const stash::invalid_option& e) {
    CHECK(e.option() == "reserve_bytes");
  }
}

TEST_CASE("errors: a page_slack too large to reach never moves a page, however large", "[errors][options]") {
  // Blocks of 4 pages, each freed before the next of 6 pages: past a slack, idle pages would move.
  auto moves_with = [](double slack) {
    stash::caching_options o;
    o.page_slack = slack;
    o.pages_between_moves = 0;
    stash::simulated_caching_allocator a(stash::simulated_paged_backend{}, o);
    std::vector<void*> kept;
    for (int i = 0; i < 16; ++i) {
      void* p = a.allocate((4 + (i % 3)) * (std::size_t{2} << 20));
      kept.push_back(a.allocate(std::size_t{2} << 20));
      a.deallocate(p);
    }
    for (void* p : kept) a.deallocate(p);
    return a.page_moves();
  };
  CHECK(moves_with(0) > 0);
  for (const double large : {1e3, 1e18, 1e30, 1e300}) {
    INFO("page_slack " << large);
    CHECK(moves_with(large) == 0);  // 1e18 and up once wrapped in the conversion to a page count and moved
  }
}
