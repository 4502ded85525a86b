// The caching allocator over real device memory: what it hands out is device memory of the right
// device that keeps its data, what it caches is really given back to the driver, and running out of
// memory is reported with the figures and leaves the allocator usable.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "cuda/allocators.hpp"
#include "cuda/cuda_support.hpp"
#include "cuda/kernels.hpp"
#include "stash/backend/limited_backend.hpp"
#include "stash/ordering/host_ordering.hpp"

using namespace stash_test;

namespace {

template <class Allocator>
struct live_block {
  void* p;
  std::size_t n;
  std::uint32_t seed;
};

/// Checks the allocator's figures against the blocks the test holds.
template <class Allocator>
void require_stats_match(const Allocator& alloc, const std::vector<live_block<Allocator>>& live) {
  const stash::stats_snapshot s = alloc.stats();
  std::size_t requested = 0;
  std::size_t rounded = 0;
  for (const auto& b : live) {
    requested += b.n;
    rounded += Allocator::good_size(b.n);
    CHECK(alloc.owns(b.p));
    CHECK(alloc.allocation_size(b.p) == b.n);
  }
  CHECK(s.requested_bytes == requested);
  CHECK(s.allocated_bytes == rounded);
  CHECK(s.allocations - s.deallocations == live.size());
  CHECK(s.reserved_bytes == alloc.reserved_bytes());
  CHECK(s.cached_bytes == s.reserved_bytes - s.allocated_bytes);
  CHECK(s.cached_bytes == alloc.cached_bytes());
}

}  // namespace

TEMPLATE_TEST_CASE("blocks are device memory of the allocator's device and keep their data",
                   "[cuda][allocator]", device_segregated, device_pow2, device_vmm) {
  const int device = current_device();
  TestType alloc{typename TestType::backend_type(device)};
  CHECK(alloc.device() == device);

  using block = live_block<TestType>;
  std::vector<block> live;
  const std::size_t sizes[] = {1, 255, 256, 257, 4000, 64 * KiB + 3, MiB, 3 * MiB + 5, 17 * MiB, 100};
  std::uint32_t seed = 1;
  for (std::size_t n : sizes) {
    void* p = alloc.allocate(n);
    require_device_memory(p, device);
    write_pattern(p, n, seed);
    live.push_back({p, n, seed++});
  }
  for (const auto& b : live) CHECK(holds_pattern(b.p, b.n, b.seed));
  require_stats_match(alloc, live);

  // Free every other block, then allocate again (from the cache where a block fits) and write the new
  // blocks: the survivors must be untouched, whatever was split or merged around them.
  std::vector<block> kept;
  for (std::size_t i = 0; i < live.size(); ++i) {
    if (i % 2 == 0) {
      alloc.deallocate(live[i].p, live[i].n);
    } else {
      kept.push_back(live[i]);
    }
  }
  const auto before_reuse = alloc.stats();
  for (std::size_t n : {MiB, 200 * KiB, 3 * MiB, std::size_t{700}, 5 * MiB}) {
    void* p = alloc.allocate(n);
    require_device_memory(p, device);
    write_pattern(p, n, seed);
    kept.push_back({p, n, seed++});
  }
  CHECK(alloc.stats().cache_hits > before_reuse.cache_hits);
  for (const auto& b : kept) CHECK(holds_pattern(b.p, b.n, b.seed));
  require_stats_match(alloc, kept);

  // Blocks never overlap.
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> ranges;
  for (const auto& b : kept) {
    const auto a = reinterpret_cast<std::uintptr_t>(b.p);
    ranges.emplace_back(a, a + b.n);
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) CHECK(ranges[i - 1].second <= ranges[i].first);

  for (const auto& b : kept) alloc.deallocate(b.p);
  require_stats_match(alloc, {});
  CHECK(alloc.stats().allocated_bytes == 0);
  CHECK(current_device() == device);
}

TEMPLATE_TEST_CASE("a freed block is served again without asking the driver", "[cuda][allocator]",
                   device_segregated, device_pow2, device_vmm) {
  TestType alloc{typename TestType::backend_type(-1)};
  void* p = alloc.allocate(3 * MiB);
  const auto first = alloc.stats();
  alloc.deallocate(p);
  void* q = alloc.allocate(3 * MiB);
  const auto second = alloc.stats();
  CHECK(second.cache_hits == first.cache_hits + 1);
  CHECK(second.backend_allocations == first.backend_allocations);
  CHECK(second.reserved_bytes == first.reserved_bytes);
  write_pattern(q, 3 * MiB, 5);
  CHECK(holds_pattern(q, 3 * MiB, 5));
  alloc.deallocate(q);
}

