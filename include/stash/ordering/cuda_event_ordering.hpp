#pragma once
// Stream order on a GPU with CUDA events. Events come from a pool (one per device, created with
// cudaEventDisableTiming: the cheapest kind to record and query) and go back to it when the allocator
// releases them, so a steady workload creates none. The allocator records one event per stream for a
// whole batch of frees, and only when another stream needs that memory.
//
// Nothing here blocks the host but synchronize() and synchronize_device(), which only empty_cache()
// and the out-of-memory retry call. synchronize_device() runs cudaDeviceSynchronize on every device a
// checked stream belongs to (noted by check()), so it needs no stream handle. Graph capture: is_capturing()
// asks the runtime, and the allocator records no event on a capturing stream and makes none wait. Event
// queries and host waits run with this thread's capture mode relaxed (cudaThreadExchangeStreamCaptureMode),
// so a capture another thread runs in global mode is neither refused nor invalidated by them.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "stash/cuda/capture_mode.hpp"
#include "stash/cuda/cuda_check.hpp"
#include "stash/cuda/device_guard.hpp"
#include "stash/cuda/device_synchronize.hpp"
#include "stash/error.hpp"
#include "stash/ordering/ordering.hpp"

namespace stash {

class cuda_event_ordering {
 public:
  struct event_type {
    cudaEvent_t handle = nullptr;
    int device = -1;  // the pool it goes back to
  };
  static constexpr bool host_ordered = false;

  /// What the policy has done, for tests and benchmarks: host_waits stays 0 unless empty_cache() or
  /// an out-of-memory retry ran.
  struct counters {
    std::uint64_t events_created = 0;
    std::uint64_t records = 0;
    std::uint64_t queries = 0;
    std::uint64_t waits = 0;
    std::uint64_t host_waits = 0;  // event and device-wide waits
    std::uint64_t device_syncs = 0;
    std::uint64_t capture_checks = 0;
  };

  cuda_event_ordering() = default;
  cuda_event_ordering(const cuda_event_ordering&) = delete;
  cuda_event_ordering& operator=(const cuda_event_ordering&) = delete;
  cuda_event_ordering(cuda_event_ordering&& other) noexcept
      : pools_(std::exchange(other.pools_, {})),
        devices_(std::exchange(other.devices_, {})),
        counters_(other.counters_) {}
  cuda_event_ordering& operator=(cuda_event_ordering&& other) noexcept {
    if (this != &other) {
      destroy_pooled();
      pools_ = std::exchange(other.pools_, {});
      devices_ = std::exchange(other.devices_, {});
      counters_ = other.counters_;
    }
    return *this;
  }
  ~cuda_event_ordering() { destroy_pooled(); }

  /// A handle the runtime rejects throws invalid_stream. A destroyed stream's handle, or a pointer
  /// that was never a stream handle, is undefined behaviour in the runtime, as everywhere. Notes the
  /// stream's device for synchronize_device().
  void check(stream s) {
    int device = -1;
    cudaError_t status = cudaSuccess;
    {
      const cuda::relaxed_capture_mode relaxed;  // a stream first met during a capture: never refused then
      status = cudaStreamGetDevice(s.native_handle(), &device);
    }
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      throw invalid_stream(s.native_handle(),
                           std::string("the CUDA runtime rejects it: ") + cudaGetErrorName(status));
    }
    if (std::find(devices_.begin(), devices_.end(), device) == devices_.end()) devices_.push_back(device);
  }

  /// Active or invalidated capture both count: either way capture rules apply until it ends. The
  /// legacy stream cannot be asked while another stream captures (cudaErrorStreamCaptureImplicit):
  /// that counts as capturing too, the safe answer. Any other failure means the runtime does not know
  /// the handle (invalid_stream).
  bool is_capturing(stream s) {
    ++counters_.capture_checks;
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    const cudaError_t error = cudaStreamIsCapturing(s.native_handle(), &status);
    if (error == cudaSuccess) return status != cudaStreamCaptureStatusNone;
    (void)cudaGetLastError();
    if (error == cudaErrorStreamCaptureImplicit) return true;
    throw invalid_stream(s.native_handle(),
                         std::string("cannot ask whether it captures: ") + cudaGetErrorName(error));
  }

