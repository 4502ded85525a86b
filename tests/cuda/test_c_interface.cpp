// The C interface (integrations/c/stash_c.h) on a GPU, as PyTorch's pluggable allocator and
// stash.cupy call it: device and pinned memory that holds data, streams passed through, null for 0
// bytes and for out of memory, bad frees reported without an exception. stash_c.cpp is compiled into
// this suite; its pools are process-wide, so these cases read the figures before and after.
#include <catch2/catch.hpp>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/cuda_support.hpp"
#include "cuda/stream_kernels.hpp"
#include "stash_c.h"

namespace {

using namespace stash_test;

stash_stats stats_of(int device) {
  stash_stats s{};
  REQUIRE(stash_get_stats(device, &s) == STASH_OK);
  return s;
}

bool last_error_has(const char* text) { return std::strstr(stash_last_error(), text) != nullptr; }

/// A graph pool's filter as PyTorch's capture makes it: the requests on the stream `context` points to.
int only_capture(void* context, stash_stream_t s) {
  return static_cast<int>(s == *static_cast<cudaStream_t*>(context));
}

}  // namespace

TEST_CASE("C interface: pools of device memory, one per device", "[cuda][c_interface]") {
  CHECK(std::string(stash_backing()) == "cuda");
  CHECK(stash_device_count() == device_count());
}

TEST_CASE("C interface: device memory on a stream holds data and comes back", "[cuda][c_interface]") {
  cudaStream_t stream = nullptr;
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const stash_stats before = stats_of(0);
  void* p = stash_alloc(static_cast<ssize_t>(3 * MiB + 100), 0, stream);
  require_device_memory(p, 0);
  write_pattern(p, 3 * MiB + 100, 41);
  CHECK(holds_pattern(p, 3 * MiB + 100, 41));
  const stash_stats live = stats_of(0);
  CHECK(live.allocations == before.allocations + 1);
  CHECK(live.requested_bytes == before.requested_bytes + 3 * MiB + 100);
  CHECK(live.reserved_bytes >= live.allocated_bytes);
  stash_free(p, static_cast<ssize_t>(3 * MiB + 100), 0, stream);
  const stash_stats after = stats_of(0);
  CHECK(after.deallocations == before.deallocations + 1);
  CHECK(after.requested_bytes == before.requested_bytes);
  CUDA_REQUIRE(cudaStreamSynchronize(stream));
  CUDA_REQUIRE(cudaStreamDestroy(stream));
}

// The sequence that crashed inside the driver when the stream layer asked about a destroyed stream's
// handle: frees on a stream, the stream destroyed, then empty_cache, an out-of-memory retry and an
// allocation on another stream. None of them may use the destroyed handle.
TEST_CASE(
    "C interface: a stream destroyed after frees on it: empty_cache, out of memory and other streams go on",
    "[cuda][c_interface][destroyed]") {
  cudaStream_t doomed = nullptr, other = nullptr;
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&doomed, cudaStreamNonBlocking));
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking));
  void* p = stash_alloc(static_cast<ssize_t>(5 * MiB), 0, doomed);
  require_device_memory(p, 0);
  void* pinned = stash_alloc_pinned(MiB);
  REQUIRE(pinned != nullptr);
  stash_free(p, static_cast<ssize_t>(5 * MiB), 0, doomed);
  CUDA_REQUIRE(cudaStreamDestroy(doomed));

  void* q = stash_alloc(static_cast<ssize_t>(5 * MiB), 0, other);  // a miss on another stream
  require_device_memory(q, 0);
  const auto total = stash::device_manager::memory(0).total_bytes;
  CHECK(stash_alloc(static_cast<ssize_t>(4 * total), 0, other) == nullptr);  // the out-of-memory retry
  CHECK(last_error_has("out of memory"));
  REQUIRE(stash_empty_cache(-1) == STASH_OK);
  write_pattern(q, 5 * MiB, 9);
  CHECK(holds_pattern(q, 5 * MiB, 9));
  stash_free(q, static_cast<ssize_t>(5 * MiB), 0, other);
  CHECK(stash_free_pinned(pinned) == STASH_OK);
  REQUIRE(stash_empty_cache(-1) == STASH_OK);
  CUDA_REQUIRE(cudaStreamSynchronize(other));
  CUDA_REQUIRE(cudaStreamDestroy(other));
}

