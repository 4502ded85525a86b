#pragma once
// Streams for the tests. stream_blocker holds a stream busy without a kernel: a host function queued
// on the stream (cudaLaunchHostFunc) that waits until the test releases it. Work queued on the stream after
// it, and events recorded there, stay incomplete until then, so "not complete yet" is certain rather than a
// race with the GPU. The host function gives up after `limit` so a failing test cannot hang the suite.
#include <cuda_runtime_api.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "cuda/cuda_support.hpp"

namespace stash_test {

/// A CUDA stream for one test (non-blocking: no implicit order with the legacy default stream).
struct scoped_stream {
  cudaStream_t s = nullptr;
  explicit scoped_stream(unsigned flags = cudaStreamNonBlocking) {
    CUDA_REQUIRE(cudaStreamCreateWithFlags(&s, flags));
  }
  ~scoped_stream() { (void)cudaStreamDestroy(s); }
  scoped_stream(const scoped_stream&) = delete;
  scoped_stream& operator=(const scoped_stream&) = delete;
};

/// Whether s is capturing a graph and the capture is still valid (nothing has invalidated it).
inline bool capture_active(cudaStream_t s) {
  cudaStreamCaptureStatus status{};
  CUDA_REQUIRE(cudaStreamIsCapturing(s, &status));
  return status == cudaStreamCaptureStatusActive;
}

/// Ends s's capture and destroys the graph it made.
inline void end_capture_and_discard(cudaStream_t s) {
  cudaGraph_t graph = nullptr;
  CUDA_REQUIRE(cudaStreamEndCapture(s, &graph));
  CUDA_REQUIRE(cudaGraphDestroy(graph));
}

class stream_blocker {
 public:
  explicit stream_blocker(cudaStream_t s, std::chrono::seconds limit = std::chrono::seconds(20))
      : state_(std::make_shared<state>()) {
    state_->limit = limit;
    // The host function gets a raw pointer: the state lives until release() has been seen (the
    // destructor waits for that on the stream's behalf).
    CUDA_REQUIRE(cudaLaunchHostFunc(s, &stream_blocker::hold, state_.get()));
    stream_ = s;
  }
  ~stream_blocker() {
    release();
    (void)cudaStreamSynchronize(stream_);
  }
  stream_blocker(const stream_blocker&) = delete;
  stream_blocker& operator=(const stream_blocker&) = delete;

  void release() noexcept { state_->released.store(true, std::memory_order_release); }
  /// Whether the host function gave up waiting (the test took longer than the limit).
  bool timed_out() const noexcept { return state_->timed_out.load(std::memory_order_acquire); }

 private:
  struct state {
    std::atomic<bool> released{false};
    std::atomic<bool> timed_out{false};
    std::chrono::seconds limit{20};
  };
  static void CUDART_CB hold(void* p) {
    auto* s = static_cast<state*>(p);
    const auto deadline = std::chrono::steady_clock::now() + s->limit;
    while (!s->released.load(std::memory_order_acquire)) {
      if (std::chrono::steady_clock::now() > deadline) {
        s->timed_out.store(true, std::memory_order_release);
        return;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  std::shared_ptr<state> state_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace stash_test
