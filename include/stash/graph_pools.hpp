#pragma once
// stash::graph_pools: private memory pools for the CUDA graphs a framework captures, as PyTorch keeps
// them for torch.cuda.graph and CUDA graph trees (its allocator hooks
// beginAllocateToPool, endAllocateToPool and releasePool).
//
// A graph's kernels keep the addresses they were captured with. A tensor made during the capture and
// freed during it (an intermediate), or freed after it, still names memory the graph writes on every
// replay, so that memory must go to nobody else while the graph may be replayed. A graph pool keeps it:
//   - begin(device, id, accepts) routes the requests on device's streams that `accepts` names (the
//     capturing streams) to pool `id` until end(device, id); the pool is made on first use and counts
//     one user per begin;
//   - a block allocated there and freed, during the capture or after it, stays with the pool: a later
//     request routed to the pool on the stream it was allocated and freed on may take it (in the
//     graph's own order), nobody else. A block freed on another stream, or one that record_stream()
//     named another stream for, may still be used by work on those streams, which its own stream's
//     order does not cover. Freed while no capture is underway, it gets an event on each of them
//     (pool::record_event), and requests routed to the pool on its own stream take it once they have
//     all completed, as PyTorch's allocator returns such a block to its private pool once its events
//     complete. Freed during a capture, no event may be recorded on a capturing stream: under the device
//     pool's free_records_used_streams (stash.torch's setting, whose streams must outlive their use)
//     its events are recorded when the last routing ends, as PyTorch's allocator defers them until no
//     capture is underway; otherwise, or where an event cannot be recorded then, it waits until the
//     device has been synchronized, and settle_completed() then lets its own stream take it again (a
//     released pool's return_released() gives it back either way);
//   - release(device, id) drops one user; at none, the pool is released: its freed blocks, and its
//     live ones once they are freed, go back to their device pool when return_released() is called,
//     which the caller does after a device-wide synchronize (a graph's last replay may still be
//     running when the framework releases its pool, on any stream; PyTorch's allocator also frees
//     released pools' blocks only after a device synchronize, in empty_cache and its out-of-memory
//     retry). They go back as completed (pool::deallocate_completed): free for every stream at once,
//     and naming no stream, since the streams they were captured, replayed and freed on may have been
//     destroyed with the graph.
// Blocks are taken from and given back to the stash::pool of their device, whole (no splitting): a
// freed block serves the smallest later request of at most its size routed to the same pool and
// stream (its own). Until a pool is released, its blocks count as allocated in the device pool's stats.
// Streams are told apart as the caching allocator tells them (stream::ordering_key): cudaStreamPerThread
// names the calling thread's own stream, so a block one thread freed on it goes to no other thread's.
// Checkpoints (PyTorch's CUDA graph trees: getCheckpointState, setCheckpointPoolState,
// checkPoolLiveAllocations): live_blocks() says which blocks of a pool are live, and set_live() makes
// exactly a given set of them live again, the others freed to the pool; no memory moves.
//
// One mutex guards the pools; requests and frees that no pool concerns pay two relaxed atomic loads.
#include <algorithm>
#include <atomic>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "stash/error.hpp"
#include "stash/memory_manager.hpp"
#include "stash/stream.hpp"

namespace stash {

/// A graph pool's name (PyTorch's MempoolId_t: a pair of integers).
struct graph_pool_id {
  std::uint64_t first = 0;
  std::uint64_t second = 0;
  friend auto operator<=>(const graph_pool_id&, const graph_pool_id&) = default;
};

class graph_pools {
 public:
  /// Whether a request on the stream goes to the pool (called under the pools' lock).
  using filter = std::function<bool(stream)>;

  graph_pools() = default;
  graph_pools(const graph_pools&) = delete;
  graph_pools& operator=(const graph_pools&) = delete;
  /// Its blocks stay allocated in their device pools, which must still exist: the events its freed
  /// blocks wait for go back to them.
  ~graph_pools() {
    for (auto& [ptr, o] : owners_) release_fences(o);
  }

  /// Requests on `device`'s streams that `accepts` names go to pool `id` from now on, until
  /// end(device, id). Makes the pool on first use; counts one user of it.
  void begin(int device, graph_pool_id id, filter accepts) {
    std::lock_guard guard(lock_);
    routes_.reserve(routes_.size() + 1);  // what may throw comes first: then nothing has changed
    pool_state& p = pools_[{device, id}];
    routes_.push_back({device, id, std::move(accepts)});
    add_user(p);
    routing_.store(true, std::memory_order_relaxed);
  }

