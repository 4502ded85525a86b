// The PyTorch side of stash.torch.enable(): builds a CUDAPluggableAllocator over libstash_c and wires
// the hooks that exist only on the C++ object (torch/csrc/cuda/CUDAPluggableAllocator.h):
//   alloc            stash_alloc; a null result for a nonzero size becomes torch.cuda.OutOfMemoryError
//   free             stash_free
//   record_stream    stash_record_stream (Tensor.record_stream)
//   reset            stash_empty_cache(-1) (torch.cuda.empty_cache)
//   memory_fraction  stash_set_memory_fraction (torch.cuda.set_per_process_memory_fraction): a limit
//                    on what the device's pool holds; getMemoryFraction (a virtual member) reads it back
//   enablePeerAccess stash_grant_peer_access after PyTorch's own cudaDeviceEnablePeerAccess: PyTorch
//                    asks for it before a copy between two GPUs, and stash then maps the pages of the
//                    device copied to for the other one (as PyTorch's expandable segments do), which
//                    the option peer_access:none leaves to this call
//   memcpyAsync      cudaMemcpyPeerAsync between two GPUs without peer access, as PyTorch's own
//                    allocator does for memory that is not cudaMalloc'd (cudaMemcpyAsync needs the
//                    pages mapped for both devices)
//   graph pools      stash_graph_pool_begin/end/release (beginAllocateToPool, endAllocateToPool,
//                    releasePool: torch.cuda.graph, CUDA graph trees)
//   checkpoints      stash_graph_pool_live_blocks/set_live (getCheckpointState, setCheckpointPoolState,
//                    checkPoolLiveAllocations: CUDA graph trees, torch.compile(mode="reduce-overhead"))
//   MemPool          stash_graph_pool_retain/users (createOrIncrefPool, getPoolUseCount)
//   IPC              stash_ipc_export/open/close (shareIpcHandle, getIpcDevPtr: torch.multiprocessing
//                    sends CUDA tensors to other processes), and getBaseAllocation from PyTorch's own
//                    record of the allocation
//   stats            stash_get_stats/reset_peak (getDeviceStats, resetPeakStats, resetAccumulatedStats:
//                    torch.cuda.memory_stats, memory_allocated, max_memory_reserved, memory_summary,
//                    reset_peak_memory_stats, ...)
//   cacheInfo        the largest workspace cuDNN's benchmark mode may try (torch.backends.cudnn.benchmark)
//   memory history   recordHistory, snapshot, isHistoryEnabled, attachOutOfMemoryObserver
//                    (torch.cuda.memory._record_memory_history, _snapshot, _dump_snapshot,
//                    memory_snapshot, torch._C._cuda_attach_out_of_memory_observer): the trace is
//                    kept here, at the alloc and free hooks; the segments are stash_visit_memory's
// alloc, free, record_stream, reset, memory_fraction and the graph pools' routing are
// CUDAPluggableAllocator's hooks; the rest (and getMemoryFraction) are virtual members that the
// subclass below overrides.
// Built on first use by torch.utils.cpp_extension (stash/torch.py), against the torch it runs with.
#include <dlfcn.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/Exception.h>
#include <torch/csrc/cuda/CUDAPluggableAllocator.h>
#include <torch/extension.h>

#include "_torch_history.h"