// CuPy's per-batch streams: frees on a stream, the stream flushed and destroyed. Once its work is done,
// another stream gets that memory back at once, with no empty_cache and no new page.
TEST_CASE("C interface: a stream flushed before it is destroyed gives its frees to other streams",
          "[cuda][c_interface][destroyed]") {
  REQUIRE(stash_empty_cache(-1) == STASH_OK);
  cudaStream_t doomed = nullptr, other = nullptr;
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&doomed, cudaStreamNonBlocking));
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking));
  const std::size_t bytes = 37 * MiB;
  void* p = stash_alloc(static_cast<ssize_t>(bytes), 0, doomed);
  require_device_memory(p, 0);
  CUDA_REQUIRE(cudaMemsetAsync(p, 7, bytes, doomed));
  stash_free(p, static_cast<ssize_t>(bytes), 0, doomed);
  REQUIRE(stash_flush_stream(doomed) == STASH_OK);
  CUDA_REQUIRE(cudaStreamDestroy(doomed));
  CUDA_REQUIRE(cudaDeviceSynchronize());  // the destroyed stream's work is done (the test waits, not stash)

  stash_stats before{}, after{};
  REQUIRE(stash_get_stats(0, &before) == STASH_OK);
  void* q = stash_alloc(static_cast<ssize_t>(bytes), 0, other);
  REQUIRE(stash_get_stats(0, &after) == STASH_OK);
  CHECK(q == p);
  CHECK(after.backend_allocations == before.backend_allocations);
  CHECK(stash_flush_stream(other) == STASH_OK);  // nothing freed on it: no event, no error
  stash_free(q, static_cast<ssize_t>(bytes), 0, other);
  CHECK(stash_flush_stream(other) == STASH_OK);
  CUDA_REQUIRE(cudaStreamSynchronize(other));
  CUDA_REQUIRE(cudaStreamDestroy(other));
  REQUIRE(stash_empty_cache(-1) == STASH_OK);
}

