#include "cuda/kernels.hpp"

namespace {

__global__ void affine_fill(float* out, std::size_t n, float scale, float offset) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    out[i] = static_cast<float>(i) * scale + offset;
}

__global__ void affine_update(float* data, std::size_t n, float scale, float offset) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    data[i] = data[i] * scale + offset;
}

unsigned blocks_for(std::size_t n, unsigned threads) {
  const std::size_t wanted = (n + threads - 1) / threads;
  return static_cast<unsigned>(wanted < 4096 ? (wanted > 0 ? wanted : 1) : 4096);
}

}  // namespace

namespace stash_test {

cudaError_t launch_affine_fill(float* out, std::size_t n, float scale, float offset) {
  constexpr unsigned threads = 256;
  const std::size_t wanted = (n + threads - 1) / threads;
  const unsigned blocks = static_cast<unsigned>(wanted < 4096 ? (wanted > 0 ? wanted : 1) : 4096);
  affine_fill<<<blocks, threads>>>(out, n, scale, offset);
  return cudaGetLastError();
}

cudaError_t launch_affine_update(float* data, std::size_t n, float scale, float offset, cudaStream_t stream) {
  constexpr unsigned threads = 256;
  affine_update<<<blocks_for(n, threads), threads, 0, stream>>>(data, n, scale, offset);
  return cudaGetLastError();
}

}  // namespace stash_test