namespace {

namespace pluggable = torch::cuda::CUDAPluggableAllocator;

constexpr int status_unsupported = 5;  // STASH_ERROR_UNSUPPORTED (stash_c.h)
constexpr size_t ipc_handle_max = 32768;  // STASH_IPC_HANDLE_MAX (stash_c.h)

/// stash_pool_block (stash_c.h).
struct pool_block {
  void* ptr;
  uint64_t bytes;
  cudaStream_t stream;
};

/// stash_stats (stash_c.h).
struct stash_stats {
  uint64_t allocated_bytes, requested_bytes, cached_bytes, reserved_bytes;
  uint64_t peak_allocated_bytes, peak_requested_bytes, peak_reserved_bytes;
  uint64_t allocations, deallocations, cache_hits, backend_allocations, backend_frees;
  uint64_t oom_retries, num_ooms, limit_bytes, page_moves;
};

struct stash_api {
  void* (*alloc)(ssize_t, int, cudaStream_t) = nullptr;
  void (*free)(void*, ssize_t, int, cudaStream_t) = nullptr;
  int (*record_stream)(void*, cudaStream_t) = nullptr;
  int (*empty_cache)(int) = nullptr;
  int (*set_memory_fraction)(double, int) = nullptr;
  int (*grant_peer_access)(int, int) = nullptr;
  int (*graph_pool_begin)(int, uint64_t, uint64_t, int (*)(void*, cudaStream_t), void*) = nullptr;
  int (*graph_pool_end)(int, uint64_t, uint64_t) = nullptr;
  int (*graph_pool_release)(int, uint64_t, uint64_t) = nullptr;
  int (*graph_pool_retain)(int, uint64_t, uint64_t) = nullptr;
  int (*graph_pool_users)(int, uint64_t, uint64_t, size_t*) = nullptr;
  int (*graph_pool_live_blocks)(int, uint64_t, uint64_t, struct pool_block*, size_t, size_t*) = nullptr;
  int (*graph_pool_set_live)(int, uint64_t, uint64_t, void* const*, size_t) = nullptr;
  int (*ipc_export)(const void*, char*, size_t, size_t*, uint64_t*) = nullptr;
  int (*ipc_open)(const char*, void**, uint64_t*) = nullptr;
  int (*ipc_close)(void*) = nullptr;
  int (*get_stats)(int, stash_stats*) = nullptr;
  int (*reset_peak)(int) = nullptr;
  int (*visit_memory)(int, void (*)(void*, void*, uint64_t, int),
                      void (*)(void*, void*, uint64_t, uint64_t, uint64_t, uint64_t), void*) = nullptr;
  const char* (*options)() = nullptr;
  const char* (*last_error)() = nullptr;
};

stash_api api;

template <class F>
void bind(void* handle, const std::string& path, const char* name, F& fn) {
  void* symbol = dlsym(handle, name);
  TORCH_CHECK(symbol, "stash: ", path, " has no symbol ", name, " (a library from another stash version?)");
  fn = reinterpret_cast<F>(symbol);
}

// ---- memory history: torch.cuda.memory._record_memory_history (_torch_history.h) ------------------
using stash_torch::gathered_context;
using stash_torch::memory_history;
using stash_torch::record_context;

// Never destroyed: they hold Python callables and stacks of Python frames, which must not be released
// after the interpreter is finalized (static destructors run then, in an order libtorch does not fix).
memory_history& history = *new memory_history;

std::mutex oom_observers_lock;
auto& oom_observers = *new std::vector<c10::cuda::CUDACachingAllocator::OutOfMemoryObserver>;

/// The device's free and total memory (cudaMemGetInfo with the device current).
std::pair<size_t, size_t> device_memory(int device) {
  size_t free_bytes = 0, total_bytes = 0;
  c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
  C10_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return {free_bytes, total_bytes};
}

/// A request failed: recorded, and told to the observers (torch._C._cuda_attach_out_of_memory_observer,
/// often a callback that dumps a snapshot) with PyTorch's arguments: the device, the bytes asked for,
/// what the process may hold there (the pool's limit when one is set, as PyTorch passes its memory
/// fraction's bytes; the device's total memory otherwise) and the device's free memory.
void report_out_of_memory(size_t size, int device, cudaStream_t stream) {
  size_t free_bytes = 0, total_bytes = 0;
  try {
    std::tie(free_bytes, total_bytes) = device_memory(device);
  } catch (const c10::Error&) {  // the OutOfMemoryError still comes; the observers see zeros
  }
  stash_stats s{};
  if (api.get_stats(device, &s) == 0 && s.limit_bytes != UINT64_MAX)
    total_bytes = std::min<uint64_t>(total_bytes, s.limit_bytes);
  if (history.recording()) history.out_of_memory(size, device, stream, free_bytes);
  std::vector<c10::cuda::CUDACachingAllocator::OutOfMemoryObserver> observers;
  {
    std::lock_guard guard(oom_observers_lock);
    observers = oom_observers;
  }
  for (const auto& observer : observers)
    observer(device, size, total_bytes, free_bytes);
}

[[noreturn]] void fail_allocation(size_t size, int device, cudaStream_t stream) {
  report_out_of_memory(size, device, stream);
  // The message is one std::string, so c10::str passes it through without an ostringstream: formatting
  // the size through one crashed inside the extension on the GPU machine (PyTorch 2.11, g++ there).
  const char* why = api.last_error();
  const std::string message = "stash could not allocate " + std::to_string(size) + " bytes on device " +
                              std::to_string(device) + ": " + (why ? why : "(no message)");
  TORCH_CHECK_WITH(OutOfMemoryError, false, message);
  __builtin_unreachable();
}

/// alloc while the history records: the stack first, then the allocation, then its entry (a failure to
/// record gives the block back and throws, so that nothing is held that PyTorch does not know of).
void* alloc_recorded(size_t size, int device, cudaStream_t stream) {
  gathered_context stack = history.stack_for_allocation();
  void* p = api.alloc(static_cast<ssize_t>(size), device, stream);
  if (!p) {
    if (size != 0) fail_allocation(size, device, stream);
    return p;
  }
  try {
    history.allocated(p, size, device, stream, std::move(stack));
  } catch (...) {
    api.free(p, static_cast<ssize_t>(size), device, stream);
    throw;
  }
  return p;
}

void* alloc(size_t size, int device, cudaStream_t stream) {
  if (history.recording()) [[unlikely]]
    return alloc_recorded(size, device, stream);
  void* p = api.alloc(static_cast<ssize_t>(size), device, stream);
  if (!p && size != 0) fail_allocation(size, device, stream);
  return p;
}

/// Never throws: PyTorch frees from deleters, where an exception ends the process. A free the history
/// cannot record (the host heap failing, a recorder that throws) is left out of it.
void free_block(void* p, size_t size, int device, cudaStream_t stream) {
  if (history.recording() || history.keeps_stacks()) [[unlikely]] {
    try {
      history.freed(p, size, device, stream);
    } catch (...) {
    }
  }
  api.free(p, static_cast<ssize_t>(size), device, stream);  // reports a bad pointer itself, never throws
}

void record_stream(void* p, cudaStream_t stream) {
  if (!p) return;  // an empty tensor
  const int status = api.record_stream(p, stream);
  // A host-ordered build cannot honour it; stash.torch.enable() warned about that once.
  TORCH_CHECK(status == 0 || status == status_unsupported, api.last_error());
}

void empty_cache() {
  TORCH_CHECK(api.empty_cache(-1) == 0, api.last_error());
}

/// torch.cuda.set_per_process_memory_fraction's fraction per device, with the limit it made, so that
/// get_per_process_memory_fraction gives back exactly what was set while that limit stands.
std::mutex fractions_lock;
std::map<int, std::pair<double, uint64_t>> fractions;

void set_memory_fraction(double fraction, int device) {
  TORCH_CHECK(api.set_memory_fraction(fraction, device) == 0, api.last_error());
  stash_stats s{};
  TORCH_CHECK(api.get_stats(device, &s) == 0, api.last_error());
  std::lock_guard guard(fractions_lock);
  fractions.insert_or_assign(device, std::make_pair(fraction, s.limit_bytes));
}

// Graph pools. PyTorch's filter (which streams belong to the capture) is a std::function; stash takes a
// C function and a context, so each routing's filter lives here until its endAllocateToPool.
using stream_filter = std::function<bool(cudaStream_t)>;
using pool_key = std::pair<int, c10::cuda::MempoolId_t>;
std::mutex filters_lock;
std::map<pool_key, std::vector<std::unique_ptr<stream_filter>>> filters;  // per pool, latest last

int call_filter(void* context, cudaStream_t stream) {
  try {
    return (*static_cast<stream_filter*>(context))(stream) ? 1 : 0;
  } catch (...) {
    return 0;  // the request is then served as any other; nothing may unwind through stash's C frames
  }
}

void begin_allocate_to_pool(int device, c10::cuda::MempoolId_t id, stream_filter filter) {
  auto owned = std::make_unique<stream_filter>(std::move(filter));
  std::lock_guard guard(filters_lock);
  auto& list = filters[{device, id}];
  list.reserve(list.size() + 1);
  TORCH_CHECK(api.graph_pool_begin(device, id.first, id.second, call_filter, owned.get()) == 0, api.last_error());
  list.push_back(std::move(owned));
}

void end_allocate_to_pool(int device, c10::cuda::MempoolId_t id) {
  std::lock_guard guard(filters_lock);
  TORCH_CHECK(api.graph_pool_end(device, id.first, id.second) == 0, api.last_error());
  auto found = filters.find({device, id});
  if (found == filters.end()) return;
  found->second.pop_back();  // stash no longer calls it
  if (found->second.empty()) filters.erase(found);
}

void release_pool(int device, c10::cuda::MempoolId_t id) {
  TORCH_CHECK(api.graph_pool_release(device, id.first, id.second) == 0, api.last_error());
}

/// The device index type of enablePeerAccess (int in older PyTorch, c10::DeviceIndex in newer).
template <class>
struct first_parameter;
template <class C, class R, class A, class B>
struct first_parameter<R (C::*)(A, B)> {
  using type = A;
};
template <class C, class R, class A>
struct first_parameter<R (C::*)(A)> {
  using type = A;
};
using device_index = first_parameter<decltype(&pluggable::CUDAPluggableAllocator::enablePeerAccess)>::type;
using stats_device = first_parameter<decltype(&pluggable::CUDAPluggableAllocator::getDeviceStats)>::type;
using cache_info_device = first_parameter<decltype(&pluggable::CUDAPluggableAllocator::cacheInfo)>::type;
/// PyTorch's DeviceStats (c10::CachingDeviceAllocator in 2.11, c10::cuda::CUDACachingAllocator before).
using device_stats = decltype(std::declval<pluggable::CUDAPluggableAllocator&>().getDeviceStats(0));

stash_stats stats_of(int device) {
  stash_stats s{};
  TORCH_CHECK(api.get_stats(device, &s) == 0, api.last_error());
  return s;
}

/// stash_visit_memory's callbacks, which must not throw: they run inside stash's C frames. A segment in
/// PyTorch's terms is a run of blocks of one pool within a region (a run of mapped pages, a cudaMalloc
/// segment): each of PyTorch's segments belongs to one pool, and CUDA graph trees find a pool's blocks
/// through its segments' segment_pool_id (torch/_inductor/cudagraph_trees.py, check_memory_pool).
struct walk {
  using segment_info = c10::cuda::CUDACachingAllocator::SegmentInfo;
  int device;
  std::vector<segment_info>* segments;
  bool failed = false;
  bool paged = false;
  bool in_region = false;  // a block of the current region is placed: the next of its pool joins it