// [no-initcheck]: these compare cudaMemGetInfo before and after, and initcheck's own shadow memory
// shows up in cudaMemGetInfo (off by 256-384 MiB on the H200); memcheck runs them.
TEMPLATE_TEST_CASE("empty_cache and trim_cache give cached memory back to the driver",
                   "[cuda][allocator][cache][no-initcheck]", device_segregated, device_pow2, device_vmm) {
  const int device = current_device();
  TestType alloc{typename TestType::backend_type(device)};

  std::vector<void*> blocks;
  for (int i = 0; i < 12; ++i) {
    void* p = alloc.allocate(64 * MiB);
    write_edges(p, 64 * MiB, static_cast<std::uint32_t>(i));
    blocks.push_back(p);
  }
  for (void* p : blocks) alloc.deallocate(p);
  const auto full = alloc.stats();
  REQUIRE(full.allocated_bytes == 0);
  REQUIRE(full.cached_bytes >= 12 * 64 * MiB);

  // trim_cache: down to at most half of it cached.
  const std::size_t target = full.cached_bytes / 2;
  const std::size_t free_full = free_memory(device);
  alloc.trim_cache(target);
  const auto trimmed = alloc.stats();
  const std::size_t free_trimmed = free_memory(device);
  CHECK(trimmed.cached_bytes <= target);
  CHECK(trimmed.cached_bytes > 0);
  const std::size_t released = full.cached_bytes - trimmed.cached_bytes;
  const std::size_t tolerance = driver_tolerance<TestType>(trimmed.backend_frees - full.backend_frees);
  INFO("trim released " << released << " bytes; cudaMemGetInfo free rose by "
                        << static_cast<long long>(free_trimmed) - static_cast<long long>(free_full));
  CHECK(free_trimmed >= free_full);
  CHECK(abs_diff(free_trimmed - free_full, released) <= tolerance);

  // empty_cache: nothing cached, all of it back.
  alloc.empty_cache();
  const auto empty = alloc.stats();
  const std::size_t free_empty = free_memory(device);
  CHECK(empty.cached_bytes == 0);
  CHECK(empty.reserved_bytes == 0);
  const std::size_t tolerance2 = driver_tolerance<TestType>(empty.backend_frees - trimmed.backend_frees);
  INFO("empty_cache released " << trimmed.cached_bytes << " bytes; free rose by "
                               << static_cast<long long>(free_empty) - static_cast<long long>(free_trimmed));
  CHECK(free_empty >= free_trimmed);
  CHECK(abs_diff(free_empty - free_trimmed, trimmed.cached_bytes) <= tolerance2);

  // Still usable afterwards.
  void* p = alloc.allocate(64 * MiB);
  require_device_memory(p, device);
  write_edges(p, 64 * MiB, 99);
  CHECK(holds_edges(p, 64 * MiB, 99));
  alloc.deallocate(p);
  CHECK(current_device() == device);
}

TEMPLATE_TEST_CASE("filling the device ends in stash::out_of_memory and leaves the allocator usable",
                   "[cuda][allocator][oom][api-error]", device_segregated, device_pow2, device_vmm) {
  const int device = current_device();
  const std::size_t free_at_start = free_memory(device);
  using block = live_block<TestType>;
  std::vector<block> live;
  {
    TestType alloc{typename TestType::backend_type(device)};
    const std::size_t chunk = GiB;
    const auto before = alloc.stats();
    bool ran_out = false;
    try {
      for (;;) {
        void* p = alloc.allocate(chunk);
        live.push_back({p, chunk, static_cast<std::uint32_t>(live.size())});
        REQUIRE(live.size() * chunk <= 2 * free_at_start);
      }
    } catch (const stash::out_of_memory& e) {
      ran_out = true;
      INFO(e.what());
      CHECK(e.requested_bytes() == chunk);
      CHECK(e.device() == device);
      CHECK(e.reserved_bytes() >= live.size() * chunk);
      CHECK(std::string(e.what()).find("out of memory") != std::string::npos);
    }
    REQUIRE(ran_out);
    CHECK(cudaGetLastError() == cudaSuccess);
    INFO(live.size() << " blocks of 1 GiB before running out; " << free_at_start << " bytes free at start");
    CHECK(live.size() * chunk >= free_at_start / 2);
    CHECK(free_memory(device) < 2 * chunk);  // the device really is full
    const auto full = alloc.stats();
    CHECK(full.oom_retries > before.oom_retries);
    require_stats_match(alloc, live);

    // A block given back is served again, and small requests still work.
    for (auto& b : live) write_edges(b.p, b.n, b.seed);
    alloc.deallocate(live.back().p, live.back().n);
    live.pop_back();
    void* again = alloc.allocate(chunk);
    require_device_memory(again, device);
    write_edges(again, chunk, 1000);
    live.push_back({again, chunk, 1000});
    alloc.deallocate(live.front().p);
    live.erase(live.begin());
    void* small = alloc.allocate(MiB);
    require_device_memory(small, device);
    write_edges(small, MiB, 2000);
    live.push_back({small, MiB, 2000});
    for (const auto& b : live) CHECK(holds_edges(b.p, b.n, b.seed));
    require_stats_match(alloc, live);

    for (const auto& b : live) alloc.deallocate(b.p);
    live.clear();
    require_stats_match(alloc, live);
    alloc.empty_cache();
    CHECK(alloc.stats().reserved_bytes == 0);
    CHECK(current_device() == device);
  }
  // Everything is back with the driver.
  CHECK(abs_diff(free_memory(device), free_at_start) <= 64 * MiB);
}

