// stash::graph_pools over a host-backed memory manager (and, for stream order, a device pool ordered by
// simulated_ordering): which requests a pool takes, that its freed blocks go to nobody else until it is
// released, that release gives them back, and when a block other streams used serves its own again.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <new>
#include <optional>
#include <thread>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/graph_pools.hpp"
#include "stash/memory_manager.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "support/failing_heap.hpp"

namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;

stash::stream fake_stream(std::uintptr_t n) {
  return stash::stream(reinterpret_cast<stash::stream::native_handle_type>(n));
}

struct fixture {
  stash::memory_manager mm{stash::memory_manager::backing::host, 2};
  stash::graph_pools pools;
  const stash::stream capturing = fake_stream(0x100), other = fake_stream(0x200);
  const stash::graph_pool_id id{1, 0};

  stash::pool& device(int d) { return mm.device_pool(d); }
  /// As the C interface does: the routed pool first, else the device pool.
  void* allocate(std::size_t bytes, stash::stream s, int d = 0) {
    if (auto p = pools.allocate(device(d), d, bytes, s)) return *p;
    return device(d).allocate(bytes, s);
  }
  void deallocate(void* p, stash::stream s, int d = 0) {
    if (!pools.deallocate(p, s)) device(d).deallocate(p, s);
  }
  stash::graph_pools::filter only(stash::stream s) const {
    return [s](stash::stream t) { return t == s; };
  }
};

}  // namespace

TEST_CASE("graph pools: only the routed stream and device go to the pool", "[graph_pools]") {
  fixture f;
  void* before = f.allocate(MiB, f.capturing);  // nothing routed yet
  CHECK(f.pools.figures(0, f.id).blocks == 0);
  f.pools.begin(0, f.id, f.only(f.capturing));
  void* in_pool = f.allocate(2 * MiB, f.capturing);
  void* elsewhere = f.allocate(2 * MiB, f.other);
  void* other_device = f.allocate(2 * MiB, f.capturing, 1);
  const auto fig = f.pools.figures(0, f.id);
  CHECK(fig.users == 1);
  CHECK(fig.blocks == 1);
  CHECK(fig.bytes == 2 * MiB);
  CHECK(f.pools.figures(1, f.id).blocks == 0);
  f.pools.end(0, f.id);
  void* after = f.allocate(MiB, f.capturing);  // routing ended
  CHECK(f.pools.figures(0, f.id).blocks == 1);
  for (void* p : {before, after}) f.deallocate(p, f.capturing);
  f.deallocate(elsewhere, f.other);
  f.deallocate(other_device, f.capturing, 1);
  f.deallocate(in_pool, f.capturing);
  CHECK(f.pools.figures(0, f.id).freed_blocks == 1);
}

TEST_CASE("graph pools: a freed block goes to nobody else until the pool is released and returned",
          "[graph_pools]") {
  fixture f;
  f.pools.begin(0, f.id, f.only(f.capturing));
  void* a = f.allocate(4 * MiB, f.capturing);
  f.deallocate(a, f.capturing);  // freed during the capture: the pool keeps it
  CHECK(f.device(0).stats().allocated_bytes >= 4 * MiB);  // still allocated in the device pool

  void* reused = f.allocate(3 * MiB, f.capturing);  // the pool's own request on the same stream
  CHECK(reused == a);
  f.deallocate(reused, f.capturing);
  void* elsewhere = f.allocate(2 * MiB, f.other);  // another stream gets other memory
  CHECK(elsewhere != a);
  f.pools.end(0, f.id);

  // After the capture, the graph still owns the block: a request of any stream gets other memory.
  std::vector<void*> held;
  for (int i = 0; i < 8; ++i) {
    void* p = f.allocate(4 * MiB, f.capturing);
    CHECK(p != a);
    held.push_back(p);
  }
  for (void* p : held) f.deallocate(p, f.capturing);

  f.pools.release(0, f.id);  // the graph is gone; its block comes back only once returned
  CHECK(f.pools.releasable() == 1);
  CHECK(f.pools.figures(0, f.id).released);
  const std::size_t allocated = f.device(0).stats().allocated_bytes;
  CHECK(f.pools.return_released() == 1);
  CHECK(f.device(0).stats().allocated_bytes == allocated - 4 * MiB);
  CHECK(f.pools.releasable() == 0);
  CHECK(f.pools.figures(0, f.id).blocks == 0);
  CHECK(f.pools.figures(0, f.id).users == 0);  // forgotten
  f.deallocate(elsewhere, f.other);
  CHECK(f.device(0).stats().allocated_bytes == 0);
}

TEST_CASE("graph pools: a live block of a released pool, once freed, goes back with the others",
          "[graph_pools]") {
  fixture f;
  f.pools.begin(0, f.id, f.only(f.capturing));
  void* out = f.allocate(MiB, f.capturing);  // a graph output the program keeps
  f.pools.end(0, f.id);
  f.pools.release(0, f.id);
  CHECK(f.pools.releasable() == 0);
  CHECK(f.pools.figures(0, f.id).blocks == 1);
  f.deallocate(out, f.capturing);  // kept: a replay may still run on another stream
  CHECK(f.device(0).stats().allocated_bytes == MiB);
  CHECK(f.pools.releasable() == 1);
  CHECK_THROWS_AS(f.deallocate(out, f.capturing), stash::double_free);
  CHECK(f.pools.return_released() == 1);  // after the device has finished
  CHECK(f.device(0).stats().allocated_bytes == 0);
  CHECK(f.pools.figures(0, f.id).blocks == 0);
}

TEST_CASE("graph pools: several users, nested routings, and reuse by the same pool's next capture",
          "[graph_pools]") {
  fixture f;
  const stash::graph_pool_id other_id{2, 0};
  f.pools.begin(0, f.id, f.only(f.capturing));
  void* first = f.allocate(2 * MiB, f.capturing);
  f.deallocate(first, f.capturing);
  f.pools.end(0, f.id);
  // A second graph shares the pool (PyTorch's pool= argument): it may take the freed block.
  f.pools.begin(0, f.id, f.only(f.capturing));
  f.pools.begin(0, other_id, f.only(f.other));  // and another capture runs on another stream
  void* second = f.allocate(2 * MiB, f.capturing);
  CHECK(second == first);
  void* third = f.allocate(2 * MiB, f.other);
  CHECK(f.pools.figures(0, other_id).blocks == 1);
  f.pools.end(0, other_id);
  f.pools.end(0, f.id);
  CHECK(f.pools.figures(0, f.id).users == 2);
  f.pools.release(0, f.id);
  CHECK_FALSE(f.pools.figures(0, f.id).released);  // one user left
  f.deallocate(second, f.capturing);
  f.pools.release(0, f.id);
  CHECK(f.pools.return_released() == 1);
  f.deallocate(third, f.other);  // still kept: other_id is not released
  CHECK(f.pools.figures(0, other_id).freed_blocks == 1);
  f.pools.release(0, other_id);
  CHECK(f.pools.return_released() == 1);
  CHECK(f.device(0).stats().allocated_bytes == 0);
}

