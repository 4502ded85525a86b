// Issue 9's core cases on a real GPU: a failed request on the default (VMM) allocator gives back
// every page it mapped, so a "largest batch that fits" search by catching out_of_memory does not
// hold the device; and on cudaMalloc segments a small live block does not keep a large idle segment.
#include <catch2/catch.hpp>

#include <cstddef>
#include <string>

#include "cuda/allocators.hpp"
#include "cuda/cuda_support.hpp"

using namespace stash_test;

TEST_CASE("a failed VMM request unmaps what it mapped; the batch-size search holds nothing",
          "[cuda][allocator][oom][api-error]") {
  const int device = current_device();
  device_vmm alloc{stash::cuda_vmm_backend(device)};
  const std::size_t free_at_start = free_memory(device);
  const auto before = alloc.stats();

  // More than the device has free, less than the reservation (the device's memory and half as much again):
  // the request maps every free page before it fails.
  const std::size_t too_much = free_at_start + 2 * GiB;
  try {
    (void)alloc.allocate(too_much);
    FAIL("allocated more than the device has free");
  } catch (const stash::out_of_memory& e) {
    INFO(e.what());
    CHECK(e.device() == device);
    CHECK(e.reserved_bytes() == 0);
  }
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(alloc.reserved_bytes() == 0);
  CHECK(alloc.stats().allocated_bytes == before.allocated_bytes);
  CHECK(alloc.stats().reserved_bytes == 0);
  CHECK(abs_diff(free_memory(device), free_at_start) <= 64 * MiB);  // the pages went back to the driver

  // Largest batch that fits, found the way training scripts do: each failure leaves nothing held.
  std::size_t n = free_at_start + GiB;
  void* p = nullptr;
  int failures = 0;
  while (!p && n > GiB) {
    try {
      p = alloc.allocate(n);
    } catch (const stash::out_of_memory&) {
      ++failures;
      CHECK(alloc.reserved_bytes() == 0);
      CHECK(abs_diff(free_memory(device), free_at_start) <= 64 * MiB);
      n = n > free_at_start ? free_at_start - GiB : n - GiB;  // each try maps pages: keep them few
    }
  }
  INFO(failures << " failed tries; fitted " << n << " of " << free_at_start << " bytes free");
  REQUIRE(p != nullptr);
  CHECK(failures >= 1);
  require_device_memory(p, device);
  write_edges(p, n, 7);
  CHECK(holds_edges(p, n, 7));
  alloc.deallocate(p);
  alloc.empty_cache();
  CHECK(alloc.reserved_bytes() == 0);
  CHECK(abs_diff(free_memory(device), free_at_start) <= 64 * MiB);
}

TEST_CASE("cudaMalloc segments: a small live block does not keep a large idle segment",
          "[cuda][allocator][segregated]") {
  const int device = current_device();
  device_segregated alloc{stash::cuda_device_backend(device)};
  const std::size_t free_at_start = free_memory(device);
  void* large = alloc.allocate(64 * MiB);
  alloc.deallocate(large);
  void* small = alloc.allocate(4000);
  require_device_memory(small, device);
  write_edges(small, 4000, 3, 1000);
  alloc.empty_cache();
  CHECK(alloc.reserved_bytes() == 2 * MiB);  // the small block's own segment only
  CHECK(free_at_start - free_memory(device) <= 8 * MiB);
  CHECK(holds_edges(small, 4000, 3, 1000));
  alloc.deallocate(small);
  alloc.empty_cache();
  CHECK(alloc.reserved_bytes() == 0);
}
