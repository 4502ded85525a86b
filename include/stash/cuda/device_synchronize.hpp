#pragma once
// A device-wide wait that a graph capture may refuse. cudaDeviceSynchronize waits for every stream of
// a device and needs no stream handle, so it covers streams destroyed since their last work was
// queued. While a stream of the device captures a graph in global mode, the runtime refuses it (and a
// capture in this thread would be invalidated): this thread's capture mode is relaxed for the call,
// and a refusal is an answer (false: nothing may be assumed finished), not an error.
#include <cuda_runtime_api.h>

#include "stash/cuda/capture_mode.hpp"
#include "stash/cuda/cuda_check.hpp"
#include "stash/cuda/device_guard.hpp"

namespace stash::cuda {

/// Waits until `device` has finished all its work. false when a graph capture underway made the
/// runtime refuse; throws stash::cuda_error on any other failure. Leaves the current device as it was.
inline bool synchronize_device(int device) {
  const relaxed_capture_mode relaxed;
  const device_guard guard(device);
  const cudaError_t status = cudaDeviceSynchronize();
  if (status == cudaSuccess) return true;
  (void)cudaGetLastError();
  if (status == cudaErrorStreamCaptureUnsupported || status == cudaErrorStreamCaptureImplicit ||
      status == cudaErrorStreamCaptureInvalidated || status == cudaErrorStreamCaptureIsolation)
    return false;
  STASH_CUDA_CHECK(status);
  return false;  // not reached: the check throws
}

}  // namespace stash::cuda
