// What the driver calls of a page-alias design cost on a GPU (README, "Physical pages at several
// addresses"): PAGES pages of physical memory mapped at range A and again, page by page, at range B;
// access granted over B once (cuMemSetAccess over several mappings) or page by page; B's mappings
// unmapped one by one; and whether a write through A is read through B. Device 0 alone, no peers.
// ONE_HANDLE 0 (default): one cuMemCreate per page, each mapped at A and at B. ONE_HANDLE 1: one
// cuMemCreate of all pages, mapped whole at A; B is left out, since a page of it cannot be mapped alone
// (cuda.h says of cuMemMap's offset "currently must be zero", and the driver refuses a nonzero one;
// ONE_HANDLE 2 tries it and stops there). Times in microseconds, median of REPS.
//   nvcc -std=c++17 -O2 -arch=sm_90 alias_costs.cu -lcuda -o alias_costs && ./alias_costs [PAGES] [REPS] [ONE_HANDLE]
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK(x)                                                             \
  do {                                                                       \
    CUresult r_ = (x);                                                       \
    if (r_ != CUDA_SUCCESS) {                                                \
      const char* s_ = nullptr;                                              \
      cuGetErrorString(r_, &s_);                                             \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, s_);    \
      std::exit(1);                                                          \
    }                                                                        \
  } while (0)

using clk = std::chrono::steady_clock;
static double us(clk::time_point a, clk::time_point b) { return std::chrono::duration<double, std::micro>(b - a).count(); }
static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int main(int argc, char** argv) {
  const std::size_t pages = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 32;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 20;
  const int mode = argc > 3 ? std::atoi(argv[3]) : 0;
  const bool one_handle = mode != 0, with_b = mode != 1;
  CHECK(cuInit(0));
  cudaSetDevice(0);
  cudaFree(nullptr);  // the primary context
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = 0;
  std::size_t page = 0;
  CHECK(cuMemGetAllocationGranularity(&page, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
  const std::size_t bytes = pages * page;
  CUdeviceptr a = 0, b = 0;
  CHECK(cuMemAddressReserve(&a, bytes, 0, 0, 0));
  CHECK(cuMemAddressReserve(&b, bytes, 0, 0, 0));
  CUmemAccessDesc access{};
  access.location = prop.location;
  access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;

  std::vector<double> create, map_whole, grant_whole, map_pages, grant_once, grant_each, unmap_pages, unmap_whole;
  bool aliased_ok = true;
  for (int r = 0; r < reps; ++r) {
    std::vector<CUmemGenericAllocationHandle> hs(one_handle ? 1 : pages);
    auto t0 = clk::now();
    for (auto& h : hs) CHECK(cuMemCreate(&h, one_handle ? bytes : page, &prop, 0));
    auto t1 = clk::now();
    if (one_handle) CHECK(cuMemMap(a, bytes, 0, hs[0], 0));
    else for (std::size_t i = 0; i < pages; ++i) CHECK(cuMemMap(a + i * page, page, 0, hs[i], 0));
    auto t2 = clk::now();
    CHECK(cuMemSetAccess(a, bytes, &access, 1));
    auto t3 = clk::now();
    if (!with_b) {
      if (one_handle) CHECK(cuMemUnmap(a, bytes));
      for (auto& h : hs) CHECK(cuMemRelease(h));
      auto t4 = clk::now();
      create.push_back(us(t0, t1));
      map_whole.push_back(us(t1, t2));
      grant_whole.push_back(us(t2, t3));
      unmap_whole.push_back(us(t3, t4));
      continue;
    }
    for (std::size_t i = 0; i < pages; ++i)
      CHECK(one_handle ? cuMemMap(b + i * page, page, i * page, hs[0], 0) : cuMemMap(b + i * page, page, 0, hs[i], 0));
    auto t4 = clk::now();
    if (r % 2 == 0) {
      CHECK(cuMemSetAccess(b, bytes, &access, 1));  // one grant over `pages` mappings
    } else {
      for (std::size_t i = 0; i < pages; ++i) CHECK(cuMemSetAccess(b + i * page, page, &access, 1));
    }
    auto t5 = clk::now();
    // A write through A, read through B.
    cudaMemset(reinterpret_cast<void*>(a), r & 0xff, bytes);
    std::vector<unsigned char> back(64);
    cudaMemcpy(back.data(), reinterpret_cast<void*>(b + bytes - 64), 64, cudaMemcpyDeviceToHost);
    aliased_ok = aliased_ok && std::all_of(back.begin(), back.end(), [&](unsigned char c) { return c == (r & 0xff); });
    cudaDeviceSynchronize();
    auto t6 = clk::now();
    for (std::size_t i = 0; i < pages; ++i) CHECK(cuMemUnmap(b + i * page, page));
    auto t7 = clk::now();
    if (one_handle) CHECK(cuMemUnmap(a, bytes));
    else for (std::size_t i = 0; i < pages; ++i) CHECK(cuMemUnmap(a + i * page, page));
    for (auto& h : hs) CHECK(cuMemRelease(h));
    auto t8 = clk::now();
    create.push_back(us(t0, t1));
    map_whole.push_back(us(t1, t2));
    grant_whole.push_back(us(t2, t3));
    map_pages.push_back(us(t3, t4) / pages);
    (r % 2 == 0 ? grant_once : grant_each).push_back(us(t4, t5));
    unmap_pages.push_back(us(t6, t7) / pages);
    unmap_whole.push_back(us(t7, t8));
  }
  std::printf("page %zu bytes, %zu pages (%zu MiB), %s, %d repetitions, medians in us\n", page, pages, bytes >> 20,
              one_handle ? "one handle" : "one handle per page", reps);
  std::printf("cuMemCreate of all %zu pages, sum     %9.1f\n", pages, median(create));
  std::printf("cuMemMap of all pages at A, sum        %9.1f\n", median(map_whole));
  std::printf("cuMemSetAccess over A, once           %9.1f\n", median(grant_whole));
  if (with_b) {
    std::printf("cuMemMap of one page at B, each        %9.1f\n", median(map_pages));
    std::printf("cuMemSetAccess over B (%zu mappings)   %9.1f\n", pages, median(grant_once));
    std::printf("cuMemSetAccess of each page of B, sum  %9.1f\n", median(grant_each));
    std::printf("cuMemUnmap of one page of B, each      %9.1f\n", median(unmap_pages));
  }
  std::printf("cuMemUnmap of A + cuMemRelease, sum    %9.1f\n", median(unmap_whole));
  if (with_b) std::printf("a write through A read through B: %s\n", aliased_ok ? "yes, every repetition" : "NO");
  return aliased_ok ? 0 : 2;
}
