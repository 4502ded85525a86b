// Peers: by default paged device memory is mapped for every device that can reach it (README,
// "Behaviour we chose"), so a kernel on another GPU and peer copies work on stash buffers as on
// cudaMalloc'd ones. With peer_access::none pages are mapped for their own device only until
// grant_peer (memory_manager::grant_peer_access, stash_grant_peer_access) adds a peer; the access the
// driver records is read back with cuMemGetAccess (no fault is provoked). No test here enables peer
// access: the access granted with cuMemSetAccess is what they rely on. Skipped (with a warning) on a
// machine with one device; the kernel tests also where device 1 cannot reach device 0. The NCCL
// all-reduce is in tests/cuda/nccl (its own binary, the only one linking NCCL).
#include <catch2/catch.hpp>

#include <cuda.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cuda/allocators.hpp"
#include "cuda/cuda_support.hpp"
#include "cuda/kernels.hpp"
#include "stash/error.hpp"
#include "stash/memory_manager.hpp"
#include "stash_c.h"

using namespace stash_test;

namespace {

bool can_access_peer(int device, int peer) {
  int can = 0;
  CUDA_REQUIRE(cudaDeviceCanAccessPeer(&can, device, peer));
  return can != 0;
}

std::vector<float> iota_floats(std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i % 4096);
  return v;
}

/// cuMemGetAccess, fetched as stash fetches its driver calls (the library itself never reads access).
CUresult get_access(unsigned long long* flags, const CUmemLocation* location, CUdeviceptr ptr) {
  static const PFN_cuMemGetAccess_v10020 fn = [] {
    void* address = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    CUDA_REQUIRE(
        cudaGetDriverEntryPointByVersion("cuMemGetAccess", &address, 12000, cudaEnableDefault, &found));
    REQUIRE(found == cudaDriverEntryPointSuccess);
    return reinterpret_cast<PFN_cuMemGetAccess_v10020>(address);
  }();
  return fn(flags, location, ptr);
}

/// cudaMemcpyPeerAsync of `bytes` from a (device 0) to b (device 1), then back, on a stream of its
/// own: each copy carries a pattern of its own (seeds `there` and `back`) that the other side then
/// holds.
void check_peer_copies(void* a, void* b, std::size_t bytes, std::uint32_t there, std::uint32_t back) {
  cudaStream_t stream = nullptr;
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  write_pattern(a, bytes, there);
  CUDA_REQUIRE(cudaMemcpyPeerAsync(b, 1, a, 0, bytes, stream));
  CUDA_REQUIRE(cudaStreamSynchronize(stream));
  CHECK(holds_pattern(b, bytes, there));

  write_pattern(b, bytes, back);
  CUDA_REQUIRE(cudaMemcpyPeerAsync(a, 0, b, 1, bytes, stream));
  CUDA_REQUIRE(cudaStreamSynchronize(stream));
  CHECK(holds_pattern(a, bytes, back));

  CUDA_REQUIRE(cudaStreamDestroy(stream));
}

/// The access device `d` has to the mapped byte at p, as the driver records it.
unsigned long long access_of(const void* p, int d) {
  CUmemLocation where{};
  where.type = CU_MEM_LOCATION_TYPE_DEVICE;
  where.id = d;
  unsigned long long flags = ~0ull;
  const CUresult status = get_access(&flags, &where, reinterpret_cast<CUdeviceptr>(p));
  INFO("cuMemGetAccess -> CUresult " << static_cast<int>(status));
  REQUIRE(status == CUDA_SUCCESS);
  return flags;
}

/// Whether device d may read and write every page of [p, p + bytes) (pages of `page` bytes).
bool read_write_for(const void* p, std::size_t bytes, int d, std::size_t page) {
  const auto begin = reinterpret_cast<std::uintptr_t>(p);
  for (std::uintptr_t a = begin / page * page; a < begin + bytes; a += page) {
    const std::uintptr_t at = std::max(a, begin);
    if (access_of(reinterpret_cast<const void*>(at), d) != CU_MEM_ACCESS_FLAGS_PROT_READWRITE) return false;
  }
  return true;
}

/// Whether device d has no access at all to any page of [p, p + bytes).
bool no_access_for(const void* p, std::size_t bytes, int d, std::size_t page) {
  const auto begin = reinterpret_cast<std::uintptr_t>(p);
  for (std::uintptr_t a = begin / page * page; a < begin + bytes; a += page) {
    const std::uintptr_t at = std::max(a, begin);
    if (access_of(reinterpret_cast<const void*>(at), d) != CU_MEM_ACCESS_FLAGS_PROT_NONE) return false;
  }
  return true;
}

