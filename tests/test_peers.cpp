// Peers on the simulated device, which grants them as cuda_vmm_backend does: every access grant covers
// the peers granted so far, and grant_peer(d) adds d to each run of mapped pages with one
// cuMemSetAccess and to every page mapped or moved after it. The memory manager's grant_peer_access
// on host memory, where there is nothing to grant. The GPU side is tests/cuda/test_peers.cpp.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/backend/limited_backend.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/error.hpp"
#include "stash/lock/null_lock.hpp"
#include "stash/memory_manager.hpp"
#include "stash/sharded_allocator.hpp"

namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;
constexpr std::size_t page = 2 * MiB;
using paged =
    stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets, stash::null_lock>;

std::uintptr_t addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

/// Maximal runs of mapped pages, from the chunks the backend holds.
std::size_t mapped_runs(const stash::simulated_paged_backend& b) {
  std::size_t runs = 0;
  std::uintptr_t end = 0;
  b.for_each_chunk([&](std::uintptr_t a, std::size_t pages) {
    if (a != end) ++runs;
    end = a + pages * page;
  });
  return runs;
}

/// Whether every page of [p, p + pages) is granted to device d.
bool granted_to(const stash::simulated_paged_backend& b, const void* p, std::size_t pages, int d) {
  for (std::size_t i = 0; i < pages; ++i)
    if (!b.accessible_by(addr(p) + i * page, d)) return false;
  return true;
}

/// Whether no page of [p, p + pages) is granted to device d.
bool none_granted_to(const stash::simulated_paged_backend& b, const void* p, std::size_t pages, int d) {
  for (std::size_t i = 0; i < pages; ++i)
    if (b.accessible_by(addr(p) + i * page, d)) return false;
  return true;
}

template <class Allocator>
concept grants_peers = requires(Allocator& a) { a.grant_peer(1); };

// The memory manager's pools over CUDA virtual memory can grant a peer; its cudaMalloc and pinned
// pools have nothing to grant (pool::grant_peer returns false there).
static_assert(grants_peers<stash::limited_caching_allocator<stash::cuda_vmm_backend>>);
static_assert(grants_peers<stash::sharded_device_allocator>);
static_assert(!grants_peers<stash::limited_caching_allocator<stash::cuda_device_backend>>);
static_assert(!grants_peers<stash::pinned_caching_allocator>);
static_assert(!grants_peers<stash::host_caching_allocator>);

}  // namespace

TEST_CASE("peers: pages are mapped for their own device only until a peer is granted", "[peers]") {
  paged a;
  void* p = a.allocate(4 * page);
  const auto& b = a.backend();
  CHECK(a.peers().empty());
  CHECK(granted_to(b, p, 4, 0));
  CHECK(none_granted_to(b, p, 4, 1));
  a.deallocate(p);
  CHECK(b.misuses() == 0);
}

TEST_CASE("peers: grant_peer grants each run of mapped pages with one call, and every page mapped later",
          "[peers]") {
  paged a;
  const auto& b = a.backend();
  void* first = a.allocate(4 * page);
  void* middle = a.allocate(4 * page);
  void* last = a.allocate(4 * page);
  a.deallocate(middle);
  a.trim_cache(0);  // the middle block's pages go back: two runs stay mapped
  REQUIRE(b.mapped_bytes() == 8 * page);
  REQUIRE(mapped_runs(b) == 2);
  const std::size_t calls = b.driver_calls();

  a.grant_peer(3);
  CHECK(b.driver_calls() == calls + 2);
  CHECK(a.peers() == std::vector<int>{3});
  CHECK(granted_to(b, first, 4, 3));
  CHECK(granted_to(b, last, 4, 3));
  CHECK(granted_to(b, first, 4, 0));  // the own device keeps its access
  CHECK(none_granted_to(b, first, 4, 1));

  // Pages mapped from now on are granted to the peer in the block's one grant (no call more).
  const std::size_t mapped = b.map_calls(), before = b.driver_calls();
  void* later = a.allocate(6 * page);
  CHECK(b.map_calls() > mapped);
  CHECK(granted_to(b, later, 6, 3));
  CHECK(granted_to(b, later, 6, 0));
  CHECK(b.driver_calls() - before == 2 * (b.map_calls() - mapped) + 1);

  // A second peer: both stay granted.
  a.grant_peer(1);
  CHECK(a.peers() == std::vector<int>{3, 1});
  CHECK(granted_to(b, later, 6, 1));
  CHECK(granted_to(b, later, 6, 3));

  a.deallocate(first);
  a.deallocate(last);
  a.deallocate(later);
  CHECK(b.misuses() == 0);
}

TEST_CASE("peers: the own device or a peer granted already costs no call", "[peers]") {
  paged a;
  void* p = a.allocate(4 * page);
  const auto& b = a.backend();
  a.grant_peer(2);
  const std::size_t calls = b.driver_calls();
  a.grant_peer(2);
  a.grant_peer(0);  // the simulated device is device 0
  CHECK(b.driver_calls() == calls);
  CHECK(a.peers() == std::vector<int>{2});
  a.deallocate(p);
}

