#pragma once
// stash::limited_backend<Backend>: a memory limit on any backend (PyTorch's
// set_per_process_memory_fraction, RMM's limiting_resource_adaptor). The backend refuses memory that
// would take what it holds past the limit, answering as a full device does (nullptr / false), so the
// caching allocator does what it does on a full device: a paged allocator moves an idle page to where
// it is needed, a segment allocator releases its cache and retries, then out_of_memory is thrown.
//
//   using limited_device_allocator =
//       stash::caching_allocator<stash::limited_backend<stash::cuda_vmm_backend>>;
//   limited_device_allocator pool;
//   pool.backend().set_limit(0.5 * stash::device_manager::memory(0).total_bytes);   // half the device
//
// The limit may change at any time, from any thread; it holds for memory asked for after the change
// (lowering it below what is held gives nothing back: trim_cache does). Only the slow path pays: one
// comparison per segment or page asked of the driver.
#include <algorithm>
#include <concepts>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "stash/backend/backend.hpp"

namespace stash {

namespace detail {
/// The upstream's ordering_type, where it names one: a limit does not change how the memory is used.
template <class Backend>
struct ordering_type_of {};
template <class Backend>
  requires requires { typename Backend::ordering_type; }
struct ordering_type_of<Backend> {
  using ordering_type = typename Backend::ordering_type;
};

/// A backend that maps a chunk at several addresses and tells the bytes it holds, each chunk counted
/// once until its last mapping goes (cuda_vmm_backend, simulated_paged_backend): the limit follows it.
template <class Backend>
concept aliases_counted = remapping_paged_backend<Backend> && requires(const Backend& b) {
  { b.mapped_bytes() } -> std::convertible_to<std::size_t>;
};
}  // namespace detail

template <backend_policy Backend>
class limited_backend : public detail::ordering_type_of<Backend> {
 public:
  static constexpr memory_kind kind = Backend::kind;
  static constexpr std::size_t unlimited = SIZE_MAX;

  explicit limited_backend(Backend upstream = Backend{}, std::size_t limit_bytes = unlimited)
      : upstream_(std::move(upstream)), limit_(limit_bytes) {}
  limited_backend(limited_backend&& other) noexcept(std::is_nothrow_move_constructible_v<Backend>)
      : upstream_(std::move(other.upstream_)),
        limit_(other.limit()),
        held_(other.held_bytes()) {}

  /// The most bytes the backend may hold (segments, or mapped pages). Thread-safe.
  void set_limit(std::size_t bytes) noexcept { limit_.store(bytes, std::memory_order_relaxed); }
  std::size_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }
  /// Bytes held now. Thread-safe.
  std::size_t held_bytes() const noexcept { return held_.load(std::memory_order_relaxed); }

  Backend& upstream() noexcept { return upstream_; }
  const Backend& upstream() const noexcept { return upstream_; }
  int device() const noexcept { return upstream_.device(); }

  // Segment backends.
  void* allocate(std::size_t bytes)
    requires segment_backend<Backend>
  {
    if (!fits(bytes)) return nullptr;
    void* p = upstream_.allocate(bytes);
    if (p) held_.fetch_add(bytes, std::memory_order_relaxed);
    return p;
  }
  void deallocate(void* p, std::size_t bytes) noexcept
    requires segment_backend<Backend>
  {
    upstream_.deallocate(p, bytes);
    held_.fetch_sub(bytes, std::memory_order_relaxed);
  }
  std::size_t granularity() const noexcept
    requires segment_backend<Backend>
  {
    return upstream_.granularity();
  }

