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
// Every device pool takes a memory limit (set_memory_limit, set_memory_fraction), none until one is set.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
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
  std::uint64_t num_ooms = 0;          // requests that ended in out_of_memory (PyTorch's num_ooms)
  std::size_t limit_bytes = SIZE_MAX;  // the most the pool may hold from the driver; SIZE_MAX: no limit
  std::uint64_t page_moves = 0;        // paged pools: idle pages moved to where a block needed them
};

/// Where a CUDA-backed manager's device pools get memory.
enum class device_backend_kind {
  vmm,       // pages of CUDA virtual memory; whole cudaMalloc segments where the device lacks VMM
  segments,  // whole cudaMalloc segments
};

/// How a memory manager makes its pools; each pool takes them when it is made.
struct manager_options {
  device_backend_kind backend = device_backend_kind::vmm;
  caching_options caching{};  // every device pool's, and the pinned pool's when it is paged
  /// Each device pool's limit until set_memory_limit or set_memory_fraction changes it.
  std::size_t limit_bytes = SIZE_MAX;
  /// CUDA-backed: device pools map memory another process can map too (memory_manager::ipc_export,
  /// stash/ipc.hpp). A device that cannot export it (or has no virtual memory management) then makes
  /// allocate throw stash::cuda_error instead of falling back to cudaMalloc segments.
  bool shareable = false;
  /// CUDA-backed, when `shareable` is false: device pools map shareable memory where the device can
  /// export it, and plain memory (then cudaMalloc segments) where it cannot, instead of failing.
  /// Creating memory exportable cost no more than plain memory on an H200 (bench/page_costs: cuMemCreate
  /// + cuMemMap of 1 and of 32 pages, 31.6 and 32.4 µs against 31.2 and 32.3; bench/RESULTS.md).
  bool shareable_where_supported = false;
  /// CUDA-backed, pages of CUDA virtual memory: which other GPUs each device pool maps its pages for
  /// (peer_access::all: every one that can reach the device; none: its own only, until
  /// memory_manager::grant_peer_access adds one). README, "Behaviour we chose": peers.
  peer_access peers = peer_access::all;
  /// When > 0 (at most 1; CUDA-backed only), each device pool's limit is also at most this fraction of
  /// its device's total memory, read when the pool is made.
  double memory_fraction = 0;
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
    auto next = observers_ ? std::make_shared<std::vector<out_of_memory_observer>>(*observers_)
                           : std::make_shared<std::vector<out_of_memory_observer>>();
    next->push_back(std::move(observer));
    observers_ = std::move(next);
  }
  /// An observer that throws is skipped: the out_of_memory is what the caller gets. Asks the host heap
  /// for nothing (the list is shared, not copied), so observers hear of it when the heap is full too.
  void notify(const out_of_memory& e) const noexcept {
    std::shared_ptr<const std::vector<out_of_memory_observer>> now;
    {
      std::lock_guard guard(lock_);
      now = observers_;
    }
    if (!now) return;
    for (const auto& observer : *now) {
      try {
        observer(e);
      } catch (...) {
      }
    }
  }

 private:
  mutable std::mutex lock_;
  std::shared_ptr<const std::vector<out_of_memory_observer>> observers_;  // replaced, never
                                                                          // changed, by attach
};

}  // namespace detail

static_assert(std::is_nothrow_copy_constructible_v<out_of_memory>, "pool_of::throw_detailed throws a copy");

