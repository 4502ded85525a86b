#pragma once
// Where the simulated backends' fake addresses come from: windows of one process-wide range, each
// taken by one backend instance and never given back, so addresses from two simulated devices or
// shards never collide, as real device addresses would not. A window is at least 16 TiB and as large
// as the caller needs; the addresses are never dereferenced.
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace stash::detail {

inline constexpr std::uintptr_t fake_window_bytes = std::uintptr_t{1} << 44;

/// The base of a fresh window of at least `bytes` (rounded up to whole 16 TiB), or 0 when the fake
/// range (addresses 2^44 up to 2^64) has no room left for it.
inline std::uintptr_t take_fake_address_window(std::size_t bytes = fake_window_bytes) noexcept {
  constexpr std::uintptr_t first = fake_window_bytes;
  static std::atomic<std::uintptr_t> next{first};  // 0 once the range is used up
  const std::uintptr_t windows = bytes == 0 ? 1 : (bytes - 1) / fake_window_bytes + 1;
  std::uintptr_t base = next.load(std::memory_order_relaxed);
  for (;;) {
    if (base == 0 || windows > (UINTPTR_MAX - base) / fake_window_bytes + 1) return 0;
    const std::uintptr_t span = windows * fake_window_bytes;
    const std::uintptr_t after = UINTPTR_MAX - base < span ? 0 : base + span;  // 0: exactly at the top
    if (next.compare_exchange_weak(base, after, std::memory_order_relaxed)) return base;
  }
}

}  // namespace stash::detail