  // Paged backends.
  std::size_t page_size() const noexcept
    requires paged_backend<Backend>
  {
    return upstream_.page_size();
  }
  std::size_t default_reserve_bytes() const noexcept
    requires paged_backend<Backend> && requires(const Backend& b) { b.default_reserve_bytes(); }
  {
    return upstream_.default_reserve_bytes();
  }
  std::uintptr_t reserve(std::size_t bytes)
    requires paged_backend<Backend>
  {
    return upstream_.reserve(bytes);
  }
  bool map_page(std::uintptr_t a)
    requires paged_backend<Backend>
  {
    const std::size_t page = upstream_.page_size();
    if (!fits(page) || !upstream_.map_page(a)) return false;
    held_.fetch_add(page, std::memory_order_relaxed);
    return true;
  }
  bool map_pages(std::uintptr_t a, std::size_t n)
    requires chunked_paged_backend<Backend>
  {
    const std::size_t page = upstream_.page_size();
    if (n > SIZE_MAX / page || !fits(n * page) || !upstream_.map_pages(a, n)) return false;
    held_.fetch_add(n * page, std::memory_order_relaxed);
    return true;
  }
  /// The whole run counts against the limit: refused when all its chunks do not fit.
  bool map_chunks(std::uintptr_t a, std::size_t n, std::size_t chunk)
    requires chunked_paged_backend<Backend>
  {
    const std::size_t page = upstream_.page_size();
    if (n > SIZE_MAX / page || !fits(n * page) || !upstream_.map_chunks(a, n, chunk)) return false;
    held_.fetch_add(n * page, std::memory_order_relaxed);
    return true;
  }
  /// Holds no new memory: never refused by the limit.
  bool set_access(std::uintptr_t a, std::size_t n)
    requires chunked_paged_backend<Backend>
  {
    return upstream_.set_access(a, n);
  }
  void unmap_pages(std::uintptr_t a, std::size_t n) noexcept
    requires chunked_paged_backend<Backend>
  {
    upstream_.unmap_pages(a, n);
    if constexpr (detail::aliases_counted<Backend>) follow_mapped_bytes();  // aliases may keep it held
    else held_.fetch_sub(n * upstream_.page_size(), std::memory_order_relaxed);
  }
  /// A move keeps the memory held the same: never refused by the limit.
  bool move_page(std::uintptr_t from, std::uintptr_t to)
    requires paged_backend<Backend>
  {
    return upstream_.move_page(from, to);
  }
  bool move_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n)
    requires chunked_paged_backend<Backend>
  {
    return upstream_.move_pages(from, to, n);
  }
  void unmap_page(std::uintptr_t a) noexcept
    requires paged_backend<Backend>
  {
    upstream_.unmap_page(a);
    if constexpr (detail::aliases_counted<Backend>) follow_mapped_bytes();
    else held_.fetch_sub(upstream_.page_size(), std::memory_order_relaxed);
  }

  // Backends that map a chunk at several addresses (caching_options::remap_pending_pages,
  // keep_page_aliases). A second mapping creates no memory: the limit never refuses one. A chunk's
  // memory stays held until its last mapping goes, which the upstream alone knows: after an unmap,
  // held_bytes() is the upstream's mapped_bytes(), which counts each chunk once.
  bool remap_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n)
    requires detail::aliases_counted<Backend>
  {
    return upstream_.remap_pages(from, to, n);
  }
  void unmap_alias(std::uintptr_t a, std::size_t n) noexcept
    requires detail::aliases_counted<Backend>
  {
    upstream_.unmap_alias(a, n);
    follow_mapped_bytes();
  }
  bool alias_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n)
    requires detail::aliases_counted<Backend> && aliasing_paged_backend<Backend>
  {
    return upstream_.alias_pages(from, to, n);
  }
  /// A grant holds no new memory: never refused by the limit.
  void grant_peer(int device)
    requires peer_paged_backend<Backend>
  {
    upstream_.grant_peer(device);
  }
  std::vector<int> peers() const
    requires peer_paged_backend<Backend>
  {
    return upstream_.peers();
  }
  /// What the limit leaves, or less where the upstream has less room (a device's free memory).
  std::size_t room_bytes() const noexcept
    requires paged_backend<Backend>
  {
    const std::size_t limit = this->limit(), held = held_bytes();
    std::size_t room = limit == unlimited ? SIZE_MAX : (held < limit ? limit - held : 0);
    if constexpr (room_telling_backend<Backend>) room = std::min(room, upstream_.room_bytes());
    return room;
  }
  /// Exporting holds nothing more: never refused by the limit.
  int export_chunk(std::uintptr_t a) const
    requires shareable_paged_backend<Backend>
  {
    return upstream_.export_chunk(a);
  }

 private:
  void follow_mapped_bytes() noexcept
    requires detail::aliases_counted<Backend>
  {
    held_.store(upstream_.mapped_bytes(), std::memory_order_relaxed);
  }
  bool fits(std::size_t bytes) const noexcept {
    const std::size_t limit = this->limit(), held = held_bytes();
    return held <= limit && bytes <= limit - held;
  }

  Backend upstream_;
  std::atomic<std::size_t> limit_;
  std::atomic<std::size_t> held_{0};  // changed under the allocator's lock; read from anywhere
};

}  // namespace stash

#include "stash/backend/host_backend.hpp"
#include "stash/backend/simulated_backend.hpp"
#include "stash/backend/simulated_paged_backend.hpp"

namespace stash {
static_assert(segment_backend<limited_backend<host_backend>>);
static_assert(segment_backend<limited_backend<simulated_backend>>);
static_assert(chunked_paged_backend<limited_backend<simulated_paged_backend>>);
// The memory manager's device pools are limited: page aliases and remaps must come through.
static_assert(aliasing_paged_backend<limited_backend<simulated_paged_backend>>);
static_assert(shareable_paged_backend<limited_backend<simulated_paged_backend>>);
static_assert(peer_paged_backend<limited_backend<simulated_paged_backend>>);
static_assert(room_telling_backend<limited_backend<simulated_paged_backend>>);
}  // namespace stash