  static void region(void* context, void* /*begin*/, uint64_t /*bytes*/, int paged) {
    auto* w = static_cast<walk*>(context);
    w->paged = paged != 0;
    w->in_region = false;
  }

  static void block(void* context, void* addr, uint64_t bytes, uint64_t requested, uint64_t pool_first,
                    uint64_t pool_second) {
    auto* w = static_cast<walk*>(context);
    if (w->failed) return;
    try {
      const c10::cuda::MempoolId_t pool{pool_first, pool_second};
      if (!w->in_region || w->segments->back().owner_private_pool_id != pool) {
        segment_info segment;
        segment.device = static_cast<c10::DeviceIndex>(w->device);
        segment.address = reinterpret_cast<size_t>(addr);
        segment.is_large = true;
        segment.is_expandable = w->paged;
        segment.owner_private_pool_id = pool;
        w->segments->push_back(std::move(segment));
        w->in_region = true;
      }
      c10::cuda::CUDACachingAllocator::BlockInfo b;
      b.size = static_cast<size_t>(bytes);
      b.requested_size = static_cast<size_t>(requested);  // 0: free; the snapshot keeps PyTorch's size
      w->segments->back().total_size += b.size;
      w->segments->back().blocks.push_back(std::move(b));
    } catch (...) {
      w->failed = true;
    }
  }
};

struct stash_allocator final : pluggable::CUDAPluggableAllocator {
  using pluggable::CUDAPluggableAllocator::CUDAPluggableAllocator;