TEST_CASE("graph pools: bad calls throw and change nothing", "[graph_pools][errors]") {
  fixture f;
  CHECK_THROWS_AS(f.pools.end(0, f.id), stash::error);
  CHECK_THROWS_AS(f.pools.release(0, f.id), stash::error);
  f.pools.begin(0, f.id, f.only(f.capturing));
  CHECK_THROWS_AS(f.pools.end(1, f.id), stash::error);  // another device's routing
  f.pools.end(0, f.id);
  f.pools.release(0, f.id);
  CHECK_THROWS_AS(f.pools.release(0, f.id), stash::error);  // no user left
  // A failing allocation in a routed pool leaves the pool as it was.
  f.pools.begin(0, f.id, f.only(f.capturing));
  CHECK_THROWS_AS(f.pools.allocate(f.device(0), 0, f.device(0).max_size() + 1, f.capturing),
                  stash::invalid_size);
  CHECK(f.pools.figures(0, f.id).blocks == 0);
  f.pools.end(0, f.id);
  f.pools.release(0, f.id);
  // Frees of pointers no pool has are the caller's: deallocate says false.
  void* p = f.allocate(MiB, f.capturing);
  CHECK_FALSE(f.pools.deallocate(p, f.capturing));
  f.device(0).deallocate(p, f.capturing);
}

TEST_CASE("graph pools: a block freed on another stream than its own is taken by no request until returned",
          "[graph_pools][streams]") {
  fixture f;
  // One capture on two streams (a side stream joined to it): both route to the pool.
  f.pools.begin(0, f.id, [&f](stash::stream s) { return s == f.capturing || s == f.other; });
  void* a = f.allocate(2 * MiB, f.capturing);
  CHECK(f.pools.deallocate(a, f.other));  // kept: work on both streams may still use it
  CHECK(f.pools.figures(0, f.id).freed_blocks == 1);
  // Neither stream's order has the other's work on a before it: a reuse on either would race with it.
  void* on_other = f.allocate(2 * MiB, f.other);
  void* on_own = f.allocate(2 * MiB, f.capturing);
  CHECK(on_other != a);
  CHECK(on_own != a);
  CHECK(f.pools.figures(0, f.id).blocks == 3);
  CHECK(f.pools.figures(0, f.id).freed_blocks == 1);
  CHECK_THROWS_AS(f.pools.deallocate(a, f.other), stash::double_free);
  // A block freed on its own stream is still reused there.
  f.deallocate(on_own, f.capturing);
  CHECK(f.allocate(2 * MiB, f.capturing) == on_own);
  f.deallocate(on_own, f.capturing);
  f.deallocate(on_other, f.other);
  f.pools.end(0, f.id);
  f.pools.release(0, f.id);
  CHECK(f.pools.releasable() == 3);
  CHECK(f.pools.return_released() == 3);  // after the device-wide synchronize: a goes back with the rest
  CHECK(f.pools.figures(0, f.id).blocks == 0);
  CHECK(f.device(0).stats().allocated_bytes == 0);
}

TEST_CASE("graph pools: a block record_stream named another stream for is taken by no request once freed",
          "[graph_pools][streams]") {
  fixture f;
  f.pools.begin(0, f.id, [&f](stash::stream s) { return s == f.capturing || s == f.other; });
  void* shared = f.allocate(2 * MiB, f.capturing);
  void* own = f.allocate(2 * MiB, f.capturing);
  CHECK(f.pools.record_stream(shared, f.other));     // a graph's block: the pools keep the use
  CHECK(f.pools.record_stream(own, f.capturing));    // its own stream: no other use
  f.deallocate(shared, f.capturing);  // freed on its own stream, but work on f.other may still use it
  f.deallocate(own, f.capturing);
  CHECK(f.pools.figures(0, f.id).freed_blocks == 2);
  // The request on the own stream takes `own`, not `shared`: nothing orders it after f.other's work.
  void* next = f.allocate(2 * MiB, f.capturing);
  CHECK(next == own);
  void* after = f.allocate(2 * MiB, f.capturing);
  CHECK(after != shared);
  CHECK(f.pools.figures(0, f.id).freed_blocks == 1);
  // Bad calls: a freed block of a pool is a double free; a block no pool has is the caller's.
  CHECK_THROWS_AS(f.pools.record_stream(shared, f.other), stash::double_free);
  f.deallocate(next, f.capturing);
  f.deallocate(after, f.capturing);
  f.pools.end(0, f.id);
  void* elsewhere = f.allocate(MiB, f.capturing);
  CHECK_FALSE(f.pools.record_stream(elsewhere, f.other));
  f.device(0).deallocate(elsewhere, f.capturing);
  f.pools.release(0, f.id);
  CHECK(f.pools.return_released() == 3);  // after the device-wide synchronize: shared goes back too
  CHECK(f.device(0).stats().allocated_bytes == 0);
}

TEST_CASE(
    "graph pools: after a device-wide synchronize, blocks that waited for two streams serve their own again",
    "[graph_pools][streams]") {
  fixture f;
  f.pools.begin(0, f.id, [&f](stash::stream s) { return s == f.capturing || s == f.other; });
  void* dropped = f.allocate(2 * MiB, f.capturing);
  void* shared = f.allocate(2 * MiB, f.capturing);
  CHECK(f.pools.deallocate(dropped, f.other));  // freed on another stream than its own
  CHECK(f.pools.record_stream(shared, f.other));
  f.deallocate(shared, f.capturing);
  CHECK(f.pools.waiting() == 2);
  void* before = f.allocate(2 * MiB, f.capturing);  // neither: the other stream's work is not ordered
  CHECK(before != dropped);
  CHECK(before != shared);
  f.deallocate(before, f.capturing);
  CHECK(f.pools.waiting() == 2);

  CHECK(f.pools.settle_completed() == 2);  // the caller has synchronized the device
  CHECK(f.pools.waiting() == 0);
  CHECK(f.pools.settle_completed() == 0);
  // Still the pool's, for their own stream alone, smallest first as any freed block.
  void* on_other = f.allocate(2 * MiB, f.other);
  CHECK(on_other != dropped);
  CHECK(on_other != shared);
  std::vector<void*> taken;
  for (int i = 0; i < 3; ++i) taken.push_back(f.allocate(2 * MiB, f.capturing));
  CHECK(std::count(taken.begin(), taken.end(), dropped) == 1);
  CHECK(std::count(taken.begin(), taken.end(), shared) == 1);
  CHECK(std::count(taken.begin(), taken.end(), before) == 1);
  CHECK(f.pools.figures(0, f.id).blocks == 4);
  CHECK(f.device(0).stats().allocations == 4);  // nothing new was asked of the device pool
  // A new life: record_stream's use of the last one is over, so its next free is an own-stream free.
  f.deallocate(shared, f.capturing);
  CHECK(f.pools.waiting() == 0);
  CHECK(f.allocate(2 * MiB, f.capturing) == shared);

  for (void* p : taken) f.deallocate(p, f.capturing);
  f.deallocate(on_other, f.other);
  f.pools.end(0, f.id);
  f.pools.release(0, f.id);
  CHECK(f.pools.waiting() == 0);  // a released pool's blocks are return_released()'s
  CHECK(f.pools.return_released() == 4);
  CHECK(f.device(0).stats().allocated_bytes == 0);
}