TEST_CASE("peers: a page moved after the grant is granted to the peer where it lands", "[peers]") {
  stash::caching_options o;
  o.page_slack = 0;
  o.pages_between_moves = 1;
  o.max_chunk_pages = 1;  // pages mapped alone, so that idle ones can move
  paged a(stash::simulated_paged_backend{}, o);
  const auto& b = a.backend();
  void* left = a.allocate(3 * page);
  void* middle = a.allocate(3 * page);
  void* right = a.allocate(3 * page);
  a.grant_peer(5);
  a.deallocate(middle);  // its three pages stay mapped, idle
  void* big = a.allocate(4 * page);  // no room between left and right: above them, idle pages moved in
  REQUIRE(a.page_moves() > 0);
  CHECK(granted_to(b, big, 4, 5));
  CHECK(granted_to(b, big, 4, 0));
  a.deallocate(left);
  a.deallocate(right);
  a.deallocate(big);
  CHECK(b.misuses() == 0);
}

TEST_CASE("peers: a peer that is no device or cannot reach the device is invalid_device, and nothing changes",
          "[peers][errors]") {
  paged a;
  auto& b = a.backend();
  void* p = a.allocate(4 * page);
  b.set_reachable_peers(~(std::uint64_t{1} << 2));  // device 2 cannot reach device 0
  const std::size_t calls = b.driver_calls();
  CHECK_THROWS_AS(a.grant_peer(-1), stash::invalid_device);
  CHECK_THROWS_AS(a.grant_peer(64), stash::invalid_device);
  try {
    a.grant_peer(2);
    FAIL("device 2 was granted");
  } catch (const stash::invalid_device& e) {
    CHECK(e.device() == 2);
    CHECK_THAT(e.what(), Catch::Contains("cannot access the memory of device 0"));
  }
  CHECK(b.driver_calls() == calls);
  CHECK(a.peers().empty());
  CHECK(none_granted_to(b, p, 4, 2));
  void* later = a.allocate(4 * page);  // nor are pages mapped afterwards
  CHECK(none_granted_to(b, later, 4, 2));
  CHECK(granted_to(b, later, 4, 0));
  a.deallocate(p);
  a.deallocate(later);
}

TEST_CASE("peers: a limited backend passes grants through, and a grant holds no memory", "[peers][limit]") {
  stash::limited_caching_allocator<stash::simulated_paged_backend> a(
      stash::limited_backend<stash::simulated_paged_backend>(stash::simulated_paged_backend{}, 8 * page));
  void* p = a.allocate(8 * page);  // the whole limit
  a.grant_peer(1);
  CHECK(a.peers() == std::vector<int>{1});
  CHECK(granted_to(a.backend().upstream(), p, 8, 1));
  CHECK(a.backend().held_bytes() == 8 * page);
  a.deallocate(p);
}

TEST_CASE("peers: a sharded allocator grants the peer in every shard", "[peers][sharded]") {
  stash::sharded_allocator<stash::simulated_caching_allocator, 4> a;
  std::vector<void*> blocks;  // one in each shard: each shard maps pages of its own backend
  for (std::size_t i = 0; i < a.shard_count; ++i) blocks.push_back(a.shard(i).allocate(3 * page));
  a.grant_peer(2);
  for (std::size_t i = 0; i < a.shard_count; ++i) {
    INFO("shard " << i);
    CHECK(a.shard(i).peers() == std::vector<int>{2});
    CHECK(granted_to(a.shard(i).backend(), blocks[i], 3, 2));
  }
  CHECK_THROWS_AS(a.grant_peer(64), stash::invalid_device);
  for (void* p : blocks) a.deallocate(p);
}

TEST_CASE("peers: a host-backed manager has nothing to grant, and checks the ids",
          "[peers][memory_manager]") {
  stash::memory_manager mm(stash::memory_manager::backing::host, 2);
  CHECK_FALSE(mm.grant_peer_access(0, 1));
  CHECK_FALSE(mm.grant_peer_access(1, 0));
  CHECK_THROWS_AS(mm.grant_peer_access(0, 2), stash::invalid_device);
  CHECK_THROWS_AS(mm.grant_peer_access(0, -1), stash::invalid_device);
  CHECK_THROWS_AS(mm.grant_peer_access(2, 0), stash::invalid_device);
  void* p = mm.allocate(1000, stash::memory_type::device, 0);
  CHECK(mm.get_stats(0).total_allocated >= 1000);
  mm.deallocate(p);
}

TEST_CASE("peers: manager options default to every peer that can reach the device",
          "[peers][memory_manager]") {
  CHECK(stash::manager_options{}.peers == stash::peer_access::all);
}
