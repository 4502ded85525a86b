#pragma once
// The micro-benchmarks of stash-replay (see README.md):
//   threads: N threads share one allocator and each does a fixed count of allocate+free pairs of
//            mixed sizes; reported as wall time over all pairs (aggregate ns per pair), median of
//            three passes.
//   pinned:  a synthetic trace over pinned host memory (sliding window of live blocks of mixed
//            sizes), replayed like a real trace, so its figures (time, bytes held over live) are
//            computed by the same measure_replay.
//   cross-stream: a block allocated and freed on stream S, then the same size allocated on stream T;
//            host ns of that allocate on T, and how often it returned the address S had.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <latch>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <cuda_runtime_api.h>

#include "allocators/replay_allocator.hpp"
#include "stash/cuda/cuda_check.hpp"
#include "trace_reader.hpp"

namespace stash::bench {

/// `count` sizes drawn log-uniformly from [lo, hi] by a fixed generator: the same on every machine.
inline std::vector<std::size_t> mixed_sizes(std::size_t count, std::size_t lo, std::size_t hi, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  const double log_lo = std::log2(static_cast<double>(lo));
  const double log_hi = std::log2(static_cast<double>(hi));
  std::vector<std::size_t> sizes(count);
  for (auto& size : sizes) {
    const double unit = static_cast<double>(random() >> 11) * 0x1.0p-53;  // [0, 1), portable
    size = static_cast<std::size_t>(std::exp2(log_lo + unit * (log_hi - log_lo)));
  }
  return sizes;
}

struct threads_result {
  std::string allocator;
  int threads = 0;
  std::size_t pairs = 0;  // over all threads
  std::optional<double> ns_per_pair;  // empty when there were no pairs to time
};

/// Sizes 256 B .. 4 MiB; each thread has its own sequence (seed + thread index). One untimed pass of
/// up to 1000 pairs per thread fills the cache first.
inline threads_result measure_threads(replay_allocator& allocator, int threads, std::size_t pairs_per_thread,
                                      std::uint64_t seed = 42) {
  std::vector<std::vector<std::size_t>> sizes;
  for (int i = 0; i < threads; ++i) sizes.push_back(mixed_sizes(pairs_per_thread, 256, 4 << 20, seed + i));

  auto pairs = [&allocator](const std::vector<std::size_t>& sequence, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
      void* p = allocator.allocate(sequence[i]);
      allocator.deallocate(p, sequence[i]);
    }
  };
  for (const auto& sequence : sizes) pairs(sequence, std::min<std::size_t>(sequence.size(), 1000));

  // Median of three timed passes: one pass is a few milliseconds, short enough for a noisy host to
  // skew it.
  std::vector<double> pass_ns;
  for (int pass = 0; pass < 3; ++pass) {
    std::latch start(1);
    std::vector<std::exception_ptr> errors(sizes.size());
    std::vector<std::jthread> workers;
    for (std::size_t i = 0; i < sizes.size(); ++i)
      workers.emplace_back([&, i] {
        start.wait();
        try {
          pairs(sizes[i], sizes[i].size());
        } catch (...) {
          errors[i] = std::current_exception();  // rethrown on the calling thread, after the join
        }
      });
    const auto t0 = std::chrono::steady_clock::now();
    start.count_down();
    for (auto& w : workers) w.join();
    const auto t1 = std::chrono::steady_clock::now();
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
    pass_ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  std::sort(pass_ns.begin(), pass_ns.end());

  threads_result r;
  r.allocator = std::string(allocator.name());
  r.threads = threads;
  r.pairs = pairs_per_thread * static_cast<std::size_t>(threads);
  if (r.pairs > 0) r.ns_per_pair = pass_ns[1] / static_cast<double>(r.pairs);
  return r;
}

struct cross_stream_result {
  std::string allocator;
  bool synchronized = false;  // cudaStreamSynchronize(S) before each timed allocate on T
  std::size_t pairs = 0;
  std::size_t bytes = 0;
  std::optional<double> ns_per_allocate;  // the allocate on T only, mean over the pairs
  std::size_t reused = 0;                 // allocates on T that returned the block freed on S
};

/// `pairs` times: allocate `bytes` on S, free it on S, (with `synchronize`: wait on the host for S,
/// untimed), allocate `bytes` on T (timed), free it on T, and wait for T untimed so each pair starts
/// alike. One untimed pair first fills the cache. S and T are cudaStream_t handles.
inline cross_stream_result measure_cross_stream(replay_allocator& allocator, void* s, void* t, std::size_t pairs,
                                                std::size_t bytes, bool synchronize) {
  cross_stream_result r;
  r.allocator = std::string(allocator.name());
  r.synchronized = synchronize;
  r.pairs = pairs;
  r.bytes = bytes;
  double total_ns = 0;
  for (std::size_t i = 0; i <= pairs; ++i) {
    void* on_s = allocator.allocate_on_stream(bytes, s);
    allocator.deallocate_on_stream(on_s, bytes, s);
    if (synchronize) STASH_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(s)));
    const auto t0 = std::chrono::steady_clock::now();
    void* on_t = allocator.allocate_on_stream(bytes, t);
    const auto t1 = std::chrono::steady_clock::now();
    allocator.deallocate_on_stream(on_t, bytes, t);
    STASH_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(t)));
    if (i == 0) continue;  // the untimed first pair
    total_ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    if (on_t == on_s) ++r.reused;
  }
  if (pairs > 0) r.ns_per_allocate = total_ns / static_cast<double>(pairs);
  return r;
}

/// `pairs` allocations of sizes in [lo, hi], each freed `window` allocations later (the rest at the
/// end): a steady state of `window` live blocks.
inline trace window_trace(std::string name, std::size_t pairs, std::size_t window, std::size_t lo, std::size_t hi,
                          std::uint64_t seed = 7) {
  trace t;
  t.name = std::move(name);
  const auto sizes = mixed_sizes(pairs, lo, hi, seed);
  std::size_t live_bytes = 0;
  t.slot_count = std::min(pairs, window);
  for (std::size_t i = 0; i < pairs; ++i) {
    const auto slot = static_cast<std::uint32_t>(i % window);
    if (i >= window) {
      t.ops.push_back({sizes[i - window], slot, true});
      live_bytes -= sizes[i - window];
      ++t.frees;
    }
    t.ops.push_back({sizes[i], slot, false});
    live_bytes += sizes[i];
    t.peak_live_bytes = std::max(t.peak_live_bytes, live_bytes);
    ++t.allocations;
  }
  for (std::size_t i = pairs > window ? pairs - window : 0; i < pairs; ++i)
    t.live_at_end.push_back({sizes[i], static_cast<std::uint32_t>(i % window), true});
  return t;
}

}  // namespace stash::bench