  /// Kernels and copies on `dev` may use the memory of `dev_to_access` from now on.
  void enablePeerAccess(device_index dev, device_index dev_to_access) override {
    pluggable::CUDAPluggableAllocator::enablePeerAccess(dev, dev_to_access);
    TORCH_CHECK(api.grant_peer_access(static_cast<int>(dev_to_access), static_cast<int>(dev)) == 0,
                api.last_error());
  }

  cudaError_t memcpyAsync(void* dst, int dst_device, const void* src, int src_device, size_t count,
                          cudaStream_t stream, bool p2p_enabled) override {
    if (p2p_enabled || dst_device == src_device)
      return cudaMemcpyAsync(dst, src, count, cudaMemcpyDeviceToDevice, stream);
    return cudaMemcpyPeerAsync(dst, dst_device, src, src_device, count, stream);
  }

  // ---- stats: torch.cuda.memory_stats and what reads it ---------------------------------------------
  // stash's figures under PyTorch's names, in the aggregate ("all") entries, as stash.torch.memory_stats
  // gives them: allocated, requested and reserved bytes (current and peak), active bytes as allocated
  // ones (a block freed on a stream is cached at once, its reuse elsewhere waits), inactive split bytes
  // as the cached ones, counts of allocations and frees, retries, OOMs and driver calls. stash counts no
  // segments, no pool kinds (small_pool, large_pool stay 0), no peak of the number of allocations and
  // no cumulative bytes: those read 0. resetAccumulatedStats is kept here, as a baseline subtracted
  // from stash's counts (stash never resets them).

