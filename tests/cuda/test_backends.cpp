// The CUDA helpers and the three CUDA backends on their own, without the caching allocator.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "cuda/cuda_support.hpp"
#include "cuda/kernels.hpp"
#include "stash/backend/cuda_device_backend.hpp"
#include "stash/backend/cuda_pinned_backend.hpp"
#include "stash/backend/cuda_vmm_backend.hpp"
#include "stash/cuda/cuda_check.hpp"
#include "stash/cuda/device_guard.hpp"
#include "stash/cuda/driver_api.hpp"
#include "stash/device_manager.hpp"

using namespace stash_test;

TEST_CASE("device_manager counts and resolves devices", "[cuda][device_manager]") {
  using stash::device_manager;
  const int count = device_manager::device_count();
  REQUIRE(count >= 1);
  REQUIRE(device_manager::has_gpu());
  const int current = device_manager::current_device();
  CHECK(current >= 0);
  CHECK(current < count);
  CHECK(device_manager::resolve(-1) == current);
  for (int d = 0; d < count; ++d) CHECK(device_manager::resolve(d) == d);

  for (int bad : {count, count + 7, -2}) {
    try {
      (void)device_manager::resolve(bad);
      FAIL("resolve(" << bad << ") did not throw");
    } catch (const stash::invalid_device& e) {
      CHECK(e.device() == bad);
      CHECK(std::string(e.what()).find(std::to_string(bad)) != std::string::npos);
    }
  }

  const auto info = device_manager::memory(0);
  CHECK(info.total_bytes > 0);
  CHECK(info.free_bytes <= info.total_bytes);
  CHECK(current_device() == current);
}

