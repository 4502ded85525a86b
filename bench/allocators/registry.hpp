#pragma once
// Which allocators a run can compare, by name, and how each one is made. Every make_allocator call
// returns a fresh allocator with an empty cache (a cold start).
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cuda_malloc.hpp"
#include "cuda_malloc_async.hpp"
#include "logged_allocator.hpp"
#include "ordered_allocator.hpp"
#include "replay_allocator.hpp"
#include "stash_allocators.hpp"

// Set by bench/CMakeLists.txt when CCCL's cub and PyTorch's c10 were found.
#ifndef STASH_BENCH_WITH_CUB
#define STASH_BENCH_WITH_CUB 0
#endif
#ifndef STASH_BENCH_WITH_TORCH
#define STASH_BENCH_WITH_TORCH 0
#endif
#if STASH_BENCH_WITH_CUB
#include "cub_allocator.hpp"
#endif
#if STASH_BENCH_WITH_TORCH
#include "torch_allocator.hpp"
#endif

namespace stash::bench {

/// simulated: fake addresses, no GPU needed (stash compositions only); cuda: real device memory.
enum class backend_kind { simulated, cuda };

inline std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

inline std::string_view to_string(backend_kind b) { return b == backend_kind::cuda ? "cuda" : "simulated"; }

inline std::vector<std::string> available_allocators(backend_kind b) {
  std::vector<std::string> names = {"stash", "stash-small-fill", "stash-per-page", "stash-fixed-chunks", "stash-lean",
                                    "stash-page-moves", "stash-sharded", "stash-pow2", "stash+log"};
  if (b == backend_kind::simulated) {
    names.insert(names.end(), {"stash-ordered", "stash-lagged"});
    return names;
  }
  names.insert(names.end(), {"stash-no-peers", "cudaMalloc", "cudaMallocAsync"});
  if (STASH_BENCH_WITH_CUB) names.push_back("cub");
  if (STASH_BENCH_WITH_TORCH) names.push_back("torch");
  return names;
}

/// `shared_by_threads`: the allocator will be called from several threads at once, so adapters
/// that keep figures of their own outside the allocator's lock stop keeping them.
inline std::unique_ptr<replay_allocator> make_allocator(std::string_view name, backend_kind b,
                                                        bool shared_by_threads = false) {
  const bool cuda = b == backend_kind::cuda;
  if (name == "stash") {
    if (cuda) return std::make_unique<stash_adapter<stash::device_caching_allocator>>("stash");
    return std::make_unique<stash_adapter<stash::simulated_caching_allocator>>("stash");
  }
  if (name == "stash-small-fill") {  // small requests fill mapped pages of the large region (stash.torch's choice)
    stash::caching_options options;
    options.small_fill_mapped = true;
    if (cuda) return std::make_unique<stash_adapter<stash::device_caching_allocator>>("stash-small-fill", options);
    return std::make_unique<stash_adapter<stash::simulated_caching_allocator>>("stash-small-fill", options);
  }
  if (name == "stash-per-page") {  // the default composition growing one physical page at a time
    stash::caching_options options;
    options.max_chunk_pages = 1;
    if (cuda) return std::make_unique<stash_adapter<stash::device_caching_allocator>>("stash-per-page", options);
    return std::make_unique<stash_adapter<stash::simulated_caching_allocator>>("stash-per-page", options);
  }
  if (name == "stash-fixed-chunks") {  // large blocks too in chunks of max_chunk_pages, moves rationed per page
    stash::caching_options options;
    options.chunks_per_block = 0;
    options.moves_per_block = 0;
    if (cuda) return std::make_unique<stash_adapter<stash::device_caching_allocator>>("stash-fixed-chunks", options);
    return std::make_unique<stash_adapter<stash::simulated_caching_allocator>>("stash-fixed-chunks", options);
  }
  if (name == "stash-lean") {  // the default composition holding at most 1.05x the peak of live bytes
    stash::caching_options options;
    options.max_held_over_live = 1.05;
    if (cuda) return std::make_unique<stash_adapter<stash::device_caching_allocator>>("stash-lean", options);
    return std::make_unique<stash_adapter<stash::simulated_caching_allocator>>("stash-lean", options);
  }
  if (name == "stash-page-moves") {  // large blocks in chunks of a sixteenth, moves rationed per page only
    stash::caching_options options;
    options.chunks_per_block = 16;
    options.moves_per_block = 0;
    if (cuda) return std::make_unique<stash_adapter<stash::device_caching_allocator>>("stash-page-moves", options);
    return std::make_unique<stash_adapter<stash::simulated_caching_allocator>>("stash-page-moves", options);
  }
  if (name == "stash+log") return make_logged_stash_allocator(cuda);  // every call logged to /dev/null
  if (!cuda && name == "stash-ordered") return make_ordered_stash_allocator();
  if (!cuda && name == "stash-lagged") return make_lagged_stash_allocator();
  if (name == "stash-sharded") {
    if (cuda) return std::make_unique<stash_adapter<stash::sharded_device_allocator>>("stash-sharded");
    return std::make_unique<stash_adapter<simulated_sharded_allocator>>("stash-sharded");
  }
  if (name == "stash-pow2") {
    if (cuda) return std::make_unique<stash_adapter<stash::pow2_device_allocator>>("stash-pow2");
    return std::make_unique<stash_adapter<stash::simulated_pow2_allocator>>("stash-pow2");
  }
  if (cuda && name == "stash-no-peers") {  // pages mapped for the current device alone (peer_access::none)
    return std::make_unique<stash_adapter<stash::device_caching_allocator>>(
        "stash-no-peers", stash::cuda_vmm_backend(-1, 0, false, stash::peer_access::none));
  }
  if (cuda && name == "cudaMalloc") {
    if (shared_by_threads) throw std::invalid_argument("cudaMalloc: not offered to several threads");
    return std::make_unique<cuda_malloc_allocator>();
  }
  if (cuda && name == "cudaMallocAsync") return std::make_unique<cuda_malloc_async_allocator>();
#if STASH_BENCH_WITH_CUB
  if (cuda && name == "cub") return make_cub_allocator(shared_by_threads);
#endif
#if STASH_BENCH_WITH_TORCH
  if (cuda && name == "torch") return make_torch_allocator();
#endif
  throw std::invalid_argument("unknown allocator '" + std::string(name) + "' for the " +
                              std::string(to_string(b)) + " backend (available: " +
                              join(available_allocators(b)) + ")");
}

/// Pinned host memory (CUDA backend only): the stash compositions (pinned pages in CUDA virtual memory,
/// the default; cudaHostAlloc segments) and the driver's own call.
inline std::vector<std::string> pinned_allocators() {
  std::vector<std::string> names = {"stash-pinned", "stash-pinned-segment"};
  names.push_back("cudaMallocHost");
  return names;
}

inline std::unique_ptr<replay_allocator> make_pinned_allocator(std::string_view name) {
  if (name == "stash-pinned") return std::make_unique<stash_adapter<stash::pinned_caching_allocator>>("stash-pinned");
  if (name == "stash-pinned-segment")
    return std::make_unique<stash_adapter<stash::segment_pinned_allocator>>("stash-pinned-segment");
  if (name == "cudaMallocHost") return std::make_unique<cuda_malloc_host_allocator>();
  throw std::invalid_argument("unknown pinned allocator '" + std::string(name) + "' (available: " +
                              join(pinned_allocators()) + ")");
}

}  // namespace stash::bench