  device_stats getDeviceStats(stats_device device) override {
    const stash_stats s = stats_of(static_cast<int>(device));
    const stash_stats base = baseline(static_cast<int>(device));
    device_stats out{};
    auto set = [](auto& stat, uint64_t current, uint64_t peak) {
      stat[0].current = static_cast<int64_t>(current);
      stat[0].peak = static_cast<int64_t>(peak);
    };
    set(out.allocated_bytes, s.allocated_bytes, s.peak_allocated_bytes);
    set(out.active_bytes, s.allocated_bytes, s.peak_allocated_bytes);
    set(out.requested_bytes, s.requested_bytes, s.peak_requested_bytes);
    set(out.reserved_bytes, s.reserved_bytes, s.peak_reserved_bytes);
    out.inactive_split_bytes[0].current = static_cast<int64_t>(s.cached_bytes);
    out.allocation[0].current = static_cast<int64_t>(s.allocations - s.deallocations);
    out.allocation[0].allocated = static_cast<int64_t>(s.allocations - base.allocations);
    out.allocation[0].freed = static_cast<int64_t>(s.deallocations - base.deallocations);
    out.active[0].current = out.allocation[0].current;
    out.num_alloc_retries = static_cast<int64_t>(s.oom_retries - base.oom_retries);
    out.num_ooms = static_cast<int64_t>(s.num_ooms - base.num_ooms);
    out.num_device_alloc = static_cast<int64_t>(s.backend_allocations - base.backend_allocations);
    out.num_device_free = static_cast<int64_t>(s.backend_frees - base.backend_frees);
    return out;
  }

  void resetPeakStats(stats_device device) override {
    TORCH_CHECK(api.reset_peak(static_cast<int>(device)) == 0, api.last_error());
  }

  void resetAccumulatedStats(stats_device device) override {
    const stash_stats now = stats_of(static_cast<int>(device));
    std::lock_guard guard(baselines_lock_);
    baselines_.insert_or_assign(static_cast<int>(device), now);
  }

  /// cuDNN's benchmark mode (torch.backends.cudnn.benchmark) asks for the largest workspace it may try,
  /// then allocates it, halving it while that fails. PyTorch's own allocator answers with its largest
  /// cached free block, cudaMallocAsync's with the device's free memory. stash's pages can move to any
  /// new block, so it answers with what it could serve: the device's free memory and stash's cached
  /// bytes there, within the pool's limit (memory_fraction, limit).
  void cacheInfo(cache_info_device device, size_t* largest) override {
    TORCH_CHECK(largest, "stash: cacheInfo with no place for its answer");
    const stash_stats s = stats_of(static_cast<int>(device));
    const size_t free_bytes = device_memory(static_cast<int>(device)).first;
    uint64_t servable = free_bytes + s.cached_bytes;
    if (s.limit_bytes != UINT64_MAX) {
      const uint64_t in_use = s.reserved_bytes - std::min(s.cached_bytes, s.reserved_bytes);
      servable = std::min(servable, s.limit_bytes > in_use ? s.limit_bytes - in_use : 0);
    }
    *largest = static_cast<size_t>(servable);
  }

  /// torch.cuda.get_per_process_memory_fraction: the fraction set through PyTorch while the limit it
  /// made stands; otherwise the pool's limit (STASH_CONF's limit or memory_fraction, stash's own
  /// set_memory_limit) over the device's total memory, 1 with no limit.
  double getMemoryFraction(c10::DeviceIndex device) override {
    const stash_stats s = stats_of(device);
    {
      std::lock_guard guard(fractions_lock);
      const auto found = fractions.find(device);
      if (found != fractions.end() && found->second.second == s.limit_bytes) return found->second.first;
    }
    if (s.limit_bytes == UINT64_MAX) return 1.0;
    const size_t total_bytes = device_memory(device).second;
    return std::min(1.0, static_cast<double>(s.limit_bytes) / static_cast<double>(total_bytes));
  }

  // ---- memory history and snapshots (torch.cuda.memory._record_memory_history, _snapshot) ----------

  void recordHistory(bool enabled, c10::cuda::CUDACachingAllocator::CreateContextFn context_recorder,
                     size_t alloc_trace_max_entries, record_context when, bool clear_history,
                     const std::vector<std::string>& skip_actions) override {
    history.configure(enabled, context_recorder, alloc_trace_max_entries, when, clear_history, skip_actions);
  }

  bool isHistoryEnabled() override { return history.recording(); }

  void attachOutOfMemoryObserver(c10::cuda::CUDACachingAllocator::OutOfMemoryObserver observer) override {
    std::lock_guard guard(oom_observers_lock);
    oom_observers.push_back(std::move(observer));
  }