TEST_CASE("cuda::check throws cuda_error naming the call and clears the last error",
          "[cuda][check][api-error]") {
  int device = -1;
  CHECK_NOTHROW(STASH_CUDA_CHECK(cudaGetDevice(&device)));
  try {
    STASH_CUDA_CHECK(cudaSetDevice(stash::device_manager::device_count() + 100));
    FAIL("no exception");
  } catch (const stash::cuda_error& e) {
    CHECK(e.code() == static_cast<int>(cudaErrorInvalidDevice));
    const std::string what = e.what();
    CHECK(what.find("cudaSetDevice") != std::string::npos);
    CHECK(what.find("cudaErrorInvalidDevice") != std::string::npos);
  }
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE("driver entry points are found without linking libcuda", "[cuda][driver]") {
  const auto& api = stash::cuda::driver_api::get();
  CHECK(api.cuMemCreate != nullptr);
  CHECK(api.cuMemMap != nullptr);
  CHECK(api.cuMemSetAccess != nullptr);
  CHECK(&api == &stash::cuda::driver_api::get());  // fetched once
  try {
    STASH_CU_CHECK(CUDA_ERROR_INVALID_VALUE);
    FAIL("no exception");
  } catch (const stash::cuda_error& e) {
    CHECK(e.code() == static_cast<int>(CUDA_ERROR_INVALID_VALUE));
    CHECK(std::string(e.what()).find("CUDA_ERROR_INVALID_VALUE") != std::string::npos);
  }
}

TEST_CASE("device_guard sets a device for a scope and restores the previous one",
          "[cuda][device_guard][api-error]") {
  const int before = current_device();
  {
    stash::cuda::device_guard guard(-1);
    CHECK(current_device() == before);
    CHECK(guard.previous_device() == before);
  }
  for (int d = 0; d < device_count(); ++d) {
    {
      stash::cuda::device_guard guard(d);
      CHECK(current_device() == d);
    }
    CHECK(current_device() == before);
  }
  CHECK_THROWS_AS(stash::cuda::device_guard(device_count() + 3), stash::cuda_error);
  CHECK(current_device() == before);
  CHECK(cudaGetLastError() == cudaSuccess);
}

TEST_CASE("cuda_device_backend hands out device memory of its device", "[cuda][backend][device]") {
  const int device = current_device();
  stash::cuda_device_backend backend;  // the current device
  CHECK(backend.device() == device);
  CHECK(backend.granularity() == 512);
  STATIC_REQUIRE(stash::cuda_device_backend::kind == stash::memory_kind::device);

  void* a = backend.allocate(1 * MiB);
  void* b = backend.allocate(3 * 512);
  require_device_memory(a, device);
  require_device_memory(b, device);
  write_pattern(a, 1 * MiB, 1);
  write_pattern(b, 3 * 512, 2);
  CHECK(holds_pattern(a, 1 * MiB, 1));
  CHECK(holds_pattern(b, 3 * 512, 2));
  backend.deallocate(a, 1 * MiB);
  CHECK(holds_pattern(b, 3 * 512, 2));
  backend.deallocate(b, 3 * 512);
  CHECK(current_device() == device);

  CHECK_THROWS_AS(stash::cuda_device_backend(device_count()), stash::invalid_device);
}

TEST_CASE("cuda_device_backend returns nullptr when the device is out of memory",
          "[cuda][backend][device][oom][api-error]") {
  stash::cuda_device_backend backend(0);
  const auto total = stash::device_manager::memory(0).total_bytes;
  CHECK(backend.allocate(4 * total) == nullptr);
  // The out-of-memory is handled: the caller's next error check must not see it.
  CHECK(cudaGetLastError() == cudaSuccess);
  void* p = backend.allocate(MiB);
  require_device_memory(p, 0);
  backend.deallocate(p, MiB);
}

TEST_CASE("cuda_pinned_backend hands out page-locked host memory", "[cuda][backend][pinned]") {
  stash::cuda_pinned_backend backend;
  CHECK(backend.device() == -1);
  CHECK(backend.granularity() == 4096);
  STATIC_REQUIRE(stash::cuda_pinned_backend::kind == stash::memory_kind::pinned);

  const std::size_t bytes = 256 * KiB;
  auto* host = static_cast<unsigned char*>(backend.allocate(bytes));
  REQUIRE(host != nullptr);
  CHECK(attributes(host).type == cudaMemoryTypeHost);
  CHECK(reinterpret_cast<std::uintptr_t>(host) % 4096 == 0);

  // Host-writable, and a device copy round-trips through it.
  const auto v = pattern(bytes, 7);
  std::memcpy(host, v.data(), bytes);
  void* dev = nullptr;
  CUDA_REQUIRE(cudaMalloc(&dev, bytes));
  CUDA_REQUIRE(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice));
  std::memset(host, 0, bytes);
  CUDA_REQUIRE(cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost));
  CHECK(std::memcmp(host, v.data(), bytes) == 0);
  CUDA_REQUIRE(cudaFree(dev));
  backend.deallocate(host, bytes);
}

