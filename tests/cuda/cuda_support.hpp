#pragma once
// Helpers shared by the CUDA tests: checked runtime calls, byte patterns written and read back with
// cudaMemcpy, and device memory figures. The tests are host code compiled by g++; the few kernels
// they launch are in kernels.cu.
#include <catch2/catch.hpp>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "stash/device_manager.hpp"

namespace stash_test {

inline constexpr std::size_t KiB = std::size_t{1} << 10;
inline constexpr std::size_t MiB = std::size_t{1} << 20;
inline constexpr std::size_t GiB = std::size_t{1} << 30;

#define CUDA_REQUIRE(call)                                                                     \
  do {                                                                                         \
    const cudaError_t stash_test_status_ = (call);                                             \
    INFO(#call << " -> " << cudaGetErrorName(stash_test_status_));                             \
    REQUIRE(stash_test_status_ == cudaSuccess);                                                \
  } while (0)

inline int device_count() { return stash::device_manager::device_count(); }

inline int current_device() {
  int d = -1;
  CUDA_REQUIRE(cudaGetDevice(&d));
  return d;
}

inline cudaPointerAttributes attributes(const void* p) {
  cudaPointerAttributes a{};
  CUDA_REQUIRE(cudaPointerGetAttributes(&a, p));
  return a;
}

/// Device memory of `device`, 256-byte aligned: what every device block must be.
inline void require_device_memory(const void* p, int device) {
  REQUIRE(p != nullptr);
  const cudaPointerAttributes a = attributes(p);
  CHECK(a.type == cudaMemoryTypeDevice);
  CHECK(a.device == device);
  CHECK(reinterpret_cast<std::uintptr_t>(p) % 256 == 0);
}

/// A byte pattern that differs with the seed and along the buffer.
inline std::vector<unsigned char> pattern(std::size_t bytes, std::uint32_t seed) {
  std::vector<unsigned char> v(bytes);
  std::uint32_t x = seed * 2654435761u + 12345u;
  for (std::size_t i = 0; i < bytes; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    v[i] = static_cast<unsigned char>(x);
  }
  return v;
}

/// Writes the pattern of `seed` over [p, p + bytes) (device or pinned memory).
inline void write_pattern(void* p, std::size_t bytes, std::uint32_t seed) {
  const auto v = pattern(bytes, seed);
  CUDA_REQUIRE(cudaMemcpy(p, v.data(), bytes, cudaMemcpyDefault));
}

/// Whether [p, p + bytes) still holds the pattern of `seed`.
inline bool holds_pattern(const void* p, std::size_t bytes, std::uint32_t seed) {
  std::vector<unsigned char> back(bytes);
  CUDA_REQUIRE(cudaMemcpy(back.data(), p, bytes, cudaMemcpyDefault));
  return back == pattern(bytes, seed);
}

/// For big blocks: the pattern on the first and last `edge` bytes only.
inline void write_edges(void* p, std::size_t bytes, std::uint32_t seed, std::size_t edge = 64 * KiB) {
  if (bytes <= 2 * edge) return write_pattern(p, bytes, seed);
  write_pattern(p, edge, seed);
  write_pattern(static_cast<char*>(p) + bytes - edge, edge, seed + 1);
}
inline bool holds_edges(const void* p, std::size_t bytes, std::uint32_t seed, std::size_t edge = 64 * KiB) {
  if (bytes <= 2 * edge) return holds_pattern(p, bytes, seed);
  return holds_pattern(p, edge, seed) &&
         holds_pattern(static_cast<const char*>(p) + bytes - edge, edge, seed + 1);
}

/// Free bytes of `device` as the driver sees them; the current device is left alone.
inline std::size_t free_memory(int device) { return stash::device_manager::memory(device).free_bytes; }

inline std::size_t abs_diff(std::size_t a, std::size_t b) { return a > b ? a - b : b - a; }

/// Sets the current device for a test and puts the previous one back.
class scoped_device {
 public:
  explicit scoped_device(int d) : previous_(current_device()) { CUDA_REQUIRE(cudaSetDevice(d)); }
  ~scoped_device() { (void)cudaSetDevice(previous_); }
  scoped_device(const scoped_device&) = delete;
  scoped_device& operator=(const scoped_device&) = delete;

 private:
  int previous_;
};

/// Multi-GPU tests call this first: fewer than two devices is a warning, not a failure.
#define STASH_REQUIRE_TWO_DEVICES()                                                       \
  do {                                                                                   \
    if (::stash_test::device_count() < 2) {                                              \
      WARN("needs 2 CUDA devices, found " << ::stash_test::device_count() << ": skipped"); \
      return;                                                                            \
    }                                                                                    \
  } while (0)

}  // namespace stash_test
