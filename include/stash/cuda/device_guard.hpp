#pragma once
// Every stash call that takes a device id leaves the caller's current device as it found it: the
// guard sets the device for the duration of a scope and puts the previous one back. Setting a device
// also makes its primary context current on this thread, which the driver's VMM calls rely on.
#include <cuda_runtime_api.h>

#include "stash/cuda/cuda_check.hpp"

namespace stash::cuda {

class device_guard {
 public:
  /// Makes `device` current; -1 keeps whatever is current. Throws stash::cuda_error if it cannot.
  /// The device is set even when it is already current: on a thread that has made no runtime call
  /// yet, that is what binds the primary context, which driver calls made under the guard need.
  explicit device_guard(int device) {
    STASH_CUDA_CHECK(cudaGetDevice(&previous_));
    if (device >= 0) {
      STASH_CUDA_CHECK(cudaSetDevice(device));
      switched_ = device != previous_;
    }
  }
  ~device_guard() {
    // Restoring a device that was current a moment ago cannot fail short of a dead driver, and a
    // destructor has no one to report to.
    if (switched_) (void)cudaSetDevice(previous_);
  }
  device_guard(const device_guard&) = delete;
  device_guard& operator=(const device_guard&) = delete;

  /// The device that was current when the guard was made (and will be again after it).
  int previous_device() const noexcept { return previous_; }

 private:
  int previous_ = 0;
  bool switched_ = false;
};

}  // namespace stash::cuda