// [no-initcheck]: initcheck tracks what was written by virtual address, so data read at the address a
// page moved to looks uninitialized to it although it is exactly what was written.
TEST_CASE("cuda_vmm_backend maps, moves and unmaps physical pages", "[cuda][backend][vmm][no-initcheck]") {
  const int device = current_device();
  stash::cuda_vmm_backend backend(-1, 64 * MiB);
  const std::size_t page = backend.page_size();
  CHECK(backend.device() == device);
  REQUIRE(page >= 64 * KiB);
  CHECK((page & (page - 1)) == 0);
  if (page != 2 * MiB) WARN("VMM page size is " << page << " bytes (2 MiB expected on H100/H200)");
  CHECK(backend.default_reserve_bytes() == 64 * MiB);
  const std::size_t total = stash::device_manager::memory(device).total_bytes;
  CHECK(stash::cuda_vmm_backend(device).default_reserve_bytes() >= total + total / 2);
  CHECK(stash::cuda_vmm_backend(device).default_reserve_bytes() < total + total / 2 + page);

  CHECK_THROWS_AS(backend.map_page(0), stash::error);  // before reserve()
  const std::uintptr_t base = backend.reserve(0);
  REQUIRE(base != 0);
  CHECK(base % page == 0);
  CHECK(backend.base() == base);
  CHECK(backend.reserved_bytes() == 64 * MiB);
  CHECK_THROWS_AS(backend.reserve(page), stash::error);

  const std::size_t free_before = free_memory(device);
  REQUIRE(backend.map_page(base));
  REQUIRE(backend.map_page(base + 3 * page));
  CHECK(backend.mapped_pages() == 2);
  CHECK(free_before - free_memory(device) >= 2 * page);
  auto* first = reinterpret_cast<void*>(base);
  require_device_memory(first, device);
  write_pattern(first, page, 11);
  write_pattern(reinterpret_cast<void*>(base + 3 * page), page, 12);

  // A second mapping of the same page, or an address outside the range, is refused.
  CHECK_THROWS_AS(backend.map_page(base), stash::invalid_pointer);
  CHECK_THROWS_AS(backend.map_page(base + 64 * MiB), stash::invalid_pointer);
  CHECK_THROWS_AS(backend.map_page(base + page / 2), stash::invalid_pointer);

  // Moving keeps the contents and takes no new memory.
  const std::size_t free_mapped = free_memory(device);
  REQUIRE(backend.move_page(base, base + page));
  CHECK_FALSE(backend.is_mapped(base));
  CHECK(backend.is_mapped(base + page));
  CHECK(backend.mapped_pages() == 2);
  CHECK(holds_pattern(reinterpret_cast<void*>(base + page), page, 11));
  CHECK(holds_pattern(reinterpret_cast<void*>(base + 3 * page), page, 12));
  CHECK(abs_diff(free_memory(device), free_mapped) <= 2 * page);  // page tables may take a page
  CHECK_THROWS_AS(backend.move_page(base, base + 5 * page), stash::invalid_pointer);       // not mapped
  CHECK_THROWS_AS(backend.move_page(base + page, base + 3 * page), stash::invalid_pointer);  // taken

  // Move-only: the mappings travel with the object.
  stash::cuda_vmm_backend moved(std::move(backend));
  CHECK(backend.base() == 0);  // NOLINT(bugprone-use-after-move): moved-from state is specified
  CHECK(moved.mapped_pages() == 2);
  CHECK(holds_pattern(reinterpret_cast<void*>(base + page), page, 11));

  moved.unmap_page(base + page);
  moved.unmap_page(base + page);  // no longer mapped: ignored
  moved.unmap_page(base + 3 * page);
  CHECK(moved.mapped_pages() == 0);
  CHECK(abs_diff(free_memory(device), free_before) <= 2 * page);

  // The destructor gives back what is still mapped.
  REQUIRE(moved.map_page(base + 7 * page));
  CHECK(current_device() == device);
}

