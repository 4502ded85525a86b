#pragma once
// stash::sharded_allocator<Allocator, Shards>: several independent caching allocators, each with its
// own lock and cache, and each thread drawing from one of them (threads are spread round robin). Many
// threads allocating at once then rarely meet on a lock: throughput grows with the threads instead of
// collapsing on one contended lock. The price is memory: each shard caches for itself.
//
// A pointer is given back to the shard it came from whatever thread frees it. With a paged backend
// the owner is found from the address alone (each shard reserves its own range), without a lock;
// with a segment backend each shard is asked in turn.
//
// Statistics are the sum over the shards: byte and event counts are exact, the peaks are the sum of
// each shard's peak (an upper bound of the true peak, exact when one thread allocates).
#include <array>
#include <atomic>
#include <cstddef>
#include <memory>

#include "stash/caching_allocator.hpp"
#include "stash/error.hpp"

namespace stash {

template <class Allocator, std::size_t Shards = 8>
class sharded_allocator {
  static_assert(Shards >= 1 && Shards <= 64, "between 1 and 64 shards");
  static constexpr bool paged = paged_backend<typename Allocator::backend_type>;

 public:
  using allocator_type = Allocator;
  using ordering_type = typename Allocator::ordering_type;
  static constexpr memory_kind kind = Allocator::kind;
  static constexpr std::size_t shard_count = Shards;

  /// Each shard gets the backend make_backend(shard index) returns.
  template <class MakeBackend>
  explicit sharded_allocator(MakeBackend make_backend, caching_options options = {}) {
    for (std::size_t i = 0; i < Shards; ++i)
      shards_[i] = std::make_unique<Allocator>(make_backend(i), options);
  }
  sharded_allocator()
    requires std::default_initializable<typename Allocator::backend_type>
      : sharded_allocator([](std::size_t) { return typename Allocator::backend_type{}; }) {}

  static constexpr std::size_t good_size(std::size_t n) noexcept { return Allocator::good_size(n); }
  static constexpr std::size_t max_size() noexcept { return Allocator::max_size(); }

  /// The stream (default: the legacy default stream) means what it means for Allocator; a block is
  /// freed in its own shard, which keeps that shard's stream state.
  [[nodiscard]] void* allocate(std::size_t n, stream s = stream{}) {
    return shards_[this_thread_shard()]->allocate(n, s);
  }

  void deallocate(void* p, stream s = stream{}) {
    if (!p) return;
    owner_of(p).deallocate(p, s);
  }
  void deallocate(void* p, std::size_t n, stream s = stream{}) {
    if (!p) return;
    owner_of(p).deallocate(p, n, s);
  }
  void record_stream(void* p, stream s) { owner_of(p).record_stream(p, s); }
  /// Every shard flushes s (caching_allocator::flush_stream): a shard that never saw s does nothing.
  /// Stops at the first shard whose record fails, which throws.
  void flush_stream(stream s) {
    for (auto& shard : shards_) shard->flush_stream(s);
  }
  bool owns(const void* p) const noexcept {
    for (const auto& s : shards_)
      if (s->owns(p)) return true;
    return false;
  }
  std::size_t allocation_size(const void* p) const { return owner_of(p).allocation_size(p); }

  void empty_cache() {
    for (auto& s : shards_) s->empty_cache();
  }
  /// Trims every shard to an equal share of the target.
  void trim_cache(std::size_t target_cached_bytes) {
    for (auto& s : shards_) s->trim_cache(target_cached_bytes / Shards);
  }

  stats_snapshot stats() const {
    stats_snapshot sum;
    for (const auto& s : shards_) {
      const stats_snapshot x = s->stats();
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
    return sum;
  }
  void reset_peak() {
    for (auto& s : shards_) s->reset_peak();
  }

  /// Every shard's grant_peer (backends with peers): device `peer` may use the memory of every shard,
  /// now and later. A peer the first shard refuses is granted to none; a driver failure at a later
  /// shard leaves the shards before it granted.
  void grant_peer(int peer)
    requires requires(Allocator& a, int d) { a.grant_peer(d); }
  {
    for (auto& s : shards_) s->grant_peer(peer);
  }

  Allocator& shard(std::size_t i) noexcept { return *shards_[i]; }
  int device() const noexcept { return shards_[0]->device(); }

 private:
  /// Threads take shards round robin in the order they first allocate; a thread keeps its shard.
  static std::size_t this_thread_shard() noexcept {
    static std::atomic<std::size_t> next{0};
    thread_local const std::size_t mine = next.fetch_add(1, std::memory_order_relaxed) % Shards;
    return mine;
  }

  Allocator& owner_of(const void* p) const {
    if constexpr (paged) {
      for (const auto& s : shards_)
        if (s->in_arena(p)) return *s;
    } else {
      for (const auto& s : shards_)
        if (s->owns(p) || s->holds(p)) return *s;
    }
    throw invalid_pointer(p, "not allocated by this sharded allocator");
  }

  std::array<std::unique_ptr<Allocator>, Shards> shards_;
};

}  // namespace stash