TEMPLATE_TEST_CASE("destroying the allocator gives back blocks the caller never freed",
                   "[cuda][allocator][no-initcheck]", device_segregated, device_vmm) {
  const int device = current_device();
  const std::size_t free_at_start = free_memory(device);
  {
    TestType alloc{typename TestType::backend_type(device)};
    for (int i = 0; i < 8; ++i) write_edges(alloc.allocate(32 * MiB), 32 * MiB, 1);
    CHECK(free_at_start - free_memory(device) >= 8 * 32 * MiB);
  }
  CHECK(abs_diff(free_memory(device), free_at_start) <= 8 * MiB);
}

TEST_CASE("the pinned caching allocator serves async copies on a stream", "[cuda][allocator][pinned]") {
  pinned_segregated alloc;
  constexpr std::size_t count = std::size_t{1} << 20;
  auto* host = static_cast<float*>(alloc.allocate(count * sizeof(float)));
  auto* back = static_cast<float*>(alloc.allocate(count * sizeof(float)));
  CHECK(attributes(host).type == cudaMemoryTypeHost);
  CHECK(attributes(back).type == cudaMemoryTypeHost);
  CHECK(alloc.device() == -1);
  std::iota(host, host + count, 0.5f);

  cudaStream_t stream = nullptr;
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  device_segregated dev{stash::cuda_device_backend(-1)};
  void* d = dev.allocate(count * sizeof(float));
  CUDA_REQUIRE(cudaMemcpyAsync(d, host, count * sizeof(float), cudaMemcpyHostToDevice, stream));
  CUDA_REQUIRE(cudaMemcpyAsync(back, d, count * sizeof(float), cudaMemcpyDeviceToHost, stream));
  CUDA_REQUIRE(cudaStreamSynchronize(stream));
  CHECK(std::equal(host, host + count, back));
  CUDA_REQUIRE(cudaStreamDestroy(stream));

  dev.deallocate(d);
  alloc.deallocate(host);
  alloc.deallocate(back);
  CHECK(alloc.stats().allocated_bytes == 0);
  alloc.empty_cache();
  CHECK(alloc.stats().reserved_bytes == 0);
}

TEST_CASE(
    "max_held_over_live: idle pages moved under a new block keep their new data, the block around them too",
    "[cuda][allocator][held_limit]") {
  // Host order: the freed block's pages are idle at once (the test copies synchronously).
  using host_ordered_vmm =
      stash::caching_allocator<stash::cuda_vmm_backend, stash::segregated_fit_buckets, stash::spin_lock,
                               stash::basic_stats, stash::host_ordering>;
  stash::caching_options options;
  options.max_held_over_live = 1.0;
  options.max_chunk_pages = 1;  // page by page, so that idle pages move one by one
  host_ordered_vmm alloc{stash::cuda_vmm_backend(current_device()), options};
  const std::size_t page = alloc.backend().page_size();

  void* hole = alloc.allocate(10 * page);  // pages 0-9 of the large region
  void* guard = alloc.allocate(page);      // page 10
  write_pattern(guard, page, 7);
  alloc.deallocate(hole);                  // 10 idle pages
  const auto before = alloc.page_moves();
  void* large = alloc.allocate(12 * page);  // pages 11-22: 2 new, 10 moved from the hole
  REQUIRE(reinterpret_cast<std::uintptr_t>(large) == reinterpret_cast<std::uintptr_t>(guard) + page);
  CHECK(alloc.page_moves() - before == 10);
  CHECK(alloc.reserved_bytes() == 13 * page);
  CHECK_FALSE(alloc.holds(hole));
  require_device_memory(large, current_device());
  write_pattern(large, 12 * page, 9);
  CHECK(holds_pattern(large, 12 * page, 9));
  CHECK(holds_pattern(guard, page, 7));
  alloc.deallocate(large);
  alloc.deallocate(guard);
  alloc.empty_cache();
  CHECK(alloc.reserved_bytes() == 0);
}