TEST_CASE("graph pools: a block freed while the device synchronizes is neither settled nor returned",
          "[graph_pools][streams][threads]") {
  fixture f;
  f.pools.begin(0, f.id, [&f](stash::stream s) { return s == f.capturing || s == f.other; });
  void* before = f.allocate(2 * MiB, f.capturing);
  void* during = f.allocate(2 * MiB, f.capturing);
  void* kept = f.allocate(MiB, f.capturing);
  void* kept_late = f.allocate(MiB, f.capturing);
  CHECK(f.pools.deallocate(before, f.other));
  f.deallocate(kept, f.capturing);
  f.pools.end(0, f.id);
  const std::uint64_t freed_by = f.pools.frees_so_far();  // taken before the synchronize
  CHECK(freed_by == 2);
  // Another thread frees while the device synchronizes: work queued after the synchronize began may
  // still use these blocks.
  CHECK(f.pools.deallocate(during, f.other));
  f.deallocate(kept_late, f.capturing);
  CHECK(f.pools.settle_completed(freed_by) == 1);  // `before` only
  CHECK(f.pools.waiting() == 1);                   // `during` waits for the next synchronize
  f.pools.begin(0, f.id, [&f](stash::stream s) { return s == f.capturing; });
  void* again = f.allocate(2 * MiB, f.capturing);
  CHECK(again == before);
  // `during` got an event at its free (no capture was underway), which host order completes at once:
  // it serves its own stream without a synchronize.
  CHECK(f.allocate(2 * MiB, f.capturing) == during);
  f.pools.end(0, f.id);
  f.pools.release(0, f.id);
  f.pools.release(0, f.id);
  const std::size_t freed_blocks = f.pools.figures(0, f.id).freed_blocks;
  CHECK(f.pools.return_released(freed_by) == 1);  // `kept`: the only freed block among the first two frees
  CHECK(f.pools.figures(0, f.id).freed_blocks == freed_blocks - 1);
  CHECK(f.pools.releasable() == freed_blocks - 1);
  CHECK(f.pools.return_released() == freed_blocks - 1);
  CHECK(f.pools.releasable() == 0);
  CHECK(f.pools.figures(0, f.id).blocks == 2);  // again and the one after it, still live
}

TEST_CASE("graph pools: settling leaves released pools' blocks to return_released",
          "[graph_pools][streams]") {
  fixture f;
  f.pools.begin(0, f.id, [&f](stash::stream s) { return s == f.capturing || s == f.other; });
  void* a = f.allocate(2 * MiB, f.capturing);
  CHECK(f.pools.deallocate(a, f.other));
  f.pools.end(0, f.id);
  f.pools.release(0, f.id);
  CHECK(f.pools.waiting() == 0);
  CHECK(f.pools.releasable() == 1);
  CHECK(f.pools.settle_completed() == 0);
  CHECK(f.pools.return_released() == 1);
  CHECK(f.device(0).stats().allocated_bytes == 0);
}

TEST_CASE("graph pools: a pool released while a routing still names it serves that routing until it ends",
          "[graph_pools][errors]") {
  fixture f;
  f.pools.begin(0, f.id, f.only(f.capturing));
  f.pools.release(0, f.id);  // its last user gone before end(): the routing still sends requests there
  void* p = f.allocate(MiB, f.capturing);
  CHECK(f.pools.figures(0, f.id).blocks == 1);
  f.deallocate(p, f.capturing);
  CHECK(f.pools.releasable() == 1);  // released: the block goes back at the next return
  f.pools.end(0, f.id);
  CHECK(f.pools.return_released() == 1);
  CHECK(f.pools.figures(0, f.id).blocks == 0);
  CHECK(f.device(0).stats().allocated_bytes == 0);
  CHECK_THROWS_AS(f.pools.release(0, f.id), stash::error);  // forgotten: no user to release
}

TEST_CASE("graph pools: a block freed behind the pools' back fails its return, and the rest still go back",
          "[graph_pools][errors]") {
  fixture f;
  f.pools.begin(0, f.id, f.only(f.capturing));
  void* small = f.allocate(MiB, f.capturing);  // returned first: freed blocks are ordered by size
  void* large = f.allocate(4 * MiB, f.capturing);
  void* last = f.allocate(8 * MiB, f.capturing);
  f.pools.end(0, f.id);
  f.device(0).deallocate(large, f.capturing);  // misuse: a graph's block freed through the device pool
  for (void* p : {small, large, last}) f.deallocate(p, f.capturing);
  f.pools.release(0, f.id);
  CHECK(f.pools.releasable() == 3);
  CHECK_THROWS_AS(f.pools.return_released(), stash::double_free);  // at large: small went back
  CHECK(f.pools.releasable() == 1);
  CHECK(f.pools.return_released() == 1);  // last
  CHECK(f.pools.releasable() == 0);
  CHECK(f.pools.figures(0, f.id).blocks == 0);
  CHECK(f.device(0).stats().allocated_bytes == 0);
}

TEST_CASE("graph pools: a checkpoint's live blocks, and set_live making exactly them live again",
          "[graph_pools][checkpoint]") {
  fixture f;
  f.pools.begin(0, f.id, f.only(f.capturing));
  void* a = f.allocate(1 * MiB, f.capturing);
  void* b = f.allocate(2 * MiB, f.capturing);
  void* c = f.allocate(3 * MiB, f.capturing);
  f.deallocate(c, f.capturing);
  auto sorted = [](std::vector<stash::graph_pools::block_info> v) {
    std::sort(v.begin(), v.end(), [](const auto& x, const auto& y) { return x.ptr < y.ptr; });
    return v;
  };
  const auto checkpoint = sorted(f.pools.live_blocks(0, f.id));
  REQUIRE(checkpoint.size() == 2);
  CHECK(checkpoint == sorted({{a, 1 * MiB, f.capturing}, {b, 2 * MiB, f.capturing}}));

  // After the checkpoint: b freed, c taken back, d new.
  f.deallocate(b, f.capturing);
  void* c_again = f.allocate(3 * MiB, f.capturing);
  CHECK(c_again == c);
  void* d = f.allocate(4 * MiB, f.capturing);
  const std::size_t allocated = f.device(0).stats().allocated_bytes;

  f.pools.set_live(0, f.id, {a, b});  // back to the checkpoint
  CHECK(sorted(f.pools.live_blocks(0, f.id)) == checkpoint);
  CHECK(f.device(0).stats().allocated_bytes == allocated);  // no memory moved or given back
  CHECK(f.pools.figures(0, f.id).freed_blocks == 2);         // c and d
  void* reused = f.allocate(4 * MiB, f.capturing);           // d's block serves the pool again
  CHECK(reused == d);
  CHECK_THROWS_AS(f.deallocate(c, f.capturing), stash::double_free);  // c is freed

  // Bad input changes nothing.
  void* outside = f.device(0).allocate(MiB, f.other);
  const auto before = sorted(f.pools.live_blocks(0, f.id));
  CHECK_THROWS_AS(f.pools.set_live(0, f.id, {a, outside}), stash::error);
  CHECK_THROWS_AS(f.pools.set_live(0, stash::graph_pool_id{9, 9}, {a}), stash::error);
  CHECK(sorted(f.pools.live_blocks(0, f.id)) == before);
  f.device(0).deallocate(outside, f.other);
  f.pools.end(0, f.id);
}

