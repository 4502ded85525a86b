// vmm_blocking: which virtual-memory driver calls wait for work already queued on the GPU.
//
// stash's paged backend maps, moves and unmaps pages while kernels run on other streams. A call that
// waits for the device (explicitly or implicitly) stalls the host, and a training step whose host
// runs ahead of the GPU then loses that lead. For each call this probe queues a kernel that spins for
// `spin_ms` on a non-blocking stream, makes the call on an unrelated page, and reports how long the
// call took and whether the kernel was still running when it returned. A call that does not wait
// returns in microseconds with the kernel still running.
//
// Build (no CMake target: it is a probe run by hand on the GPU machine):
//   nvcc -std=c++17 -O2 -arch=sm_90 bench/vmm_blocking.cu -o vmm_blocking -lcuda
// Run: ./vmm_blocking [spin_ms = 200]
#include <cuda.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

namespace {

__global__ void spin(unsigned long long ns) {
  unsigned long long start, now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while (now - start < ns);
}

void check(CUresult r, const char* what) {
  if (r != CUDA_SUCCESS) {
    const char* name = nullptr;
    cuGetErrorName(r, &name);
    std::fprintf(stderr, "%s failed: %s\n", what, name ? name : "?");
    std::exit(1);
  }
}
void check(cudaError_t r, const char* what) {
  if (r != cudaSuccess) {
    std::fprintf(stderr, "%s failed: %s\n", what, cudaGetErrorString(r));
    std::exit(1);
  }
}

using clk = std::chrono::steady_clock;

struct probe {
  cudaStream_t busy;
  double spin_ms;

  /// Runs `call` while a kernel spins on `busy`; prints its host time and whether it waited.
  void measure(const char* name, const std::function<void()>& prepare, const std::function<void()>& call,
               const std::function<void()>& undo) {
    for (int rep = 0; rep < 3; ++rep) {
      prepare();
      check(cudaDeviceSynchronize(), "sync before");
      spin<<<1, 1, 0, busy>>>(static_cast<unsigned long long>(spin_ms * 1e6));
      check(cudaGetLastError(), "launch");
      const auto a = clk::now();
      call();
      const double ms = std::chrono::duration<double, std::milli>(clk::now() - a).count();
      const cudaError_t q = cudaStreamQuery(busy);
      const bool still_running = q == cudaErrorNotReady;
      if (q != cudaSuccess && q != cudaErrorNotReady) check(q, "query");
      std::printf("%-44s rep %d: %9.3f ms  kernel %s  -> %s\n", name, rep, ms,
                  still_running ? "still running" : "done",
                  still_running ? "does not wait" : (ms > 0.5 * spin_ms ? "WAITED for the kernel" : "kernel ended first?"));
      check(cudaStreamSynchronize(busy), "sync after");
      undo();
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  const double spin_ms = argc > 1 ? std::atof(argv[1]) : 200.0;
  check(cudaSetDevice(0), "cudaSetDevice");
  check(cudaFree(nullptr), "context");
  CUdevice dev;
  check(cuCtxGetDevice(&dev), "cuCtxGetDevice");
  char name[256];
  check(cuDeviceGetName(name, sizeof name, dev), "name");
  int driver = 0;
  cudaDriverGetVersion(&driver);
  std::printf("device: %s, driver API %d, spin %.0f ms\n", name, driver, spin_ms);

  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = dev;
  std::size_t page = 0;
  check(cuMemGetAllocationGranularity(&page, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM), "granularity");
  CUmemAccessDesc access{};
  access.location = prop.location;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;

  CUdeviceptr va = 0;
  const std::size_t span = 64 * page;
  check(cuMemAddressReserve(&va, span, 0, 0, 0), "reserve");
  probe p{nullptr, spin_ms};
  check(cudaStreamCreateWithFlags(&p.busy, cudaStreamNonBlocking), "stream");

  CUmemGenericAllocationHandle h = 0;
  auto create = [&] { check(cuMemCreate(&h, page, &prop, 0), "cuMemCreate"); };
  auto map = [&] { check(cuMemMap(va, page, 0, h, 0), "cuMemMap"); };
  auto set_access = [&] { check(cuMemSetAccess(va, page, &access, 1), "cuMemSetAccess"); };
  auto unmap = [&] { check(cuMemUnmap(va, page), "cuMemUnmap"); };
  auto release = [&] { check(cuMemRelease(h), "cuMemRelease"); };
  auto nothing = [] {};

  p.measure("cuMemCreate (2 MiB)", nothing, create, [&] { release(); });
  p.measure("cuMemMap (unrelated page)", create, map, [&] { unmap(); release(); });
  p.measure("cuMemSetAccess (unrelated page)", [&] { create(); map(); }, set_access, [&] { unmap(); release(); });
  p.measure("cuMemUnmap (unrelated, never used page)", [&] { create(); map(); set_access(); }, unmap, release);
  p.measure("cuMemRelease (unmapped handle)", [&] { create(); map(); set_access(); unmap(); }, release, nothing);
  p.measure("cuMemUnmap + cuMemRelease", [&] { create(); map(); set_access(); }, [&] { unmap(); release(); }, nothing);
  // A page move as cuda_vmm_backend makes it: map the handle at a second address, set access, unmap
  // the first.
  p.measure("move (map at b, set access, unmap a)", [&] { create(); map(); set_access(); },
            [&] {
              check(cuMemMap(va + page, page, 0, h, 0), "cuMemMap b");
              check(cuMemSetAccess(va + page, page, &access, 1), "cuMemSetAccess b");
              unmap();
            },
            [&] { check(cuMemUnmap(va + page, page), "unmap b"); release(); });
  void* d = nullptr;
  p.measure("cudaMalloc (2 MiB)", nothing, [&] { check(cudaMalloc(&d, page), "cudaMalloc"); },
            [&] { check(cudaFree(d), "cudaFree"); });
  p.measure("cudaFree (2 MiB)", [&] { check(cudaMalloc(&d, page), "cudaMalloc"); },
            [&] { check(cudaFree(d), "cudaFree"); }, nothing);
  cudaEvent_t e;
  check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event");
  p.measure("cudaEventRecord + cudaEventQuery (other stream)", nothing,
            [&] {
              check(cudaEventRecord(e, cudaStreamPerThread), "record");
              (void)cudaEventQuery(e);
            },
            nothing);
  check(cuMemAddressFree(va, span), "address free");
  return 0;
}
