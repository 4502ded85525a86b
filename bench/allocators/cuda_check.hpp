#pragma once
// Turns a failed CUDA runtime call in the benchmark's own adapters into an exception that names it.
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace stash::bench {

inline void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string(what) + " failed: " + cudaGetErrorName(status) + " (" +
                             cudaGetErrorString(status) + ")");
}

}  // namespace stash::bench
