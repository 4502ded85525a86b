#pragma once
// Peer access for the benchmarks on several GPUs (stash-replay --peer-access, page_costs
// --enable-peer-access): what a program whose kernels on several GPUs share buffers does first. The
// driver then maps device 0's cudaMalloc'd memory for those devices too, as stash maps its pages by
// default (peer_access: all), and sets the peers up there rather than at stash's first grant.
#include <cuda_runtime_api.h>

#include "stash/cuda/cuda_check.hpp"

namespace stash::bench {

/// Every other device that can reach device 0 enables peer access to it and, with `both_ways`, device 0
/// to that device too. Returns how many devices have peer access to device 0 now; device 0 is current
/// again afterwards. Access enabled already counts as enabled. Throws stash::cuda_error.
inline int enable_peer_access_with_device0(int devices, bool both_ways) {
  const auto enable = [](int device, int peer) {
    STASH_CUDA_CHECK(cudaSetDevice(device));
    const cudaError_t status = cudaDeviceEnablePeerAccess(peer, 0);
    if (status == cudaErrorPeerAccessAlreadyEnabled) (void)cudaGetLastError();
    else STASH_CUDA_CHECK(status);
  };
  int enabled = 0;
  for (int d = 1; d < devices; ++d) {
    int can = 0;
    STASH_CUDA_CHECK(cudaDeviceCanAccessPeer(&can, d, 0));
    if (!can) continue;
    enable(d, 0);
    if (both_ways) enable(0, d);
    ++enabled;
  }
  STASH_CUDA_CHECK(cudaSetDevice(0));
  return enabled;
}

}  // namespace stash::bench