  /// One more user of pool `id` without a routing (PyTorch's createOrIncrefPool: a MemPool made);
  /// makes the pool on first use. release() drops it.
  void retain(int device, graph_pool_id id) {
    std::lock_guard guard(lock_);
    add_user(pools_[{device, id}]);
  }

  /// Ends the latest routing begun with begin(device, id). Throws stash::error when there is none.
  void end(int device, graph_pool_id id) {
    std::lock_guard guard(lock_);
    for (auto r = routes_.rbegin(); r != routes_.rend(); ++r) {
      if (r->device == device && r->id == id) {
        routes_.erase(std::next(r).base());
        routing_.store(!routes_.empty(), std::memory_order_relaxed);
        if (routes_.empty()) fence_deferred();
        if (const auto found = pools_.find({device, id}); found != pools_.end()) drop_if_empty(found);
        return;
      }
    }
    throw error("stash: graph pool (" + name(id) + ") on device " + std::to_string(device) +
                " has no allocation routed to it to end");
  }

  /// One user of pool `id` is gone (PyTorch: a graph using it was destroyed). When none is left the
  /// pool is released (see the top of this file). Throws stash::error for a pool with no user left.
  void release(int device, graph_pool_id id) {
    std::lock_guard guard(lock_);
    const auto found = pools_.find({device, id});
    if (found == pools_.end() || found->second.users == 0)
      throw error("stash: graph pool (" + name(id) + ") on device " + std::to_string(device) +
                  " has no user to release");
    pool_state& p = found->second;
    if (--p.users == 0) {
      p.released = true;
      releasable_ += p.freed.size();
      drop_if_empty(found);
    }
  }

  /// A request of `bytes` on stream s of `device`: when a routing takes it, a block of the routed pool
  /// (a freed one of at least `bytes` freed on s, else a new one from `from`, the device's pool, which
  /// may throw as its allocate does); nullopt when no routing takes it, or for 0 bytes (the caller
  /// allocates as usual). A host heap that fails (bad_alloc) changes nothing.
  std::optional<void*> allocate(pool& from, int device, std::size_t bytes, stream s) {
    if (bytes == 0 || !routing_.load(std::memory_order_relaxed)) return std::nullopt;  // 0: takes nothing
    std::lock_guard guard(lock_);
    const route* r = route_for(device, s);
    if (!r) return std::nullopt;
    pool_state& p = pools_.at({device, r->id});
    const std::uintptr_t on = s.ordering_key();
    for (auto f = p.freed.lower_bound(bytes); f != p.freed.end(); ++f) {
      if (f->second.on != on) continue;
      // A block freed during a routing waits for its end (its events are not recorded yet, whatever
      // earlier ones it holds); any other waits for its events.
      if (!f->second.reusable && (f->second.holder->deferred || !fences_passed(*f->second.holder))) continue;
      void* reused = f->second.ptr;
      owner& o = *f->second.holder;
      p.freed.erase(f);
      if (p.released) --releasable_;  // a released pool that a routing still names: no longer to give back
      o.live = true;
      o.uses.clear();  // the other streams are done with it (its
                       // events completed, or the device synchronized)
      return reused;
    }
    // The new block's record is made before the device pool is asked (reserve() makes room for the
    // index, not for the node): a host heap that fails leaves nothing to undo, no block behind.
    owners_.reserve(owners_.size() + 1);
    auto record = owners_.extract(owners_.emplace(nullptr, owner{}).first);
    void* made = from.allocate(bytes, s);
    record.key() = made;
    record.mapped() = owner{device, r->id, bytes, &from, s, on, true, {}, {}};
    owners_.insert(std::move(record));  // reserved, and the node is made: cannot throw
    ++p.blocks;
    counted_.store(true, std::memory_order_relaxed);
    return made;
  }

