#pragma once
// Which CUDA devices exist and which one a device id means. Every query is safe on a machine with no
// GPU or no driver: device_count() is then 0 and has_gpu() false, so code can decide before it asks
// for device memory.
#include <cuda_runtime_api.h>

#include <cstddef>

#include "stash/cuda/cuda_check.hpp"
#include "stash/cuda/device_guard.hpp"
#include "stash/error.hpp"

namespace stash {

class device_manager {
 public:
  /// Number of visible devices; 0 when there is none, no driver, or the driver is too old. Never
  /// throws. Counted once: the set of visible devices is fixed when the runtime starts.
  static int device_count() noexcept {
    static const int count = [] {
      int n = 0;
      if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();  // "no device" must not surface later as some other call's error
        n = 0;
      }
      return n;
    }();
    return count;
  }

  static bool has_gpu() noexcept { return device_count() > 0; }

  /// The calling thread's current device. Throws stash::cuda_error when there is no usable device.
  static int current_device() {
    int device = 0;
    STASH_CUDA_CHECK(cudaGetDevice(&device));
    return device;
  }

  /// -1 means the current device; anything else must be in [0, device_count()).
  /// Throws stash::invalid_device otherwise (also for -1 when there is no device at all).
  static int resolve(int device) {
    const int count = device_count();
    if (device == -1 && count > 0) return current_device();
    if (device < 0 || device >= count) throw invalid_device(device, count);
    return device;
  }

  struct memory_info {
    std::size_t free_bytes = 0;
    std::size_t total_bytes = 0;
  };

  /// Free and total memory of a device as the driver sees it (cudaMemGetInfo); the caller's current
  /// device is unchanged.
  static memory_info memory(int device = -1) {
    const int id = resolve(device);
    cuda::device_guard guard(id);
    memory_info info;
    STASH_CUDA_CHECK(cudaMemGetInfo(&info.free_bytes, &info.total_bytes));
    return info;
  }
};

}  // namespace stash
