// Stream-ordered allocation on the GPU, with kernels (tests/cuda/stream_kernels.cu) that keep using
// memory after the host has freed it. The cross-stream race of issue 7 passes with stream order and is
// shown to corrupt data with host order; 8 streams on 8 threads write and verify tags; record_stream;
// a captured graph; a held stream proves that allocate, deallocate, page moves and trim_cache never
// wait for the device; a stream destroyed after frees on it, and empty_cache during a capture.
#include <catch2/catch.hpp>
#include <cuda_runtime_api.h>

#include <atomic>
#include <memory>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "cuda/allocators.hpp"
#include "cuda/cuda_support.hpp"
#include "cuda/stream_blocker.hpp"
#include "cuda/stream_kernels.hpp"
#include "stash/ordering/host_ordering.hpp"

using namespace stash_test;

namespace {

constexpr unsigned long long ms = 1'000'000;  // in nanoseconds

/// Mismatch counters in device memory, one per slot.
class counters {
 public:
  explicit counters(std::size_t n) : n_(n) {
    CUDA_REQUIRE(cudaMalloc(reinterpret_cast<void**>(&d_), n * sizeof(unsigned long long)));
    CUDA_REQUIRE(cudaMemset(d_, 0, n * sizeof(unsigned long long)));
  }
  ~counters() { (void)cudaFree(d_); }
  counters(const counters&) = delete;
  counters& operator=(const counters&) = delete;
  unsigned long long* at(std::size_t i) { return d_ + i; }
  std::vector<unsigned long long> read() {
    std::vector<unsigned long long> v(n_);
    CUDA_REQUIRE(cudaMemcpy(v.data(), d_, n_ * sizeof(unsigned long long), cudaMemcpyDeviceToHost));
    return v;
  }