  /// A free of p on stream s: true when a graph pool keeps it (a released pool too: until
  /// return_released()); false when no pool has it (the caller frees it as usual). Throws double_free
  /// for a block of a pool that is freed already. The size a block serves is what it was made with.
  /// Stream order: s is normally the stream p was allocated on; then later requests routed to the pool
  /// on s may take p. Another stream is accepted (a graph's output dropped on the stream that used it
  /// last) and means that work on s and on p's own stream may still use p; so does a stream that
  /// record_stream() named. Reusing p on its own stream must then wait for the others' work:
  ///   - freed while no capture is underway (no routing), p gets an event on each of those streams
  ///     (fence()), and a request routed to the pool on p's own stream takes it once they have all
  ///     completed (asked without blocking, when no block that waits for nothing fits);
  ///   - freed during a capture (a routing: no event may be recorded on a capturing stream), p gets
  ///     them when the last routing ends (end()), under the device pool's free_records_used_streams:
  ///     s and the streams record_stream named must then exist until that end (PyTorch's contract);
  ///   - without that option during a capture, or when an event cannot be recorded, p waits for
  ///     settle_completed() (after a device-wide synchronize: empty_cache) or return_released(), or is
  ///     made live again by set_live().
  /// A host heap that fails (bad_alloc) changes nothing.
  bool deallocate(void* p, stream s) {
    if (!counted_.load(std::memory_order_relaxed)) return false;
    std::lock_guard guard(lock_);
    owner* const o = live_owner_of(p);
    if (!o) return false;
    pool_state& pool = pools_.at({o->device, o->id});
    const use freed_on{s, s.ordering_key()};
    const bool own_stream_only = waits_for_nothing(*o, freed_on.key);
    if (!own_stream_only) make_deferred_room(1);  // what may throw comes first
    pool.freed.emplace(o->bytes, freed_block{p, o, o->on_key, own_stream_only, frees_ + 1});
    ++frees_;
    mark_freed(p, *o, freed_on, own_stream_only);
    if (pool.released) ++releasable_;
    return true;
  }

  /// p, a live block of a graph pool, is also used on stream s (Tensor.record_stream): true when a
  /// graph pool holds p (the caller still tells p's device pool, whose stats and checks stay its own),
  /// false when none does. A stream other than p's own is kept with p: once p is freed, its own stream
  /// takes it again only after s's work queued before the free (as for a free on another stream,
  /// above; by an event only under free_records_used_streams). Throws double_free for a block of a
  /// pool that is freed already (the device pool would say invalid_pointer for nothing: it still counts
  /// the block as allocated); a host heap that fails (bad_alloc) changes nothing.
  bool record_stream(void* p, stream s) {
    if (!counted_.load(std::memory_order_relaxed)) return false;
    std::lock_guard guard(lock_);
    owner* const o = live_owner_of(p);
    if (!o) return false;
    remember_use(*o, {s, s.ordering_key()});
    return true;
  }

  /// How many blocks have been freed to the pools so far: taken before a device-wide synchronize, it
  /// names the frees that synchronize covers (return_released and settle_completed take it). A block
  /// another thread frees while the device synchronizes may still be in use by work queued after the
  /// synchronize began.
  std::uint64_t frees_so_far() const {
    std::lock_guard guard(lock_);
    return frees_;
  }

  /// Frees the freed blocks of released pools to their device pools and forgets them; returns how
  /// many. Call it only once the device has finished every use of them (after a device-wide
  /// synchronize): each goes back with deallocate_completed, usable on every stream at once, and no
  /// stream handle is named (the stream a block was freed on may have been destroyed since). Only the
  /// blocks among the first `freed_by` frees (frees_so_far() before the synchronize) go back.
  std::size_t return_released(std::uint64_t freed_by = UINT64_MAX) {
    std::lock_guard guard(lock_);
    std::size_t n = 0;
    for (auto it = pools_.begin(); it != pools_.end();) {
      auto next = std::next(it);
      if (it->second.released) {
        // Each block is forgotten before it is freed: a block freed behind the graph pools' back (a
        // misuse) throws double_free there, and the blocks after it stay for the next call.
        auto& freed = it->second.freed;
        for (auto f = freed.begin(); f != freed.end();) {
          if (f->second.seq > freed_by) {
            ++f;
            continue;
          }
          const freed_block block = f->second;
          f = freed.erase(f);
          --releasable_;
          --it->second.blocks;
          pool* const from = block.holder->from;
          release_fences(*block.holder);  // the synchronize completed them
          owners_.erase(block.ptr);
          ++n;
          from->deallocate_completed(block.ptr);
        }
        drop_if_empty(it);
      }
      it = next;
    }
    counted_.store(!owners_.empty(), std::memory_order_relaxed);
    return n;
  }

