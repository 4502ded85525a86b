// caching_allocator::visit_memory, stash::memory_history and the PyTorch snapshot writer. The pickle
// itself is read back by Python in tests/snapshot/check_torch_snapshot.py (ctest torch_snapshot).
#include <catch2/catch.hpp>

#include <numeric>
#include <string>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/torch_snapshot.hpp"
#include "support/compositions.hpp"

namespace {

struct region {
  std::uintptr_t begin;
  std::size_t bytes;
  std::vector<stash::torch_snapshot::block> blocks;
};

template <class Allocator>
std::vector<region> walk(const Allocator& a) {
  std::vector<region> out;
  a.visit_memory([&](std::uintptr_t begin, std::size_t bytes) { out.push_back({begin, bytes, {}}); },
                 [&](std::uintptr_t addr, std::size_t bytes, std::size_t requested) {
                   REQUIRE(!out.empty());
                   out.back().blocks.push_back({addr, bytes, requested});
                 });
  return out;
}

/// Every region's blocks are in order, inside it, and (for splitting compositions) tile it exactly;
/// the regions add up to the reserved bytes and the live blocks to the live bytes.
template <class Allocator>
void check_walk(const Allocator& a, const std::vector<region>& regions, bool tiles) {
  std::size_t held = 0, requested = 0, allocated = 0;
  std::uintptr_t previous_end = 0;
  for (const auto& r : regions) {
    CHECK(r.begin >= previous_end);
    previous_end = r.begin + r.bytes;
    held += r.bytes;
    std::uintptr_t at = r.begin;
    for (const auto& b : r.blocks) {
      if (tiles) CHECK(b.address == at);
      CHECK(b.address >= at);
      CHECK(b.address + b.size <= r.begin + r.bytes);
      at = b.address + b.size;
      requested += b.requested;
      if (b.requested) allocated += b.size;
    }
    if (tiles) CHECK(at == r.begin + r.bytes);
  }
  const auto s = a.stats();
  CHECK(held == s.reserved_bytes);
  CHECK(requested == s.requested_bytes);
  CHECK(allocated == s.allocated_bytes);
}

std::string pickled_int(std::int64_t v) {
  stash::detail::pickle_writer w;
  w.integer(v);
  const std::string all = w.finish();
  return all.substr(2, all.size() - 3);  // without PROTO 2 and STOP
}

}  // namespace

TEST_CASE("visit_memory: segments and their blocks", "[snapshot]") {
  stash_test::host_segregated a;
  void* x = a.allocate(1000);
  void* y = a.allocate(5 << 20);
  void* z = a.allocate(3000);
  a.deallocate(x);
  auto regions = walk(a);
  check_walk(a, regions, true);
  std::size_t live_blocks = 0;
  for (const auto& r : regions)
    for (const auto& b : r.blocks) {
      if (b.requested == 0) continue;
      ++live_blocks;
      CHECK((b.address == reinterpret_cast<std::uintptr_t>(y) ||
             b.address == reinterpret_cast<std::uintptr_t>(z)));
      CHECK(b.requested == (b.address == reinterpret_cast<std::uintptr_t>(y) ? std::size_t{5} << 20 : 3000));
    }
  CHECK(live_blocks == 2);
  a.deallocate(y);
  a.deallocate(z);
  a.empty_cache();
  CHECK(walk(a).empty());
}

TEST_CASE("visit_memory: exact-fit blocks leave the rest of their segment unreported", "[snapshot]") {
  stash_test::simulated_pow2 a;
  void* p = a.allocate(1000);
  const auto regions = walk(a);
  check_walk(a, regions, false);
  REQUIRE(regions.size() == 1);
  REQUIRE(regions[0].blocks.size() == 1);
  CHECK(regions[0].blocks[0].requested == 1000);
  stash::torch_snapshot snap;
  snap.add_segments(a, 0);
  REQUIRE(snap.segments().size() == 1);
  const auto& seg = snap.segments()[0];
  std::size_t sum = 0;
  for (const auto& b : seg.blocks) sum += b.size;
  CHECK(sum == seg.total_size);  // the snapshot fills the gap with an inactive block
  CHECK(seg.blocks.front().requested == 1000);
  CHECK_FALSE(seg.expandable);
  a.deallocate(p);
}