// A released graph's last replay may still run, on a stream the graph pool never saw, when a request
// runs out of memory and the pool's blocks are given back for the retry (or at empty_cache). They may
// be handed out only once the device has finished, even on the stream they were captured on (stream
// order would allow that at once), and the replay stream, destroyed with the graph, must not be named.
TEST_CASE("C interface: a released graph pool's blocks go back only after the device has finished",
          "[cuda][c_interface][graph][destroyed]") {
  cudaStream_t capture = nullptr, replay = nullptr;
  for (cudaStream_t* s : {&capture, &replay})
    CUDA_REQUIRE(cudaStreamCreateWithFlags(s, cudaStreamNonBlocking));
  constexpr std::size_t bytes = 12 * MiB, out_bytes = 4 * MiB;
  constexpr std::size_t words = bytes / sizeof(unsigned);
  REQUIRE(stash_empty_cache(-1) == STASH_OK);
  const stash_stats before = stats_of(0);
  // Room for the graph's two blocks, not for one more of `bytes`: only the graph's memory can serve it.
  // The limit goes whatever happens here: the suite's later cases share the pool.
  REQUIRE(stash_set_memory_limit(0, before.reserved_bytes + 24 * MiB) == STASH_OK);
  struct no_limit_after {
    ~no_limit_after() { (void)stash_set_memory_limit(0, UINT64_MAX); }
  } const lift;
  REQUIRE(stash_graph_pool_begin(0, 91, 3, only_capture, &capture) == STASH_OK);
  void* scratch = stash_alloc(static_cast<ssize_t>(bytes), 0, capture);
  void* output = stash_alloc(static_cast<ssize_t>(out_bytes), 0, capture);
  require_device_memory(scratch, 0);
  require_device_memory(output, 0);
  stash_free(scratch, static_cast<ssize_t>(bytes), 0, capture);  // an intermediate: the pool keeps it
  REQUIRE(stash_graph_pool_end(0, 91, 3) == STASH_OK);

  // The last "replay", on its own stream: 100 ms on the GPU, then a write over the scratch block. The
  // program drops the output on that stream and destroys it, and the graph with it.
  cudaEvent_t replay_done = nullptr;
  CUDA_REQUIRE(cudaEventCreateWithFlags(&replay_done, cudaEventDisableTiming));
  CUDA_REQUIRE(
      launch_sleep_then_fill(static_cast<unsigned*>(scratch), words, 0xdeadu, 100'000'000ull, replay));
  CUDA_REQUIRE(cudaEventRecord(replay_done, replay));
  stash_free(output, static_cast<ssize_t>(out_bytes), 0, replay);
  CUDA_REQUIRE(cudaStreamDestroy(replay));
  REQUIRE(stash_graph_pool_release(0, 91, 3) == STASH_OK);
  // Normally still running; under compute-sanitizer, which serializes the work, it may have finished:
  // then the wait is not told apart, and the rest still checks the data and the destroyed stream.
  if (cudaEventQuery(replay_done) == cudaSuccess)
    WARN("the replay had finished already (a sanitizer serializes work)");

  void* reused = stash_alloc(static_cast<ssize_t>(bytes), 0, capture);  // out of memory, then the fallback
  INFO(stash_last_error());
  require_device_memory(reused, 0);
  CHECK(cudaEventQuery(replay_done) == cudaSuccess);  // waited for before the blocks went back
  CHECK(stats_of(0).allocated_bytes == before.allocated_bytes + bytes);
  CUDA_REQUIRE(launch_fill(static_cast<unsigned*>(reused), words, 0x5eedu, capture));
  CUDA_REQUIRE(cudaDeviceSynchronize());  // a late write of the replay, had there been one, has landed
  std::vector<unsigned> seen(words);
  CUDA_REQUIRE(cudaMemcpy(seen.data(), reused, bytes, cudaMemcpyDeviceToHost));
  CHECK(std::count(seen.begin(), seen.end(), 0x5eedu) == static_cast<std::ptrdiff_t>(words));
  stash_free(reused, static_cast<ssize_t>(bytes), 0, capture);
  CHECK(stats_of(0).allocated_bytes == before.allocated_bytes);
  CUDA_REQUIRE(cudaEventDestroy(replay_done));
  CUDA_REQUIRE(cudaStreamSynchronize(capture));
  CUDA_REQUIRE(cudaStreamDestroy(capture));
}

// PyTorch's record_stream on a tensor of a graph's private pool: once freed on its own stream, the pool
// must not hand the block to its next request there, which nothing orders after the other stream's work.
TEST_CASE("C interface: a graph pool's block that record_stream named another stream for is not reused",
          "[cuda][c_interface][graph][streams]") {
  cudaStream_t capture = nullptr, side = nullptr;
  for (cudaStream_t* s : {&capture, &side}) CUDA_REQUIRE(cudaStreamCreateWithFlags(s, cudaStreamNonBlocking));
  constexpr std::size_t bytes = 4 * MiB, words = bytes / sizeof(unsigned);
  REQUIRE(stash_empty_cache(-1) == STASH_OK);
  const stash_stats before = stats_of(0);
  REQUIRE(stash_graph_pool_begin(0, 92, 1, only_capture, &capture) == STASH_OK);
  void* shared = stash_alloc(static_cast<ssize_t>(bytes), 0, capture);
  require_device_memory(shared, 0);
  REQUIRE(stash_record_stream(shared, side) == STASH_OK);
  CUDA_REQUIRE(launch_sleep_then_fill(static_cast<unsigned*>(shared), words, 0xdeadu, 100'000'000ull, side));
  stash_free(shared, static_cast<ssize_t>(bytes), 0, capture);
  void* next = stash_alloc(static_cast<ssize_t>(bytes), 0, capture);  // routed to the pool, on its own stream
  require_device_memory(next, 0);
  CHECK(next != shared);
  CUDA_REQUIRE(launch_fill(static_cast<unsigned*>(next), words, 0x5eedu, capture));
  CUDA_REQUIRE(cudaDeviceSynchronize());  // the side stream's late write has landed wherever it went
  std::vector<unsigned> seen(words);
  CUDA_REQUIRE(cudaMemcpy(seen.data(), next, bytes, cudaMemcpyDeviceToHost));
  CHECK(std::count(seen.begin(), seen.end(), 0x5eedu) == static_cast<std::ptrdiff_t>(words));
  stash_free(next, static_cast<ssize_t>(bytes), 0, capture);
  REQUIRE(stash_graph_pool_end(0, 92, 1) == STASH_OK);
  REQUIRE(stash_graph_pool_release(0, 92, 1) == STASH_OK);
  REQUIRE(stash_empty_cache(-1) == STASH_OK);  // synchronizes, then the released pool's blocks go back
  CHECK(stats_of(0).allocated_bytes == before.allocated_bytes);
  for (cudaStream_t s : {capture, side}) CUDA_REQUIRE(cudaStreamDestroy(s));
}

