// page_costs: what one physical page operation of cuda_vmm_backend costs on this GPU (docs/design.md).
// Build: part of bench/ (target page_costs). Run on a GPU machine: build/.../bench/page_costs
// [--no-peers]: device pages mapped for device 0 alone (peer_access::none) rather than for every
// device that can reach it, and what granting a peer afterwards costs. [--enable-peer-access]: the
// devices enable peer access to each other first, so that grants to a peer are made with it enabled.
// Also: chunks created shareable (POSIX file descriptor handle type, option shareable:on) against not,
// and one export.
#include "peer_access.hpp"
#include "stash/backend/cuda_vmm_backend.hpp"
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <vector>
#include <algorithm>
#include <string_view>
#include <unistd.h>
using clk = std::chrono::steady_clock;
static double us(clk::time_point a, clk::time_point b) { return std::chrono::duration<double, std::micro>(b - a).count(); }
int main(int argc, char** argv) {
  bool no_peers = false, enable_peer_access = false;
  for (int i = 1; i < argc; ++i) {
    no_peers = no_peers || std::string_view(argv[i]) == "--no-peers";
    enable_peer_access = enable_peer_access || std::string_view(argv[i]) == "--enable-peer-access";
  }
  // --enable-peer-access: device 0 and every peer enable access to each other first, as a program that
  // shares buffers between GPUs does, so that grants to the peer are made with it enabled.
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess) return 1;
  if (enable_peer_access) (void)stash::bench::enable_peer_access_with_device0(devices, true);
  if (cudaSetDevice(0) != cudaSuccess) return 1;
  stash::cuda_vmm_backend be(0, 0, false, no_peers ? stash::peer_access::none : stash::peer_access::all);
  const size_t page = be.page_size();
  std::printf("page size %zu; pages granted to %zu peer(s) of %zu that can reach device 0; peer access %s\n", page,
              be.peers().size(), be.reachable_peers().size(), enable_peer_access ? "enabled first" : "not enabled");
  auto base = be.reserve(size_t{64} << 30);
  const int n = 256;
  std::vector<double> t;
  {  // The first mapping of the process, apart: whatever the driver sets up once is in it.
    auto a = clk::now();
    if (!be.map_pages(base + size_t{1000} * page, 1)) return 1;
    std::printf("first map_pages of 1 page    %8.2f us\n", us(a, clk::now()));
    be.unmap_pages(base + size_t{1000} * page, 1);
  }
  auto report = [&](const char* what) { std::sort(t.begin(), t.end()); std::printf("%-28s median %8.2f us  p10 %8.2f  p90 %8.2f\n", what, t[t.size()/2], t[t.size()/10], t[t.size()*9/10]); t.clear(); };
  for (int i = 0; i < n; ++i) { auto a = clk::now(); if (!be.map_page(base + i * page)) return 1; t.push_back(us(a, clk::now())); }
  report("map_page (create+map+access)");
  for (int i = 0; i < n; ++i) { auto a = clk::now(); if (!be.move_page(base + i * page, base + (n + i) * page)) return 1; t.push_back(us(a, clk::now())); }
  report("move_page (sync+unmap+map+access)");
  for (int i = 0; i < n; ++i) { auto a = clk::now(); be.unmap_page(base + (n + i) * page); t.push_back(us(a, clk::now())); }
  report("unmap_page (sync+unmap+release)");
  // Chunks: n pages as one physical allocation (map_pages: cuMemCreate + cuMemMap + cuMemSetAccess),
  // and unmapped whole (unmap_pages: cuMemUnmap + cuMemRelease); per chunk and per page.
  for (const std::size_t pages : {std::size_t{1}, std::size_t{4}, std::size_t{16}, std::size_t{32}}) {
    const int chunks = 16;
    std::vector<double> unmap;
    for (int i = 0; i < chunks; ++i) {
      const auto at = base + static_cast<std::size_t>(i) * pages * page;
      auto a = clk::now();
      if (!be.map_pages(at, pages)) return 1;
      t.push_back(us(a, clk::now()));
    }
    for (int i = 0; i < chunks; ++i) {
      auto a = clk::now();
      be.unmap_pages(base + static_cast<std::size_t>(i) * pages * page, pages);
      unmap.push_back(us(a, clk::now()));
    }
    std::sort(t.begin(), t.end());
    std::sort(unmap.begin(), unmap.end());
    std::printf("map_pages of %2zu pages         median %8.2f us (%7.2f us per page); unmap_pages median %8.2f us\n",
                pages, t[t.size() / 2], t[t.size() / 2] / static_cast<double>(pages), unmap[unmap.size() / 2]);
    t.clear();
  }
  // An idle chunk backing new pages (paged arena, move_chunk_to): moved whole (move_pages: cuMemUnmap +
  // cuMemMap of its handle, then set_access as the block's grant does), against giving it back and
  // mapping as many pages anew (unmap_pages, then map_chunks + set_access). Median per chunk of 16.
  for (const std::size_t pages : {std::size_t{1}, std::size_t{8}, std::size_t{96}}) {
    const int chunks = 16;
    const std::uintptr_t to = base + static_cast<std::size_t>(chunks) * pages * page;
    std::vector<double> fresh;
    for (int i = 0; i < chunks; ++i)
      if (!be.map_pages(base + static_cast<std::size_t>(i) * pages * page, pages)) return 1;
    for (int i = 0; i < chunks; ++i) {
      const std::size_t at = static_cast<std::size_t>(i) * pages * page;
      auto a = clk::now();
      if (!be.move_pages(base + at, to + at, pages) || !be.set_access(to + at, pages)) return 1;
      t.push_back(us(a, clk::now()));
    }
    for (int i = 0; i < chunks; ++i) {
      const std::size_t at = static_cast<std::size_t>(i) * pages * page;
      auto a = clk::now();
      be.unmap_pages(to + at, pages);
      if (!be.map_chunks(base + at, pages, pages) || !be.set_access(base + at, pages)) return 1;
      fresh.push_back(us(a, clk::now()));
    }
    for (int i = 0; i < chunks; ++i) be.unmap_pages(base + static_cast<std::size_t>(i) * pages * page, pages);
    std::sort(t.begin(), t.end());
    std::sort(fresh.begin(), fresh.end());
    std::printf("chunk of %2zu pages: move_pages+access median %8.2f us; unmap_pages+map_chunks+access median %8.2f us\n",
                pages, t[t.size() / 2], fresh[fresh.size() / 2]);
    t.clear();
  }
  // A block of 3 GiB as the paged arena maps it (1534 pages inside, bench/RESULTS.md "a cold start that
  // does not grow with the block"): chunks of 32 pages each granted access (map_pages), the same chunks
  // under one grant (map_chunks + set_access), chunks of an eighth of the block under one grant
  // (chunks_per_block 8), one allocation; and cudaMalloc of 3 GiB. Total time to map, median of 5.
  {
    const std::size_t pages = 1534;
    auto unmap_all = [&](std::size_t chunk) {
      for (std::size_t q = 0; q < pages; q += chunk) be.unmap_pages(base + q * page, std::min(chunk, pages - q));
    };
    auto time_run = [&](const char* what, std::size_t chunk, bool one_grant) {
      for (int r = 0; r < 5; ++r) {
        auto a = clk::now();
        if (one_grant) {
          if (!be.map_chunks(base, pages, chunk) || !be.set_access(base, pages)) std::exit(1);
        } else {
          for (std::size_t q = 0; q < pages; q += chunk)
            if (!be.map_pages(base + q * page, std::min(chunk, pages - q))) std::exit(1);
        }
        t.push_back(us(a, clk::now()));
        unmap_all(chunk);
      }
      report(what);
    };
    time_run("3 GiB: 48 x map_pages(32)", 32, false);
    time_run("3 GiB: map_chunks(32)+access", 32, true);
    time_run("3 GiB: map_chunks(192)+access", 192, true);
    time_run("3 GiB: map_pages(1534)", pages, false);
    for (int r = 0; r < 5; ++r) {
      void* p = nullptr;
      auto a = clk::now();
      if (cudaMalloc(&p, pages * page) != cudaSuccess) return 1;
      t.push_back(us(a, clk::now()));
      cudaFree(p);
    }
    report("3 GiB: cudaMalloc");
  }
  for (int i = 0; i < n; ++i) { void* p; auto a = clk::now(); cudaMalloc(&p, page); cudaFree(p); t.push_back(us(a, clk::now())); }
  report("cudaMalloc+cudaFree 2 MiB");
  for (int i = 0; i < n; ++i) { auto a = clk::now(); cudaDeviceSynchronize(); t.push_back(us(a, clk::now())); }
  report("cudaDeviceSynchronize idle");

  // grant_peer after the fact: 128 runs of 2 pages (one grant call each), granted to the first peer.
  if (no_peers && !be.reachable_peers().empty()) {
    const int peer = be.reachable_peers().front();
    for (int i = 0; i < 128; ++i)
      if (!be.map_pages(base + static_cast<std::size_t>(3 * i) * page, 2)) return 1;
    auto a = clk::now();
    be.grant_peer(peer);
    const double grant = us(a, clk::now());
    std::printf("grant_peer(%d) over 128 runs of 2 pages: %.0f us (%.2f us per run)\n", peer, grant, grant / 128);
    for (int i = 0; i < 128; ++i) be.unmap_pages(base + static_cast<std::size_t>(3 * i) * page, 2);
  }

  // Pinned host pages through the same API (CU_MEM_LOCATION_TYPE_HOST): do they work, are they what
  // cudaPointerGetAttributes calls host memory, and what do they cost?
  // Shareable memory (option shareable:on; stash_ipc_export): chunks created with the POSIX file
  // descriptor handle type against none, in alternating rounds on two backends of this run, and what
  // exporting a chunk's descriptor costs (cuMemExportToShareableHandle, then close).
  {
    stash::cuda_vmm_backend plain(0, 0, false), shareable(0, 0, true);
    const auto plain_base = plain.reserve(size_t{8} << 30), shareable_base = shareable.reserve(size_t{8} << 30);
    for (const std::size_t pages : {std::size_t{1}, std::size_t{32}}) {
      std::vector<double> with_none, with_fd, unmap_none, unmap_fd;
      const int chunks = 16;
      for (int round = 0; round < 4; ++round) {
        for (int side = 0; side < 2; ++side) {
          stash::cuda_vmm_backend& b = side == (round % 2) ? plain : shareable;
          const auto at = &b == &plain ? plain_base : shareable_base;
          auto& made = &b == &plain ? with_none : with_fd;
          auto& gone = &b == &plain ? unmap_none : unmap_fd;
          for (int i = 0; i < chunks; ++i) {
            auto a = clk::now();
            if (!b.map_pages(at + static_cast<std::size_t>(i) * pages * page, pages)) return 1;
            made.push_back(us(a, clk::now()));
          }
          for (int i = 0; i < chunks; ++i) {
            auto a = clk::now();
            b.unmap_pages(at + static_cast<std::size_t>(i) * pages * page, pages);
            gone.push_back(us(a, clk::now()));
          }
        }
      }
      for (auto* v : {&with_none, &with_fd, &unmap_none, &unmap_fd}) std::sort(v->begin(), v->end());
      std::printf("map_pages of %2zu pages: handle type none median %8.2f us, POSIX fd %8.2f us; unmap_pages %8.2f / %8.2f us\n",
                  pages, with_none[with_none.size() / 2], with_fd[with_fd.size() / 2], unmap_none[unmap_none.size() / 2],
                  unmap_fd[unmap_fd.size() / 2]);
    }
    if (!shareable.map_pages(shareable_base, 32)) return 1;
    for (int i = 0; i < 64; ++i) {
      auto a = clk::now();
      const int fd = shareable.export_chunk(shareable_base);
      ::close(fd);
      t.push_back(us(a, clk::now()));
    }
    report("export_chunk of 32 pages + close");
    shareable.unmap_pages(shareable_base, 32);
  }
  try {
    stash::cuda_pinned_vmm_backend host(0);
    const size_t hpage = host.page_size();
    auto hbase = host.reserve(size_t{64} << 30);
    const int m = 64;
    for (int i = 0; i < m; ++i) { auto a = clk::now(); if (!host.map_page(hbase + i * hpage)) { std::printf("host map_page failed\n"); return 1; } t.push_back(us(a, clk::now())); }
    std::printf("host page size %zu\n", hpage);
    report("host map_page");
    auto* bytes = reinterpret_cast<unsigned char*>(hbase);
    for (size_t i = 0; i < m * hpage; i += 4096) bytes[i] = static_cast<unsigned char>(i / 4096);
    cudaPointerAttributes attr{};
    cudaPointerGetAttributes(&attr, bytes);
    std::printf("host pages: cudaPointerGetAttributes type %d (1 = host, 2 = device), device %d\n", int(attr.type), attr.device);
    void* d = nullptr;
    cudaMalloc(&d, m * hpage);
    cudaStream_t s; cudaStreamCreate(&s);
    auto a = clk::now();
    cudaMemcpyAsync(d, bytes, m * hpage, cudaMemcpyHostToDevice, s);
    cudaStreamSynchronize(s);
    double up = us(a, clk::now());
    for (size_t i = 0; i < m * hpage; i += 4096) bytes[i] = 0;
    cudaMemcpyAsync(bytes, d, m * hpage, cudaMemcpyDeviceToHost, s);
    cudaStreamSynchronize(s);
    bool same = true;
    for (size_t i = 0; i < m * hpage; i += 4096) same = same && bytes[i] == static_cast<unsigned char>(i / 4096);
    std::printf("host pages round trip through the GPU: %s; H2D of %zu MiB took %.0f us (%.1f GB/s); last error %s\n",
                same ? "intact" : "CORRUPTED", m * hpage >> 20, up, m * hpage / up / 1e3, cudaGetErrorString(cudaGetLastError()));
    for (int i = 0; i < m; ++i) { auto b = clk::now(); host.unmap_page(hbase + i * hpage); t.push_back(us(b, clk::now())); }
    report("host unmap_page");
    void* ph = nullptr;
    a = clk::now(); cudaMallocHost(&ph, m * hpage); double pin = us(a, clk::now());
    cudaMemcpyAsync(d, ph, m * hpage, cudaMemcpyHostToDevice, s); cudaStreamSynchronize(s);
    a = clk::now(); cudaMemcpyAsync(d, ph, m * hpage, cudaMemcpyHostToDevice, s); cudaStreamSynchronize(s);
    double up2 = us(a, clk::now());
    std::printf("cudaMallocHost %zu MiB: %.0f us; its H2D %.0f us (%.1f GB/s)\n", m * hpage >> 20, pin, up2, m * hpage / up2 / 1e3);
    cudaFreeHost(ph); cudaFree(d); cudaStreamDestroy(s);
  } catch (const std::exception& e) {
    std::printf("pinned VMM pages unavailable: %s\n", e.what());
  }
}
