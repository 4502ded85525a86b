#include "cuda/stream_kernels.hpp"

namespace {

constexpr unsigned threads = 256;

unsigned blocks_for(std::size_t n) {
  const std::size_t wanted = (n + threads - 1) / threads;
  return static_cast<unsigned>(wanted < 1024 ? (wanted > 0 ? wanted : 1) : 1024);
}

__device__ unsigned long long now_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void keep_writing(unsigned* words, std::size_t n, unsigned tag, unsigned long long ns) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  const std::size_t first = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const unsigned long long end = now_ns() + ns;
  do {
    for (std::size_t i = first; i < n; i += stride) words[i] = tag;
  } while (now_ns() < end);
  for (std::size_t i = first; i < n; i += stride) words[i] = tag;
}

__global__ void sleep_then_fill(unsigned* words, std::size_t n, unsigned tag, unsigned long long ns) {
  const unsigned long long end = now_ns() + ns;
  while (now_ns() < end) __nanosleep(1000);
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    words[i] = tag;
}

__global__ void fill(unsigned* words, std::size_t n, unsigned tag) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    words[i] = tag;
}

__global__ void count_mismatches(const unsigned* words, std::size_t n, unsigned tag,
                                 unsigned long long* out) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  unsigned long long bad = 0;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    bad += words[i] != tag ? 1 : 0;
  if (bad) atomicAdd(out, bad);
}

}  // namespace

namespace stash_test {

cudaError_t launch_keep_writing(unsigned* words, std::size_t n, unsigned tag, unsigned long long nanoseconds,
                                cudaStream_t s) {
  keep_writing<<<blocks_for(n), threads, 0, s>>>(words, n, tag, nanoseconds);
  return cudaGetLastError();
}
cudaError_t launch_sleep_then_fill(unsigned* words, std::size_t n, unsigned tag,
                                   unsigned long long nanoseconds, cudaStream_t s) {
  sleep_then_fill<<<blocks_for(n), threads, 0, s>>>(words, n, tag, nanoseconds);
  return cudaGetLastError();
}
cudaError_t launch_fill(unsigned* words, std::size_t n, unsigned tag, cudaStream_t s) {
  fill<<<blocks_for(n), threads, 0, s>>>(words, n, tag);
  return cudaGetLastError();
}
cudaError_t launch_count_mismatches(const unsigned* words, std::size_t n, unsigned tag,
                                    unsigned long long* mismatches, cudaStream_t s) {
  count_mismatches<<<blocks_for(n), threads, 0, s>>>(words, n, tag, mismatches);
  return cudaGetLastError();
}

}  // namespace stash_test
