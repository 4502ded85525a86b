// stash::describe_memory, the report out_of_memory carries from the memory manager's pools, and the
// manager's out-of-memory observers.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/memory_manager.hpp"
#include "stash/memory_report.hpp"
#include "support/compositions.hpp"

namespace {
constexpr std::size_t MiB = std::size_t{1} << 20;
}

TEST_CASE("memory report: largest free block, fragmentation and the sizes holding the most", "[report]") {
  stash::simulated_caching_allocator a;  // 2 MiB pages, blocks laid out in address order
  void* p1 = a.allocate(2 * MiB);
  void* p2 = a.allocate(2 * MiB);
  void* p3 = a.allocate(2 * MiB);
  void* p4 = a.allocate(2 * MiB);
  void* p5 = a.allocate(6 * MiB);
  a.deallocate(p1);
  a.deallocate(p3);  // two free 2 MiB holes, apart: their pages stay mapped (cached)
  const auto r = stash::describe_memory(a);
  CHECK(r.reserved_bytes == 14 * MiB);
  CHECK(r.reserved_bytes == a.stats().reserved_bytes);
  CHECK(r.cached_bytes == 4 * MiB);
  CHECK(r.largest_free_block == 2 * MiB);
  CHECK(r.fragmentation == Approx(0.5));
  REQUIRE(r.top_size_classes.size() == 2);
  CHECK(r.top_size_classes[0].block_bytes == 6 * MiB);  // 6 MiB held by one block beats 2 x 2 MiB
  CHECK(r.top_size_classes[0].count == 1);
  CHECK(r.top_size_classes[1].block_bytes == 2 * MiB);
  CHECK(r.top_size_classes[1].count == 2);
  CHECK(r.top_size_classes[1].total_bytes == 4 * MiB);
  CHECK(stash::describe_memory(a, 1).top_size_classes.size() == 1);
  a.deallocate(p2);  // merges the holes with it: one free run of 6 MiB
  const auto merged = stash::describe_memory(a);
  CHECK(merged.largest_free_block == 6 * MiB);
  CHECK(merged.fragmentation == Approx(0.0));
  a.deallocate(p4);
  a.deallocate(p5);
}

TEST_CASE("memory report: one line of text", "[report]") {
  stash::memory_report r;
  r.cached_bytes = 6 * MiB;
  r.largest_free_block = 2 * MiB;
  r.fragmentation = 2.0 / 3.0;
  r.top_size_classes = {{1024 * MiB, 3, 3072 * MiB}, {256 * MiB, 10, 2560 * MiB}};
  r.device_free_bytes = 1024 * MiB;
  r.device_total_bytes = 80 * 1024 * MiB;
  CHECK(stash::to_string(r) ==
        "the driver has 1.00 GiB free of 80.00 GiB; largest free block 2.00 MiB of 6.00 MiB cached "
        "(fragmentation 66.7%); live blocks by size: 1.00 GiB x 3, 256.00 MiB x 10");
}

TEST_CASE("manager: out_of_memory carries a report and is told to the observers first",
          "[report][manager][errors]") {
  stash::memory_manager mm(stash::memory_manager::backing::host, 1);
  std::vector<std::string> heard;
  std::vector<std::size_t> largest;
  mm.attach_out_of_memory_observer([&](const stash::out_of_memory& e) {
    heard.push_back(e.what());
    REQUIRE(e.details() != nullptr);
    largest.push_back(e.details()->largest_free_block);
    CHECK(mm.get_stats(0).total_allocated > 0);  // no pool lock is held: the manager can be asked
  });
  mm.attach_out_of_memory_observer([](const stash::out_of_memory&) { throw std::runtime_error("ignored"); });
  void* a = mm.allocate(3 * MiB, stash::memory_type::device);
  void* b = mm.allocate(1000, stash::memory_type::device);
  const auto before = mm.get_stats(0);
  constexpr std::size_t too_much = std::size_t{1} << 61;
  try {
    (void)mm.allocate(too_much, stash::memory_type::device);
    FAIL("allocated 2^61 bytes");
  } catch (const stash::out_of_memory& e) {
    REQUIRE(e.details() != nullptr);
    const auto& r = *e.details();
    CHECK(e.requested_bytes() == too_much);
    CHECK(r.reserved_bytes == before.total_reserved);
    CHECK(r.cached_bytes == before.total_cached);
    CHECK(r.device_total_bytes == 0);  // host memory: no driver figures
    REQUIRE(r.top_size_classes.size() == 2);
    CHECK(r.top_size_classes[0].block_bytes == stash::host_caching_allocator::good_size(3 * MiB));
    CHECK(std::string(e.what()).find("; largest free block ") != std::string::npos);
    CHECK(std::string(e.what()).find("live blocks by size: 3.00 MiB x 1") != std::string::npos);
    REQUIRE(heard.size() == 1);
    CHECK(heard[0] == e.what());
    CHECK(largest[0] == r.largest_free_block);
  }
  CHECK(mm.get_stats(0).total_allocated == before.total_allocated);  // the failure changed nothing
  mm.deallocate(a);
  mm.deallocate(b);
}

TEST_CASE("caching_allocator: its own out_of_memory has no report", "[report][errors]") {
  stash_test::host_segregated a;
  try {
    (void)a.allocate(std::size_t{1} << 61);
    FAIL("allocated 2^61 bytes");
  } catch (const stash::out_of_memory& e) {
    CHECK(e.details() == nullptr);
  }
}