// A graph's output used on a side stream and dropped there after the capture: the pool keeps it, and
// the next capture into the pool takes it on the graph's stream once an event recorded at the free on
// the side stream has completed, with no device-wide synchronize (stash_empty_cache) in between.
TEST_CASE("C interface: a graph pool's block freed on another stream after the capture serves its own "
          "stream once that stream's work is done",
          "[cuda][c_interface][graph][streams]") {
  cudaStream_t capture = nullptr, side = nullptr;
  for (cudaStream_t* s : {&capture, &side}) CUDA_REQUIRE(cudaStreamCreateWithFlags(s, cudaStreamNonBlocking));
  constexpr std::size_t bytes = 4 * MiB, words = bytes / sizeof(unsigned);
  REQUIRE(stash_empty_cache(-1) == STASH_OK);
  const stash_stats before = stats_of(0);
  REQUIRE(stash_graph_pool_begin(0, 93, 1, only_capture, &capture) == STASH_OK);
  void* out = stash_alloc(static_cast<ssize_t>(bytes), 0, capture);
  require_device_memory(out, 0);
  REQUIRE(stash_graph_pool_end(0, 93, 1) == STASH_OK);
  // 100 ms on the side stream, then a write over the output; dropped there meanwhile.
  CUDA_REQUIRE(launch_sleep_then_fill(static_cast<unsigned*>(out), words, 0xdeadu, 100'000'000ull, side));
  stash_free(out, static_cast<ssize_t>(bytes), 0, side);

  REQUIRE(stash_graph_pool_begin(0, 93, 1, only_capture, &capture) == STASH_OK);  // the next capture
  void* early = stash_alloc(static_cast<ssize_t>(bytes), 0, capture);
  require_device_memory(early, 0);
  // Still running after the request: the free's event had not completed when it was asked.
  if (cudaStreamQuery(side) == cudaErrorNotReady) CHECK(early != out);
  else WARN("the side stream had finished already (a sanitizer serializes work)");
  (void)cudaGetLastError();
  CUDA_REQUIRE(cudaStreamSynchronize(side));  // the test waits; stash does not
  // Its event has completed: the next request takes it (or the first did, when the side had finished).
  void* after = early == out ? early : stash_alloc(static_cast<ssize_t>(bytes), 0, capture);
  CHECK(after == out);
  CUDA_REQUIRE(launch_fill(static_cast<unsigned*>(out), words, 0x5eedu, capture));
  CUDA_REQUIRE(cudaStreamSynchronize(capture));
  std::vector<unsigned> seen(words);
  CUDA_REQUIRE(cudaMemcpy(seen.data(), out, bytes, cudaMemcpyDeviceToHost));
  CHECK(std::count(seen.begin(), seen.end(), 0x5eedu) == static_cast<std::ptrdiff_t>(words));
  stash_free(early, static_cast<ssize_t>(bytes), 0, capture);
  if (after != early) stash_free(after, static_cast<ssize_t>(bytes), 0, capture);
  REQUIRE(stash_graph_pool_end(0, 93, 1) == STASH_OK);
  REQUIRE(stash_graph_pool_release(0, 93, 1) == STASH_OK);
  REQUIRE(stash_graph_pool_release(0, 93, 1) == STASH_OK);  // one user per begin
  REQUIRE(stash_empty_cache(-1) == STASH_OK);
  CHECK(stats_of(0).allocated_bytes == before.allocated_bytes);
  for (cudaStream_t s : {capture, side}) CUDA_REQUIRE(cudaStreamDestroy(s));
}