TEST_CASE("cuda_vmm_backend maps a chunk of pages as one allocation and gives it back whole",
          "[cuda][backend][vmm][chunks][no-initcheck]") {
  const int device = current_device();
  stash::cuda_vmm_backend backend(-1, 64 * MiB);
  const std::size_t page = backend.page_size();
  const std::uintptr_t base = backend.reserve(0);
  const std::size_t free_before = free_memory(device);

  REQUIRE(backend.map_pages(base + page, 5));  // pages 1-5, one allocation
  CHECK(backend.mapped_pages() == 5);
  CHECK(free_before - free_memory(device) >= 5 * page);
  for (std::size_t i = 1; i <= 5; ++i) CHECK(backend.is_mapped(base + i * page));
  CHECK_FALSE(backend.is_mapped(base));
  // Written and read across the pages in one copy: one range, readable and writable by the device.
  auto* chunk = reinterpret_cast<void*>(base + page);
  require_device_memory(chunk, device);
  write_pattern(chunk, 5 * page, 21);
  CHECK(holds_pattern(chunk, 5 * page, 21));

  CHECK_THROWS_AS(backend.map_pages(base + 5 * page, 2), stash::invalid_pointer);   // page 5 is mapped
  CHECK_THROWS_AS(backend.map_pages(base + 31 * page, 2), stash::invalid_pointer);  // past the range
  CHECK_THROWS_AS(backend.move_page(base + 2 * page, base + 8 * page), stash::invalid_pointer);  // in a chunk
  backend.unmap_page(base + page);       // not the whole chunk: ignored
  backend.unmap_pages(base + page, 4);   // not the whole chunk: ignored
  CHECK(backend.mapped_pages() == 5);
  CHECK(holds_pattern(chunk, 5 * page, 21));

  backend.unmap_pages(base + page, 5);
  CHECK(backend.mapped_pages() == 0);
  CHECK_FALSE(backend.is_mapped(base + 3 * page));
  CHECK(abs_diff(free_memory(device), free_before) <= 2 * page);

  // A chunk of one page is a page: it moves.
  REQUIRE(backend.map_pages(base, 1));
  write_pattern(reinterpret_cast<void*>(base), page, 22);
  REQUIRE(backend.move_page(base, base + 9 * page));
  CHECK(holds_pattern(reinterpret_cast<void*>(base + 9 * page), page, 22));
  REQUIRE(backend.map_pages(base + 10 * page, 3));  // left for the destructor, with page 9
  CHECK(current_device() == device);
}

TEST_CASE("cuda_vmm_backend moves a chunk whole to unmapped pages; granted there, a kernel uses all of it",
          "[cuda][backend][vmm][chunks]") {
  const int device = current_device();
  stash::cuda_vmm_backend backend(-1, 64 * MiB);
  const std::size_t page = backend.page_size();
  const std::uintptr_t base = backend.reserve(0);

  REQUIRE(backend.map_chunks(base + page, 4, 4));  // pages 1-4, one allocation
  REQUIRE(backend.set_access(base + page, 4));
  REQUIRE(backend.map_pages(base + 12 * page, 1));
  const std::size_t free_mapped = free_memory(device);

  CHECK_THROWS_AS(backend.move_pages(base + 2 * page, base + 20 * page, 3),
                  stash::invalid_pointer);  // inside
  CHECK_THROWS_AS(backend.move_pages(base + page, base + 20 * page, 3), stash::invalid_pointer);  // not whole
  CHECK_THROWS_AS(backend.move_pages(base + page, base + 10 * page, 4), stash::invalid_pointer);  // 12 mapped
  CHECK_THROWS_AS(backend.move_pages(base + page, base + 30 * page, 4),
                  stash::invalid_pointer);  // past the range
  CHECK(backend.is_mapped(base + page));

  REQUIRE(backend.move_pages(base + page, base + 16 * page, 4));  // pages 16-19
  CHECK(backend.mapped_pages() == 5);
  for (std::size_t i = 1; i <= 4; ++i) CHECK_FALSE(backend.is_mapped(base + i * page));
  for (std::size_t i = 16; i <= 19; ++i) CHECK(backend.is_mapped(base + i * page));
  CHECK(abs_diff(free_memory(device), free_mapped) <= 2 * page);  // no new memory; page
                                                                  // tables may take a page
  REQUIRE(backend.set_access(base + 16 * page, 4));

  auto* data = reinterpret_cast<float*>(base + 16 * page);
  require_device_memory(data, device);
  const std::size_t n = 4 * page / sizeof(float);
  CUDA_REQUIRE(launch_affine_fill(data, n, 1.0f, 0.0f));
  CUDA_REQUIRE(launch_affine_update(data, n, 2.0f, 1.0f, nullptr));
  CUDA_REQUIRE(cudaDeviceSynchronize());
  std::vector<float> back(n);
  CUDA_REQUIRE(cudaMemcpy(back.data(), data, n * sizeof(float), cudaMemcpyDeviceToHost));
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < n; ++i) wrong += back[i] == static_cast<float>(i) * 2.0f + 1.0f ? 0 : 1;
  CHECK(wrong == 0);

  // A chunk of one page moves too; the chunk moved is unmapped whole from its new place.
  REQUIRE(backend.move_pages(base + 12 * page, base + 13 * page, 1));
  CHECK(backend.is_mapped(base + 13 * page));
  backend.unmap_pages(base + 16 * page, 4);
  CHECK(backend.mapped_pages() == 1);  // page 13 is left for the destructor
  CHECK(current_device() == device);
}

