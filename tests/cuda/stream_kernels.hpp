#pragma once
// Kernels for the stream tests (tests/cuda/test_streams.cpp), compiled by nvcc in stream_kernels.cu and
// called from the g++-compiled tests through these plain functions. Each returns the launch status.
#include <cuda_runtime_api.h>

#include <cstddef>

namespace stash_test {

/// For about `nanoseconds` (measured on the GPU's clock), keeps writing `tag` over words[0, n), then
/// writes it once more: a block "still in use" on stream s long after the host has moved on.
cudaError_t launch_keep_writing(unsigned* words, std::size_t n, unsigned tag, unsigned long long nanoseconds,
                                cudaStream_t s);
/// Waits about `nanoseconds` on the GPU, then writes `tag` over words[0, n) once.
cudaError_t launch_sleep_then_fill(unsigned* words, std::size_t n, unsigned tag,
                                   unsigned long long nanoseconds, cudaStream_t s);
/// words[i] = tag for i in [0, n).
cudaError_t launch_fill(unsigned* words, std::size_t n, unsigned tag, cudaStream_t s);
/// Adds to *mismatches the number of words in [0, n) that are not `tag`.
cudaError_t launch_count_mismatches(const unsigned* words, std::size_t n, unsigned tag,
                                    unsigned long long* mismatches, cudaStream_t s);

}  // namespace stash_test