  /// Freed blocks of pools still in use that wait for the work of streams other than their own (freed
  /// on another stream, or named for one by record_stream): for their events to complete, or for
  /// settle_completed().
  std::size_t waiting() const {
    std::lock_guard guard(lock_);
    std::size_t n = 0;
    for_each_waiting(pools_, [&](const auto&) { ++n; });
    return n;
  }

  /// Lets requests routed to its pool on its own stream take each freed block that waited for the work
  /// of several streams (waiting()) among the first `freed_by` frees; returns how many. Call it only
  /// once the device has finished every use of them (after a device-wide synchronize, as
  /// return_released(), with frees_so_far() from before it): nothing else tells when the streams other
  /// than a block's own are done with it. The block stays its pool's, for its own stream
  /// alone, as a block freed there is: the graph that captured it may still be replayed there.
  std::size_t settle_completed(std::uint64_t freed_by = UINT64_MAX) {
    std::lock_guard guard(lock_);
    std::size_t n = 0;
    for_each_waiting(pools_, [&](auto& f) {
      if (f.seq <= freed_by) {
        f.reusable = true;
        release_fences(*f.holder);  // the synchronize completed them
        f.holder->deferred = false;  // and covers what the end of the capture would have recorded
        f.holder->unsettled = false;  // and every use an earlier free could not record an event for
        ++n;
      }
    });
    return n;
  }

  /// Whether some routing is in force (a capture is underway): cheap, without the lock.
  bool routing() const noexcept { return routing_.load(std::memory_order_relaxed); }

  /// Freed blocks of released pools that return_released() would give back.
  std::size_t releasable() const {
    std::lock_guard guard(lock_);
    return releasable_;
  }

  /// A block of a graph pool as a checkpoint records it.
  struct block_info {
    void* ptr = nullptr;
    std::size_t bytes = 0;  // as made
    stream on;              // the stream it was allocated on
    friend bool operator==(const block_info&, const block_info&) = default;
  };

  /// The live blocks of pool `id` (none for a pool that does not exist), in no particular order.
  std::vector<block_info> live_blocks(int device, graph_pool_id id) const {
    std::lock_guard guard(lock_);
    std::vector<block_info> out;
    for (const auto& [ptr, o] : owners_)
      if (o.device == device && o.id == id && o.live) out.push_back({ptr, o.bytes, o.on});
    return out;
  }

  /// Every block of device `device`'s pools, live or freed to its pool, by address, with its pool: for
  /// memory snapshots (stash_visit_memory), which name the pool of each stretch of blocks.
  std::map<std::uintptr_t, graph_pool_id> blocks_of(int device) const {
    std::lock_guard guard(lock_);
    std::map<std::uintptr_t, graph_pool_id> out;
    for (const auto& [ptr, o] : owners_)
      if (o.device == device) out.emplace(reinterpret_cast<std::uintptr_t>(ptr), o.id);
    return out;
  }