TEST_CASE("C interface: zero bytes is null and no error", "[cuda][c_interface]") {
  stash_clear_error();
  const stash_stats before = stats_of(0);
  CHECK(stash_alloc(0, 0, nullptr) == nullptr);
  stash_free(nullptr, 0, 0, nullptr);
  CHECK(std::string(stash_last_error()).empty());
  CHECK(stats_of(0).allocations == before.allocations);
}

TEST_CASE("C interface: out of memory is null, counted, and the process goes on", "[cuda][c_interface]") {
  void* keep = stash_alloc(static_cast<ssize_t>(16 * MiB), 0, nullptr);
  require_device_memory(keep, 0);
  write_pattern(keep, 16 * MiB, 5);
  const stash_stats before = stats_of(0);
  // Four times the device: more than any pool reserves, so it fails at once.
  const auto total = stash::device_manager::memory(0).total_bytes;
  CHECK(stash_alloc(static_cast<ssize_t>(4 * total), 0, nullptr) == nullptr);
  CHECK(last_error_has("out of memory"));
  const stash_stats after = stats_of(0);
  CHECK(after.num_ooms == before.num_ooms + 1);
  CHECK(after.allocated_bytes == before.allocated_bytes);
  CHECK(after.reserved_bytes <= before.reserved_bytes);
  CHECK(holds_pattern(keep, 16 * MiB, 5));
  void* more = stash_alloc(static_cast<ssize_t>(MiB), 0, nullptr);
  require_device_memory(more, 0);
  stash_free(more, static_cast<ssize_t>(MiB), 0, nullptr);
  stash_free(keep, static_cast<ssize_t>(16 * MiB), 0, nullptr);
}

TEST_CASE("C interface: empty_cache gives the free pages back to the driver", "[cuda][c_interface]") {
  void* p = stash_alloc(static_cast<ssize_t>(256 * MiB), 0, nullptr);
  require_device_memory(p, 0);
  stash_free(p, static_cast<ssize_t>(256 * MiB), 0, nullptr);
  CHECK(stats_of(0).cached_bytes >= 256 * MiB);
  const std::size_t free_before = free_memory(0);
  REQUIRE(stash_empty_cache(-1) == STASH_OK);
  const stash_stats s = stats_of(0);
  CHECK(s.cached_bytes < 4 * MiB);  // at most what partly used pages keep
  CHECK(free_memory(0) >= free_before + 250 * MiB);
}

namespace {
/// What stash_visit_memory reported: regions (begin, bytes, paged) and each one's blocks.
struct walked {
  struct block {
    std::uintptr_t addr;
    std::uint64_t bytes, requested, pool_first, pool_second;
  };
  struct region {
    std::uintptr_t begin;
    std::uint64_t bytes;
    int paged;
    std::vector<block> blocks;
  };
  std::vector<region> regions;
  static void on_region(void* context, void* begin, uint64_t bytes, int paged) {
    static_cast<walked*>(context)->regions.push_back({reinterpret_cast<std::uintptr_t>(begin), bytes, paged, {}});
  }
  static void on_block(void* context, void* addr, uint64_t bytes, uint64_t requested, uint64_t pool_first,
                       uint64_t pool_second) {
    static_cast<walked*>(context)->regions.back().blocks.push_back(
        {reinterpret_cast<std::uintptr_t>(addr), bytes, requested, pool_first, pool_second});
  }
};
}  // namespace