TEST_CASE("graph pools: retain counts a user without routing (a MemPool), and release drops it",
          "[graph_pools]") {
  fixture f;
  f.pools.retain(0, f.id);  // the pool is made
  CHECK(f.pools.figures(0, f.id).users == 1);
  void* outside = f.allocate(MiB, f.capturing);  // no routing: the device pool
  CHECK(f.pools.figures(0, f.id).blocks == 0);
  f.pools.begin(0, f.id, f.only(f.capturing));  // use_mem_pool: begin ... end, release
  void* in_pool = f.allocate(MiB, f.capturing);
  f.pools.end(0, f.id);
  f.pools.release(0, f.id);
  CHECK(f.pools.figures(0, f.id).users == 1);
  f.deallocate(in_pool, f.capturing);  // kept: the MemPool still lives
  CHECK(f.pools.figures(0, f.id).freed_blocks == 1);
  f.pools.release(0, f.id);  // the MemPool is gone
  CHECK(f.pools.return_released() == 1);
  CHECK(f.pools.figures(0, f.id).users == 0);
  f.deallocate(outside, f.capturing);
  CHECK(f.device(0).stats().allocated_bytes == 0);
}

TEST_CASE("graph pools: returned blocks are free for every stream at once, naming no stream, destroyed ones "
          "included",
          "[graph_pools][streams]") {
  // A stream-ordered device pool over the simulated event model, which counts any use of a destroyed
  // stream's handle. A graph is captured on one stream, replayed on another, and both are destroyed
  // with it; the caller synchronizes the device before return_released (the C interface does), and
  // stash's stream layer is not told: the blocks must come back completed, not freed on their streams.
  stash::pool_of<stash::simulated_stream_allocator> device;
  auto& o = device.allocator().ordering();
  const stash::stream capture = o.make_stream(), replay = o.make_stream(), next = o.make_stream();
  stash::graph_pools pools;
  const stash::graph_pool_id id{7, 1};
  pools.begin(0, id, [capture](stash::stream s) { return s == capture; });
  void* scratch = *pools.allocate(device, 0, 4 * MiB, capture);
  void* output = *pools.allocate(device, 0, 4 * MiB, capture);
  CHECK(pools.deallocate(scratch, capture));  // an intermediate, freed during the capture
  pools.end(0, id);
  CHECK(pools.deallocate(output, replay));  // the program drops the output on the replay stream
  void* missed = device.allocate(64 * MiB, next);  // another stream missed: streams are asked to record
  const std::size_t reserved = device.allocator().reserved_bytes();
  const std::size_t records = o.records();
  o.destroy(capture);
  o.destroy(replay);
  pools.release(0, id);

  CHECK(pools.return_released() == 2);
  CHECK(o.destroyed_stream_uses() == 0);
  CHECK(o.records() == records);
  CHECK(device.stats().allocated_bytes == device.allocator().good_size(64 * MiB));

  void* again = device.allocate(8 * MiB, next);  // both blocks, merged, on a stream that never used them
  CHECK(again == std::min(scratch, output));
  CHECK(device.allocator().reserved_bytes() == reserved);
  device.deallocate(again, next);
  device.deallocate(missed, next);
  CHECK(o.destroyed_stream_uses() == 0);
}

// ---- host heap failures, releasable(), odd sizes -------------------------------------------------

TEST_CASE("graph pools: a host heap that fails while a new block is recorded leaves no block behind",
          "[graph_pools][exception_safety]") {
  if (!stash_test::failing_heap::can_fail()) {
    WARN("operator new is not this test's own (valgrind replaces it): no heap failure can be injected");
    return;
  }
  fixture f;
  f.pools.begin(0, f.id, f.only(f.capturing));
  void* first = f.allocate(MiB, f.capturing);  // the maps have their buckets now
  const auto before = f.device(0).stats();
  // Fail each heap allocation of the call in turn: every failure must change nothing.
  for (std::size_t k = 1;; ++k) {
    std::optional<void*> p;
    stash_test::failing_heap::arm(k);
    try {
      p = f.pools.allocate(f.device(0), 0, 2 * MiB, f.capturing);
    } catch (const std::bad_alloc&) {
    }
    const bool failed = stash_test::failing_heap::disarm();
    if (!failed) {
      REQUIRE(p.has_value());
      f.deallocate(*p, f.capturing);
      break;
    }
    INFO("heap allocation " << k << " failed");
    CHECK(f.device(0).stats().allocated_bytes == before.allocated_bytes);
    CHECK(f.device(0).stats().allocations == before.allocations);
    CHECK(f.pools.figures(0, f.id).blocks == 1);
  }
  f.deallocate(first, f.capturing);
  f.pools.end(0, f.id);
  f.pools.release(0, f.id);
  CHECK(f.pools.return_released() == 2);
  CHECK(f.device(0).stats().allocated_bytes == 0);
}