 private:
  std::size_t n_;
  unsigned long long* d_ = nullptr;
};

using host_ordered_segments =
    stash::caching_allocator<stash::cuda_device_backend, stash::segregated_fit_buckets, std::mutex,
                             stash::basic_stats, stash::host_ordering>;

struct race_result {
  unsigned long long bad_words = 0;  // words of t's block that do not hold t's tag
  bool same_block = false;           // t got the block s's kernel was still writing
  std::uint64_t host_waits = 0;      // before the final empty_cache
};

/// The race of issue 7: a kernel on s keeps writing a block; the host frees it on s, allocates on t
/// and fills the new block there.
template <class Allocator>
race_result cross_stream_race(Allocator& alloc) {
  race_result r;
  scoped_stream s, t;
  counters bad(1);
  constexpr std::size_t words = std::size_t{1} << 20;
  auto* p = static_cast<unsigned*>(alloc.allocate(words * sizeof(unsigned), s.s));
  CUDA_REQUIRE(launch_keep_writing(p, words, 0xAAAA'AAAAu, 300 * ms, s.s));
  alloc.deallocate(p, s.s);
  auto* q = static_cast<unsigned*>(alloc.allocate(words * sizeof(unsigned), t.s));
  r.same_block = q == p;
  CUDA_REQUIRE(launch_fill(q, words, 0xBBBB'BBBBu, t.s));
  CUDA_REQUIRE(cudaStreamSynchronize(t.s));
  CUDA_REQUIRE(cudaStreamSynchronize(s.s));  // s's kernel has stopped writing
  CUDA_REQUIRE(launch_count_mismatches(q, words, 0xBBBB'BBBBu, bad.at(0), t.s));
  CUDA_REQUIRE(cudaStreamSynchronize(t.s));
  alloc.deallocate(q, t.s);
  if constexpr (requires { alloc.ordering().stats(); }) r.host_waits = alloc.ordering().stats().host_waits;
  alloc.empty_cache();  // while s and t still exist
  r.bad_words = bad.read()[0];
  return r;
}

}  // namespace

TEMPLATE_TEST_CASE("streams (GPU): a block a kernel still writes on S is not handed to T", "[cuda][streams]",
                   device_segregated, device_vmm) {
  TestType alloc{typename TestType::backend_type(current_device())};
  const race_result r = cross_stream_race(alloc);
  CHECK(r.bad_words == 0);
  CHECK_FALSE(r.same_block);
  CHECK(r.host_waits == 0);
}

TEST_CASE("streams (GPU): the same race corrupts data with a host-ordered allocator", "[cuda][streams]") {
  host_ordered_segments alloc{stash::cuda_device_backend(current_device())};
  const race_result r = cross_stream_race(alloc);
  CHECK(r.same_block);     // host order hands the block out at once
  CHECK(r.bad_words > 0);  // and the kernel still running on s overwrote t's data
}

TEST_CASE("streams (GPU): record_stream keeps a block until the side stream's work is done",
          "[cuda][streams]") {
  device_vmm alloc{stash::cuda_vmm_backend(current_device())};
  scoped_stream main_stream, side;
  counters bad(1);
  constexpr std::size_t words = std::size_t{1} << 20;
  constexpr std::size_t bytes = words * sizeof(unsigned);
  // The tensor is made on the main stream; the side stream sleeps, then fills it.
  auto* x = static_cast<unsigned*>(alloc.allocate(bytes, main_stream.s));
  CUDA_REQUIRE(launch_sleep_then_fill(x, words, 0x5151'5151u, 200 * ms, side.s));
  alloc.record_stream(x, side.s);
  alloc.deallocate(x, main_stream.s);
  // A new tensor on the main stream, filled there: the side stream's late write must not land in it.
  auto* y = static_cast<unsigned*>(alloc.allocate(bytes, main_stream.s));
  CUDA_REQUIRE(launch_fill(y, words, 0x7e7e'7e7eu, main_stream.s));
  CUDA_REQUIRE(cudaStreamSynchronize(side.s));
  CUDA_REQUIRE(launch_count_mismatches(y, words, 0x7e7e'7e7eu, bad.at(0), main_stream.s));
  CUDA_REQUIRE(cudaStreamSynchronize(main_stream.s));
  CHECK(bad.read()[0] == 0);
  CHECK(y != x);
  alloc.deallocate(y, main_stream.s);
  CHECK(alloc.ordering().stats().host_waits == 0);
}

TEMPLATE_TEST_CASE("streams (GPU): 8 threads on 8 streams write and verify tags through one allocator",
                   "[cuda][streams][threads]", device_segregated, device_vmm) {
  constexpr int streams = 8, rounds = 60;
  std::vector<std::unique_ptr<scoped_stream>> own;  // they outlive the allocator's use of them
  for (int i = 0; i < streams; ++i) own.push_back(std::make_unique<scoped_stream>());
  TestType alloc{typename TestType::backend_type(current_device())};
  counters bad(streams);
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int i = 0; i < streams; ++i) {
    threads.emplace_back([&, i] {
      try {
        const cudaStream_t s = own[static_cast<std::size_t>(i)]->s;
        std::mt19937 rng(static_cast<unsigned>(i) + 1);
        std::uniform_int_distribution<std::size_t> words_of(1 << 10, 1 << 20);
        for (int r = 0; r < rounds; ++r) {
          const std::size_t words = words_of(rng);
          const unsigned tag = 0x1000'0000u * static_cast<unsigned>(i + 1) + static_cast<unsigned>(r);
          auto* p = static_cast<unsigned*>(alloc.allocate(words * sizeof(unsigned), s));
          if (launch_sleep_then_fill(p, words, tag, 200'000, s) != cudaSuccess ||
              launch_count_mismatches(p, words, tag, bad.at(static_cast<std::size_t>(i)), s) != cudaSuccess)
            throw std::runtime_error("launch");
          alloc.deallocate(p, s);  // while the kernels above may still run
        }
        if (cudaStreamSynchronize(s) != cudaSuccess) throw std::runtime_error("sync");
      } catch (...) {
        ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  REQUIRE(errors == 0);
  for (unsigned long long b : bad.read()) CHECK(b == 0);
  CHECK(alloc.ordering().stats().host_waits == 0);
  CHECK(alloc.stats().allocations == streams * rounds);
  alloc.empty_cache();  // while the streams still exist
}

// A thread per request, each on its own cudaStreamPerThread, one after another: each thread leaves a
// kernel writing its block after it has freed it and finished; the next thread's block must not be
// that one while the kernel runs. Finished threads' streams are forgotten while the program runs
// (once their last free's event has completed and more threads come), not kept until empty_cache.
TEMPLATE_TEST_CASE("streams (GPU): a thread per request on cudaStreamPerThread: late kernels keep their "
                   "blocks, finished threads' streams are forgotten",
                   "[cuda][streams][threads]", device_segregated, device_vmm) {
  TestType alloc{typename TestType::backend_type(current_device())};
  constexpr int threads = 200;
  constexpr std::size_t words = std::size_t{1} << 18;  // 1 MiB
  counters bad(threads);
  unsigned* scratch = nullptr;  // what the pause kernels write: nothing reads it
  CUDA_REQUIRE(cudaMalloc(reinterpret_cast<void**>(&scratch), threads * sizeof(unsigned)));
  std::atomic<int> errors{0};
  for (int i = 0; i < threads; ++i) {
    std::thread([&, i] {
      try {
        const stash::stream own = stash::stream::per_thread();
        const unsigned tag = 0x2000'0000u + static_cast<unsigned>(i);
        auto* p = static_cast<unsigned*>(alloc.allocate(words * sizeof(unsigned), own));
        // Fill, pause 3 ms on the GPU (the last thread's kernel, 2 ms long, ends meanwhile), count what
        // is not this thread's tag, then keep writing the tag for 2 ms after the free and the thread's end.
        if (launch_fill(p, words, tag, cudaStreamPerThread) != cudaSuccess ||
            launch_sleep_then_fill(scratch + i, 1, tag, 3 * ms, cudaStreamPerThread) != cudaSuccess ||
            launch_count_mismatches(p, words, tag, bad.at(static_cast<std::size_t>(i)),
                                    cudaStreamPerThread) != cudaSuccess ||
            launch_keep_writing(p, words, tag, 2 * ms, cudaStreamPerThread) != cudaSuccess)
          throw std::runtime_error("launch");
        alloc.deallocate(p, own);
      } catch (...) {
        ++errors;
      }
    }).join();
  }
  REQUIRE(errors == 0);
  CUDA_REQUIRE(cudaDeviceSynchronize());
  for (unsigned long long b : bad.read()) CHECK(b == 0);
  // The GPU ran behind the threads (each left 5 ms of kernels), so passes kept the streams whose
  // frees were still pending. Now every event has completed: as more threads come and go (no kernels
  // this time), the passes forget the finished threads' streams, and at most 128 are known at a time.
  constexpr int more = 300;
  for (int i = 0; i < more; ++i) {
    std::thread([&] {
      try {
        alloc.deallocate(alloc.allocate(words * sizeof(unsigned), stash::stream::per_thread()),
                         stash::stream::per_thread());
      } catch (...) {
        ++errors;
      }
    }).join();
  }
  REQUIRE(errors == 0);
  CHECK(alloc.stream_stats().streams_forgotten >= threads + more - 2 * 64);
  CHECK(alloc.ordering().stats().host_waits == 0);
  CHECK(alloc.stream_stats().device_syncs == 0);
  alloc.empty_cache();
  CHECK(alloc.reserved_bytes() == 0);
  CUDA_REQUIRE(cudaFree(scratch));
}

TEST_CASE("streams (GPU): a graph captured with allocations from the cache and from new pages replays",
          "[cuda][streams][graph]") {
  device_vmm alloc{stash::cuda_vmm_backend(current_device())};
  scoped_stream s;
  counters bad(2);
  constexpr std::size_t words = std::size_t{1} << 18;
  constexpr std::size_t bytes = words * sizeof(unsigned);
  constexpr std::size_t big_words = std::size_t{24} << 20;  // 96 MiB: pages mapped during the capture
  void* warm = alloc.allocate(bytes, s.s);
  alloc.deallocate(warm, s.s);
  const auto maps = alloc.stats().backend_allocations;

  CUDA_REQUIRE(cudaStreamBeginCapture(s.s, cudaStreamCaptureModeGlobal));
  auto* p = static_cast<unsigned*>(alloc.allocate(bytes, s.s));  // from the cache
  CHECK(p == warm);
  // New pages, mapped in relaxed capture mode (stash/cuda/capture_mode.hpp): the capture stays valid.
  auto* big = static_cast<unsigned*>(alloc.allocate(big_words * sizeof(unsigned), s.s));
  CHECK(capture_active(s.s));
  // Past the reserved address range: out_of_memory, with nothing waited for, and the capture valid.
  CHECK_THROWS_AS(alloc.allocate(std::size_t{1} << 44, s.s), stash::out_of_memory);
  CHECK(capture_active(s.s));
  (void)launch_fill(p, words, 0x6a6a'6a6au, s.s);
  (void)launch_count_mismatches(p, words, 0x6a6a'6a6au, bad.at(0), s.s);
  (void)launch_fill(big, big_words, 0x5b5b'5b5bu, s.s);
  (void)launch_count_mismatches(big, big_words, 0x5b5b'5b5bu, bad.at(1), s.s);
  cudaGraph_t graph = nullptr;
  CUDA_REQUIRE(cudaStreamEndCapture(s.s, &graph));
  CHECK(alloc.stats().backend_allocations > maps);

  cudaGraphExec_t exec = nullptr;
  CUDA_REQUIRE(cudaGraphInstantiate(&exec, graph, 0));
  for (int i = 0; i < 3; ++i) CUDA_REQUIRE(cudaGraphLaunch(exec, s.s));
  CUDA_REQUIRE(cudaStreamSynchronize(s.s));
  CHECK(bad.read()[0] == 0);
  CHECK(bad.read()[1] == 0);
  CUDA_REQUIRE(cudaGraphExecDestroy(exec));
  CUDA_REQUIRE(cudaGraphDestroy(graph));
  alloc.deallocate(p, s.s);  // after the graph's last launch
  alloc.deallocate(big, s.s);
}

TEMPLATE_TEST_CASE("streams (GPU): allocate, deallocate, page moves and trim never wait for the device",
                   "[cuda][streams][sync]", device_segregated, device_vmm) {
  stash::caching_options options;
  options.page_slack = 0;          // move pages as often as the allocator may
  options.pages_between_moves = 0;
  TestType alloc{typename TestType::backend_type(current_device()), options};
  scoped_stream s, t;
  stream_blocker busy(s.s);  // s stays busy until released: a device-wide wait would hang here
  const auto start = std::chrono::steady_clock::now();
  std::mt19937 rng(3);
  std::uniform_int_distribution<std::size_t> size_of(256, 24u << 20);
  std::vector<std::pair<void*, cudaStream_t>> live;
  for (int i = 0; i < 400; ++i) {
    const cudaStream_t on = i % 3 == 0 ? s.s : t.s;  // s's frees stay pending, t's complete
    live.emplace_back(alloc.allocate(size_of(rng), on), on);
    if (live.size() > 12) {
      const std::size_t k = rng() % live.size();
      alloc.deallocate(live[k].first, live[k].second);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
    }
    // cudaFree waits for the device by itself: trim_cache is checked on the paged backend only.
    if constexpr (is_paged<TestType>) {
      if (i % 50 == 49) alloc.trim_cache(0);
    }
  }
  for (auto& [p, on] : live) alloc.deallocate(p, on);
  if constexpr (is_paged<TestType>) alloc.trim_cache(0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(cudaStreamQuery(s.s) == cudaErrorNotReady);  // s's host function still holds it
  (void)cudaGetLastError();
  CHECK_FALSE(busy.timed_out());
  CHECK(seconds < 10.0);
  CHECK(alloc.ordering().stats().host_waits == 0);
  if constexpr (is_paged<TestType>) {
    if (alloc.page_moves() == 0) WARN("no page moved in this run: the test proved less than it could");
  }
  busy.release();
  CUDA_REQUIRE(cudaDeviceSynchronize());
  alloc.empty_cache();  // may wait (it does, for the epochs still pending)
  CHECK(alloc.reserved_bytes() == 0);
}

TEMPLATE_TEST_CASE(
    "streams (GPU): a stream destroyed after frees on it: empty_cache and another stream go on",
    "[cuda][streams][destroyed]", device_segregated, device_vmm) {
  TestType alloc{typename TestType::backend_type(current_device())};
  scoped_stream t;
  counters bad(1);
  constexpr std::size_t words = std::size_t{1} << 20;
  constexpr std::size_t bytes = words * sizeof(unsigned);
  cudaStream_t s = nullptr;
  CUDA_REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  auto* p = static_cast<unsigned*>(alloc.allocate(bytes, s));
  CUDA_REQUIRE(launch_keep_writing(p, words, 0xAAAA'AAAAu, 100 * ms, s));
  alloc.deallocate(p, s);
  CUDA_REQUIRE(cudaStreamDestroy(s));  // its kernel may still run: the runtime finishes it by itself

  // Neither call may use s's handle (undefined behaviour now): a miss on t only flags s's epoch.
  auto* q = static_cast<unsigned*>(alloc.allocate(bytes, t.s));
  CHECK(q != p);
  CUDA_REQUIRE(launch_fill(q, words, 0xBBBB'BBBBu, t.s));
  alloc.trim_cache(0);
  alloc.empty_cache();  // a device-wide synchronize settles s's frees without its handle
  CHECK(alloc.ordering().stats().device_syncs == 1);
  auto* r = static_cast<unsigned*>(alloc.allocate(bytes, t.s));  // p's memory may come back now
  CUDA_REQUIRE(launch_fill(r, words, 0xCCCC'CCCCu, t.s));
  CUDA_REQUIRE(launch_count_mismatches(q, words, 0xBBBB'BBBBu, bad.at(0), t.s));
  CUDA_REQUIRE(launch_count_mismatches(r, words, 0xCCCC'CCCCu, bad.at(0), t.s));
  CUDA_REQUIRE(cudaStreamSynchronize(t.s));
  CHECK(bad.read()[0] == 0);
  alloc.deallocate(q, t.s);
  alloc.deallocate(r, t.s);
  alloc.empty_cache();
  CHECK(alloc.reserved_bytes() == 0);
}

// A relaxed-mode capture, so that the backend's own calls in empty_cache (unmapping pages) are allowed
// too. The pending free is on the legacy default stream, whose event empty_cache records itself, so no
// device-wide wait is needed (one would break the capture, whatever its mode) and the capture stays valid.
TEST_CASE("streams (GPU): empty_cache while another stream captures a graph leaves the capture valid",
          "[cuda][streams][graph]") {
  device_vmm alloc{stash::cuda_vmm_backend(current_device())};
  scoped_stream s;
  void* on_default = alloc.allocate(std::size_t{4} << 20);
  alloc.deallocate(on_default);  // pending on the default stream: empty_cache has something to wait for
  CUDA_REQUIRE(cudaStreamBeginCapture(s.s, cudaStreamCaptureModeRelaxed));
  CHECK_NOTHROW(alloc.empty_cache());
  CHECK(capture_active(s.s));
  end_capture_and_discard(s.s);
  const auto st = alloc.stream_stats();
  CHECK(st.device_syncs == 0);
  CHECK(alloc.reserved_bytes() == 0);
}