  /// Makes `live` (blocks of pool `id`, live or freed) exactly the pool's live blocks: every other block
  /// of the pool is freed to the pool (on the stream it was allocated on), as if the program had freed
  /// it there (deallocate: it waits for the streams record_stream named); no memory is given back or
  /// moved. A block made live again keeps what its free left to wait for: the events of that free,
  /// and the stream it was freed on as a use where that free has no event (yet). Throws stash::error,
  /// changing nothing, when a pointer is not a block of that pool or the pool is released; a host heap
  /// that fails (bad_alloc) changes nothing.
  void set_live(int device, graph_pool_id id, const std::vector<void*>& live) {
    std::lock_guard guard(lock_);
    const auto pool = pools_.find({device, id});
    if (pool == pools_.end() || pool->second.released)
      throw error("stash: graph pool (" + name(id) + ") on device " + std::to_string(device) +
                  " is not in use");
    for (void* p : live) {
      const auto o = owners_.find(p);
      if (o == owners_.end() || o->second.device != device || o->second.id != id)
        throw error("stash: graph pool (" + name(id) + ") has no block at " + pointer_name(p));
    }
    // What may throw comes first, nothing changed yet: the set of wanted blocks, and the free-list
    // entries of the blocks to free, made apart and spliced in (merge moves nodes, allocates nothing).
    const std::unordered_set<void*> wanted(live.begin(), live.end());
    for (void* p : live) {
      owner& o = owners_.at(p);
      if (!o.live) o.uses.reserve(o.uses.size() + 1);  // for its free's stream, below
    }
    std::multimap<std::size_t, freed_block> to_free;
    std::uint64_t seq = frees_;
    std::size_t others = 0;  // blocks to free that other streams may still use
    for (auto& [ptr, o] : owners_)
      if (o.device == device && o.id == id && o.live && !wanted.count(ptr)) {
        const bool own_stream_only = waits_for_nothing(o, o.on_key);
        to_free.emplace(o.bytes, freed_block{ptr, &o, o.on_key, own_stream_only, seq + 1});
        ++seq;
        others += !own_stream_only;
      }
    make_deferred_room(others);
    frees_ = seq;
    // Freeing first, then taking back, so that the free lists never hold a live block. Each is freed on
    // its own stream, and waits for the streams record_stream named as a free there does.
    for (const auto& [bytes, f] : to_free)
      mark_freed(f.ptr, *f.holder, {f.holder->on, f.holder->on_key}, f.reusable);
    pool->second.freed.merge(to_free);
    for (void* p : live) {
      owner& o = owners_.at(p);
      if (o.live) continue;
      auto& freed = pool->second.freed;
      const auto [first, last] = freed.equal_range(o.bytes);
      for (auto f = first; f != last; ++f)
        if (f->second.ptr == p) {
          // Freed on another stream with no event for it (during a capture, or one that could not be
          // recorded): that stream's work may still use it, which its next free must know (a use).
          if (!f->second.reusable && (o.deferred || o.fences.empty())) remember_use(o, o.freed_on);
          freed.erase(f);
          break;
        }
      o.live = true;
      o.deferred = false;  // live again: its next free decides anew
    }
  }

  /// Figures of one pool (zeros for a pool that does not exist).
  struct pool_figures {
    std::size_t users = 0;        // begins not yet released
    std::size_t blocks = 0;       // blocks the pool has, live and freed
    std::size_t freed_blocks = 0; // of which freed, kept for the pool
    std::size_t bytes = 0;        // bytes of all its blocks, as requested when made
    bool released = false;
  };
  pool_figures figures(int device, graph_pool_id id) const {
    std::lock_guard guard(lock_);
    pool_figures f;
    const auto found = pools_.find({device, id});
    if (found == pools_.end()) return f;
    f.users = found->second.users;
    f.released = found->second.released;
    f.blocks = found->second.blocks;
    f.freed_blocks = found->second.freed.size();
    for (const auto& [ptr, o] : owners_)
      if (o.device == device && o.id == id) f.bytes += o.bytes;
    return f;
  }

 private:
  struct route {
    int device;
    graph_pool_id id;
    filter accepts;
  };
  struct owner;
  struct freed_block {
    void* ptr;
    owner* holder;      // owners_'s record of ptr (a node: its address is stable)
    std::uintptr_t on;  // the ordering key of the stream it was allocated on: only requests there take it
    bool reusable;  // no other stream's work may still use it; false: its owner's fences must pass
                    // first (fences_passed), or settle_completed() must come when it has none
    std::uint64_t seq;  // which free it was (frees_so_far() after it)
  };
  struct pool_state {
    std::size_t users = 0;
    std::size_t blocks = 0;  // live and freed
    bool released = false;
    std::multimap<std::size_t, freed_block> freed;  // by the bytes each was made with
  };
  struct use {
    stream s;
    std::uintptr_t key;  // s.ordering_key() in the thread that named it
  };
  struct owner {
    int device;
    graph_pool_id id;
    std::size_t bytes;  // as made
    pool* from;         // the device pool it came from and goes back to
    stream on;          // the stream it was allocated on
    std::uintptr_t on_key;  // on's ordering_key() in the allocating
                            // thread (cudaStreamPerThread: that thread's)
    bool live = true;   // false while it waits among the pool's freed blocks
    std::vector<use> uses;  // streams other than its own that record_stream named
    std::vector<pool::event> fences;  // recorded at its free on the streams other than its own that may
                                      // still use it (fence); its own stream takes it once all completed
    use freed_on{};         // the stream of its latest free
    bool deferred = false;  // freed during a capture: listed in deferred_, fenced when the last routing ends
    bool unsettled = false;  // a free could not record all its events and dropped them: which other
                             // streams may use it is not known, so it waits for settle_completed()
                             // (every later free too), whatever it is made live and freed on
  };
  using key = std::pair<int, graph_pool_id>;