/// data[i] = data[i] * 2 + 1 by a kernel on device `on`, checked against `before` from device 0.
void update_from(int on, float* data, const std::vector<float>& before) {
  {
    scoped_device on_peer(on);
    cudaStream_t stream = nullptr;
    CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CUDA_REQUIRE(launch_affine_update(data, before.size(), 2.0f, 1.0f, stream));
    CUDA_REQUIRE(cudaStreamSynchronize(stream));
    CUDA_REQUIRE(cudaStreamDestroy(stream));
  }
  std::vector<float> after(before.size());
  CUDA_REQUIRE(cudaMemcpy(after.data(), data, after.size() * sizeof(float), cudaMemcpyDeviceToHost));
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < after.size(); ++i) wrong += after[i] != before[i] * 2.0f + 1.0f ? 1 : 0;
  CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("the vmm backend grants access to exactly the devices that can reach its device", "[cuda][peers]") {
  STASH_REQUIRE_TWO_DEVICES();
  for (int owner = 0; owner < device_count(); ++owner) {
    const stash::cuda_vmm_backend backend(owner);
    std::vector<int> expected;
    for (int d = 0; d < device_count(); ++d)
      if (d != owner && can_access_peer(d, owner)) expected.push_back(d);
    CHECK(backend.peers() == expected);
  }
}