TEST_CASE("graph pools: set_live that fails on the host heap changes nothing, the count of frees included",
          "[graph_pools][exception_safety]") {
  if (!stash_test::failing_heap::can_fail()) {
    WARN("operator new is not this test's own (valgrind replaces it): no heap failure can be injected");
    return;
  }
  fixture f;
  f.pools.begin(0, f.id, f.only(f.capturing));
  std::vector<void*> blocks;
  for (int i = 0; i < 4; ++i) blocks.push_back(f.allocate(MiB, f.capturing));
  f.pools.end(0, f.id);
  const auto frees = f.pools.frees_so_far();
  for (std::size_t k = 1;; ++k) {
    stash_test::failing_heap::arm(k);
    bool threw = false;
    try {
      f.pools.set_live(0, f.id, {blocks[0]});  // frees the other three
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    const bool failed = stash_test::failing_heap::disarm();
    if (!failed) break;
    INFO("heap allocation " << k << " failed");
    CHECK(threw);
    CHECK(f.pools.live_blocks(0, f.id).size() == 4);  // all or nothing
    CHECK(f.pools.figures(0, f.id).freed_blocks == 0);
    CHECK(f.pools.frees_so_far() == frees);
  }
  CHECK(f.pools.live_blocks(0, f.id).size() == 1);
  CHECK(f.pools.figures(0, f.id).freed_blocks == 3);
  CHECK(f.pools.frees_so_far() == frees + 3);
  f.pools.release(0, f.id);
  f.deallocate(blocks[0], f.capturing);
  CHECK(f.pools.return_released() == 4);
  CHECK(f.device(0).stats().allocated_bytes == 0);
}

TEST_CASE("graph pools: a freed block of a released pool that a routing reuses is no longer releasable",
          "[graph_pools]") {
  fixture f;
  f.pools.begin(0, f.id, f.only(f.capturing));
  void* a = f.allocate(2 * MiB, f.capturing);
  f.deallocate(a, f.capturing);
  f.pools.release(0, f.id);  // the last user gone while the capture still routes to the pool
  CHECK(f.pools.releasable() == 1);
  void* again = f.allocate(MiB, f.capturing);  // the routing takes the freed block back
  CHECK(again == a);
  CHECK(f.pools.figures(0, f.id).freed_blocks == 0);
  CHECK(f.pools.releasable() == 0);  // was 1: nothing to give back
  f.pools.end(0, f.id);
  f.deallocate(again, f.capturing);
  CHECK(f.pools.releasable() == 1);
  CHECK(f.pools.return_released() == 1);
  CHECK(f.pools.releasable() == 0);
  CHECK(f.device(0).stats().allocated_bytes == 0);
}

TEST_CASE("graph pools: a request of 0 bytes takes nothing from a pool", "[graph_pools]") {
  fixture f;
  f.pools.begin(0, f.id, f.only(f.capturing));
  void* a = f.allocate(2 * MiB, f.capturing);
  f.deallocate(a, f.capturing);                  // freed to the pool
  CHECK(f.allocate(0, f.capturing) == nullptr);  // not the freed 2 MiB block
  CHECK(f.allocate(0, f.capturing) == nullptr);
  const auto fig = f.pools.figures(0, f.id);
  CHECK(fig.blocks == 1);
  CHECK(fig.freed_blocks == 1);
  f.pools.end(0, f.id);
  f.pools.release(0, f.id);
  CHECK(f.pools.return_released() == 1);
  CHECK(f.pools.figures(0, f.id).blocks == 0);  // the pool is gone
  CHECK(f.device(0).stats().allocated_bytes == 0);
}

TEST_CASE("graph pools: cudaStreamPerThread is each thread's own stream", "[graph_pools][streams][threads]") {
  fixture f;
  const stash::stream per_thread = stash::stream::per_thread();
  f.pools.begin(0, f.id, f.only(per_thread));  // every thread's per-thread stream routes to the pool
  // A block another thread allocated and freed on its own per-thread stream: that thread's work may still
  // use it, and nothing orders this thread's stream after it.
  void* theirs = nullptr;
  std::thread([&] {
    theirs = f.allocate(2 * MiB, per_thread);
    f.deallocate(theirs, per_thread);
  }).join();
  CHECK(f.pools.figures(0, f.id).freed_blocks == 1);
  void* mine = f.allocate(2 * MiB, per_thread);
  CHECK(mine != theirs);
  CHECK(f.pools.figures(0, f.id).blocks == 2);
  // This thread's own free on its per-thread stream is reused by this thread.
  f.deallocate(mine, per_thread);
  void* again = f.allocate(2 * MiB, per_thread);
  CHECK(again == mine);
  // A block this thread allocated and another thread freed on its per-thread stream: freed on another
  // stream than its own, so taken by no request (not by this thread either).
  std::thread([&] { f.deallocate(again, per_thread); }).join();
  void* after = f.allocate(2 * MiB, per_thread);
  CHECK(after != again);
  CHECK(after != theirs);
  CHECK(f.pools.figures(0, f.id).blocks == 3);
  // record_stream from another thread names another stream too.
  std::thread([&] { CHECK(f.pools.record_stream(after, per_thread)); }).join();
  f.deallocate(after, per_thread);
  CHECK(f.allocate(2 * MiB, per_thread) != after);
  CHECK(f.pools.figures(0, f.id).blocks == 4);
  f.pools.end(0, f.id);
}

// ---- stream order: a block other streams may still use goes back to its own stream once their events
// complete (a device pool ordered by simulated_ordering, where the test completes events) -----------

namespace {

using ordered_device = stash::caching_allocator<stash::simulated_backend, stash::segregated_fit_buckets,
                                                std::mutex, stash::basic_stats, stash::simulated_ordering>;

stash::caching_options records_used_streams(bool on) {
  stash::caching_options options;
  options.free_records_used_streams = on;
  return options;
}

struct ordered_fixture {
  /// Under free_records_used_streams (stash.torch's setting) unless told otherwise.
  explicit ordered_fixture(bool used_streams = true)
      : device(stash::simulated_backend{}, records_used_streams(used_streams)) {}
  stash::pool_of<ordered_device> device;
  stash::graph_pools pools;
  stash::simulated_ordering& o = device.allocator().ordering();
  const stash::stream own = o.make_stream(), side = o.make_stream(), third = o.make_stream();
  const stash::graph_pool_id id{7, 0};

  /// A block of `bytes` for a capture on `own` into the pool, which then ends: the graph's output, or a
  /// request of a later capture (captured and next_capture name both).
  void* captured(std::size_t bytes) {
    pools.begin(0, id, [s = own](stash::stream t) { return t == s; });
    void* p = *pools.allocate(device, 0, bytes, own);
    pools.end(0, id);
    return p;
  }
  void* next_capture(std::size_t bytes) { return captured(bytes); }
  /// `out`, a freed block of 2 MiB, waits for the work of `streams` (completed in that order): the pool's
  /// next capture gets other memory until the last has completed, then `out`. Both are freed again.
  void taken_only_after(void* out, const std::vector<stash::stream>& streams) {
    for (std::size_t i = 0; i + 1 < streams.size(); ++i) o.complete_stream(streams[i]);
    void* other = next_capture(2 * MiB);
    CHECK(other != out);
    o.complete_stream(streams.back());
    CHECK(next_capture(2 * MiB) == out);
    CHECK(pools.deallocate(out, own));
    CHECK(pools.deallocate(other, own));
  }
  /// Every capture's user released, the device synchronized (complete_all), the blocks given back.
  void give_back() {
    while (pools.figures(0, id).users != 0) pools.release(0, id);
    o.complete_all();
    pools.return_released();
    CHECK(device.stats().allocated_bytes == 0);
    CHECK(o.unreleased_events() == 0);
    CHECK(o.capture_violations() == 0);
    CHECK(o.destroyed_stream_uses() == 0);
    CHECK(o.host_waits() == 0);
  }
};

}  // namespace

TEST_CASE("graph pools: a block freed on another stream after its capture serves its own stream once that "
          "stream's event completes",
          "[graph_pools][streams]") {
  ordered_fixture f;
  void* out = f.captured(2 * MiB);
  CHECK(f.pools.deallocate(out, f.side));  // no capture underway: an event on side, none on own
  REQUIRE(f.o.records() == 1);
  CHECK(f.o.recorded_on(f.side) == 1);
  CHECK(f.o.recorded_on(f.own) == 0);
  CHECK(f.pools.waiting() == 1);

  void* before = f.next_capture(2 * MiB);  // side's work may still use `out`
  CHECK(before != out);
  CHECK(f.o.queries() >= 1);
  CHECK(f.pools.deallocate(before, f.own));  // its own stream: no event
  CHECK(f.o.records() == 1);

  f.o.complete_stream(f.side);
  void* after = f.next_capture(2 * MiB);  // `out` (freed first) is found first and its event has completed
  CHECK(after == out);
  CHECK(f.pools.waiting() == 0);
  CHECK(f.o.unreleased_events() == 0);
  CHECK(f.pools.figures(0, f.id).blocks == 2);
  CHECK(f.pools.deallocate(after, f.own));
  CHECK(f.o.records() == 1);  // freed on its own stream again, by a holder with no other use: no event
  CHECK(f.pools.waiting() == 0);
  const std::vector<void*> both{f.next_capture(2 * MiB), f.next_capture(2 * MiB)};
  CHECK(std::count(both.begin(), both.end(), out) == 1);
  CHECK(std::count(both.begin(), both.end(), before) == 1);
  for (void* p : both) CHECK(f.pools.deallocate(p, f.own));
  f.give_back();
}

TEST_CASE("graph pools: a block record_stream named two streams for waits for both of their events",
          "[graph_pools][streams]") {
  ordered_fixture f;
  void* out = f.captured(2 * MiB);
  CHECK(f.pools.record_stream(out, f.side));
  CHECK(f.pools.record_stream(out, f.third));
  CHECK(f.pools.record_stream(out, f.side));  // once is enough
  CHECK(f.pools.record_stream(out, f.own));   // its own stream: nothing to wait for
  CHECK(f.pools.deallocate(out, f.own));
  CHECK(f.o.records() == 2);
  CHECK(f.o.recorded_on(f.side) == 1);
  CHECK(f.o.recorded_on(f.third) == 1);

  f.o.complete_stream(f.side);
  void* p = f.next_capture(2 * MiB);
  CHECK(p != out);  // third's work is not done
  f.o.complete_stream(f.third);
  void* q = f.next_capture(2 * MiB);
  CHECK(q == out);
  // Taken again, it is a block of its own stream alone: freed there, no event.
  CHECK(f.pools.deallocate(q, f.own));
  CHECK(f.o.records() == 2);
  CHECK(f.pools.deallocate(p, f.own));
  f.give_back();
}

TEST_CASE("graph pools: without free_records_used_streams, a block record_stream named another stream for "
          "waits for the device to be synchronized",
          "[graph_pools][streams]") {
  ordered_fixture f(false);  // the streams record_stream named may be gone by the free: none is named then
  void* out = f.captured(2 * MiB);
  void* dropped = f.captured(2 * MiB);
  CHECK(f.pools.record_stream(out, f.side));
  CHECK(f.pools.deallocate(out, f.own));
  CHECK(f.pools.deallocate(dropped, f.third));  // the stream it is freed on is alive: an event there
  CHECK(f.o.records() == 1);
  CHECK(f.o.recorded_on(f.third) == 1);
  f.o.complete_all();
  CHECK(f.next_capture(2 * MiB) == dropped);
  void* p = f.next_capture(2 * MiB);
  CHECK(p != out);
  CHECK(f.pools.settle_completed() == 1);
  CHECK(f.next_capture(2 * MiB) == out);
  for (void* q : {out, dropped, p}) CHECK(f.pools.deallocate(q, f.own));
  f.give_back();
}

TEST_CASE("graph pools: a free on another stream that is also named by record_stream records one event there",
          "[graph_pools][streams]") {
  ordered_fixture f;
  void* out = f.captured(2 * MiB);
  CHECK(f.pools.record_stream(out, f.side));
  CHECK(f.pools.deallocate(out, f.side));
  CHECK(f.o.records() == 1);
  f.o.complete_stream(f.side);
  CHECK(f.next_capture(2 * MiB) == out);
  CHECK(f.pools.deallocate(out, f.own));
  f.give_back();
}

TEST_CASE("graph pools: a block freed during a capture gets its events when the last routing ends",
          "[graph_pools][streams][graph]") {
  ordered_fixture f;  // free_records_used_streams on: the streams concerned outlive the capture
  void* out = f.captured(2 * MiB);
  void* named = f.captured(2 * MiB);
  CHECK(f.pools.record_stream(named, f.third));
  // A capture on `own`, and a second routing nested in it: no event may be recorded while either lasts.
  f.pools.begin(0, f.id, [s = f.own](stash::stream t) { return t == s; });
  f.o.set_capturing(f.own, true);
  f.pools.begin(0, {8, 0}, [](stash::stream) { return false; });
  CHECK(f.pools.deallocate(out, f.side));    // the graph's output, dropped on another stream
  CHECK(f.pools.deallocate(named, f.own));   // its own stream, but third's work may still use it
  CHECK(f.o.records() == 0);
  CHECK(f.pools.waiting() == 2);
  f.pools.end(0, {8, 0});
  CHECK(f.o.records() == 0);  // the capture's routing is still in force
  f.o.set_capturing(f.own, false);  // PyTorch ends the capture, then the routing (endAllocateToPool)
  f.pools.end(0, f.id);
  CHECK(f.o.records() == 2);
  CHECK(f.o.recorded_on(f.side) == 1);
  CHECK(f.o.recorded_on(f.third) == 1);
  CHECK(f.o.recorded_on(f.own) == 0);
  CHECK(f.pools.waiting() == 2);  // until their events complete: no request may take them yet

  void* p = f.next_capture(2 * MiB);
  CHECK(p != out);
  CHECK(p != named);
  f.o.complete_stream(f.side);
  CHECK(f.next_capture(2 * MiB) == out);  // side's work is done; third's is not
  void* q = f.next_capture(2 * MiB);
  CHECK(q != named);
  f.o.complete_stream(f.third);
  CHECK(f.next_capture(2 * MiB) == named);  // no empty_cache needed
  CHECK(f.pools.waiting() == 0);
  CHECK(f.o.records() == 2);  // ending those routings recorded nothing more
  for (void* r : {out, named, p, q}) CHECK(f.pools.deallocate(r, f.own));
  f.give_back();
}

TEST_CASE("graph pools: a block freed during a capture waits for the device to be synchronized without "
          "free_records_used_streams, or where its stream still captures when the routing ends",
          "[graph_pools][streams][graph]") {
  const bool used_streams = GENERATE(false, true);
  INFO("free_records_used_streams " << used_streams);
  ordered_fixture f(used_streams);
  void* out = f.captured(2 * MiB);
  void* other = f.captured(2 * MiB);
  f.pools.begin(0, f.id, [s = f.own](stash::stream t) { return t == s; });
  f.o.set_capturing(f.own, true);
  // Off: the stream it is freed on may be gone when the capture ends. On: it captures then.
  if (used_streams) f.o.set_capturing(f.side, true);
  CHECK(f.pools.deallocate(out, f.side));
  f.o.set_capturing(f.own, false);
  f.pools.end(0, f.id);
  f.o.set_capturing(f.side, false);
  // No routing, but the stream it is freed on captures (a capture stash routes nothing for).
  f.o.set_capturing(f.side, true);
  CHECK(f.pools.deallocate(other, f.side));
  f.o.set_capturing(f.side, false);
  CHECK(f.o.records() == 0);
  CHECK(f.pools.waiting() == 2);

  f.o.complete_all();  // no event says so: both still wait
  void* p = f.next_capture(2 * MiB);
  CHECK(p != out);
  CHECK(p != other);
  CHECK(f.pools.settle_completed() == 2);  // the caller synchronized the device
  std::vector<void*> taken{f.next_capture(2 * MiB), f.next_capture(2 * MiB)};
  CHECK(std::count(taken.begin(), taken.end(), out) == 1);
  CHECK(std::count(taken.begin(), taken.end(), other) == 1);
  for (void* q : taken) CHECK(f.pools.deallocate(q, f.own));
  CHECK(f.pools.deallocate(p, f.own));
  f.give_back();
}

TEST_CASE("graph pools: a block freed during a capture and made live again, settled or given back before "
          "it ends gets no event then",
          "[graph_pools][streams][graph]") {
  ordered_fixture f;
  void* out = f.captured(2 * MiB);
  f.pools.retain(0, f.id);  // a user besides the captures (given back below)
  f.pools.begin(0, f.id, [s = f.own](stash::stream t) { return t == s; });
  CHECK(f.pools.deallocate(out, f.side));
  SECTION("made live again") {
    f.pools.set_live(0, f.id, {out});  // a checkpoint where it is live
    f.pools.end(0, f.id);
    CHECK(f.o.records() == 0);
    // Freed on its own stream now, but side's work from the earlier free may still use it: side is one
    // of its uses, and gets the event.
    CHECK(f.pools.deallocate(out, f.own));
    CHECK(f.o.records() == 1);
    CHECK(f.o.recorded_on(f.side) == 1);
    CHECK(f.pools.waiting() == 1);
    void* p = f.next_capture(2 * MiB);
    CHECK(p != out);
    f.o.complete_stream(f.side);
    CHECK(f.next_capture(2 * MiB) == out);
    CHECK(f.pools.deallocate(out, f.own));
    CHECK(f.pools.deallocate(p, f.own));
  }
  SECTION("settled") {
    f.o.complete_all();
    CHECK(f.pools.settle_completed() == 1);
    f.pools.end(0, f.id);
    CHECK(f.o.records() == 0);
    CHECK(f.pools.waiting() == 0);
    CHECK(f.next_capture(2 * MiB) == out);
    CHECK(f.pools.deallocate(out, f.own));
  }
  SECTION("freed again during the same capture") {
    f.pools.set_live(0, f.id, {out});
    CHECK(f.pools.deallocate(out, f.third));
    f.pools.end(0, f.id);
    // Events on the stream of its latest free and on side, whose use the first free left.
    CHECK(f.o.records() == 2);
    CHECK(f.o.recorded_on(f.third) == 1);
    CHECK(f.o.recorded_on(f.side) == 1);
    f.o.complete_stream(f.third);
    void* p = f.next_capture(2 * MiB);
    CHECK(p != out);
    f.o.complete_stream(f.side);
    CHECK(f.next_capture(2 * MiB) == out);
    CHECK(f.pools.deallocate(out, f.own));
    CHECK(f.pools.deallocate(p, f.own));
  }
  SECTION("given back") {
    while (f.pools.figures(0, f.id).users != 0) f.pools.release(0, f.id);
    f.o.complete_all();
    CHECK(f.pools.return_released() == 1);
    // Its memory, made a block of another pool and freed during the same capture, is that block's.
    f.pools.begin(0, {9, 0}, [s = f.own](stash::stream t) { return t == s; });
    void* again = *f.pools.allocate(f.device, 0, 2 * MiB, f.own);
    CHECK(again == out);  // the device pool hands the same memory back
    f.pools.end(0, {9, 0});
    f.pools.end(0, f.id);
    CHECK(f.o.records() == 0);
    CHECK(f.pools.deallocate(again, f.own));
    f.pools.release(0, {9, 0});
    f.o.complete_all();
    CHECK(f.pools.return_released() == 1);
    CHECK(f.device.stats().allocated_bytes == 0);
    CHECK(f.o.unreleased_events() == 0);
    return;
  }
  f.give_back();
}

TEST_CASE("graph pools: events a block waits for go back when its pool is returned, settled or destroyed",
          "[graph_pools][streams]") {
  SECTION("returned") {
    ordered_fixture f;
    CHECK(f.pools.deallocate(f.captured(2 * MiB), f.side));
    CHECK(f.o.unreleased_events() == 1);
    f.o.complete_all();  // the caller's device-wide synchronize
    f.give_back();       // checks that no event is left
  }
  SECTION("settled") {
    ordered_fixture f;
    void* out = f.captured(2 * MiB);
    CHECK(f.pools.deallocate(out, f.side));
    f.o.complete_all();
    CHECK(f.pools.settle_completed() == 1);
    CHECK(f.o.unreleased_events() == 0);
    CHECK(f.next_capture(2 * MiB) == out);
    CHECK(f.pools.deallocate(out, f.own));
    f.give_back();
  }
  SECTION("destroyed") {
    stash::pool_of<ordered_device> device(stash::simulated_backend{}, records_used_streams(true));
    auto& o = device.allocator().ordering();
    {
      stash::graph_pools pools;
      const stash::stream own = o.make_stream(), side = o.make_stream();
      pools.begin(0, {1, 1}, [own](stash::stream t) { return t == own; });
      void* p = *pools.allocate(device, 0, MiB, own);
      pools.end(0, {1, 1});
      CHECK(pools.deallocate(p, side));
      CHECK(o.unreleased_events() == 1);
    }
    CHECK(o.unreleased_events() == 0);
  }
}

TEST_CASE("graph pools: a block made live again by set_live keeps waiting for the events of its earlier free",
          "[graph_pools][streams]") {
  ordered_fixture f;
  void* out = f.captured(2 * MiB);
  CHECK(f.pools.deallocate(out, f.side));
  f.pools.set_live(0, f.id, {out});  // a checkpoint where `out` is live
  CHECK(f.pools.deallocate(out, f.own));  // its own stream now, but side's earlier work may still run
  CHECK(f.o.records() == 1);
  void* p = f.next_capture(2 * MiB);
  CHECK(p != out);
  f.o.complete_stream(f.side);
  CHECK(f.next_capture(2 * MiB) == out);
  CHECK(f.pools.deallocate(out, f.own));
  CHECK(f.pools.deallocate(p, f.own));
  f.give_back();
}

TEST_CASE("graph pools: a free whose event cannot be recorded on the host heap waits for the synchronize, "
          "and one that fails changes nothing",
          "[graph_pools][streams][exception_safety]") {
  if (!stash_test::failing_heap::can_fail()) {
    WARN("operator new is not this test's own (valgrind replaces it): no heap failure can be injected");
    return;
  }
  // Freed during a capture, its events are recorded when the routing ends, under the same failing heap.
  const bool during_capture = GENERATE(false, true);
  INFO("freed during a capture " << during_capture);
  for (std::size_t k = 1;; ++k) {
    ordered_fixture f;
    void* out = f.captured(2 * MiB);
    CHECK(f.pools.record_stream(out, f.side));
    if (during_capture) f.pools.begin(0, f.id, [s = f.own](stash::stream t) { return t == s; });
    bool threw = false;
    stash_test::failing_heap::arm(k);
    try {
      f.pools.deallocate(out, f.third);
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    if (during_capture && !threw) f.pools.end(0, f.id);  // cannot throw
    const bool failed = stash_test::failing_heap::disarm();
    INFO("heap allocation " << k << " failed");
    if (threw) {  // nothing changed: still live, no event held
      CHECK(f.pools.live_blocks(0, f.id).size() == 1);
      CHECK(f.o.unreleased_events() == 0);
      CHECK(f.pools.deallocate(out, f.third));
      if (during_capture) f.pools.end(0, f.id);
    }
    // Freed, with both events or with none (then it waits for the synchronize).
    CHECK(f.pools.waiting() == 1);
    const bool fenced = f.o.unreleased_events() == 2;
    CHECK((fenced || f.o.unreleased_events() == 0));
    f.o.complete_all();
    void* next = f.next_capture(2 * MiB);
    CHECK((next == out) == fenced);
    CHECK(f.pools.deallocate(next, f.own));
    if (next != out) CHECK(f.pools.settle_completed() == 1);
    f.give_back();
    if (!failed) {
      CHECK(fenced);
      break;
    }
  }
}

TEST_CASE("graph pools: a block freed during a capture is not taken before the routing ends, though the "
          "events of an earlier free have completed",
          "[graph_pools][streams][graph]") {
  ordered_fixture f;
  void* out = f.captured(2 * MiB);
  CHECK(f.pools.deallocate(out, f.side));  // an event on side
  f.pools.set_live(0, f.id, {out});        // a checkpoint: live again, side's event kept
  f.pools.begin(0, f.id, [s = f.own](stash::stream t) { return t == s; });
  CHECK(f.pools.deallocate(out, f.third));  // during the capture: third's event waits for its end
  f.o.complete_stream(f.side);
  void* p = *f.pools.allocate(f.device, 0, 2 * MiB, f.own);
  CHECK(p != out);
  f.pools.end(0, f.id);
  CHECK(f.o.recorded_on(f.third) == 1);
  CHECK(f.pools.deallocate(p, f.own));
  f.taken_only_after(out, {f.third});
  f.give_back();
}

TEST_CASE("graph pools: set_live keeps the stream of a free during a capture as a use, though the block "
          "holds the events of an earlier free",
          "[graph_pools][streams][graph]") {
  ordered_fixture f;
  void* out = f.captured(2 * MiB);
  CHECK(f.pools.deallocate(out, f.side));
  f.pools.set_live(0, f.id, {out});
  f.pools.begin(0, f.id, [s = f.own](stash::stream t) { return t == s; });
  CHECK(f.pools.deallocate(out, f.third));
  f.pools.set_live(0, f.id, {out});
  f.pools.end(0, f.id);
  CHECK(f.pools.deallocate(out, f.own));
  CHECK(f.o.recorded_on(f.third) == 1);
  f.taken_only_after(out, {f.side, f.third});
  f.give_back();
}

TEST_CASE("graph pools: a block set_live frees waits for the streams record_stream named, as a free does",
          "[graph_pools][streams]") {
  ordered_fixture f;
  void* out = f.captured(2 * MiB);
  CHECK(f.pools.deallocate(out, f.side));
  f.pools.set_live(0, f.id, {out});
  CHECK(f.pools.record_stream(out, f.third));
  f.pools.set_live(0, f.id, {});  // frees it on its own stream: an event on third, side's kept
  CHECK(f.o.recorded_on(f.third) == 1);
  f.taken_only_after(out, {f.side, f.third});
  f.give_back();
}

TEST_CASE("graph pools: a block made live again by set_live still waits for an earlier free's stream when a "
          "later free drops its events",
          "[graph_pools][streams]") {
  SECTION("dropped during a routing, without free_records_used_streams") {
    ordered_fixture f(false);
    void* out = f.captured(2 * MiB);
    CHECK(f.pools.deallocate(out, f.side));  // no capture underway: an event on side
    f.pools.set_live(0, f.id, {out});        // live again, keeping side's event
    f.pools.begin(0, f.id, [s = f.own](stash::stream t) { return t == s; });
    CHECK(f.pools.deallocate(out, f.own));  // during a routing, option off: no event, side's is dropped
    f.pools.set_live(0, f.id, {out});       // live again
    f.pools.end(0, f.id);
    CHECK(f.pools.deallocate(out, f.third));  // third is alive: an event there would do, but side is lost
    f.o.complete_stream(f.third);             // side's work queued before the first free is not done
    void* p = f.next_capture(2 * MiB);
    CHECK(p != out);
    f.o.complete_all();
    CHECK(f.pools.settle_completed() == 1);  // the device synchronized: it serves its own stream again
    CHECK(f.next_capture(2 * MiB) == out);
    CHECK(f.pools.deallocate(out, f.own));
    CHECK(f.pools.deallocate(p, f.own));
    f.give_back();
  }
  SECTION("dropped at a free on a capturing stream, under free_records_used_streams") {
    ordered_fixture f;
    void* out = f.captured(2 * MiB);
    CHECK(f.pools.deallocate(out, f.side));  // an event on side
    f.pools.set_live(0, f.id, {out});
    f.o.set_capturing(f.third, true);
    CHECK(f.pools.deallocate(out, f.third));  // no event can be recorded on third: side's is dropped too
    f.pools.set_live(0, f.id, {out});         // live again: remembers third, not side
    f.o.set_capturing(f.third, false);
    CHECK(f.pools.deallocate(out, f.third));
    CHECK(f.o.unreleased_events() == 0);  // it waits for the synchronize: no event is kept for it
    f.o.complete_stream(f.third);
    void* p = f.next_capture(2 * MiB);
    CHECK(p != out);
    CHECK(f.pools.deallocate(p, f.own));
    f.give_back();
  }
}
