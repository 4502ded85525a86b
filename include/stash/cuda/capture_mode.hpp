#pragma once
// Calls made while a stream may be capturing a CUDA graph, on this thread or another. cudaMalloc and
// the virtual memory calls (cuMemCreate, cuMemMap, cuMemSetAccess, cuMemUnmap) are not stream
// operations, nor are event queries and host waits on events recorded outside the capture, but in the
// default capture mode (cudaStreamCaptureModeGlobal) the runtime counts them as "potentially unsafe"
// and refuses them, invalidating the capture. In relaxed mode it allows them, and memory made during a
// capture serves the graph as any other (PyTorch's allocator maps and mallocs during capture the same
// way). The guard switches this thread to relaxed mode for a scope and puts the previous mode back;
// outside a capture it changes nothing. The backends' memory calls and cuda_event_ordering's queries,
// host waits and stream checks run under it. What stash maps during a capture is safe for the graph
// only while the blocks on it stay allocated (README, "Graph capture").
#include <cuda_runtime_api.h>

namespace stash::cuda {

class relaxed_capture_mode {
 public:
  relaxed_capture_mode() noexcept {
    // Cannot fail for a valid mode; if it did, the calls under it run in the mode there was.
    if (cudaThreadExchangeStreamCaptureMode(&previous_) != cudaSuccess) {
      (void)cudaGetLastError();
      restore_ = false;
    }
  }
  ~relaxed_capture_mode() {
    if (restore_) (void)cudaThreadExchangeStreamCaptureMode(&previous_);
  }
  relaxed_capture_mode(const relaxed_capture_mode&) = delete;
  relaxed_capture_mode& operator=(const relaxed_capture_mode&) = delete;

 private:
  cudaStreamCaptureMode previous_ = cudaStreamCaptureModeRelaxed;  // exchanged in, and back out
  bool restore_ = true;
};

}  // namespace stash::cuda