TEST_CASE("cuda_vmm_backend maps a run as several chunks and grants access to all of it at once",
          "[cuda][backend][vmm][chunks][no-initcheck]") {
  const int device = current_device();
  stash::cuda_vmm_backend backend(-1, 64 * MiB);
  const std::size_t page = backend.page_size();
  const std::uintptr_t base = backend.reserve(0);
  const std::size_t free_before = free_memory(device);

  REQUIRE(backend.map_chunks(base + page, 10, 4));  // pages 1-4, 5-8 and 9-10: three allocations
  CHECK(backend.mapped_pages() == 10);
  CHECK(free_before - free_memory(device) >= 10 * page);
  REQUIRE(backend.set_access(base + page, 10));  // one grant over the three
  auto* run = reinterpret_cast<void*>(base + page);
  require_device_memory(run, device);
  write_pattern(run, 10 * page, 31);
  CHECK(holds_pattern(run, 10 * page, 31));

  // A page moved next to the run, granted by the move, is granted again with it: harmless.
  REQUIRE(backend.map_pages(base + 12 * page, 1));
  write_pattern(reinterpret_cast<void*>(base + 12 * page), page, 32);
  REQUIRE(backend.move_page(base + 12 * page, base + 11 * page));
  REQUIRE(backend.set_access(base + page, 11));
  CHECK(holds_pattern(run, 10 * page, 31));
  CHECK(holds_pattern(reinterpret_cast<void*>(base + 11 * page), page, 32));

  CHECK_THROWS_AS(backend.set_access(base + page, 12), stash::invalid_pointer);       // page 12 is not mapped
  CHECK_THROWS_AS(backend.map_chunks(base + 10 * page, 2, 1), stash::invalid_pointer);  // page 10 is mapped
  CHECK_THROWS_AS(backend.move_page(base + 5 * page, base + 20 * page),
                  stash::invalid_pointer);  // in a chunk
  backend.unmap_pages(base + page, 10);  // not one chunk: ignored
  CHECK(backend.mapped_pages() == 11);

  backend.unmap_pages(base + 5 * page, 4);  // the middle chunk alone; its neighbours keep their data
  CHECK(backend.mapped_pages() == 7);
  CHECK_FALSE(backend.is_mapped(base + 6 * page));
  const auto expected = pattern(10 * page, 31);
  std::vector<unsigned char> back(page);
  CUDA_REQUIRE(cudaMemcpy(back.data(), reinterpret_cast<void*>(base + 9 * page), page, cudaMemcpyDefault));
  CHECK(std::equal(back.begin(), back.end(), expected.begin() + 8 * page));
  CHECK(holds_pattern(run, 4 * page, 31));

  backend.unmap_pages(base + page, 4);
  backend.unmap_pages(base + 9 * page, 2);
  backend.unmap_page(base + 11 * page);
  CHECK(backend.mapped_pages() == 0);
  CHECK(abs_diff(free_memory(device), free_before) <= 2 * page);
  CHECK(current_device() == device);
}

TEST_CASE("cuda_vmm_backend destructor releases every page", "[cuda][backend][vmm]") {
  const int device = current_device();
  const std::size_t free_before = free_memory(device);
  std::size_t page = 0;
  {
    stash::cuda_vmm_backend backend(device, 256 * MiB);
    page = backend.page_size();
    const std::uintptr_t base = backend.reserve(0);
    for (std::size_t i = 0; i < 16; ++i) REQUIRE(backend.map_page(base + i * page));
    CHECK(free_before - free_memory(device) >= 16 * page);
  }
  CHECK(abs_diff(free_memory(device), free_before) <= 2 * page);
}

