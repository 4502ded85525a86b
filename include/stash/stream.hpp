#pragma once
// stash::stream: the CUDA stream an allocation is ordered on. A value type holding a cudaStream_t,
// without the CUDA headers: CUDA declares `typedef struct CUstream_st* cudaStream_t`, and so does this
// file, so a cudaStream_t (or a CUstream) converts to stash::stream implicitly and code that never
// touches CUDA (host and simulated compositions, the tests) compiles without the toolkit's headers.
//
// The handle is only a name here: stash compares and hashes it (ordering_key()), and hands it to its
// ordering policy (stash/ordering/) when an event must be recorded on it or a stream must wait for
// one. Two handles are the same stream when they are equal. The default-constructed stream is the
// legacy default stream (nullptr, what the streamless overloads use); cudaStreamPerThread (the handle
// 0x2) is the per-thread default stream, a different stream. cudaStreamLegacy (0x1) names the legacy
// stream too but is a different handle: stash treats it as a stream of its own, which is safe (a block
// freed on it waits for an event before nullptr reuses it), only less eager to reuse.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>

struct CUstream_st;

namespace stash {

class stream {
 public:
  using native_handle_type = CUstream_st*;

  /// The legacy default stream.
  constexpr stream() noexcept = default;
  /// From a cudaStream_t (implicit, so every CUDA stream handle is accepted where a stash::stream is).
  constexpr stream(native_handle_type handle) noexcept  // NOLINT(google-explicit-constructor)
      : handle_(handle) {}

  /// cudaStreamPerThread: the calling thread's default stream.
  static stream per_thread() noexcept {
    return stream(reinterpret_cast<native_handle_type>(std::uintptr_t{2}));
  }

  constexpr native_handle_type native_handle() const noexcept { return handle_; }
  /// The handle as a number.
  std::uintptr_t key() const noexcept { return reinterpret_cast<std::uintptr_t>(handle_); }

  /// cudaStreamPerThread's handle.
  static constexpr std::uintptr_t per_thread_handle = 2;

  /// How stash tells streams apart (its per-stream state, graph pools' blocks): the handle, except
  /// cudaStreamPerThread, one handle that names a different stream in every thread: it is keyed per
  /// calling thread (an odd number no handle has).
  std::uintptr_t ordering_key() const noexcept {
    if (key() != per_thread_handle) [[likely]]
      return key();
    return per_thread_key();
  }

  friend constexpr bool operator==(stream a, stream b) noexcept { return a.handle_ == b.handle_; }

 private:
  /// The calling thread's key for cudaStreamPerThread: odd, and never another thread's, a finished
  /// one's included (a thread_local's address could be a finished thread's again, and its per-thread
  /// stream's pending frees would then look like this thread's own).
  [[gnu::noinline]] static std::uintptr_t per_thread_key() noexcept {
    static std::atomic<std::uintptr_t> threads_seen{0};
    static thread_local const std::uintptr_t key =
        ((threads_seen.fetch_add(1, std::memory_order_relaxed) + 1) << 1) | 1;
    return key;
  }

  native_handle_type handle_ = nullptr;
};

}  // namespace stash

template <>
struct std::hash<stash::stream> {
  std::size_t operator()(stash::stream s) const noexcept { return std::hash<std::uintptr_t>{}(s.key()); }
};