/// A pool as the manager holds it: an allocator behind virtual calls.
class pool : public memory_resource {
 public:
  /// As the allocator's: frees p used on stream s if it is live here, else false.
  virtual bool try_deallocate(void* p, stream s) noexcept = 0;
  /// As the allocator's: whether p lies in memory the pool holds from its backend, live or cached (the
  /// pool that can say why freeing p is wrong). owns(p) is narrower: p starts a live block.
  virtual bool holds(const void* p) const noexcept = 0;
  virtual void deallocate(void* p, stream s = stream{}) = 0;
  /// As the allocator's deallocate_completed: frees p, whose every use on the device the caller has
  /// waited for, free for every stream at once and naming none.
  virtual void deallocate_completed(void* p) = 0;
  /// As the allocator's record_stream: throws invalid_pointer (or double_free) if p is not live here.
  virtual void record_stream(void* p, stream s) = 0;
  /// As the allocator's flush_stream: s's pending frees get their event now, before s is destroyed.
  virtual void flush_stream(stream s) = 0;
  /// The pool's ordering policy's event, held by value for callers that keep blocks of their own
  /// (graph_pools): the policy's event_type copied in (every policy's fits).
  struct event {
    alignas(std::uint64_t) unsigned char bytes[16] = {};
  };
  /// As the allocator's record_event: an event that completes once the work queued on s so far has
  /// completed; nullopt while s is capturing. Host-ordered pools: one that has completed.
  virtual std::optional<event> record_event(stream s) = 0;
  /// As the allocator's event_completed: never blocks the host.
  virtual bool event_completed(const event& e) = 0;
  /// As the allocator's release_event: e, from record_event, is no longer needed.
  virtual void release_event(const event& e) noexcept = 0;
  /// The allocator's caching_options::free_records_used_streams: whether events may be recorded, at a
  /// block's free, on the streams record_stream named for it (the program promises they are alive).
  virtual bool frees_record_used_streams() const noexcept = 0;
  virtual void empty_cache() = 0;
  virtual void trim_cache(std::size_t target_cached_bytes) = 0;
  virtual stats_snapshot stats() const = 0;
  virtual void reset_peak() = 0;
  /// The most bytes the pool may hold from its backend (SIZE_MAX: none). set_limit changes it, from any
  /// thread, where the backend takes a limit (limited_backend), and returns false for any other pool.
  virtual std::size_t limit() const noexcept = 0;
  virtual bool set_limit(std::size_t bytes) noexcept = 0;
  using memory_resource::deallocate;
  /// Who hears of its out_of_memory before it is thrown (the manager that made it).
  void report_out_of_memory_to(const detail::oom_observers* observers) noexcept { observers_ = observers; }
  /// Requests that ended in out_of_memory since the pool was made.
  std::uint64_t out_of_memory_count() const noexcept { return ooms_.load(std::memory_order_relaxed); }
  /// As allocate(bytes, s), but running out of memory is not yet the pool's failure: out_of_memory is
  /// thrown as the allocator threw it, neither counted nor told to the observers. For a caller with a
  /// fallback of its own (the C interface gives released graph pools' blocks back and tries again),
  /// which calls fail_out_of_memory when the fallback does not help.
  virtual void* allocate_before_fallback(std::size_t bytes, stream s) = 0;
  /// The pool's out_of_memory: `failure` with a memory report, counted, told to the observers, thrown.
  [[noreturn]] virtual void fail_out_of_memory(const out_of_memory& failure) = 0;
  /// Paged pools: idle pages moved (unmapped and mapped again elsewhere) since the pool was made; 0
  /// for a pool of segments.
  virtual std::uint64_t page_moves() const noexcept = 0;
  /// As the allocator's ipc_export; stash::error for a pool whose memory cannot be shared.
  virtual ipc_handle ipc_export(const void* p) const = 0;
  /// As the allocator's visit_memory (for reports and snapshots): region(begin, bytes) for each stretch
  /// of memory held from the backend, then block(addr, bytes, requested) for its blocks in address
  /// order, requested 0 where not live. Under the pool's lock: the callbacks must not call the pool.
  /// Nothing for a pool whose allocator cannot walk its memory.
  using region_visitor = std::function<void(std::uintptr_t begin, std::size_t bytes)>;
  using block_visitor = std::function<void(std::uintptr_t addr, std::size_t bytes, std::size_t requested)>;
  virtual void visit_memory(const region_visitor& region, const block_visitor& block) const = 0;
  /// Its memory is pages of CUDA virtual memory (or their simulation), mapped and moved as needed:
  /// PyTorch's expandable segments.
  virtual bool paged() const noexcept = 0;
  /// The live block that p lies in: its start and its size as asked for; {nullptr, 0} when p is in
  /// none. Walks every block of the pool under its lock (visit_memory): for rare calls (ipc_export of
  /// a pointer inside a block), never for the fast path.
  std::pair<void*, std::size_t> live_block_containing(const void* p) const {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    std::pair<void*, std::size_t> found{nullptr, 0};
    visit_memory([](std::uintptr_t, std::size_t) {},
                 [&](std::uintptr_t begin, std::size_t bytes, std::size_t requested) {
                   if (requested != 0 && a >= begin && a - begin < bytes)
                     found = {reinterpret_cast<void*>(begin), requested};
                 });
    return found;
  }
  /// Whether p is the start of a live block of this pool: one lookup in its block index.
  virtual bool owns(const void* p) const noexcept = 0;
  /// As the allocator's grant_peer, and true, for a pool of pages granted per device (CUDA virtual
  /// memory); false, changing nothing, for any other pool (cudaMalloc segments, which peers reach once
  /// the program calls cudaDeviceEnablePeerAccess; host memory).
  virtual bool grant_peer(int peer) = 0;