  /// The record of p, a block of some graph pool, live; null when no pool has p. Throws double_free
  /// when p is a pool's block that is freed already. lock_ is held.
  owner* live_owner_of(void* p) {
    const auto found = owners_.find(p);
    if (found == owners_.end()) return nullptr;
    if (!found->second.live) throw double_free(p);
    return &found->second;
  }

  /// Stream order: events on the streams other than o's own that may still use its block (o.freed_on,
  /// the stream of its free, and those record_stream named), appended to o.fences; whether they were.
  /// None is recorded, and the block waits for a device-wide synchronize (settle_completed), when a
  /// capture is underway (routing: an event recorded on a capturing stream would join its graph) or
  /// one of them captures; when record_stream named a stream and the device pool's
  /// free_records_used_streams is off (that stream may be gone by now: off by default, on under
  /// stash.torch, PyTorch's contract); when one names cudaStreamPerThread in another thread than this
  /// one (which cannot name that stream); when the policy refuses (a stream gone: its error is not
  /// this free's); when the host heap fails; or for an unsettled block, whose streams are not all known
  /// (a guard: wait_for_other_streams neither asks for one nor lists one for fence_deferred). Waiting
  /// is always safe. lock_ is held.
  bool fence(owner& o) noexcept {
    if (!routes_.empty() || o.unsettled) return false;
    const std::size_t before = o.fences.size();
    bool all = true;
    try {
      o.fences.reserve(before + o.uses.size() + 1);  // then push_back below cannot throw
      auto add = [&](const use& u) {
        if (u.key != u.s.ordering_key()) all = false;  // another thread's per-thread stream
        else if (const auto e = o.from->record_event(u.s)) o.fences.push_back(*e);
        else all = false;
      };
      if (o.freed_on.key != o.on_key) add(o.freed_on);
      for (const use& u : o.uses) {
        if (!all) break;
        if (u.key == o.freed_on.key) continue;  // its event is recorded already
        if (!o.from->frees_record_used_streams()) all = false;
        else add(u);
      }
    } catch (...) {
      all = false;
    }
    if (!all) release_fences(o, before);
    return all;
  }

  /// u, a stream o's block is used on, kept with o unless it is o's own or kept already. May throw
  /// bad_alloc, changing nothing (none where room was reserved).
  static void remember_use(owner& o, const use& u) {
    if (u.key == o.on_key) return;
    for (const use& kept : o.uses)
      if (kept.key == u.key) return;
    o.uses.push_back(u);
  }

  /// Room in deferred_ for n more blocks, growing geometrically (a capture may free many). May throw
  /// bad_alloc, changing nothing.
  void make_deferred_room(std::size_t n) {
    if (deferred_.capacity() - deferred_.size() < n)
      deferred_.reserve(std::max(deferred_.size() + n, 2 * deferred_.capacity()));
  }

  /// Whether a free of o's block on the stream whose ordering key is `freed_on` leaves it waiting for
  /// nothing, its own stream's next request free to take it (freed_block::reusable): freed on its own
  /// stream, named for no other by record_stream, holding no event of an earlier free (set_live made it
  /// live again before they completed) and not unsettled. Otherwise other streams' work may still use
  /// it, or may not be known, and the free waits for them (wait_for_other_streams).
  static bool waits_for_nothing(const owner& o, std::uintptr_t freed_on) noexcept {
    return freed_on == o.on_key && o.uses.empty() && o.fences.empty() && !o.unsettled;
  }

  /// o's block p is freed on stream `on` (deallocate; set_live frees on its own stream), its free-list
  /// entry made already: it is no longer live, and unless the free waits for nothing (`reusable`,
  /// waits_for_nothing) it waits for the other streams, which reads o.freed_on, set first. Cannot
  /// throw: what may (the free-list entry, room in deferred_) comes before it. lock_ is held.
  void mark_freed(void* p, owner& o, const use& on, bool reusable) noexcept {
    o.live = false;
    o.freed_on = on;
    if (!reusable) wait_for_other_streams(p, o);
  }

