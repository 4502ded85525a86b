#pragma once
// The trace behind torch.cuda.memory._record_memory_history and _snapshot under stash.torch.
//
// PyTorch's own allocator keeps a trace of its actions for _snapshot (and the viewers at
// pytorch.org/memory_viz, torch.cuda._memory_viz). A CUDAPluggableAllocator raises there, so stash's
// hooks keep it: alloc, free_requested and free_completed (both at the free: a block freed on a stream
// is stash's again at once, its reuse on other streams waits for their events), and oom, with the
// Python and C++ stacks that recordHistory's context recorder gathers. stash maps and unmaps pages
// inside the library, so there are no segment_alloc or segment_free entries: the snapshot's segments
// show what is held at the time of the snapshot.
//
// c10's headers only, no CUDA: CI builds python/tests/torch_history_test.cpp against this header and
// PyTorch's libc10 and runs it without a GPU (python/tests/torch_hooks_compile.sh).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <c10/core/CachingDeviceAllocator.h>

namespace stash_torch {

using trace_entry = c10::CachingDeviceAllocator::TraceEntry;
using record_context = c10::CachingDeviceAllocator::RecordContext;
using context_recorder = c10::CachingDeviceAllocator::CreateContextFn;
using gathered_context = std::shared_ptr<c10::GatheredContext>;

class memory_history {
 public:
  /// Whether alloc and free are recorded now: one relaxed load on every alloc and free.
  bool recording() const noexcept { return recording_.load(std::memory_order_relaxed); }
  /// Whether some live block's stack is kept (its free must drop it), also after recording stopped.
  bool keeps_stacks() const noexcept { return stacks_kept_.load(std::memory_order_relaxed) != 0; }

  /// recordHistory's arguments as PyTorch passes them (torch/csrc/cuda/memory_snapshot.cpp).
  void configure(bool enabled, context_recorder recorder, size_t max_entries,
                 record_context when, bool clear, const std::vector<std::string>& skip_actions) {
    uint32_t skip = 0;
    for (const std::string& name : skip_actions)
      skip |= 1u << static_cast<unsigned>(c10::CachingDeviceAllocator::parseTraceEntryAction(name));
    std::lock_guard guard(lock_);
    recorder_ = enabled ? recorder : nullptr;
    when_ = enabled ? when : record_context::NEVER;
    skip_ = skip;
    max_entries_ = std::max<size_t>(1, max_entries);
    // Stopping (_record_memory_history(enabled=None)) empties the trace, as PyTorch's own allocator does
    // (run X3, docs/gpu-validation.md); recording again with a smaller ring keeps its latest entries.
    for (auto& [device, trace] : traces_) {
      if (clear || !enabled) trace = {};
      else trace.keep_last(max_entries_);
    }
    recording_.store(enabled, std::memory_order_relaxed);
  }

  /// The stack to keep for an allocation about to be made (null when none is asked for). Gathered
  /// before the allocation, so that a recorder that throws leaves nothing allocated, and outside lock_:
  /// gathering Python frames takes the GIL, which another thread may hold while it waits for lock_.
  gathered_context stack_for_allocation() const {
    const auto [recorder, when] = settings();
    return recorder && when >= record_context::STATE ? recorder() : nullptr;
  }

  /// p was allocated with `stack` (stack_for_allocation). May throw std::bad_alloc, recording nothing.
  void allocated(void* p, size_t size, int device, void* stream, gathered_context stack) {
    std::lock_guard guard(lock_);
    gathered_context in_trace = when_ >= record_context::ALLOC ? stack : nullptr;
    if (stack) {
      stacks_.insert_or_assign(p, std::move(stack));
      stacks_kept_.store(stacks_.size(), std::memory_order_relaxed);
    }
    try {
      add(trace_entry::ALLOC, device, p, size, stream, std::move(in_trace));
    } catch (...) {
      stacks_.erase(p);
      stacks_kept_.store(stacks_.size(), std::memory_order_relaxed);
      throw;
    }
  }

  /// p is being freed: its stack goes first (whatever fails after, no later block at p inherits it),
  /// then its entries, with the stack of the free for context "all".
  void freed(void* p, size_t size, int device, void* stream) {
    forget(p);
    if (!recording()) return;
    const auto [recorder, when] = settings();
    gathered_context stack = recorder && when == record_context::ALL ? recorder() : nullptr;
    std::lock_guard guard(lock_);
    add(trace_entry::FREE_REQUESTED, device, p, size, stream, stack);
    add(trace_entry::FREE_COMPLETED, device, p, size, stream, std::move(stack));
  }