TEST_CASE("visit_memory: runs of mapped pages of a paged allocator", "[snapshot]") {
  stash::simulated_caching_allocator a;
  std::vector<void*> blocks;
  for (int i = 0; i < 12; ++i) blocks.push_back(a.allocate(3 << 20));  // 36 MiB over 18 pages
  for (int i = 0; i < 12; i += 3) a.deallocate(blocks[static_cast<std::size_t>(i)]);
  a.trim_cache(0);  // unmaps the idle pages: holes between runs
  const auto regions = walk(a);
  check_walk(a, regions, true);
  CHECK(regions.size() > 1);
  for (const auto& r : regions) CHECK(r.bytes % (2 << 20) == 0);
  stash::torch_snapshot snap;
  snap.add_segments(a);
  CHECK(snap.segments().size() == regions.size());
  CHECK(snap.segments().front().expandable);
  for (std::size_t i = 0; i < blocks.size(); ++i)
    if (i % 3 != 0) a.deallocate(blocks[i]);
}

TEST_CASE("memory_history: alloc, free_requested and free_completed, in order, bounded", "[snapshot]") {
  stash_test::host_segregated pool;
  stash::memory_history history(pool, 5);
  void* a = history.allocate(100);
  void* b = history.allocate(200);
  history.deallocate(a);       // size from the allocator
  history.deallocate(b, 200);  // sized
  auto events = history.events();
  REQUIRE(events.size() == 5);  // the first of six was dropped
  using k = stash::memory_event::kind;
  CHECK(events[0].action == k::alloc);
  CHECK(events[0].addr == reinterpret_cast<std::uintptr_t>(b));
  CHECK(events[1].action == k::free_requested);
  CHECK(events[1].size == 100);
  CHECK(events[2].action == k::free_completed);
  CHECK(events[2].addr == reinterpret_cast<std::uintptr_t>(a));
  CHECK(events[4].action == k::free_completed);
  CHECK(events[4].size == 200);
  CHECK(events[4].time_us >= events[0].time_us);
  // Rejected frees throw the allocator's error and record nothing.
  CHECK_THROWS_AS(history.deallocate(a), stash::double_free);
  CHECK(history.allocate(0) == nullptr);  // nothing allocated, nothing recorded
  void* c = history.allocate(300);
  CHECK_THROWS_AS(history.deallocate(c, 299), stash::invalid_size);
  events = history.events();
  CHECK(events.back().action == k::alloc);
  CHECK(events.back().size == 300);
  CHECK(pool.stats().allocations == 3);
  history.deallocate(c);
}

TEST_CASE("torch snapshot: pickle integers as PyTorch's unpicklers read them", "[snapshot]") {
  CHECK(pickled_int(5) == std::string("K\x05", 2));
  CHECK(pickled_int(300) == std::string("M\x2c\x01", 3));
  CHECK(pickled_int(70000) == std::string("J\x70\x11\x01\x00", 5));
  CHECK(pickled_int(-1) == std::string("J\xff\xff\xff\xff", 5));
  // 0x7f0000001000: six bytes, the top one without its sign bit set.
  CHECK(pickled_int(0x7f0000001000) == std::string("\x8a\x06\x00\x10\x00\x00\x00\x7f", 8));
  // 0x80000000 needs a fifth byte to stay positive.
  CHECK(pickled_int(0x80000000LL) == std::string("\x8a\x05\x00\x00\x00\x80\x00", 7));
  CHECK(pickled_int(INT64_MIN) == std::string("\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80", 10));
}

TEST_CASE("torch snapshot: the pickle of an empty snapshot", "[snapshot]") {
  stash::torch_snapshot snap;
  // {'segments': [], 'device_traces': [[]]}
  const std::string expected = std::string("\x80\x02}(") + "X" + std::string("\x08\x00\x00\x00", 4) +
                               "segments]" + "X" + std::string("\x0d\x00\x00\x00", 4) + "device_traces](]eu.";
  CHECK(snap.pickle() == expected);
}