TEST_CASE("near a limit, chunks of a share of the room let a freed block's pages move: a kernel fills the "
          "new block",
          "[cuda][allocator][chunks][limit]") {
  // X (16 pages) then W (a page) above it; X is freed and Y (4 pages) takes the start of its hole; Z (14
  // pages) does not fit the 12 idle pages left there and goes above W. The limit (24 pages) leaves 7, so
  // X's idle pages must move. With X one chunk they cannot (Y touches it): out of memory. With chunks
  // of a quarter of the room (chunk_room_share 4), those Y does not touch move, and Z fits. Host order:
  // a freed block's pages are idle at once.
  using limited_vmm =
      stash::caching_allocator<stash::limited_backend<stash::cuda_vmm_backend>, stash::segregated_fit_buckets,
                               stash::spin_lock, stash::basic_stats, stash::host_ordering>;
  for (const std::size_t share : {std::size_t{0}, std::size_t{4}}) {
    stash::caching_options options;
    options.chunk_room_share = share;
    limited_vmm alloc{
        stash::limited_backend<stash::cuda_vmm_backend>(stash::cuda_vmm_backend(current_device())), options};
    const std::size_t page = alloc.backend().page_size();
    alloc.backend().set_limit(24 * page);
    void* x = alloc.allocate(16 * page);
    void* w = alloc.allocate(page);
    write_pattern(w, page, 3);
    alloc.deallocate(x);
    void* y = alloc.allocate(4 * page);
    REQUIRE(y == x);
    write_pattern(y, 4 * page, 4);
    if (share == 0) {
      CHECK_THROWS_AS(alloc.allocate(14 * page), stash::out_of_memory);
      CHECK(alloc.stats().reserved_bytes == 17 * page);
    } else {
      auto* z = static_cast<float*>(alloc.allocate(14 * page));
      REQUIRE(reinterpret_cast<std::uintptr_t>(z) == reinterpret_cast<std::uintptr_t>(w) + page);
      CHECK(alloc.stats().reserved_bytes <= 24 * page);
      CHECK(alloc.backend().held_bytes() == alloc.stats().reserved_bytes);
      require_device_memory(z, current_device());
      const std::size_t n = 14 * page / sizeof(float);
      CUDA_REQUIRE(launch_affine_fill(z, n, 1.0f, 0.0f));  // z[i] = i: every page written
      CUDA_REQUIRE(cudaDeviceSynchronize());
      std::vector<float> back(n);
      CUDA_REQUIRE(cudaMemcpy(back.data(), z, n * sizeof(float), cudaMemcpyDeviceToHost));
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < n; ++i) wrong += back[i] != static_cast<float>(i);
      CHECK(wrong == 0);
      alloc.deallocate(z);
    }
    CHECK(holds_pattern(y, 4 * page, 4));
    CHECK(holds_pattern(w, page, 3));
    alloc.deallocate(y);
    alloc.deallocate(w);
    alloc.empty_cache();
    CHECK(alloc.backend().held_bytes() == 0);
  }
}