  /// Every device's memory as stash holds it (stash_visit_memory), in PyTorch's terms: a segment per run
  /// of one pool's blocks in a region (mapped pages make expandable segments), its blocks covering it in
  /// address order; only pool `mempool`'s segments unless it is (0, 0) (MemPool.snapshot). A block is
  /// allocated when PyTorch holds it (allocation_metadata_); memory stash has handed out that PyTorch
  /// does not hold (a graph pool's freed blocks, kept for the pool) reads as inactive, as cached memory
  /// does. The trace is memory_history's; while it records, each device's snapshot adds an entry to it
  /// (action "snapshot", its size the bytes allocated in the segments shown), as PyTorch's does.
  c10::cuda::CUDACachingAllocator::SnapshotInfo snapshot(c10::cuda::MempoolId_t mempool,
                                                          bool include_traces) override {
    const bool one_pool = mempool != c10::cuda::MempoolId_t{0, 0};
    c10::cuda::CUDACachingAllocator::SnapshotInfo info{};
    bool expandable = false;
    std::map<void*, size_t> held;  // what PyTorch holds: start -> size asked for
    {
      std::lock_guard guard(allocator_mutex_);
      for (const auto& [p, meta] : allocation_metadata_) held.emplace(p, meta.size);
    }
    const int devices = static_cast<int>(c10::cuda::device_count());
    // The trace first: as in PyTorch's own allocator, a snapshot's trace shows earlier snapshots' entries.
    if (include_traces) info.device_traces = history.traces(devices);
    for (int device = 0; device < devices; ++device) {
      std::vector<c10::cuda::CUDACachingAllocator::SegmentInfo> found;
      walk walker{device, &found};
      TORCH_CHECK(api.visit_memory(device, walk::region, walk::block, &walker) == 0, api.last_error());
      TORCH_CHECK(!walker.failed, "stash: snapshot: out of host memory");
      size_t active_bytes = 0;
      for (auto& segment : found) {
        if (one_pool && segment.owner_private_pool_id != mempool) continue;
        size_t at = segment.address;  // blocks cover their segment in order: each starts where the last ended
        for (auto& b : segment.blocks) {
          const auto found_held = held.find(reinterpret_cast<void*>(at));
          b.allocated = b.active = found_held != held.end() && b.requested_size != 0;
          if (b.allocated) {
            b.requested_size = found_held->second;
            b.context_when_allocated = history.stack_of(reinterpret_cast<void*>(at));
            segment.allocated_size += b.size;
            segment.requested_size += b.requested_size;
          } else {
            b.requested_size = 0;
          }
          at += b.size;
        }
        segment.active_size = segment.allocated_size;
        active_bytes += segment.active_size;
        expandable = expandable || segment.is_expandable;
        info.segments.push_back(std::move(segment));
      }
      history.snapshot_taken(device, active_bytes, mempool);
    }
    info.config_metadata.expandable_segments = expandable;
    info.config_metadata.max_split_size = SIZE_MAX;
    const char* options = api.options();
    info.config_metadata.last_allocator_settings = std::string("stash ") + (options ? options : "");
    return info;
  }

  // ---- MemPool: a graph pool with users but no routing until use_mem_pool --------------------------

  void createOrIncrefPool(c10::DeviceIndex device, c10::cuda::MempoolId_t id,
                          std::shared_ptr<c10::cuda::CUDACachingAllocator::CUDAAllocator> allocator) override {
    TORCH_CHECK(!allocator || allocator.get() == this,
                "stash: a MemPool with an allocator of its own is not supported while stash is PyTorch's allocator");
    TORCH_CHECK(api.graph_pool_retain(device, id.first, id.second) == 0, api.last_error());
  }

  /// use_on_oom: PyTorch's allocator may take a MemPool's free blocks for requests outside it when out
  /// of memory. stash keeps a pool's blocks to the pool, so only false is accepted (MemPool's
  /// destructor sets it false; it must not throw there).
  void setUseOnOOM(c10::DeviceIndex /*device*/, c10::cuda::MempoolId_t /*id*/, bool use_on_oom) override {
    TORCH_CHECK(!use_on_oom, "stash: MemPool(use_on_oom=True) is not supported: a pool's blocks stay the pool's");
  }

  /// no_split: a graph pool's blocks are never split; nothing to do.
  void setNoSplit(c10::DeviceIndex /*device*/, c10::cuda::MempoolId_t /*id*/) override {}

  int getPoolUseCount(c10::DeviceIndex device, c10::cuda::MempoolId_t id) override {
    size_t users = 0;
    TORCH_CHECK(api.graph_pool_users(device, id.first, id.second, &users) == 0, api.last_error());
    return static_cast<int>(users);
  }

  // ---- sharing with other processes (torch.multiprocessing) ---------------------------------------
  // PyTorch sends a CUDA storage as shareIpcHandle's text and an offset; the receiver's getIpcDevPtr
  // maps the text and adds the offset. stash's text names the block that ptr lies in (its start is
  // where getIpcDevPtr's pointer points), and the offset is where ptr lies in it (0 for a storage's
  // data, which is a block's start). The receiver must run stash too: PyTorch's own
  // allocator does not know the text and refuses it. PyTorch keeps the sender's storage allocated
  // while a receiver holds it (its IPC reference counts), which is what stash's export needs.

  c10::cuda::CUDACachingAllocator::ShareableHandle shareIpcHandle(void* ptr) override {
    std::string text(ipc_handle_max, '\0');
    size_t length = 0;
    uint64_t offset = 0;
    TORCH_CHECK(api.ipc_export(ptr, text.data(), text.size(), &length, &offset) == 0, api.last_error());
    text.resize(length - 1);  // without the NUL
    return {static_cast<ptrdiff_t>(offset), std::move(text)};
  }

