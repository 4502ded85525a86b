// stash/fmt.hpp: the fmt formatters for stats_snapshot and memory_stats print the exact figures (bytes
// in MiB with two decimals, event counts as integers), and the figures of a real allocator.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>

#include <fmt/format.h>

#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/fmt.hpp"
#include "stash/memory_manager.hpp"

namespace {

constexpr std::size_t KiB = std::size_t{1} << 10;
constexpr std::size_t MiB = std::size_t{1} << 20;

stash::stats_snapshot known_snapshot() {
  stash::stats_snapshot s;
  s.allocated_bytes = 3 * MiB + 512 * KiB;       // 3.50
  s.requested_bytes = MiB + 256 * KiB;           // 1.25
  s.cached_bytes = 768 * KiB;                    // 0.75
  s.reserved_bytes = 4 * MiB + 256 * KiB;        // 4.25
  s.peak_allocated_bytes = 5 * MiB;              // 5.00
  s.peak_requested_bytes = 123 * MiB;            // not printed
  s.peak_reserved_bytes = 10 * MiB + 5 * KiB;    // 10.00 (10.0049 rounds down)
  s.allocations = 7;
  s.deallocations = 5;
  s.cache_hits = 3;
  s.backend_allocations = 2;
  s.backend_frees = 1;
  s.oom_retries = 4;
  return s;
}

}  // namespace

TEST_CASE("fmt: a stats_snapshot prints its bytes in MiB with two decimals and its counts", "[fmt]") {
  CHECK(
      fmt::format("{}", known_snapshot()) ==
      "allocated 3.50 MiB (requested 1.25, peak 5.00), cached 0.75 MiB, reserved 4.25 MiB (peak 10.00); "
      "7 allocations, 5 deallocations, 3 cache hits, 2 backend allocations, 1 backend frees, 4 OOM retries");

  // Rounding to two decimals, and an all-zero snapshot.
  stash::stats_snapshot r;
  r.allocated_bytes = MiB + 5243;  // 1.005000...: rounds up to 1.01
  r.requested_bytes = 1;           // 0.00
  r.reserved_bytes = 1536 * MiB;   // 1536.00: GiB-sized values stay in MiB
  r.allocations = 18446744073709551615ull;
  CHECK(fmt::format("{}", r) ==
        "allocated 1.01 MiB (requested 0.00, peak 0.00), cached 0.00 MiB, reserved 1536.00 MiB (peak 0.00); "
        "18446744073709551615 allocations, 0 deallocations, 0 cache hits, 0 backend allocations, "
        "0 backend frees, 0 OOM retries");
  CHECK(
      fmt::format("{}", stash::stats_snapshot{}) ==
      "allocated 0.00 MiB (requested 0.00, peak 0.00), cached 0.00 MiB, reserved 0.00 MiB (peak 0.00); "
      "0 allocations, 0 deallocations, 0 cache hits, 0 backend allocations, 0 backend frees, 0 OOM retries");

  // It composes inside a larger format string and with format_to.
  std::string out;
  fmt::format_to(std::back_inserter(out), "[{}] {}", 1, known_snapshot());
  CHECK(out.rfind("[1] allocated 3.50 MiB", 0) == 0);
}

TEST_CASE("fmt: a memory_stats prints its detail snapshot", "[fmt]") {
  stash::memory_stats m;
  m.detail = known_snapshot();
  // The summary fields differ from the detail on purpose: the detail is what is printed.
  m.total_allocated = 99 * MiB;
  m.total_cached = 98 * MiB;
  m.total_reserved = 97 * MiB;
  m.peak_allocated = 96 * MiB;
  m.peak_reserved = 95 * MiB;
  CHECK(fmt::format("{}", m) == fmt::format("{}", known_snapshot()));
  CHECK(
      fmt::format("{}", m) ==
      "allocated 3.50 MiB (requested 1.25, peak 5.00), cached 0.75 MiB, reserved 4.25 MiB (peak 10.00); "
      "7 allocations, 5 deallocations, 3 cache hits, 2 backend allocations, 1 backend frees, 4 OOM retries");
}

TEST_CASE("fmt: the stats of a real allocator after a known sequence", "[fmt]") {
  stash::caching_options one_region;  // small blocks share the pages of large ones, as described below
  one_region.small_region = false;
  one_region.edge_pages_in_chunks = false;  // each page its own physical allocation, as counted below
  stash::caching_allocator<stash::simulated_paged_backend> a(stash::simulated_paged_backend{},
                                                             one_region);  // 2 MiB pages
  CHECK(
      fmt::format("{}", a.stats()) ==
      "allocated 0.00 MiB (requested 0.00, peak 0.00), cached 0.00 MiB, reserved 0.00 MiB (peak 0.00); "
      "0 allocations, 0 deallocations, 0 cache hits, 0 backend allocations, 0 backend frees, 0 OOM retries");

  // 3 MiB at the arena's start touches pages 0 and 1: two pages mapped (page 1, which the next block
  // may share, one of its own), not a cache hit.
  void* big = a.allocate(3 * MiB);
  // 512 KiB right after it lies on page 1, already mapped: a cache hit.
  void* small = a.allocate(512 * KiB);
  REQUIRE(reinterpret_cast<std::uintptr_t>(small) == reinterpret_cast<std::uintptr_t>(big) + 3 * MiB);
  a.deallocate(big);  // page 0 stays mapped, idle

  const std::string s = fmt::format("{}", a.stats());
  CHECK(
      s ==
      "allocated 0.50 MiB (requested 0.50, peak 3.50), cached 3.50 MiB, reserved 4.00 MiB (peak 4.00); "
      "2 allocations, 1 deallocations, 1 cache hits, 2 backend allocations, 0 backend frees, 0 OOM retries");
  CHECK(s.find("allocated 0.50 MiB") != std::string::npos);
  CHECK(s.find("2 allocations, 1 deallocations") != std::string::npos);

  // empty_cache unmaps the idle page: one backend free, 2 MiB reserved.
  a.empty_cache();
  CHECK(
      fmt::format("{}", a.stats()) ==
      "allocated 0.50 MiB (requested 0.50, peak 3.50), cached 1.50 MiB, reserved 2.00 MiB (peak 4.00); "
      "2 allocations, 1 deallocations, 1 cache hits, 2 backend allocations, 1 backend frees, 0 OOM retries");
  a.deallocate(small);
}
