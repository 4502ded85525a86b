#pragma once
// What a test can read from each backend: the bytes it really holds (when it knows), every counter it
// keeps (to prove an error changed nothing), and how often the allocator misused it.
#include <cstddef>
#include <optional>
#include <vector>

#include "stash/testing/failing_backend.hpp"
#include "stash/backend/host_backend.hpp"
#include "stash/backend/simulated_backend.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "support/checked_backend.hpp"

namespace stash_test {

/// Bytes the backend holds for the allocator, when the backend can tell.
inline std::optional<std::size_t> held_bytes(const stash::host_backend&) { return std::nullopt; }
inline std::optional<std::size_t> held_bytes(const stash::simulated_backend& b) { return b.in_use_bytes(); }
inline std::optional<std::size_t> held_bytes(const stash::simulated_paged_backend& b) {
  return b.mapped_bytes();
}
template <class B>
std::optional<std::size_t> held_bytes(const stash::failing_backend<B>& b) {
  return b.held_bytes();
}
template <class B, checked_calls C>
std::optional<std::size_t> held_bytes(const checked_backend<B, C>& b) {
  return b.ledger().held_bytes;
}

/// Every counter the backend keeps, in a fixed order.
inline std::vector<std::size_t> counters(const stash::host_backend&) { return {}; }
inline std::vector<std::size_t> counters(const stash::simulated_backend& b) {
  return {b.in_use_bytes(), b.peak_in_use_bytes(), b.live_segments(), b.allocate_calls(),
          b.deallocate_calls(), b.mismatched_frees()};
}
inline std::vector<std::size_t> counters(const stash::simulated_paged_backend& b) {
  return {b.mapped_bytes(), b.peak_mapped_bytes(), b.map_calls(), b.move_calls(), b.chunk_moves(),
          b.unmap_calls(), b.misuses()};
}
template <class B>
std::vector<std::size_t> counters(const stash::failing_backend<B>& b) {
  std::vector<std::size_t> out{b.calls(), b.failures(), b.held_bytes()};
  for (std::size_t c : counters(b.upstream())) out.push_back(c);
  return out;
}

/// Calls the backend itself found wrong (a free of something not held, a double map...).
inline std::size_t misuses(const stash::host_backend&) { return 0; }
inline std::size_t misuses(const stash::simulated_backend& b) { return b.mismatched_frees(); }
inline std::size_t misuses(const stash::simulated_paged_backend& b) { return b.misuses(); }
template <class B>
std::size_t misuses(const stash::failing_backend<B>& b) {
  return misuses(b.upstream());
}
template <class B, checked_calls C>
std::size_t misuses(const checked_backend<B, C>& b) {
  return b.ledger().misuses + misuses(b.upstream());
}

/// Backend calls that took memory (segments allocated / pages mapped) and that gave it back, when the
/// backend counts them (failed calls included: compare only where nothing ran out of memory).
struct backend_calls {
  std::size_t takes = 0, gives = 0;
};
inline std::optional<backend_calls> calls(const stash::host_backend&) { return std::nullopt; }
inline std::optional<backend_calls> calls(const stash::simulated_backend& b) {
  return backend_calls{b.allocate_calls(), b.deallocate_calls()};
}
inline std::optional<backend_calls> calls(const stash::simulated_paged_backend& b) {
  return backend_calls{b.map_calls(), b.unmap_calls()};
}
template <class B>
std::optional<backend_calls> calls(const stash::failing_backend<B>& b) {
  return calls(b.upstream());
}

}  // namespace stash_test
