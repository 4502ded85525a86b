#pragma once
// Which allocators a run can compare, by name, and how each one is made. Every make_allocator call
// returns a fresh allocator with an empty cache (a cold start).
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
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
  std::vector<std::string> names = {"stash", "stash-no-fill", "stash-small-fill", "stash-per-page", "stash-fixed-chunks", "stash-lean",
                                    "stash-aliases", "stash-lean-aliases",
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

/// The stash compositions that are the default design with options of their own, by name.
inline std::vector<std::pair<std::string_view, stash::caching_options>> stash_variants() {
  std::vector<std::pair<std::string_view, stash::caching_options>> v;
  v.emplace_back("stash", stash::caching_options{});
  v.emplace_back("stash-no-fill", stash::caching_options{});  // small requests never fill mapped pages of
  v.back().second.fill_mapped_above = SIZE_MAX;               // the large region (the default until 2026-11-30)
  v.emplace_back("stash-small-fill", stash::caching_options{});  // every small request fills them, with no
  v.back().second.small_fill_mapped = true;                       // rule for the large region's top
  v.emplace_back("stash-per-page", stash::caching_options{});  // growing one physical page at a time
  v.back().second.max_chunk_pages = 1;
  v.emplace_back("stash-fixed-chunks", stash::caching_options{});  // large blocks too in chunks of
  v.back().second.chunks_per_block = 0;                           // max_chunk_pages, moves rationed per page
  v.back().second.moves_per_block = 0;
  v.emplace_back("stash-lean", stash::caching_options{});  // holding at most 1.05x the peak of live bytes
  v.back().second.max_held_over_live = 1.05;
  v.emplace_back("stash-aliases", stash::caching_options{});  // moved chunks stay mapped at their old
  v.back().second.keep_page_aliases = true;                    // addresses, taken back with no driver call
  v.emplace_back("stash-lean-aliases", stash::caching_options{});  // both
  v.back().second.max_held_over_live = 1.05;
  v.back().second.keep_page_aliases = true;
  v.emplace_back("stash-page-moves", stash::caching_options{});  // large blocks in chunks of a sixteenth,
  v.back().second.chunks_per_block = 16;                        // moves rationed per page only
  v.back().second.moves_per_block = 0;
  return v;
}

/// `shared_by_threads`: the allocator will be called from several threads at once, so adapters
/// that keep figures of their own outside the allocator's lock stop keeping them.
inline std::unique_ptr<replay_allocator> make_allocator(std::string_view name, backend_kind b,
                                                        bool shared_by_threads = false) {
  const bool cuda = b == backend_kind::cuda;
  for (const auto& [variant, options] : stash_variants()) {
    if (name != variant) continue;
    if (cuda) return std::make_unique<stash_adapter<stash::device_caching_allocator>>(std::string(name), options);
    return std::make_unique<stash_adapter<stash::simulated_caching_allocator>>(std::string(name), options);
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

/// The stash composition `name` (one of make_allocator's stash names, stash-ordered, stash-lagged), or
/// torch, made so that set_memory_limit holds, for stash-replay --least-memory: the same options over
/// limited_backend<Backend> (the simulated device, or cuda_vmm_backend as the memory manager's device
/// pools are made), so the limit changes nothing but what the backend may hold (the address range
/// reserved stays the same). Null for the others (cudaMalloc, cudaMallocAsync, cub, stash-sharded,
/// stash-pow2, stash-no-peers, stash+log).
inline std::unique_ptr<replay_allocator> make_limited_allocator(std::string_view name, backend_kind b) {
  const bool cuda = b == backend_kind::cuda;
  if (!cuda && name == "stash-ordered") return make_limited_ordered_stash_allocator(false);
  if (!cuda && name == "stash-lagged") return make_limited_ordered_stash_allocator(true);
#if STASH_BENCH_WITH_TORCH
  if (cuda && name == "torch") return make_torch_allocator();
#endif
  for (const auto& [variant, options] : stash_variants()) {
    if (name != variant) continue;
    if (cuda) {
      return std::make_unique<stash_adapter<stash::limited_caching_allocator<stash::cuda_vmm_backend>>>(
          std::string(name), options);
    }
    return std::make_unique<stash_adapter<stash::limited_caching_allocator<stash::simulated_paged_backend>>>(
        std::string(name), options);
  }
  return nullptr;
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
