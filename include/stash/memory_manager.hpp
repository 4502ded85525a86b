#pragma once
// stash::memory_manager: the process-wide facade, one object for every device's pool and the pinned one.
//
//   auto& mm = stash::memory_manager::instance();
//   void* d = mm.allocate(1 << 20, stash::memory_type::device);   // current device
//   void* h = mm.allocate_pinned(1 << 20);
//   mm.deallocate(d); mm.deallocate(h);                             // the owner is found from the pointer
//   auto s = mm.get_stats(0);                                       // total_allocated, total_cached, ...
//
// One pool per device, each with its own lock, created on first use; one pool of pinned host memory.
// With a GPU, a device's pool is the default composition (CUDA virtual memory), or whole cudaMalloc
// segments where the device lacks virtual memory management. Without a GPU the manager runs on
// ordinary host memory as one device, 0, so the same program (and the tests) run everywhere.
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/device_manager.hpp"
#include "stash/error.hpp"
#include "stash/memory_report.hpp"
#include "stash/memory_resource.hpp"
#include "stash/stats/stats.hpp"

namespace stash {

enum class memory_type { device, pinned };

/// What get_stats answers: the figures users asked for by name, and the full snapshot.
struct memory_stats {
  std::size_t total_allocated = 0;  // bytes live (as rounded)
  std::size_t total_cached = 0;     // bytes held but free
  std::size_t total_reserved = 0;   // bytes held from the driver
  std::size_t peak_allocated = 0;
  std::size_t peak_reserved = 0;
  stats_snapshot detail;
};

/// Called with every out_of_memory a manager's pool is about to throw (PyTorch's
/// attachOutOfMemoryObserver), on the allocating thread, with no lock of the pool held.
using out_of_memory_observer = std::function<void(const out_of_memory&)>;

namespace detail {

/// The observers of one manager, which its pools tell.
class oom_observers {
 public:
  void attach(out_of_memory_observer observer) {
    std::lock_guard guard(lock_);
    observers_.push_back(std::move(observer));
  }
  /// An observer that throws is skipped: the out_of_memory is what the caller gets.
  void notify(const out_of_memory& e) const noexcept {
    std::vector<out_of_memory_observer> now;
    try {
      std::lock_guard guard(lock_);
      now = observers_;
    } catch (...) {
      return;
    }
    for (const auto& observer : now) {
      try {
        observer(e);
      } catch (...) {
      }
    }
  }

 private:
  mutable std::mutex lock_;
  std::vector<out_of_memory_observer> observers_;
};

}  // namespace detail

/// A pool as the manager holds it: an allocator behind virtual calls.
class pool : public memory_resource {
 public:
  /// As the allocator's: frees p used on stream s if it is live here, else false.
  virtual bool try_deallocate(void* p, stream s) noexcept = 0;
  virtual bool holds(const void* p) const noexcept = 0;
  virtual void deallocate(void* p, stream s = stream{}) = 0;
  /// As the allocator's record_stream: throws invalid_pointer (or double_free) if p is not live here.
  virtual void record_stream(void* p, stream s) = 0;
  virtual void empty_cache() = 0;
  virtual void trim_cache(std::size_t target_cached_bytes) = 0;
  virtual stats_snapshot stats() const = 0;
  virtual void reset_peak() = 0;
  using memory_resource::deallocate;
  /// Who hears of its out_of_memory before it is thrown (the manager that made it).
  void report_out_of_memory_to(const detail::oom_observers* observers) noexcept { observers_ = observers; }

 protected:
  const detail::oom_observers* observers_ = nullptr;
};

template <class Allocator>
class pool_of final : public pool {
 public:
  template <class... Args>
  explicit pool_of(Args&&... args) : allocator_(std::forward<Args>(args)...) {}
  void* allocate(std::size_t bytes) override {
    try {
      return allocator_.allocate(bytes);
    } catch (const out_of_memory& e) {
      throw_detailed(e);
    }
  }
  void deallocate(void* p, std::size_t bytes) override { allocator_.deallocate(p, bytes); }
  void deallocate(void* p, stream s = stream{}) override { allocator_.deallocate(p, s); }
  using pool::deallocate;
  using memory_resource::allocate;
  std::size_t max_size() const noexcept override { return Allocator::max_size(); }
  bool try_deallocate(void* p, stream s) noexcept override { return allocator_.try_deallocate(p, s); }
  void record_stream(void* p, stream s) override { allocator_.record_stream(p, s); }
  bool holds(const void* p) const noexcept override { return allocator_.holds(p); }
  void empty_cache() override { allocator_.empty_cache(); }
  void trim_cache(std::size_t target) override { allocator_.trim_cache(target); }
  stats_snapshot stats() const override { return allocator_.stats(); }
  void reset_peak() override { allocator_.reset_peak(); }
  memory_kind kind() const noexcept override { return Allocator::kind; }
  int device() const noexcept override { return allocator_.device(); }
  Allocator& allocator() noexcept { return allocator_; }