TEST_CASE("a kernel on device 1 reads and writes a stash buffer of device 0", "[cuda][peers]") {
  STASH_REQUIRE_TWO_DEVICES();
  if (!can_access_peer(1, 0)) {
    WARN("device 1 cannot access device 0 (cudaDeviceCanAccessPeer): skipped");
    return;
  }
  scoped_device current(0);
  device_vmm alloc{stash::cuda_vmm_backend(0)};
  // Several pages and a partial one, so that the buffer spans more than one mapping.
  const std::size_t n = (5 * MiB + 12 * KiB) / sizeof(float);
  auto* data = static_cast<float*>(alloc.allocate(n * sizeof(float)));
  require_device_memory(data, 0);
  const std::vector<float> before = iota_floats(n);
  CUDA_REQUIRE(cudaMemcpy(data, before.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  {
    scoped_device on_peer(1);
    cudaStream_t stream = nullptr;
    CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CUDA_REQUIRE(launch_affine_update(data, n, 2.0f, 1.0f, stream));
    CUDA_REQUIRE(cudaStreamSynchronize(stream));
    CUDA_REQUIRE(cudaStreamDestroy(stream));
  }
  std::vector<float> after(n);
  CUDA_REQUIRE(cudaMemcpy(after.data(), data, n * sizeof(float), cudaMemcpyDeviceToHost));
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < n; ++i) wrong += after[i] != before[i] * 2.0f + 1.0f ? 1 : 0;
  CHECK(wrong == 0);
  alloc.deallocate(data);
}

TEST_CASE("cudaMemcpyPeerAsync copies between stash buffers of devices 0 and 1, both ways", "[cuda][peers]") {
  STASH_REQUIRE_TWO_DEVICES();
  scoped_device current(0);
  device_vmm on0{stash::cuda_vmm_backend(0)};
  device_vmm on1{stash::cuda_vmm_backend(1)};
  const std::size_t bytes = 6 * MiB + 256;
  void* a = on0.allocate(bytes);
  void* b = on1.allocate(bytes);
  require_device_memory(a, 0);
  require_device_memory(b, 1);
  check_peer_copies(a, b, bytes, 11, 12);
  on0.deallocate(a);
  on1.deallocate(b);
}

TEST_CASE("by default every page is mapped read-write for the devices that can reach it", "[cuda][peers]") {
  STASH_REQUIRE_TWO_DEVICES();
  scoped_device current(0);
  device_vmm alloc{stash::cuda_vmm_backend(0)};
  const std::size_t page = alloc.backend().page_size();
  const std::size_t bytes = 5 * MiB + 12 * KiB;
  void* p = alloc.allocate(bytes);
  CHECK(read_write_for(p, bytes, 0, page));
  for (int d = 1; d < device_count(); ++d) {
    INFO("device " << d);
    if (can_access_peer(d, 0)) CHECK(read_write_for(p, bytes, d, page));
    else CHECK(no_access_for(p, bytes, d, page));
  }
  alloc.deallocate(p);
}

TEST_CASE("peer_access none maps pages for device 0 alone; grant_peer(1) grants them and every later page",
          "[cuda][peers]") {
  STASH_REQUIRE_TWO_DEVICES();
  if (!can_access_peer(1, 0)) {
    WARN("device 1 cannot access device 0 (cudaDeviceCanAccessPeer): skipped");
    return;
  }
  scoped_device current(0);
  device_vmm alloc{stash::cuda_vmm_backend(0, 0, false, stash::peer_access::none)};
  const std::size_t page = alloc.backend().page_size();
  CHECK(alloc.peers().empty());
  const std::vector<int> reachable = alloc.backend().reachable_peers();
  CHECK(std::find(reachable.begin(), reachable.end(), 1) != reachable.end());

  // Several pages and a partial one, so that the buffer spans more than one mapping.
  const std::size_t n = (5 * MiB + 12 * KiB) / sizeof(float);
  auto* data = static_cast<float*>(alloc.allocate(n * sizeof(float)));
  require_device_memory(data, 0);
  CHECK(read_write_for(data, n * sizeof(float), 0, page));
  CHECK(no_access_for(data, n * sizeof(float), 1, page));

  alloc.grant_peer(1);
  CHECK(alloc.peers() == std::vector<int>{1});
  CHECK(read_write_for(data, n * sizeof(float), 1, page));
  CHECK(read_write_for(data, n * sizeof(float), 0, page));
  const std::vector<float> before = iota_floats(n);
  CUDA_REQUIRE(cudaMemcpy(data, before.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  update_from(1, data, before);

  // Pages mapped after the grant: a block larger than all mapped so far needs new ones.
  const std::size_t m = (40 * MiB + 4 * KiB) / sizeof(float);
  const std::size_t mapped = alloc.backend().mapped_pages();
  auto* later = static_cast<float*>(alloc.allocate(m * sizeof(float)));
  REQUIRE(alloc.backend().mapped_pages() > mapped);
  CHECK(read_write_for(later, m * sizeof(float), 1, page));
  const std::vector<float> later_before = iota_floats(m);
  CUDA_REQUIRE(cudaMemcpy(later, later_before.data(), m * sizeof(float), cudaMemcpyHostToDevice));
  update_from(1, later, later_before);

  // A second grant, or the own device, changes nothing.
  alloc.grant_peer(1);
  alloc.grant_peer(0);
  CHECK(alloc.peers() == std::vector<int>{1});
  alloc.deallocate(later);
  alloc.deallocate(data);
}

TEST_CASE(
    "kept page aliases are mapped for the peers too: by default, and by a grant_peer made while inactive",
    "[cuda][peers][aliases]") {
  STASH_REQUIRE_TWO_DEVICES();
  if (!can_access_peer(1, 0)) {
    WARN("device 1 cannot access device 0 (cudaDeviceCanAccessPeer): skipped");
    return;
  }
  scoped_device current(0);
  for (const stash::peer_access peers : {stash::peer_access::all, stash::peer_access::none}) {
    INFO("peer_access " << (peers == stash::peer_access::all ? "all" : "none"));
    stash::caching_options o;  // every idle page moved first, pages mapped
                               // alone (tests/cuda/test_aliases.cpp)
    o.keep_page_aliases = true;
    o.max_held_over_live = 1.0;
    o.max_chunk_pages = 1;
    o.small_region = false;
    device_vmm alloc{stash::cuda_vmm_backend(0, 0, false, peers), o};
    const std::size_t page = alloc.backend().page_size();
    void* x = alloc.allocate(2 * page);
    void* guard = alloc.allocate(page);
    const auto x_at = reinterpret_cast<std::uintptr_t>(x);
    alloc.deallocate(x);
    void* y = alloc.allocate(3 * page);  // x's two pages move here; x's old pages stay mapped, inactive
    REQUIRE(alloc.backend().aliased_pages() == 2);
    if (peers == stash::peer_access::none) alloc.grant_peer(1);  // the inactive aliases are granted too
    CHECK(read_write_for(y, 3 * page, 1, page));
    alloc.deallocate(y);
    auto* x2 = static_cast<float*>(alloc.allocate(2 * page));  // the aliases, taken back
    REQUIRE(reinterpret_cast<std::uintptr_t>(x2) == x_at);
    REQUIRE(alloc.alias_activations() == 2);
    CHECK(read_write_for(x2, 2 * page, 1, page));
    CHECK(read_write_for(x2, 2 * page, 0, page));
    const std::size_t n = 2 * page / sizeof(float);
    const std::vector<float> before = iota_floats(n);
    CUDA_REQUIRE(cudaMemcpy(x2, before.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    update_from(1, x2, before);  // a kernel on device 1 reads and writes it
    alloc.deallocate(x2);
    alloc.deallocate(guard);
  }
}

TEST_CASE("after grant_peer, cudaMemcpyPeerAsync copies between peer_access none buffers both ways",
          "[cuda][peers]") {
  STASH_REQUIRE_TWO_DEVICES();
  if (!can_access_peer(1, 0) || !can_access_peer(0, 1)) {
    WARN("devices 0 and 1 cannot access each other (cudaDeviceCanAccessPeer): skipped");
    return;
  }
  scoped_device current(0);
  device_vmm on0{stash::cuda_vmm_backend(0, 0, false, stash::peer_access::none)};
  device_vmm on1{stash::cuda_vmm_backend(1, 0, false, stash::peer_access::none)};
  const std::size_t bytes = 6 * MiB + 256;
  void* a = on0.allocate(bytes);
  void* b = on1.allocate(bytes);
  require_device_memory(a, 0);
  require_device_memory(b, 1);
  on0.grant_peer(1);
  on1.grant_peer(0);
  CHECK(read_write_for(a, bytes, 1, on0.backend().page_size()));
  CHECK(read_write_for(b, bytes, 0, on1.backend().page_size()));
  check_peer_copies(a, b, bytes, 21, 22);
  on0.deallocate(a);
  on1.deallocate(b);
}

TEST_CASE("grant_peer of a bad device id is invalid_device and grants nothing", "[cuda][peers][errors]") {
  scoped_device current(0);
  device_vmm alloc{stash::cuda_vmm_backend(0, 0, false, stash::peer_access::none)};
  void* p = alloc.allocate(3 * MiB);
  CHECK_THROWS_AS(alloc.grant_peer(device_count()), stash::invalid_device);
  CHECK_THROWS_AS(alloc.grant_peer(-1), stash::invalid_device);
  for (int d = 1; d < device_count(); ++d) {
    if (can_access_peer(d, 0)) continue;
    INFO("device " << d << " cannot reach device 0");
    CHECK_THROWS_AS(alloc.grant_peer(d), stash::invalid_device);
    CHECK(no_access_for(p, 3 * MiB, d, alloc.backend().page_size()));
  }
  CHECK(alloc.peers().empty());
  alloc.deallocate(p);
}

TEST_CASE("a memory manager with peer_access none grants a peer through grant_peer_access", "[cuda][peers]") {
  STASH_REQUIRE_TWO_DEVICES();
  if (!can_access_peer(1, 0)) {
    WARN("device 1 cannot access device 0 (cudaDeviceCanAccessPeer): skipped");
    return;
  }
  stash::manager_options options;
  options.peers = stash::peer_access::none;
  stash::memory_manager mm(stash::memory_manager::backing::cuda, 1, options);
  const std::size_t page = 2 * MiB;  // the VMM granularity of current GPUs; a larger one is whole pages of it
  const std::size_t n = (3 * MiB) / sizeof(float);
  auto* data = static_cast<float*>(mm.allocate(n * sizeof(float), stash::memory_type::device, 0));
  require_device_memory(data, 0);
  CHECK(no_access_for(data, n * sizeof(float), 1, page));
  CHECK_THROWS_AS(mm.grant_peer_access(0, device_count()), stash::invalid_device);
  CHECK(no_access_for(data, n * sizeof(float), 1, page));
  CHECK(mm.grant_peer_access(0, 1));
  CHECK(read_write_for(data, n * sizeof(float), 1, page));
  const std::vector<float> before = iota_floats(n);
  CUDA_REQUIRE(cudaMemcpy(data, before.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  update_from(1, data, before);
  auto* later = static_cast<float*>(mm.allocate(24 * MiB, stash::memory_type::device, 0));
  CHECK(read_write_for(later, 24 * MiB, 1, page));
  mm.deallocate(later);
  mm.deallocate(data);
}

TEST_CASE("C interface: stash_grant_peer_access checks the ids", "[cuda][peers][c_interface]") {
  CHECK(stash_grant_peer_access(0, device_count()) == STASH_ERROR_INVALID_ARGUMENT);
  CHECK(stash_grant_peer_access(device_count(), 0) == STASH_ERROR_INVALID_ARGUMENT);
  CHECK(stash_grant_peer_access(0, 0) == STASH_OK);  // the own device: nothing to grant
  if (device_count() >= 2 && can_access_peer(1, 0)) CHECK(stash_grant_peer_access(0, 1) == STASH_OK);
}