 protected:
  const detail::oom_observers* observers_ = nullptr;
  std::atomic<std::uint64_t> ooms_{0};
};

template <class Allocator>
class pool_of final : public pool {
  static constexpr bool limited = requires(Allocator& a, std::size_t n) { a.backend().set_limit(n); };

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
  void* allocate_before_fallback(std::size_t bytes, stream s) override {
    return allocator_.allocate(bytes, s);
  }
  [[noreturn]] void fail_out_of_memory(const out_of_memory& failure) override { throw_detailed(failure); }
  void deallocate(void* p, std::size_t bytes) override { allocator_.deallocate(p, bytes); }
  void deallocate(void* p, stream s = stream{}) override { allocator_.deallocate(p, s); }
  void deallocate_completed(void* p) override { allocator_.deallocate_completed(p); }
  using pool::deallocate;
  using memory_resource::allocate;
  std::size_t max_size() const noexcept override { return Allocator::max_size(); }
  bool try_deallocate(void* p, stream s) noexcept override { return allocator_.try_deallocate(p, s); }
  void record_stream(void* p, stream s) override { allocator_.record_stream(p, s); }
  void flush_stream(stream s) override { allocator_.flush_stream(s); }
  std::optional<event> record_event(stream s) override {
    const auto recorded = allocator_.record_event(s);
    if (!recorded) return std::nullopt;
    event e;
    std::memcpy(e.bytes, &*recorded, sizeof(policy_event));
    return e;
  }
  bool event_completed(const event& e) override { return allocator_.event_completed(policy_event_of(e)); }
  void release_event(const event& e) noexcept override { allocator_.release_event(policy_event_of(e)); }
  bool frees_record_used_streams() const noexcept override {
    return allocator_.options().free_records_used_streams;
  }
  bool holds(const void* p) const noexcept override { return allocator_.holds(p); }
  bool owns(const void* p) const noexcept override { return allocator_.owns(p); }
  void empty_cache() override { allocator_.empty_cache(); }
  void trim_cache(std::size_t target) override { allocator_.trim_cache(target); }
  stats_snapshot stats() const override { return allocator_.stats(); }
  std::uint64_t page_moves() const noexcept override { return allocator_.page_moves(); }
  ipc_handle ipc_export(const void* p) const override {
    if constexpr (requires { allocator_.ipc_export(p); }) return allocator_.ipc_export(p);
    else throw error("stash: this pool's memory cannot be shared with another process (memory_manager "
                     "with manager_options::shareable, CUDA virtual memory)");
  }
  void visit_memory(const region_visitor& region, const block_visitor& block) const override {
    if constexpr (requires { allocator_.visit_memory(region, block); }) allocator_.visit_memory(region, block);
  }
  bool paged() const noexcept override {
    if constexpr (requires { typename Allocator::backend_type; })
      return paged_backend<typename Allocator::backend_type>;
    return false;
  }
  bool grant_peer(int peer) override {
    if constexpr (requires { allocator_.grant_peer(peer); }) {
      allocator_.grant_peer(peer);
      return true;
    }
    return false;
  }
  void reset_peak() override { allocator_.reset_peak(); }
  std::size_t limit() const noexcept override {
    if constexpr (limited) return allocator_.backend().limit();
    return SIZE_MAX;
  }
  bool set_limit(std::size_t bytes) noexcept override {
    if constexpr (limited) allocator_.backend().set_limit(bytes);
    return limited;
  }
  memory_kind kind() const noexcept override { return Allocator::kind; }
  int device() const noexcept override { return allocator_.device(); }
  Allocator& allocator() noexcept { return allocator_; }

