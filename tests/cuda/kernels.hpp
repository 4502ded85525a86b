#pragma once
// Kernels for the CUDA tests, compiled by nvcc in tests/cuda/kernels.cu (a C++17 file that sees no
// stash header) and called from the g++-compiled tests through these plain functions.
#include <cuda_runtime_api.h>

#include <cstddef>

namespace stash_test {

/// Writes out[i] = i * scale + offset for i in [0, n) on the device, on the default stream. Returns
/// the launch status.
cudaError_t launch_affine_fill(float* out, std::size_t n, float scale, float offset);

/// data[i] = data[i] * scale + offset for i in [0, n) (reads and writes every element), on `stream`
/// of the current device. Returns the launch status.
cudaError_t launch_affine_update(float* data, std::size_t n, float scale, float offset, cudaStream_t stream);

}  // namespace stash_test
