#pragma once
// Turns a failed CUDA runtime call into a stash::cuda_error that names the call, the error and where
// it happened, so a log line from a GPU machine is enough to find the failing line.
#include <cuda_runtime_api.h>

#include <string>

#include "stash/error.hpp"

namespace stash::cuda {

/// The message of a failed runtime call: "cudaMalloc(p, 512) failed: cudaErrorInvalidValue (invalid
/// argument) at file:line".
inline std::string describe_error(cudaError_t status, const char* call, const char* file, int line) {
  const char* name = cudaGetErrorName(status);
  const char* text = cudaGetErrorString(status);
  return std::string(call) + " failed: " + (name ? name : "unknown error") + " (" +
         (text ? text : "no description") + ") at " + file + ":" + std::to_string(line);
}

/// Throws stash::cuda_error unless `status` is cudaSuccess. The runtime's sticky "last error" is
/// cleared first, so a later unrelated call does not report this failure a second time.
inline void check(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();
  throw cuda_error(static_cast<int>(status), describe_error(status, call, file, line));
}

/// For allocation calls: false when `status` says the memory is exhausted (the allocator then
/// releases its cache and retries), true on success; throws stash::cuda_error on any other failure.
/// Either way the runtime's sticky last error is cleared, so the caller's next cudaGetLastError() does
/// not see an out-of-memory the allocator already handled.
inline bool allocated(cudaError_t status, const char* call, const char* file, int line) {
  if (status == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    return false;
  }
  check(status, call, file, line);
  return true;
}

}  // namespace stash::cuda

/// STASH_CUDA_CHECK(cudaMalloc(&p, n)); throws stash::cuda_error naming the call on failure.
#define STASH_CUDA_CHECK(call) ::stash::cuda::check((call), #call, __FILE__, __LINE__)