TEST_CASE("an idle chunk moved whole under a new block: a kernel writes and reads every byte of the block",
          "[cuda][allocator][chunks]") {
  // Host order: the freed block's pages are idle at once. No slack and a move due at every page, so
  // that the new block is backed past the high tide by idle pages, the chunk among them moved whole
  // (cuMemUnmap, cuMemMap of its handle at the new address, access with the block's other pages).
  using host_ordered_vmm =
      stash::caching_allocator<stash::cuda_vmm_backend, stash::segregated_fit_buckets, stash::spin_lock,
                               stash::basic_stats, stash::host_ordering>;
  stash::caching_options options;
  options.page_slack = 0;
  options.pages_between_moves = 0;
  host_ordered_vmm alloc{stash::cuda_vmm_backend(current_device()), options};
  const std::size_t page = alloc.backend().page_size();

  // Pages 0-9 of the large region as three blocks on page boundaries: page 0 and page 9 alone (one
  // page each), 1-8 one chunk (a block's own edge pages join its chunk, so one 10-page block would be
  // a single chunk of 10 pages, which cannot move inside a block of 12).
  void* low = alloc.allocate(page);
  void* big = alloc.allocate(8 * page);
  void* high = alloc.allocate(page);
  void* guard = alloc.allocate(page);  // page 10
  REQUIRE(reinterpret_cast<std::uintptr_t>(big) == reinterpret_cast<std::uintptr_t>(low) + page);
  write_pattern(big, 8 * page, 5);  // what the moved pages held: not part of the contract
  write_pattern(guard, page, 7);
  for (void* q : {low, big, high}) alloc.deallocate(q);
  const auto moves = alloc.page_moves();
  const auto allocations = alloc.stats().backend_allocations;
  // Pages 11-22: 11 and 12 new (one chunk), page 9 to 13, the chunk 1-8 whole to 14-21, page 0 to 22.
  auto* data = static_cast<float*>(alloc.allocate(12 * page));
  REQUIRE(reinterpret_cast<std::uintptr_t>(data) == reinterpret_cast<std::uintptr_t>(guard) + page);
  CHECK(alloc.page_moves() - moves == 10);
  CHECK(alloc.stats().backend_allocations - allocations == 1);
  CHECK(alloc.stats().reserved_bytes == 13 * page);
  CHECK(alloc.backend().mapped_pages() == 13);
  for (void* q : {low, big, high}) CHECK_FALSE(alloc.holds(q));
  require_device_memory(data, current_device());

  const std::size_t n = 12 * page / sizeof(float);
  CUDA_REQUIRE(launch_affine_fill(data, n, 1.0f, 0.0f));             // data[i] = i: every page written
  CUDA_REQUIRE(launch_affine_update(data, n, 2.0f, 1.0f, nullptr));  // read and written again
  CUDA_REQUIRE(cudaDeviceSynchronize());
  std::vector<float> back(n);
  CUDA_REQUIRE(cudaMemcpy(back.data(), data, n * sizeof(float), cudaMemcpyDeviceToHost));
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < n; ++i) wrong += back[i] == static_cast<float>(i) * 2.0f + 1.0f ? 0 : 1;
  CHECK(wrong == 0);
  CHECK(holds_pattern(guard, page, 7));
  alloc.deallocate(data);
  alloc.deallocate(guard);
  alloc.empty_cache();
  CHECK(alloc.reserved_bytes() == 0);
  CHECK(alloc.backend().mapped_pages() == 0);
}

TEST_CASE("a 3141 MiB block is mapped in chunks under one access grant; a kernel reads and writes all of it",
          "[cuda][allocator][chunks]") {
  // The size of ddp_gpt2_rank0's logits (bench/traces): 1571 pages of 2 MiB, its inside in chunks of
  // a share of it (caching_options::chunks_per_block).
  device_vmm alloc{stash::cuda_vmm_backend(current_device())};
  const std::size_t page = alloc.backend().page_size();
  const std::size_t bytes = 3141 * MiB;
  auto* data = static_cast<float*>(alloc.allocate(bytes));
  require_device_memory(data, current_device());
  const std::size_t pages = (bytes + page - 1) / page;
  const stash::caching_options defaults;
  const std::size_t chunk = std::max(defaults.max_chunk_pages, pages / defaults.chunks_per_block);
  // Every page joins the chunks, the last one too, though a neighbour may share it (edge_pages_in_chunks).
  CHECK(alloc.stats().backend_allocations == (pages + chunk - 1) / chunk);
  CHECK(alloc.stats().reserved_bytes == pages * page);

  const std::size_t n = bytes / sizeof(float);
  CUDA_REQUIRE(launch_affine_fill(data, n, 1.0f, 0.0f));             // data[i] = i: every page written
  CUDA_REQUIRE(launch_affine_update(data, n, 2.0f, 1.0f, nullptr));  // read and written again
  CUDA_REQUIRE(cudaDeviceSynchronize());
  // Read back around every chunk boundary, and the block's two ends.
  std::vector<std::size_t> at{0, n - 1024};
  for (std::size_t c = chunk; c < pages; c += chunk) at.push_back(c * page / sizeof(float) - 512);
  at.push_back((pages - 1) * page / sizeof(float) - 512);  // the last page and the one below it
  std::vector<float> back(1024);
  for (const std::size_t first : at) {
    CUDA_REQUIRE(cudaMemcpy(back.data(), data + first, back.size() * sizeof(float), cudaMemcpyDeviceToHost));
    bool same = true;
    for (std::size_t i = 0; i < back.size(); ++i)
      same = same && back[i] == static_cast<float>(first + i) * 2.0f + 1.0f;
    INFO("floats from " << first);
    CHECK(same);
  }
  alloc.deallocate(data);
  alloc.empty_cache();  // every chunk goes back, whole
  CHECK(alloc.stats().reserved_bytes == 0);
  CHECK(alloc.backend().mapped_pages() == 0);
}