TEST_CASE("C interface: the memory walk shows runs of mapped pages tiled by their blocks", "[cuda][c_interface]") {
  void* big = stash_alloc(static_cast<ssize_t>(40 * MiB + 5), 0, nullptr);
  void* small = stash_alloc(3000, 0, nullptr);
  require_device_memory(big, 0);
  require_device_memory(small, 0);
  walked w;
  REQUIRE(stash_visit_memory(0, walked::on_region, walked::on_block, &w) == STASH_OK);
  const stash_stats s = stats_of(0);
  std::uint64_t held = 0, live = 0, requested = 0;
  bool saw_big = false, saw_small = false;
  for (const auto& r : w.regions) {
    CHECK(r.paged == 1);  // backend:vmm, the default
    CHECK(r.bytes % (2 * MiB) == 0);
    held += r.bytes;
    std::uintptr_t at = r.begin;
    for (const auto& b : r.blocks) {
      CHECK(b.addr == at);
      at += b.bytes;
      if (b.requested == 0) continue;
      live += b.bytes;
      requested += b.requested;
      saw_big |= b.addr == reinterpret_cast<std::uintptr_t>(big) && b.requested == 40 * MiB + 5;
      saw_small |= b.addr == reinterpret_cast<std::uintptr_t>(small) && b.requested == 3000;
    }
    CHECK(at == r.begin + r.bytes);
  }
  CHECK(held == s.reserved_bytes);
  CHECK(live == s.allocated_bytes);
  CHECK(requested == s.requested_bytes);
  CHECK(saw_big);
  CHECK(saw_small);
  // A graph pool's block names its pool, live or freed and kept for the pool; other blocks name none.
  cudaStream_t capture = nullptr;
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&capture, cudaStreamNonBlocking));
  REQUIRE(stash_graph_pool_begin(0, 57, 3, only_capture, &capture) == STASH_OK);
  void* in_pool = stash_alloc(static_cast<ssize_t>(MiB), 0, capture);
  require_device_memory(in_pool, 0);
  REQUIRE(stash_graph_pool_end(0, 57, 3) == STASH_OK);
  for (const bool freed : {false, true}) {
    if (freed) stash_free(in_pool, static_cast<ssize_t>(MiB), 0, capture);
    walked again;
    REQUIRE(stash_visit_memory(0, walked::on_region, walked::on_block, &again) == STASH_OK);
    int found = 0;
    for (const auto& r : again.regions)
      for (const auto& b : r.blocks) {
        if (b.addr == reinterpret_cast<std::uintptr_t>(in_pool)) {
          ++found;
          CHECK((b.pool_first == 57 && b.pool_second == 3 && b.requested == MiB));
        } else if (b.addr == reinterpret_cast<std::uintptr_t>(big) || b.requested == 0) {
          CHECK((b.pool_first == 0 && b.pool_second == 0));  // a live block outside pools, a free one
        }
      }
    CHECK(found == 1);
  }
  REQUIRE(stash_graph_pool_release(0, 57, 3) == STASH_OK);
  REQUIRE(stash_empty_cache(-1) == STASH_OK);
  CUDA_REQUIRE(cudaStreamDestroy(capture));

  CHECK(stash_visit_memory(0, nullptr, walked::on_block, &w) == STASH_ERROR_INVALID_ARGUMENT);
  CHECK(stash_visit_memory(device_count() + 3, walked::on_region, walked::on_block, &w) ==
        STASH_ERROR_INVALID_ARGUMENT);
  stash_free(big, static_cast<ssize_t>(40 * MiB + 5), 0, nullptr);
  stash_free(small, 3000, 0, nullptr);
}

TEST_CASE("C interface: pinned memory", "[cuda][c_interface]") {
  void* h = stash_alloc_pinned(MiB);
  REQUIRE(h != nullptr);
  CHECK(attributes(h).type == cudaMemoryTypeHost);
  std::memset(h, 0x5a, MiB);
  void* d = stash_alloc(static_cast<ssize_t>(MiB), 0, nullptr);
  CUDA_REQUIRE(cudaMemcpy(d, h, MiB, cudaMemcpyHostToDevice));
  std::memset(h, 0, MiB);
  CUDA_REQUIRE(cudaMemcpy(h, d, MiB, cudaMemcpyDeviceToHost));
  CHECK(static_cast<unsigned char*>(h)[MiB - 1] == 0x5a);
  stash_free(d, static_cast<ssize_t>(MiB), 0, nullptr);
  CHECK(stash_free_pinned(h) == STASH_OK);
  CHECK(stash_free_pinned(h) == STASH_ERROR_INVALID_POINTER);
}