 private:
  /// The failure again with a memory_report (and the driver's free and total memory of a device),
  /// told to the observers, then thrown.
  [[noreturn, gnu::cold, gnu::noinline]] void throw_detailed(const out_of_memory& failure) const {
    memory_report report;
    if constexpr (requires { describe_memory(allocator_); }) report = describe_memory(allocator_);
    if (Allocator::kind == memory_kind::device && failure.device() >= 0) {
      try {
        const auto info = device_manager::memory(failure.device());
        report.device_free_bytes = info.free_bytes;
        report.device_total_bytes = info.total_bytes;
      } catch (const error&) {  // no answer from the driver: the report says nothing of it
      }
    }
    const out_of_memory detailed(failure, report);
    if (observers_) observers_->notify(detailed);
    throw detailed;
  }

  void* do_allocate(std::size_t bytes, stream s) override {
    try {
      return allocator_.allocate(bytes, s);
    } catch (const out_of_memory& e) {
      throw_detailed(e);
    }
  }
  void do_deallocate(void* p, std::size_t bytes, stream s) override { allocator_.deallocate(p, bytes, s); }
  Allocator allocator_;
};

class memory_manager {
 public:
  /// Where the pools get memory from.
  enum class backing {
    cuda,  // device pools on the GPUs, pinned pool from cudaHostAlloc
    host,  // every pool from ordinary host memory; `host_devices` pretend devices
  };

  /// The process-wide manager: CUDA-backed when a GPU is visible, host-backed (one device) otherwise.
  static memory_manager& instance() {
    static memory_manager manager(device_manager::has_gpu() ? backing::cuda : backing::host);
    return manager;
  }

  /// A manager of its own (tests, or a library that wants pools apart from the application's).
  /// Throws invalid_device when there is no device to manage: backing::cuda without a visible GPU,
  /// or backing::host with host_devices < 1.
  explicit memory_manager(backing how, int host_devices = 1)
      : backing_(how),
        device_count_(how == backing::cuda ? device_manager::device_count() : host_devices),
        device_pools_(static_cast<std::size_t>(device_count_ > 0 ? device_count_ : 0)) {
    if (how == backing::cuda && device_count_ <= 0) throw invalid_device(-1, 0);
    if (how == backing::host && device_count_ <= 0)
      throw invalid_device(host_devices, "a host-backed memory manager needs at least one device");
    for (auto& p : device_pools_) p.store(nullptr, std::memory_order_relaxed);
  }
  memory_manager(const memory_manager&) = delete;
  memory_manager& operator=(const memory_manager&) = delete;
  ~memory_manager() {
    for (auto& p : device_pools_) delete p.load(std::memory_order_acquire);
    delete pinned_pool_.load(std::memory_order_acquire);
  }

  backing backed_by() const noexcept { return backing_; }
  int device_count() const noexcept { return device_count_; }
  /// The caller's current device (always 0 when host-backed).
  int current_device() const { return backing_ == backing::cuda ? device_manager::current_device() : 0; }

  /// `device_id` -1 means the current device; ignored for pinned memory. The memory is used on
  /// `stream` (default: the legacy default stream; see caching_allocator for stream order). Throws
  /// invalid_size, invalid_device, out_of_memory, invalid_stream, capture_error.
  [[nodiscard]] void* allocate(std::size_t size, memory_type type, int device_id = -1, stream s = stream{}) {
    if (type == memory_type::pinned) return pinned_pool().allocate(size, s);
    return device_pool(device_id).allocate(size, s);
  }
  [[nodiscard]] void* allocate_pinned(std::size_t size, stream s = stream{}) { return pinned_pool().allocate(size, s); }

  /// Frees memory from any of the manager's pools, used on `stream` up to now; the pool is found from
  /// the pointer. nullptr is a no-op; a pointer no pool handed out throws invalid_pointer (double_free
  /// when freed already); a stream the pool rejects throws invalid_stream.
  void deallocate(void* ptr, stream s = stream{}) {
    if (!ptr) return;
    for (auto& slot : device_pools_)
      if (pool* p = slot.load(std::memory_order_acquire); p && p->try_deallocate(ptr, s)) return;
    if (pool* p = pinned_pool_.load(std::memory_order_acquire); p && p->try_deallocate(ptr, s)) return;
    // Not freed anywhere: let the pool whose memory it lies in say why, else it is foreign.
    for (auto& slot : device_pools_)
      if (pool* p = slot.load(std::memory_order_acquire); p && p->holds(ptr)) p->deallocate(ptr, s);
    if (pool* p = pinned_pool_.load(std::memory_order_acquire); p && p->holds(ptr)) p->deallocate(ptr, s);
    throw invalid_pointer(ptr, "not allocated by the memory manager");
  }