  /// A request of `size` bytes failed with `device_free` bytes free on the device (PyTorch's oom entry
  /// keeps the free bytes where others keep the address).
  void out_of_memory(size_t size, int device, void* stream, size_t device_free) {
    std::lock_guard guard(lock_);
    add(trace_entry::OOM, device, reinterpret_cast<void*>(device_free), size, stream, nullptr);
  }

  /// A snapshot found `active_bytes` allocated on the device (in `pool`'s segments when it names one):
  /// recorded while recording, as PyTorch's own allocator marks its snapshots in the trace.
  void snapshot_taken(int device, size_t active_bytes, c10::MempoolId_t pool) {
    if (!recording()) return;
    std::lock_guard guard(lock_);
    add(trace_entry::SNAPSHOT, device, nullptr, active_bytes, nullptr, nullptr, pool);
  }

  /// The block at p was freed where the alloc and free hooks do not see it (a graph pool set back to a
  /// checkpoint): its stack goes, so that no later block at p inherits it.
  void forget(void* p) {
    std::lock_guard guard(lock_);
    if (stacks_.erase(p) != 0) stacks_kept_.store(stacks_.size(), std::memory_order_relaxed);
  }

  /// The stack kept for the live block at p (recorded with context "state" or more), or null.
  gathered_context stack_of(void* p) const {
    std::lock_guard guard(lock_);
    const auto found = stacks_.find(p);
    return found == stacks_.end() ? nullptr : found->second;
  }

  /// Every device's trace, oldest first.
  std::vector<std::vector<trace_entry>> traces(int devices) const {
    std::vector<std::vector<trace_entry>> out(static_cast<size_t>(std::max(devices, 0)));
    std::lock_guard guard(lock_);
    for (const auto& [device, trace] : traces_) {
      if (device < 0 || static_cast<size_t>(device) >= out.size()) continue;
      out[static_cast<size_t>(device)] = trace.in_order();
    }
    return out;
  }

 private:
  /// A device's entries: the latest max_entries_, overwritten in a circle once it is full.
  struct ring {
    std::vector<trace_entry> entries;
    size_t next = 0;  // the oldest entry, once full
    std::vector<trace_entry> in_order() const {
      std::vector<trace_entry> out(entries.begin() + static_cast<std::ptrdiff_t>(next), entries.end());
      out.insert(out.end(), entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(next));
      return out;
    }
    void keep_last(size_t n) {
      if (entries.size() <= n && next == 0) return;
      std::vector<trace_entry> ordered = in_order();
      if (ordered.size() > n) ordered.erase(ordered.begin(), ordered.end() - static_cast<std::ptrdiff_t>(n));
      entries = std::move(ordered);
      next = 0;
    }
  };

  std::pair<context_recorder, record_context> settings() const {
    std::lock_guard guard(lock_);
    return {recorder_, when_};
  }

  void add(trace_entry::Action action, int device, void* addr, size_t size, void* stream,
           gathered_context stack, c10::MempoolId_t pool = {0, 0}) {
    if (skip_ & (1u << static_cast<unsigned>(action))) return;
    trace_entry entry(action, static_cast<c10::DeviceIndex>(device), reinterpret_cast<size_t>(addr), size, stream,
                      pool, 0, std::move(stack));
    // The snapshot reads time_.t_ as microseconds since the epoch (PyTorch converts its approximate
    // clock when it takes one; this keeps the real time at once).
    entry.time_.t_ = static_cast<time_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
    ring& trace = traces_[device];
    if (trace.entries.size() < max_entries_) {
      trace.entries.push_back(std::move(entry));
    } else {
      trace.entries[trace.next] = std::move(entry);
      trace.next = (trace.next + 1) % trace.entries.size();
    }
  }

  mutable std::mutex lock_;
  std::atomic<bool> recording_{false};
  std::atomic<size_t> stacks_kept_{0};
  context_recorder recorder_ = nullptr;
  record_context when_ = record_context::NEVER;
  uint32_t skip_ = 0;  // a bit per TraceEntry::Action not recorded
  size_t max_entries_ = 1;
  std::map<int, ring> traces_;
  std::map<void*, gathered_context> stacks_;  // live blocks' stacks (context "state" and more)
};

}  // namespace stash_torch