  /// A free of p (o's block) that other streams may still use (mark_freed): it gets their events now
  /// (fence); during a routing, under free_records_used_streams, when the last one ends (deferred_,
  /// where make_deferred_room made room); otherwise none, and it waits for settle_completed(). A block
  /// made live again by set_live may hold events from an earlier free: without all of this free's,
  /// none is kept, and the block waits for settle_completed() at every free until then (drop_fences).
  /// An unsettled block waits for it already and holds no event (fence records none for it, and
  /// drop_fences released them all): it is neither listed in deferred_ nor fenced, since either would
  /// end in drop_fences again and change nothing. lock_ is held.
  void wait_for_other_streams(void* p, owner& o) noexcept {
    if (o.unsettled) return;
    if (!routes_.empty() && o.from->frees_record_used_streams()) {
      if (!o.deferred) deferred_.push_back(p);  // room was made: cannot throw
      o.deferred = true;
    } else if (!fence(o)) {
      drop_fences(o);
    }
  }

  /// The last routing has ended: the blocks freed during it that other streams may still use get
  /// their events now (fence), or keep waiting for settle_completed() where they cannot. Blocks made
  /// live again, settled or given back since are passed over. lock_ is held.
  void fence_deferred() noexcept {
    for (void* p : deferred_) {
      const auto found = owners_.find(p);
      if (found == owners_.end() || !found->second.deferred) continue;
      owner& o = found->second;
      o.deferred = false;
      if (!o.live && !fence(o)) drop_fences(o);
    }
    deferred_.clear();
  }

  /// Whether every event o's block waits for has completed (asked without blocking; those that have
  /// go back as they are found). false for a block with none: it waits for settle_completed(). Throws
  /// the ordering policy's error when a query fails. lock_ is held.
  static bool fences_passed(owner& o) {
    if (o.fences.empty()) return false;
    while (!o.fences.empty()) {
      if (!o.from->event_completed(o.fences.back())) return false;
      o.from->release_event(o.fences.back());
      o.fences.pop_back();
    }
    return true;
  }

  /// A free of o's block could not record all its events: the others go back too, and the block waits
  /// for settle_completed() from now on (owner::unsettled), since the streams those events were for are
  /// not kept anywhere else.
  static void drop_fences(owner& o) noexcept {
    release_fences(o);
    o.unsettled = true;
  }

  /// Gives back o's events from the `from`-th on (all by default).
  static void release_fences(owner& o, std::size_t from = 0) noexcept {
    while (o.fences.size() > from) {
      o.from->release_event(o.fences.back());
      o.fences.pop_back();
    }
  }

  /// f(block) for each freed block of a pool still in use that no request may take (waiting(),
  /// settle_completed()). lock_ is held.
  template <class Pools, class F>
  static void for_each_waiting(Pools& pools, F&& f) {
    for (auto& [key, p] : pools)
      if (!p.released)
        for (auto& [bytes, block] : p.freed)
          if (!block.reusable) f(block);
  }

  /// One more user of p (begin, retain). A released pool used again keeps its freed blocks again.
  void add_user(pool_state& p) noexcept {
    if (p.released) {
      p.released = false;
      releasable_ -= p.freed.size();
    }
    ++p.users;
  }

  /// The latest routing on `device` whose filter takes s (PyTorch asks the latest capture first).
  const route* route_for(int device, stream s) const {
    for (auto r = routes_.rbegin(); r != routes_.rend(); ++r)
      if (r->device == device && r->accepts(s)) return &*r;
    return nullptr;
  }

  /// Forgets a released pool with no block left, unless a routing still names it (its requests go
  /// there until end()).
  void drop_if_empty(std::map<key, pool_state>::iterator it) {
    if (!it->second.released || it->second.blocks != 0) return;
    for (const route& r : routes_)
      if (r.device == it->first.first && r.id == it->first.second) return;
    pools_.erase(it);
  }

  static std::string name(graph_pool_id id) {
    return std::to_string(id.first) + ", " + std::to_string(id.second);
  }
  static std::string pointer_name(const void* p) {
    char text[32];
    std::snprintf(text, sizeof text, "%p", p);
    return text;
  }

  mutable std::mutex lock_;
  std::map<key, pool_state> pools_;
  std::vector<route> routes_;
  std::unordered_map<void*, owner> owners_;  // every block of every pool, live or freed
  std::vector<void*> deferred_;  // blocks freed during a capture, fenced when it ends (owner::deferred)
  std::size_t releasable_ = 0;
  std::uint64_t frees_ = 0;  // blocks freed to the pools so far (freed_block::seq)
  std::atomic<bool> routing_{false};  // routes_ is not empty
  std::atomic<bool> counted_{false};  // owners_ is not empty
};

}  // namespace stash