  /// ptr, a live allocation of the manager, is also used on `stream` (PyTorch's Tensor.record_stream):
  /// once freed it is reused nowhere before the work queued there has completed. Throws as deallocate.
  void record_stream(void* ptr, stream s) {
    for (auto& slot : device_pools_)
      if (pool* p = slot.load(std::memory_order_acquire); p && p->holds(ptr)) return p->record_stream(ptr, s);
    if (pool* p = pinned_pool_.load(std::memory_order_acquire); p && p->holds(ptr)) return p->record_stream(ptr, s);
    throw invalid_pointer(ptr, "not allocated by the memory manager");
  }

  void empty_cache(int device_id = -1) { device_pool(device_id).empty_cache(); }
  void trim_cache(std::size_t target_bytes, int device_id = -1) { device_pool(device_id).trim_cache(target_bytes); }
  void empty_pinned_cache() { pinned_pool().empty_cache(); }

  memory_stats get_stats(int device_id = -1) { return to_memory_stats(device_pool(device_id).stats()); }
  memory_stats get_pinned_stats() { return to_memory_stats(pinned_pool().stats()); }
  void reset_peak(int device_id = -1) { device_pool(device_id).reset_peak(); }

  /// Calls `observer` with every out_of_memory any of this manager's pools throws, before it is
  /// thrown (PyTorch's attachOutOfMemoryObserver). The error carries a memory_report (details()):
  /// largest free block, fragmentation, the block sizes holding the most, the driver's free and total.
  void attach_out_of_memory_observer(out_of_memory_observer observer) { observers_.attach(std::move(observer)); }

  /// The pool of a device (-1: current), made on first use. What device_allocator<T> draws from.
  pool& device_pool(int device_id = -1) {
    const int id = resolve(device_id);
    std::atomic<pool*>& slot = device_pools_[static_cast<std::size_t>(id)];
    if (pool* p = slot.load(std::memory_order_acquire)) return *p;
    std::lock_guard guard(creation_lock_);
    if (pool* p = slot.load(std::memory_order_acquire)) return *p;
    pool* made = make_device_pool(id);
    made->report_out_of_memory_to(&observers_);
    slot.store(made, std::memory_order_release);
    return *made;
  }

  /// The pinned host memory pool, made on first use. What pinned_allocator<T> draws from.
  pool& pinned_pool() {
    if (pool* p = pinned_pool_.load(std::memory_order_acquire)) return *p;
    std::lock_guard guard(creation_lock_);
    if (pool* p = pinned_pool_.load(std::memory_order_acquire)) return *p;
    pool* made = backing_ == backing::cuda ? make_pinned_pool() : new pool_of<host_caching_allocator>();
    made->report_out_of_memory_to(&observers_);
    pinned_pool_.store(made, std::memory_order_release);
    return *made;
  }

 private:
  int resolve(int device_id) const {
    if (device_id == -1) return current_device();
    if (device_id < 0 || device_id >= device_count_) throw invalid_device(device_id, device_count_);
    return device_id;
  }

  pool* make_device_pool(int id) const {
    // Host memory named after the device it stands for, so that errors name the device asked for.
    if (backing_ == backing::host) return new pool_of<host_caching_allocator>(host_backend(id));
    try {
      return new pool_of<device_caching_allocator>(cuda_vmm_backend(id));
    } catch (const cuda_error&) {
      // No virtual memory management on this device (or driver): whole cudaMalloc segments instead.
      return new pool_of<segment_device_allocator>(cuda_device_backend(id));
    }
  }

  static pool* make_pinned_pool() {
    try {
      return new pool_of<pinned_caching_allocator>(cuda_pinned_vmm_backend(-1));
    } catch (const cuda_error&) {
      // No pinned VMM pages (an older driver): whole cudaHostAlloc segments instead.
      return new pool_of<segment_pinned_allocator>();
    }
  }

  static memory_stats to_memory_stats(const stats_snapshot& s) {
    return {s.allocated_bytes, s.cached_bytes, s.reserved_bytes, s.peak_allocated_bytes, s.peak_reserved_bytes, s};
  }

  backing backing_;
  int device_count_;
  std::vector<std::atomic<pool*>> device_pools_;
  std::atomic<pool*> pinned_pool_{nullptr};
  std::mutex creation_lock_;  // only taken to create a pool
  detail::oom_observers observers_;  // told by every pool before it throws out_of_memory (the pools
                                     // are deleted in the destructor's body, before this goes)
};

}  // namespace stash
