#pragma once
// Where the simulated backends' fake addresses come from: each backend instance takes a window of its
// own (16 TiB, never dereferenced), so addresses from two simulated devices or shards never collide,
// as real device addresses would not.
#include <atomic>
#include <cstdint>

namespace stash::detail {

inline std::uintptr_t take_fake_address_window() noexcept {
  constexpr std::uintptr_t window = std::uintptr_t{1} << 44;
  static std::atomic<std::uintptr_t> next{window};
  return next.fetch_add(window, std::memory_order_relaxed);
}

}  // namespace stash::detail