TEST_CASE("cuda_vmm_backend map_page returns false when the device is full",
          "[cuda][backend][vmm][oom][api-error]") {
  const int device = current_device();
  const std::size_t free_before = free_memory(device);
  // Take most of the memory with one cudaMalloc so that only a few hundred pages remain to map.
  void* ballast = nullptr;
  const std::size_t leave = 1 * GiB;
  REQUIRE(free_before > 2 * leave);
  // The driver may not hand out every free byte in one piece: back off until it does.
  for (std::size_t ask = free_before - leave; ask > free_before / 2; ask -= 256 * MiB) {
    if (cudaMalloc(&ballast, ask) == cudaSuccess) break;
    (void)cudaGetLastError();
    ballast = nullptr;
  }
  REQUIRE(ballast != nullptr);
  {
    stash::cuda_vmm_backend backend(device);
    const std::size_t page = backend.page_size();
    const std::uintptr_t base = backend.reserve(0);
    std::size_t mapped = 0;
    while (backend.map_page(base + mapped * page)) {
      ++mapped;
      REQUIRE(mapped * page <= free_before);
    }
    INFO("mapped " << mapped << " pages of " << page << " bytes before running out");
    CHECK(mapped >= 1);
    CHECK(backend.mapped_pages() == mapped);
    CHECK_FALSE(backend.is_mapped(base + mapped * page));  // the failed page left nothing behind
    CHECK_FALSE(backend.map_page(base + mapped * page));
    CHECK(cudaGetLastError() == cudaSuccess);

    // Memory given back can be mapped again.
    backend.unmap_page(base);
    CHECK(backend.map_page(base + mapped * page));
    CHECK(backend.mapped_pages() == mapped);
  }
  CUDA_REQUIRE(cudaFree(ballast));
  CHECK(abs_diff(free_memory(device), free_before) <= 8 * MiB);
}

TEST_CASE("cuda_pinned_vmm_backend maps page-locked host pages the CPU and the device share",
          "[cuda][backend][vmm][pinned]") {
  const int device = current_device();
  stash::cuda_pinned_vmm_backend backend(-1, 16 * MiB);
  STATIC_REQUIRE(stash::cuda_pinned_vmm_backend::kind == stash::memory_kind::pinned);
  CHECK(backend.device() == -1);
  CHECK(backend.device_accessor() == device);
  const std::size_t page = backend.page_size();
  REQUIRE(page >= 4 * KiB);
  const std::uintptr_t base = backend.reserve(0);
  REQUIRE(backend.map_page(base));
  REQUIRE(backend.map_page(base + 2 * page));

  auto* host = reinterpret_cast<unsigned char*>(base);
  CHECK(attributes(host).type == cudaMemoryTypeHost);
  const auto v = pattern(page, 21);
  std::memcpy(host, v.data(), page);  // the CPU writes it directly

  // Through the device and back into the second page.
  void* dev = nullptr;
  CUDA_REQUIRE(cudaMalloc(&dev, page));
  CUDA_REQUIRE(cudaMemcpy(dev, host, page, cudaMemcpyHostToDevice));
  auto* second = reinterpret_cast<unsigned char*>(base + 2 * page);
  CUDA_REQUIRE(cudaMemcpy(second, dev, page, cudaMemcpyDeviceToHost));
  CHECK(std::memcmp(second, v.data(), page) == 0);
  CUDA_REQUIRE(cudaFree(dev));

  // A moved page keeps its contents, read by the CPU at the new address.
  REQUIRE(backend.move_page(base, base + page));
  CHECK(std::memcmp(reinterpret_cast<const void*>(base + page), v.data(), page) == 0);
  backend.unmap_page(base + page);
  backend.unmap_page(base + 2 * page);
  CHECK(backend.mapped_pages() == 0);
  CHECK(current_device() == device);
}
