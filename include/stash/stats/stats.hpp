#pragma once
// A stats policy is told of every event the allocator sees and answers with a snapshot. The
// allocator calls it under its lock, so a policy needs no atomics of its own.
#include <concepts>
#include <cstddef>
#include <cstdint>

namespace stash {

/// What an allocator holds and has done. Byte counts are exact at the moment of the snapshot.
struct stats_snapshot {
  std::size_t allocated_bytes = 0;       // live, as rounded by the bucket policy
  std::size_t requested_bytes = 0;       // live, as asked for by the caller
  std::size_t cached_bytes = 0;          // held from the backend but not live: reserved - allocated
  std::size_t reserved_bytes = 0;        // held from the backend (segments, or mapped pages)
  std::size_t peak_allocated_bytes = 0;  // high tide of allocated_bytes since the last reset_peak()
  std::size_t peak_requested_bytes = 0;  // high tide of requested_bytes
  std::size_t peak_reserved_bytes = 0;   // high tide of reserved_bytes
  std::uint64_t allocations = 0;         // successful allocate() calls
  std::uint64_t deallocations = 0;       // successful deallocate() calls
  std::uint64_t cache_hits = 0;          // allocations served without asking the backend
  std::uint64_t backend_allocations = 0; // segments allocated / pages mapped
  std::uint64_t backend_frees = 0;       // segments freed / pages unmapped
  std::uint64_t oom_retries = 0;         // times the cache was released to retry a failed request
  bool operator==(const stats_snapshot&) const = default;
};

template <class S>
concept stats_policy = std::default_initializable<S> && requires(S& s, const S& cs, std::size_t n, bool b) {
  s.on_allocate(n, n, b);  // requested, rounded, served from the cache
  s.on_deallocate(n, n);   // requested, rounded
  s.on_reserve(n);         // bytes newly held from the backend
  s.on_release(n);         // bytes given back to the backend
  s.on_oom_retry();
  s.reset_peak();
  { cs.snapshot() } -> std::same_as<stats_snapshot>;
};

}  // namespace stash
