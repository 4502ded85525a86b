// page_costs: what one physical page operation of cuda_vmm_backend costs on this GPU (docs/design.md).
// Build: part of bench/ (target page_costs). Run on a GPU machine: build/.../bench/page_costs
#include "stash/backend/cuda_vmm_backend.hpp"
#include <chrono>
#include <cstdio>
#include <vector>
#include <algorithm>
using clk = std::chrono::steady_clock;
static double us(clk::time_point a, clk::time_point b) { return std::chrono::duration<double, std::micro>(b - a).count(); }
int main() {
  stash::cuda_vmm_backend be(0);
  const size_t page = be.page_size();
  std::printf("page size %zu\n", page);
  auto base = be.reserve(size_t{64} << 30);
  const int n = 256;
  std::vector<double> t;
  auto report = [&](const char* what) { std::sort(t.begin(), t.end()); std::printf("%-28s median %8.2f us  p10 %8.2f  p90 %8.2f\n", what, t[t.size()/2], t[t.size()/10], t[t.size()*9/10]); t.clear(); };
  for (int i = 0; i < n; ++i) { auto a = clk::now(); if (!be.map_page(base + i * page)) return 1; t.push_back(us(a, clk::now())); }
  report("map_page (create+map+access)");
  for (int i = 0; i < n; ++i) { auto a = clk::now(); if (!be.move_page(base + i * page, base + (n + i) * page)) return 1; t.push_back(us(a, clk::now())); }
  report("move_page (sync+unmap+map+access)");
  for (int i = 0; i < n; ++i) { auto a = clk::now(); be.unmap_page(base + (n + i) * page); t.push_back(us(a, clk::now())); }
  report("unmap_page (sync+unmap+release)");
  for (int i = 0; i < n; ++i) { void* p; auto a = clk::now(); cudaMalloc(&p, page); cudaFree(p); t.push_back(us(a, clk::now())); }
  report("cudaMalloc+cudaFree 2 MiB");
  for (int i = 0; i < n; ++i) { auto a = clk::now(); cudaDeviceSynchronize(); t.push_back(us(a, clk::now())); }
  report("cudaDeviceSynchronize idle");
}