  /// Throws invalid_stream when the runtime no longer knows s (destroyed), cuda_error otherwise.
  event_type record(stream s) {
    int device = -1;
    if (const cudaError_t status = cudaStreamGetDevice(s.native_handle(), &device); status != cudaSuccess) {
      (void)cudaGetLastError();
      throw invalid_stream(s.native_handle(),
                           std::string("cannot record an event on it: ") + cudaGetErrorName(status));
    }
    event_type e{take(device), device};
    const cudaError_t status = cudaEventRecord(e.handle, s.native_handle());
    if (status != cudaSuccess) {
      release(e);
      STASH_CUDA_CHECK(status);
    }
    ++counters_.records;
    return e;
  }

  bool query(event_type e) {
    ++counters_.queries;
    const cuda::relaxed_capture_mode relaxed;
    const cudaError_t status = cudaEventQuery(e.handle);
    if (status == cudaSuccess) return true;
    if (status == cudaErrorNotReady) {
      (void)cudaGetLastError();
      return false;
    }
    STASH_CUDA_CHECK(status);
    return false;
  }

  void wait(stream s, event_type e) {
    STASH_CUDA_CHECK(cudaStreamWaitEvent(s.native_handle(), e.handle, 0));
    ++counters_.waits;
  }

  void synchronize(event_type e) {
    ++counters_.host_waits;
    const cuda::relaxed_capture_mode relaxed;
    STASH_CUDA_CHECK(cudaEventSynchronize(e.handle));
  }

  /// cudaDeviceSynchronize on every device check() has seen a stream of, with this thread's capture
  /// mode relaxed. false when the runtime refuses because a graph capture is underway (the wait is
  /// then incomplete, and nothing may be assumed of it); cuda_error on other failures.
  bool synchronize_device() {
    for (const int device : devices_)
      if (!cuda::synchronize_device(device)) return false;
    ++counters_.host_waits;
    ++counters_.device_syncs;
    return true;
  }

  void release(event_type e) noexcept {
    if (!e.handle) return;
    try {
      if (static_cast<std::size_t>(e.device) >= pools_.size())
        pools_.resize(static_cast<std::size_t>(e.device) + 1);
      pools_[static_cast<std::size_t>(e.device)].push_back(e.handle);
    } catch (...) {  // no memory for the pool's vector: the event is destroyed instead
      (void)cudaEventDestroy(e.handle);
    }
  }

  const counters& stats() const noexcept { return counters_; }
  /// Events waiting in the pools for reuse.
  std::size_t pooled_events() const noexcept {
    std::size_t n = 0;
    for (const auto& pool : pools_) n += pool.size();
    return n;
  }

 private:
  cudaEvent_t take(int device) {
    if (static_cast<std::size_t>(device) < pools_.size() &&
        !pools_[static_cast<std::size_t>(device)].empty()) {
      cudaEvent_t e = pools_[static_cast<std::size_t>(device)].back();
      pools_[static_cast<std::size_t>(device)].pop_back();
      return e;
    }
    cuda::device_guard guard(device);  // an event belongs to the device current when it is made
    cudaEvent_t e = nullptr;
    STASH_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    ++counters_.events_created;
    return e;
  }

  void destroy_pooled() noexcept {
    for (auto& pool : pools_)
      for (cudaEvent_t e : pool) (void)cudaEventDestroy(e);  // fails harmlessly when the runtime is gone
    pools_.clear();
  }

  std::vector<std::vector<cudaEvent_t>> pools_;  // by device
  std::vector<int> devices_;                     // of the streams check() accepted
  counters counters_;
};

static_assert(ordering_policy<cuda_event_ordering>);

}  // namespace stash