TEST_CASE("C interface: a bad free is reported and changes nothing", "[cuda][c_interface]") {
  void* p = stash_alloc(4096, 0, nullptr);
  require_device_memory(p, 0);
  const stash_stats before = stats_of(0);
  int on_stack = 0;
  stash_free(&on_stack, 4, 0, nullptr);
  CHECK(last_error_has("invalid pointer"));
  CHECK(stats_of(0).allocated_bytes == before.allocated_bytes);
  stash_free(p, 4096, 0, nullptr);
  stash_free(p, 4096, 0, nullptr);
  CHECK(last_error_has("invalid pointer"));
  CHECK(stats_of(0).deallocations == before.deallocations + 1);
}

TEST_CASE("C interface: record_stream takes live allocations", "[cuda][c_interface]") {
  cudaStream_t side = nullptr;
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  void* p = stash_alloc(static_cast<ssize_t>(MiB), 0, nullptr);
  CHECK(stash_stream_ordered() == 1);
  CHECK(stash_record_stream(p, side) == STASH_OK);
  int on_stack = 0;
  CHECK(stash_record_stream(&on_stack, side) == STASH_ERROR_INVALID_POINTER);
  stash_free(p, static_cast<ssize_t>(MiB), 0, nullptr);
  CUDA_REQUIRE(cudaStreamSynchronize(side));
  CUDA_REQUIRE(cudaStreamDestroy(side));
}

TEST_CASE("C interface: a memory limit is met as a full device", "[cuda][c_interface]") {
  REQUIRE(stash_empty_cache(0) == STASH_OK);
  const stash_stats before = stats_of(0);
  REQUIRE(stash_set_memory_limit(0, before.reserved_bytes + 80 * MiB) == STASH_OK);
  CHECK(stats_of(0).limit_bytes == before.reserved_bytes + 80 * MiB);
  void* fits = stash_alloc(static_cast<ssize_t>(32 * MiB), 0, nullptr);
  require_device_memory(fits, 0);
  CHECK(stash_alloc(static_cast<ssize_t>(64 * MiB), 0, nullptr) == nullptr);
  CHECK(last_error_has("out of memory"));
  CHECK(stats_of(0).reserved_bytes <= before.reserved_bytes + 80 * MiB);
  stash_free(fits, static_cast<ssize_t>(32 * MiB), 0, nullptr);
  void* now_fits = stash_alloc(static_cast<ssize_t>(64 * MiB), 0, nullptr);
  require_device_memory(now_fits, 0);
  stash_free(now_fits, static_cast<ssize_t>(64 * MiB), 0, nullptr);
  REQUIRE(stash_set_memory_fraction(0.5, 0) == STASH_OK);
  const auto total = stash::device_manager::memory(0).total_bytes;
  CHECK(stats_of(0).limit_bytes == static_cast<std::uint64_t>(0.5 * static_cast<double>(total)));
  REQUIRE(stash_set_memory_limit(0, UINT64_MAX) == STASH_OK);
  CHECK(stats_of(0).limit_bytes == UINT64_MAX);
}

TEST_CASE("C interface: a second device has its own pool", "[cuda][c_interface][multi_gpu]") {
  STASH_REQUIRE_TWO_DEVICES();
  void* p = stash_alloc(static_cast<ssize_t>(2 * MiB), 1, nullptr);
  require_device_memory(p, 1);
  CHECK(stats_of(1).allocated_bytes >= 2 * MiB);
  stash_free(p, static_cast<ssize_t>(2 * MiB), 0, nullptr);  // the wrong device: its owner frees it
  CHECK(stats_of(1).allocated_bytes == 0);
}
