// caching_options::remap_pending_pages on the GPU: pages under a free still pending on stream s (held
// there by a host function) are mapped at a new block of s too; the old work reads them at the old
// address, the new work writes them at the new one, in stream order, and the old address is unmapped
// once the free's event has completed. cuda_vmm_backend counts a remapped chunk's memory once, until its
// last mapping goes, as the allocator does.
#include <catch2/catch.hpp>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cuda/allocators.hpp"
#include "cuda/cuda_support.hpp"
#include "cuda/stream_blocker.hpp"
#include "cuda/stream_kernels.hpp"
#include "support/page_sharing_options.hpp"

using namespace stash_test;

TEST_CASE("remap (GPU): a kernel writes pages remapped from a pending free at their new address",
          "[cuda][streams][remap]") {
  const stash::caching_options o = remapping();
  device_vmm alloc{stash::cuda_vmm_backend(current_device()), o};
  const std::size_t page = alloc.backend().page_size();
  const std::size_t words_per_page = page / sizeof(unsigned);
  scoped_stream s;
  unsigned long long* bad = nullptr;
  CUDA_REQUIRE(cudaMalloc(reinterpret_cast<void**>(&bad), 3 * sizeof(unsigned long long)));
  CUDA_REQUIRE(cudaMemsetAsync(bad, 0, 3 * sizeof(unsigned long long), s.s));

  auto* x = static_cast<unsigned*>(alloc.allocate(4 * page, s.s));
  CUDA_REQUIRE(launch_fill(x, 4 * words_per_page, 0xAAAA'AAAAu, s.s));
  CUDA_REQUIRE(launch_count_mismatches(x, 4 * words_per_page, 0xAAAA'AAAAu, bad, s.s));  // the old work
  void* guard = alloc.allocate(page, s.s);
  CHECK(reinterpret_cast<std::uintptr_t>(guard) == reinterpret_cast<std::uintptr_t>(x) + 4 * page);
  unsigned* y = nullptr;
  {
    // Nothing queued on s from here runs before release(), so the event of x's free stays incomplete
    // while y is placed. No kernel is launched while s is held: under compute-sanitizer a launch waits
    // for its kernel, which would wait for the release.
    stream_blocker hold(s.s);
    alloc.deallocate(x, s.s);
    y = static_cast<unsigned*>(alloc.allocate(5 * page, s.s));  // above the guard: x's pages 1-3 remapped
    REQUIRE(alloc.page_moves() == 3);
    REQUIRE(alloc.backend().aliased_pages() == 3);
    CHECK(alloc.reserved_bytes() == alloc.backend().mapped_bytes());
    CHECK(hold.timed_out() == false);
    hold.release();
  }
  // The new work, at the new address: stream order puts it after the old work's read of x.
  CUDA_REQUIRE(launch_fill(y, 5 * words_per_page, 0xBBBB'BBBBu, s.s));
  CUDA_REQUIRE(launch_count_mismatches(y, 5 * words_per_page, 0xBBBB'BBBBu, bad + 1, s.s));
  // The old address maps the same memory until the allocator unmaps it (it makes no call here).
  CUDA_REQUIRE(launch_count_mismatches(x + words_per_page, 3 * words_per_page, 0xBBBB'BBBBu, bad + 2, s.s));
  CUDA_REQUIRE(cudaStreamSynchronize(s.s));
  std::vector<unsigned long long> mismatches(3);
  CUDA_REQUIRE(cudaMemcpy(mismatches.data(), bad, 3 * sizeof(unsigned long long), cudaMemcpyDeviceToHost));
  CHECK(mismatches[0] == 0);  // the old work read x's data: the new writes came after it
  CHECK(mismatches[1] == 0);
  CHECK(mismatches[2] == 0);  // one physical page at two addresses

  alloc.trim_cache(SIZE_MAX);  // the free's event has completed: the old address is unmapped
  CHECK(alloc.backend().aliased_pages() == 0);
  CHECK(alloc.reserved_bytes() == alloc.backend().mapped_bytes());
  alloc.deallocate(y, s.s);
  alloc.deallocate(guard, s.s);
  alloc.empty_cache();
  CHECK(alloc.backend().mapped_bytes() == 0);
  CUDA_REQUIRE(cudaFree(bad));
}

TEST_CASE("remap (GPU): cuda_vmm_backend counts a remapped chunk's memory once, until its last mapping goes",
          "[cuda][backend][vmm][remap]") {
  // A chunk of 8 pages (one physical allocation) at pages 0-7, remapped to pages 8-15: pages 0-7 are an
  // alias then. cuMemRelease frees an allocation only once nothing maps it, so whichever mapping goes
  // last takes the memory: mapped_bytes() says so, and the device's free memory agrees.
  const int device = current_device();
  stash::cuda_vmm_backend b(device);
  const std::size_t page = b.page_size();
  const std::uintptr_t base = b.reserve(32 * page);
  const std::size_t free_before = free_memory(device);
  REQUIRE(b.map_pages(base, 8));
  REQUIRE(b.remap_pages(base, base + 8 * page, 8));
  CHECK(b.mapped_pages() == 8);
  CHECK(b.aliased_pages() == 8);
  CHECK(b.mapped_bytes() == 8 * page);  // one allocation, mapped twice
  SECTION("the alias goes first") {
    b.unmap_alias(base, 8);
    CHECK(b.aliased_pages() == 0);
    CHECK(b.mapped_bytes() == 8 * page);
    b.unmap_pages(base + 8 * page, 8);
    CHECK(b.mapped_bytes() == 0);
  }
  SECTION("the chunk goes first, where it belongs: the alias holds its memory") {
    b.unmap_pages(base + 8 * page, 8);
    CHECK(b.mapped_pages() == 0);
    CHECK(b.aliased_pages() == 8);
    CHECK(b.mapped_bytes() == 8 * page);
    CHECK(free_before - free_memory(device) >= 8 * page);  // the driver holds it too
    b.unmap_alias(base, 8);
    CHECK(b.aliased_pages() == 0);
    CHECK(b.mapped_bytes() == 0);
  }
  SECTION("remapped again, then moved: two aliases, the memory counted once") {
    REQUIRE(b.remap_pages(base + 8 * page, base + 16 * page, 8));  // pages 8-15 an alias too
    REQUIRE(b.move_pages(base + 16 * page, base + 24 * page, 8));
    CHECK(b.aliased_pages() == 16);
    CHECK(b.mapped_bytes() == 8 * page);
    b.unmap_pages(base + 24 * page, 8);
    CHECK(b.mapped_bytes() == 8 * page);
    b.unmap_alias(base, 8);
    CHECK(b.mapped_bytes() == 8 * page);  // pages 8-15 still map it
    CHECK(free_before - free_memory(device) >= 8 * page);
    b.unmap_alias(base + 8 * page, 8);
    CHECK(b.mapped_bytes() == 0);
  }
  CHECK(b.mapped_pages() == 0);
  CHECK(abs_diff(free_memory(device), free_before) <= 2 * page);  // the driver gave it back
}

TEST_CASE("remap (GPU): a remapped chunk given back while its alias waits stays in reserved and mapped bytes",
          "[cuda][streams][remap]") {
  // As tests/test_remap.cpp's "a remapped chunk given back while its alias waits counts its memory until
  // the alias goes": y, on x's remapped pages 1-3, is freed as completed while x's free is still pending
  // (s held by a host function; nothing was queued on y), and trim_cache gives y's pages back at y's
  // address (cuMemUnmap, cuMemRelease). The memory of pages 1-3 stays held through x's aliases until x's
  // free completes: the allocator counts it, and so does the backend.
  const stash::caching_options o = remapping();
  device_vmm alloc{stash::cuda_vmm_backend(current_device()), o};
  const auto& b = alloc.backend();
  const std::size_t page = b.page_size();
  scoped_stream s;
  void* x = alloc.allocate(4 * page, s.s);
  void* guard = alloc.allocate(page, s.s);
  REQUIRE(reinterpret_cast<std::uintptr_t>(guard) == reinterpret_cast<std::uintptr_t>(x) + 4 * page);
  {
    // Nothing queued on s from here runs before release(): x's free stays pending throughout.
    stream_blocker hold(s.s);
    alloc.deallocate(x, s.s);
    void* y = alloc.allocate(5 * page, s.s);  // above the guard: x's pages 1-3 remapped, 2 pages new
    REQUIRE(alloc.page_moves() == 3);
    REQUIRE(b.aliased_pages() == 3);
    CHECK(b.mapped_bytes() == 7 * page);
    CHECK(alloc.reserved_bytes() == b.mapped_bytes());
    alloc.deallocate_completed(y);
    alloc.trim_cache(0);  // never waits: y's pages go back, x's aliases wait for x's free
    REQUIRE(b.aliased_pages() == 3);
    CHECK(b.mapped_pages() == 2);        // x's page 0 and the guard's, where they belong
    CHECK(b.mapped_bytes() == 5 * page);  // and x's pages 1-3, through the aliases
    CHECK(alloc.reserved_bytes() == b.mapped_bytes());
    CHECK(alloc.stats().reserved_bytes == alloc.reserved_bytes());
    CHECK(hold.timed_out() == false);
    hold.release();
  }
  CUDA_REQUIRE(cudaStreamSynchronize(s.s));
  alloc.trim_cache(0);  // x's free has completed: the aliases are unmapped, and the memory goes with them
  CHECK(b.aliased_pages() == 0);
  CHECK(b.mapped_bytes() == page);  // the guard's
  CHECK(alloc.reserved_bytes() == b.mapped_bytes());
  CHECK(alloc.stats().reserved_bytes == alloc.reserved_bytes());
  alloc.deallocate(guard, s.s);
  alloc.empty_cache();
  CHECK(b.mapped_bytes() == 0);
  CHECK(alloc.reserved_bytes() == 0);
}