  std::shared_ptr<void> getIpcDevPtr(std::string handle) override {
    void* p = nullptr;
    uint64_t size = 0;
    TORCH_CHECK(api.ipc_open(handle.c_str(), &p, &size) == 0, api.last_error());
    int device = 0;
    (void)cudaGetDevice(&device);  // PyTorch opens it with the sender's device current
    // PyTorch drops the pointer before it synchronizes its stream; the unmap must wait for the work
    // queued on the block, so the deleter synchronizes the device first.
    return std::shared_ptr<void>(p, [device](void* q) {
      int current = 0;
      (void)cudaGetDevice(&current);
      (void)cudaSetDevice(device);
      (void)cudaDeviceSynchronize();
      const int status = api.ipc_close(q);
      (void)cudaSetDevice(current);
      if (status != 0) std::fprintf(stderr, "%s [stash getIpcDevPtr's deleter]\n", api.last_error());
    });
  }

  /// The allocation that starts at ptr and its size, as PyTorch recorded it at allocation (PyTorch's
  /// own allocator answers for a block's start only, too).
  void* getBaseAllocation(void* ptr, size_t* size) override {
    std::lock_guard guard(allocator_mutex_);
    const auto found = allocation_metadata_.find(ptr);
    if (found == allocation_metadata_.end()) {
      char where[32];
      std::snprintf(where, sizeof where, "%p", ptr);
      TORCH_CHECK(false, std::string("stash: getBaseAllocation: ") + where + " is not the start of a live allocation");
    }
    if (size) *size = found->second.size;
    return ptr;
  }

  // ---- checkpoints of graph pools (CUDA graph trees) ----------------------------------------------
  // A tree records a graph, checkpoints the pool, and to record a new branch later sets the pool back
  // to that checkpoint: exactly the blocks live at the checkpoint are live again, every other one
  // freed. stash keeps a graph pool's freed blocks in the pool, so a checkpoint is its live blocks and
  // restoring it moves no memory. PyTorch's own bookkeeping of this allocator (allocation_metadata_,
  // what raw_delete looks up) follows: freed blocks leave it, restored ones come back with their size
  // and stream.

  struct pool_checkpoint final : c10::cuda::CUDACachingAllocator::AllocatorState {
    c10::cuda::MempoolId_t id;
    std::vector<pool_block> live;
  };

  /// An entry of allocation_metadata_. libtorch does not export _AllocationMetadata's constructors, so
  /// the entry is made from its fields (the struct is trivially copyable: size, device, stream).
  static pluggable::_AllocationMetadata metadata(size_t size, c10::DeviceIndex device, cudaStream_t stream) {
    struct fields {
      size_t size;
      c10::DeviceIndex device_idx;
      cudaStream_t stream;
    };
    static_assert(sizeof(fields) == sizeof(pluggable::_AllocationMetadata) &&
                      std::is_trivially_copyable_v<pluggable::_AllocationMetadata>,
                  "PyTorch's _AllocationMetadata is no longer {size, device_idx, stream}");
    return __builtin_bit_cast(pluggable::_AllocationMetadata, (fields{size, device, stream}));
  }

  static std::vector<pool_block> live_blocks(int device, c10::cuda::MempoolId_t id) {
    size_t count = 0;
    TORCH_CHECK(api.graph_pool_live_blocks(device, id.first, id.second, nullptr, 0, &count) == 0, api.last_error());
    std::vector<pool_block> blocks(count);
    TORCH_CHECK(api.graph_pool_live_blocks(device, id.first, id.second, blocks.data(), blocks.size(), &count) == 0,
                api.last_error());
    blocks.resize(std::min(count, blocks.size()));
    return blocks;
  }

  std::shared_ptr<c10::cuda::CUDACachingAllocator::AllocatorState> getCheckpointState(
      c10::DeviceIndex device, c10::cuda::MempoolId_t id) override {
    auto checkpoint = std::make_shared<pool_checkpoint>();
    checkpoint->id = id;
    checkpoint->live = live_blocks(device, id);
    return checkpoint;
  }

