// Times cudaMemGetInfo (what cuda_vmm_backend::room_bytes calls) alone and inside a cudaGetDevice/cudaSetDevice pair.
#include <cuda_runtime.h>
#include <chrono>
#include <cstdio>
#include <vector>
int main() {
  cudaSetDevice(0); cudaFree(nullptr);
  size_t f, t;
  for (int round = 0; round < 3; ++round) {
    for (int mode = 0; mode < 2; ++mode) {
      const int n = 2000;
      auto s = std::chrono::steady_clock::now();
      for (int i = 0; i < n; ++i) {
        if (mode) { int d; cudaGetDevice(&d); cudaSetDevice(0); }
        cudaMemGetInfo(&f, &t);
      }
      auto e = std::chrono::steady_clock::now();
      std::printf("round %d %s: %.2f us per call (free %zu MiB)\n", round, mode ? "with device_guard calls" : "cudaMemGetInfo alone",
                  std::chrono::duration<double, std::micro>(e - s).count() / n, f >> 20);
    }
    // with 2,000 device allocations live
    static std::vector<void*> live;
    if (round == 0) for (int i = 0; i < 2000; ++i) { void* p; cudaMalloc(&p, 2 << 20); live.push_back(p); }
  }
}