 private:
  /// The failure again with a memory_report (and the driver's free and total memory of a device),
  /// counted, told to the observers, then thrown.
  /// Without host memory for the report, `failure` as the allocator threw it, counted and told all the same.
  using policy_event = typename Allocator::event_type;
  static_assert(sizeof(policy_event) <= sizeof(event::bytes) && std::is_trivially_copyable_v<policy_event>,
                "pool::event holds the ordering policy's event by value");
  static policy_event policy_event_of(const event& e) noexcept {
    policy_event out;
    std::memcpy(&out, e.bytes, sizeof(policy_event));
    return out;
  }

  [[noreturn, gnu::cold, gnu::noinline]] void throw_detailed(const out_of_memory& failure) {
    ooms_.fetch_add(1, std::memory_order_relaxed);
    std::optional<out_of_memory> detailed;
    try {
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
      detailed.emplace(failure, report);
    } catch (const std::bad_alloc&) {  // the host heap is full: no report, but still out_of_memory
    }
    const out_of_memory& thrown = detailed ? *detailed : failure;
    if (observers_) observers_->notify(thrown);
    throw thrown;
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
  /// A memory limit that is none.
  static constexpr std::size_t unlimited = SIZE_MAX;

  /// The process-wide manager: CUDA-backed when a GPU is visible, host-backed (one device) otherwise.
  static memory_manager& instance() {
    static memory_manager manager(device_manager::has_gpu() ? backing::cuda : backing::host);
    return manager;
  }

  /// A manager of its own (tests, a library that wants pools apart from the application's, or pools
  /// made with other options). Throws invalid_device when there is no device to manage: backing::cuda
  /// without a visible GPU, or backing::host with host_devices < 1; invalid_limit for a memory_fraction
  /// outside [0, 1] or not a number, or one on host memory.
  explicit memory_manager(backing how, int host_devices = 1, manager_options options = {})
      : backing_(how),
        device_count_(how == backing::cuda ? device_manager::device_count() : host_devices),
        options_(options),
        device_pools_(static_cast<std::size_t>(device_count_ > 0 ? device_count_ : 0)),
        limits_(device_pools_.size()) {
    if (how == backing::cuda && device_count_ <= 0) throw invalid_device(-1, 0);
    if (how == backing::host && device_count_ <= 0)
      throw invalid_device(host_devices, "a host-backed memory manager needs at least one device");
    if (options.memory_fraction != 0) check_fraction(options.memory_fraction);
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
  const manager_options& options() const noexcept { return options_; }
  /// The caller's current device (always 0 when host-backed).
  int current_device() const { return backing_ == backing::cuda ? device_manager::current_device() : 0; }

  /// `device_id` -1 means the current device; ignored for pinned memory. The memory is used on
  /// `stream` (default: the legacy default stream; see caching_allocator for stream order). Throws
  /// invalid_size, invalid_device, out_of_memory, invalid_stream, capture_error; stash::error for a
  /// `type` that is neither memory_type (nothing is allocated then).
  [[nodiscard]] void* allocate(std::size_t size, memory_type type, int device_id = -1, stream s = stream{}) {
    if (type == memory_type::pinned) return pinned_pool().allocate(size, s);
    if (type != memory_type::device) [[unlikely]]
      throw error("stash: invalid memory_type " + std::to_string(static_cast<int>(type)) +
                  " (memory_type::device or memory_type::pinned)");
    return device_pool(device_id).allocate(size, s);
  }
  [[nodiscard]] void* allocate_pinned(std::size_t size, stream s = stream{}) {
    return pinned_pool().allocate(size, s);
  }

  /// Frees memory from any of the manager's pools, used on `stream` up to now; the pool is found from
  /// the pointer. nullptr is a no-op; a pointer no pool handed out throws invalid_pointer (double_free
  /// when freed already); a stream the pool rejects throws invalid_stream.
  void deallocate(void* ptr, stream s = stream{}) {
    if (!ptr) return;
    if (first_pool_where([&](pool& candidate) { return candidate.try_deallocate(ptr, s); })) return;
    // Not freed anywhere: the pool whose memory it lies in frees it or says why (try_deallocate also
    // fails where the host heap failed once, and the free may succeed now), else it is foreign.
    pool_holding(ptr).deallocate(ptr, s);
  }

  /// ptr, a live allocation of the manager, is also used on `stream` (PyTorch's Tensor.record_stream):
  /// once freed it is reused nowhere before the work queued there has completed. Throws as deallocate.
  void record_stream(void* ptr, stream s) { pool_holding(ptr).record_stream(ptr, s); }

  /// The program is done with `stream` and may destroy it after this call: every pool that was told
  /// of frees on it records their event now (no host wait), so that their memory goes to other
  /// streams once the work queued before them completes, with no empty_cache. Call it after the last
  /// free on a stream the program made and before cudaStreamDestroy; without it those frees stay
  /// pending until empty_cache or an out-of-memory retry synchronizes the device. Pools that never
  /// saw the stream do nothing. Throws stash::cuda_error when an event cannot be recorded (those
  /// frees stay pending, and the pools after it are not flushed).
  void flush_stream(stream s) {
    first_pool_where([&](pool& each) {
      each.flush_stream(s);
      return false;  // every pool
    });
  }

  /// Whether ptr is the start of a live block of a device pool: a lookup in the index of the pool that
  /// holds it, for checks that come often (live_block_containing walks the pool's blocks: for rare ones).
  bool owns(const void* ptr) const noexcept {
    const pool* p = device_pool_holding(ptr);
    return p && p->owns(ptr);
  }

  /// The live block of a device pool that ptr lies in (its start, and its size as asked for), or
  /// {nullptr, 0}. Walks the blocks of the pool that holds ptr: for rare calls only.
  std::pair<void*, std::size_t> live_block_containing(const void* ptr) const {
    const pool* p = device_pool_holding(ptr);
    return p ? p->live_block_containing(ptr) : std::pair<void*, std::size_t>{nullptr, 0};
  }

  /// The live block ptr (of any device pool) as another process can map it (stash/ipc.hpp). Needs
  /// memory made shareable (manager_options::shareable, or shareable_where_supported on a device that
  /// can export); otherwise throws stash::error. Throws invalid_pointer (or double_free) if ptr is not
  /// the start of a live block of a device pool; nothing changes then.
  ipc_handle ipc_export(const void* ptr) const {
    if (const pool* p = device_pool_holding(ptr)) return p->ipc_export(ptr);
    throw invalid_pointer(ptr, "not a device allocation of the memory manager");
  }

  /// Lets kernels and copies on device `peer` read and write the memory of device_id's pool (-1:
  /// current; the pool is made if it was not): every page mapped now and every page mapped from then
  /// on (PyTorch's enablePeerAccess, which makes its expandable segments grant the peer). Needed only
  /// with manager_options::peers = peer_access::none; with all, every device that can reach it was
  /// granted already. Returns true when the pool maps pages per device (CUDA virtual memory) and the
  /// peer now has them, false for a pool where there is nothing to grant: cudaMalloc segments (the
  /// program's cudaDeviceEnablePeerAccess decides there, as without stash) and host-backed managers.
  /// Granting the pool's own device, or a peer granted already, changes nothing. Throws invalid_device for a
  /// bad device_id or peer, or a peer that cannot reach the device (cudaDeviceCanAccessPeer);
  /// stash::cuda_error when the driver refuses; no page is granted to the peer then.
  bool grant_peer_access(int device_id, int peer) {
    const int id = resolve(device_id);
    if (peer < 0 || peer >= device_count_) throw invalid_device(peer, device_count_);
    return device_pool(id).grant_peer(peer);
  }

  // The caches and figures of one device (-1: current). A device whose pool is not made yet has
  // nothing cached and zero figures: asking makes no pool.
  void empty_cache(int device_id = -1) {
    if (pool* p = existing_device_pool(device_id)) p->empty_cache();
  }
  void trim_cache(std::size_t target_bytes, int device_id = -1) {
    if (pool* p = existing_device_pool(device_id)) p->trim_cache(target_bytes);
  }
  void empty_pinned_cache() {
    if (pool* p = existing_pinned_pool()) p->empty_cache();
  }

  memory_stats get_stats(int device_id = -1) {
    const int id = resolve(device_id);
    memory_stats s = to_memory_stats(existing_device_pool(id));
    s.limit_bytes = memory_limit(id);
    return s;
  }
  memory_stats get_pinned_stats() { return to_memory_stats(existing_pinned_pool()); }
  void reset_peak(int device_id = -1) {
    if (pool* p = existing_device_pool(device_id)) p->reset_peak();
  }

  /// Caps what the pool of `device_id` (-1: current) may hold from the driver at `bytes` (unlimited:
  /// none), from now on, from any thread, for a pool made already or later (PyTorch's
  /// set_per_process_memory_fraction, RMM's limiting_resource_adaptor). A request past the limit is met
  /// as on a full device: idle pages are moved, or the cache is released and the request retried, then
  /// out_of_memory (with its report, told to the observers). Lowering it below what is held gives
  /// nothing back by itself (empty_cache and trim_cache do). Throws invalid_device; changes nothing then.
  void set_memory_limit(std::size_t bytes, int device_id = -1) {
    const int id = resolve(device_id);
    std::lock_guard guard(creation_lock_);
    limits_[static_cast<std::size_t>(id)] = bytes;
    if (pool* p = device_pools_[static_cast<std::size_t>(id)].load(std::memory_order_acquire))
      p->set_limit(bytes);
  }

  /// The limit as `fraction` of the device's total memory (torch.cuda.set_per_process_memory_fraction).
  /// Throws invalid_device, invalid_limit for a fraction outside (0, 1] or not a number, or on a
  /// host-backed manager (host memory has no device total; set_memory_limit takes bytes), cuda_error
  /// when the driver does not answer; changes nothing then.
  void set_memory_fraction(double fraction, int device_id = -1) {
    const int id = resolve(device_id);
    check_fraction(fraction);
    set_memory_limit(fraction_of(fraction, id), id);
  }

  /// The limit of the pool of `device_id` (-1: current) in bytes; unlimited: none. Throws invalid_device.
  std::size_t memory_limit(int device_id = -1) {
    const int id = resolve(device_id);
    std::lock_guard guard(creation_lock_);
    if (pool* p = device_pools_[static_cast<std::size_t>(id)].load(std::memory_order_acquire))
      return p->limit();
    return limit_to_make(id);
  }

  /// Calls `observer` with every out_of_memory any of this manager's pools throws, before it is
  /// thrown (PyTorch's attachOutOfMemoryObserver). The error carries a memory_report (details()):
  /// largest free block, fragmentation, the block sizes holding the most, the driver's free and total.
  void attach_out_of_memory_observer(out_of_memory_observer observer) {
    observers_.attach(std::move(observer));
  }

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

  /// The pool of a device (-1: current) if it was made, else nullptr. Throws invalid_device.
  pool* existing_device_pool(int device_id = -1) const {
    return device_pools_[static_cast<std::size_t>(resolve(device_id))].load(std::memory_order_acquire);
  }
  /// The pinned pool if it was made, else nullptr.
  pool* existing_pinned_pool() const noexcept { return pinned_pool_.load(std::memory_order_acquire); }

 private:
  /// The first pool made so far, the device pools in device order and then the pinned one, for which
  /// `found(pool&)` returns true, or null: each call that looks for a pointer's pool, or visits every
  /// pool, goes in this one order.
  template <class Found>
  pool* first_pool_where(Found found) {
    for (auto& slot : device_pools_)
      if (pool* p = slot.load(std::memory_order_acquire); p && found(*p)) return p;
    if (pool* p = pinned_pool_.load(std::memory_order_acquire); p && found(*p)) return p;
    return nullptr;
  }
  /// The pool whose memory ptr lies in; throws invalid_pointer when no pool holds it.
  pool& pool_holding(const void* ptr) {
    if (pool* p = first_pool_where([&](const pool& candidate) { return candidate.holds(ptr); })) return *p;
    throw invalid_pointer(ptr, "not allocated by the memory manager");
  }

  /// The device pool whose memory ptr lies in, or null.
  const pool* device_pool_holding(const void* ptr) const noexcept {
    for (const auto& slot : device_pools_)
      if (const pool* p = slot.load(std::memory_order_acquire); p && p->holds(ptr)) return p;
    return nullptr;
  }

  int resolve(int device_id) const {
    if (device_id == -1) return current_device();
    if (device_id < 0 || device_id >= device_count_) throw invalid_device(device_id, device_count_);
    return device_id;
  }

  void check_fraction(double fraction) const {
    if (!(fraction > 0 && fraction <= 1))  // NaN fails both comparisons
      throw invalid_limit("a memory fraction must be in (0, 1], not " + std::to_string(fraction));
    if (backing_ == backing::host)
      throw invalid_limit(
          "a memory fraction needs a GPU (host memory has no device total; give a limit in bytes)");
  }

  static std::size_t fraction_of(double fraction, int id) {
    return static_cast<std::size_t>(fraction * static_cast<double>(device_manager::memory(id).total_bytes));
  }

  /// The limit a pool of device id is made with: the one set for it, else the options'. Called with
  /// creation_lock_ held.
  std::size_t limit_to_make(int id) const {
    if (const auto& set = limits_[static_cast<std::size_t>(id)]) return *set;
    std::size_t limit = options_.limit_bytes;
    if (options_.memory_fraction > 0) {
      const std::size_t share = fraction_of(options_.memory_fraction, id);
      if (share < limit) limit = share;
    }
    return limit;
  }

  /// Called with creation_lock_ held.
  pool* make_device_pool(int id) const {
    const std::size_t limit = limit_to_make(id);
    // Host memory named after the device it stands for, so that errors name the device asked for.
    if (backing_ == backing::host) return make_limited_pool(host_backend(id), limit);
    if (options_.backend == device_backend_kind::vmm) {
      if (options_.shareable) return make_limited_pool(cuda_vmm_backend(id, 0, true, options_.peers), limit);
      if (options_.shareable_where_supported) {
        try {
          return make_limited_pool(cuda_vmm_backend(id, 0, true, options_.peers), limit);
        } catch (const cuda_error&) {
          // The device cannot export memory (or has no virtual memory management): as if not asked.
        }
      }
      try {
        return make_limited_pool(cuda_vmm_backend(id, 0, false, options_.peers), limit);
      } catch (const cuda_error&) {
        // No virtual memory management on this device (or driver): whole cudaMalloc segments instead.
      }
    }
    return make_limited_pool(cuda_device_backend(id), limit);
  }

  template <class Backend>
  pool* make_limited_pool(Backend backend, std::size_t limit) const {
    return new pool_of<limited_caching_allocator<Backend>>(
        limited_backend<Backend>(std::move(backend), limit), options_.caching);
  }

  pool* make_pinned_pool() const {
    try {
      return new pool_of<pinned_caching_allocator>(cuda_pinned_vmm_backend(-1), options_.caching);
    } catch (const cuda_error&) {
      // No pinned VMM pages (an older driver): whole cudaHostAlloc segments instead.
      return new pool_of<segment_pinned_allocator>();
    }
  }

  static memory_stats to_memory_stats(const pool* p) {
    const stats_snapshot s = p ? p->stats() : stats_snapshot{};
    return {s.allocated_bytes, s.cached_bytes, s.reserved_bytes, s.peak_allocated_bytes,
            s.peak_reserved_bytes, s, p ? p->out_of_memory_count() : 0, p ? p->limit() : unlimited,
            p ? p->page_moves() : 0};
  }

  backing backing_;
  int device_count_;
  manager_options options_;
  std::vector<std::atomic<pool*>> device_pools_;
  std::vector<std::optional<std::size_t>> limits_;  // per device: set by set_memory_limit
                                                    // (under creation_lock_)
  std::atomic<pool*> pinned_pool_{nullptr};
  std::mutex creation_lock_;  // taken to create a pool and to set or read a limit, never on the fast path
  detail::oom_observers observers_;  // told by every pool before it throws out_of_memory (the pools
                                     // are deleted in the destructor's body, before this goes)
};

}  // namespace stash