  c10::cuda::CUDACachingAllocator::CheckpointDelta setCheckpointPoolState(
      c10::DeviceIndex device, std::shared_ptr<c10::cuda::CUDACachingAllocator::AllocatorState> state) override {
    auto checkpoint = std::dynamic_pointer_cast<pool_checkpoint>(state);
    TORCH_CHECK(checkpoint, "stash: setCheckpointPoolState with a state stash did not make");
    const std::vector<pool_block> before = live_blocks(device, checkpoint->id);
    std::vector<void*> live;
    live.reserve(checkpoint->live.size());
    for (const pool_block& b : checkpoint->live) live.push_back(b.ptr);
    TORCH_CHECK(api.graph_pool_set_live(device, checkpoint->id.first, checkpoint->id.second, live.data(), live.size()) == 0,
                api.last_error());
    // As PyTorch's own allocator answers: every block live before is freed, every block of the
    // checkpoint allocated again (a pointer may be in both).
    c10::cuda::CUDACachingAllocator::CheckpointDelta delta;
    std::unordered_set<void*> live_again(live.begin(), live.end());
    std::lock_guard guard(allocator_mutex_);
    for (const pool_block& b : before) {
      allocation_metadata_.erase(b.ptr);
      delta.ptrs_freed.push_back(b.ptr);
      if (!live_again.count(b.ptr)) history.forget(b.ptr);  // freed without the free hook: no stale stack
    }
    for (const pool_block& b : checkpoint->live) {
      allocation_metadata_.insert_or_assign(b.ptr, metadata(static_cast<size_t>(b.bytes), device, b.stream));
      delta.dataptrs_allocd.emplace_back(b.ptr, b.ptr, raw_deleter(), c10::Device(c10::DeviceType::CUDA, device));
    }
    return delta;
  }

  bool checkPoolLiveAllocations(c10::DeviceIndex device, c10::cuda::MempoolId_t id,
                                const std::unordered_set<void*>& expected_live_allocations) override {
    const std::vector<pool_block> live = live_blocks(device, id);
    if (live.size() != expected_live_allocations.size()) return false;
    for (const pool_block& b : live)
      if (!expected_live_allocations.count(b.ptr)) return false;
    return true;
  }

 private:
  stash_stats baseline(int device) {
    std::lock_guard guard(baselines_lock_);
    const auto found = baselines_.find(device);
    return found == baselines_.end() ? stash_stats{} : found->second;
  }

  std::mutex baselines_lock_;
  std::map<int, stash_stats> baselines_;  // resetAccumulatedStats: counts at the reset, per device
};

/// Switches PyTorch to stash. Throws (RuntimeError in Python) when PyTorch's allocator is in use
/// already ("Can't swap an already initialized allocator").
void install(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  TORCH_CHECK(handle, "stash: cannot load ", path, ": ", dlerror());
  bind(handle, path, "stash_alloc", api.alloc);
  bind(handle, path, "stash_free", api.free);
  bind(handle, path, "stash_record_stream", api.record_stream);
  bind(handle, path, "stash_empty_cache", api.empty_cache);
  bind(handle, path, "stash_set_memory_fraction", api.set_memory_fraction);
  bind(handle, path, "stash_grant_peer_access", api.grant_peer_access);
  bind(handle, path, "stash_graph_pool_begin", api.graph_pool_begin);
  bind(handle, path, "stash_graph_pool_end", api.graph_pool_end);
  bind(handle, path, "stash_graph_pool_release", api.graph_pool_release);
  bind(handle, path, "stash_graph_pool_retain", api.graph_pool_retain);
  bind(handle, path, "stash_graph_pool_users", api.graph_pool_users);
  bind(handle, path, "stash_graph_pool_live_blocks", api.graph_pool_live_blocks);
  bind(handle, path, "stash_graph_pool_set_live", api.graph_pool_set_live);
  bind(handle, path, "stash_ipc_export", api.ipc_export);
  bind(handle, path, "stash_ipc_open", api.ipc_open);
  bind(handle, path, "stash_ipc_close", api.ipc_close);
  bind(handle, path, "stash_get_stats", api.get_stats);
  bind(handle, path, "stash_reset_peak", api.reset_peak);
  bind(handle, path, "stash_visit_memory", api.visit_memory);
  bind(handle, path, "stash_options", api.options);
  bind(handle, path, "stash_last_error", api.last_error);

  // What createCustomAllocator does for a plain CUDAPluggableAllocator: made, then initialized.
  auto allocator = std::make_shared<stash_allocator>(alloc, free_block);
  allocator->init(0);
  stash_allocator* hooks = allocator.get();
  hooks->set_record_stream_fn(record_stream);
  hooks->set_reset_fn(empty_cache);
  hooks->set_memory_fraction_fn(set_memory_fraction);
  hooks->set_begin_allocate_to_pool(begin_allocate_to_pool);
  hooks->set_end_allocate_to_pool_fn(end_allocate_to_pool);
  hooks->set_release_pool(release_pool);
  pluggable::changeCurrentAllocator(allocator);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "stash's PyTorch allocator hooks (built by stash.torch)";
  m.def("install", &install, "Switch PyTorch's CUDA allocator to libstash_c at the given path");
}
