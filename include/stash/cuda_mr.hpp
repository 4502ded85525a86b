#pragma once
// stash pools as CCCL memory resources (`cuda::mr`), the interface RMM and CCCL's containers take.
// Optional: the only stash header that needs CCCL (`<cuda/memory_resource>`, shipped with the CUDA
// toolkit under include/cccl; nvcc finds it, g++ needs -I<cuda>/include/cccl).
//
//   stash::mr::device_pool_resource mr;                    // owns a device_caching_allocator
//   cuda::mr::async_resource_ref<cuda::mr::device_accessible> ref{mr};
//   void* p = ref.allocate_async(1 << 20, 256, stream);
//   ref.deallocate_async(p, 1 << 20, 256, stream);
//
// A resource is a handle: copies share one pool (and compare equal), so it can be passed by value as
// the concepts expect. Both spellings of the members are provided:
//   CCCL 2.x / 3.0 (CUDA 12.x, 13.0): allocate(bytes, alignment), deallocate(p, bytes, alignment),
//     allocate_async(bytes, alignment, stream), deallocate_async(p, bytes, alignment, stream);
//   newer CCCL: allocate_sync(bytes, alignment), deallocate_sync(p, bytes, alignment),
//     allocate(stream, bytes, alignment), deallocate(stream, p, bytes, alignment).
// The concepts are checked against CUDA 13.0's CCCL (3.0) at the end of this file; its memory
// resources sit behind LIBCUDACXX_ENABLE_EXPERIMENTAL_MEMORY_RESOURCE, which this header defines when
// it is first to include CCCL (include it before other CCCL headers, or define the macro yourself).
//
// What we chose:
//   - Alignment: up to 256 every block already has it. Above 256 (a power of two) the pool is asked
//     for `bytes + alignment - 256` and the aligned address inside is returned; deallocate finds the
//     block again by looking down from the address in 256-byte steps for the block start (at most
//     alignment / 256 lookups; no side table). A zero or non-power-of-two alignment throws
//     stash::invalid_alignment.
//   - 0 bytes allocates nothing and returns nullptr; deallocating nullptr does nothing.
//   - Streams: a pool with stream-ordered calls (allocate(n, stash::stream), deallocate(p, stream):
//     every caching_allocator) gets the stream, and its ordering policy decides when a block freed on
//     one stream may be used on another. A pool without them reuses a freed block at once, so for it
//     deallocate_async first waits for the stream (cudaStreamSynchronize) and then frees.
//   - deallocate never throws (CCCL's resource_ref calls it noexcept): a pointer that is not a live
//     allocation of the pool is a program error, reported on stderr, then std::terminate. That is
//     checked for a free with the alignment the block was allocated with; a free with another
//     alignment is undefined (as CCCL says), and where the larger alignment's rounding of the block's
//     start is the pointer, the block is freed.
#ifndef LIBCUDACXX_ENABLE_EXPERIMENTAL_MEMORY_RESOURCE
#define LIBCUDACXX_ENABLE_EXPERIMENTAL_MEMORY_RESOURCE
#endif

#include <cuda/memory_resource>
#include <cuda/stream_ref>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "stash/allocators.hpp"
#include "stash/error.hpp"
#include "stash/stream.hpp"

namespace stash {

/// An alignment that is zero or not a power of two.
class invalid_alignment : public error {
 public:
  explicit invalid_alignment(std::size_t alignment)
      : error("stash: invalid alignment " + std::to_string(alignment) + ": must be a power of two"),
        alignment_(alignment) {}
  std::size_t alignment() const noexcept { return alignment_; }

 private:
  std::size_t alignment_;
};

namespace mr {

/// What a pool under a resource must offer: allocate(n) (256-byte aligned), try_deallocate(p) and
/// owns(p). Every caching_allocator does; sharded_allocator does not (it has no try_deallocate).
template <class P>
concept resource_pool = requires(P& pool, const P& cpool, void* p, std::size_t n) {
  { pool.allocate(n) } -> std::same_as<void*>;
  { pool.try_deallocate(p) } -> std::same_as<bool>;
  { cpool.owns(p) } -> std::same_as<bool>;
};

/// Every block of a stash pool starts at a multiple of this.
inline constexpr std::size_t pool_alignment = 256;

namespace detail {

/// Gives the resource `Derived` the stateless property `Property` (CCCL finds get_property by ADL).
template <class Derived, class Property>
struct property {
  friend constexpr void get_property(const Derived&, Property) noexcept {}
};

}  // namespace detail

template <resource_pool Pool, class... Properties>
class pool_resource : public detail::property<pool_resource<Pool, Properties...>, Properties>... {
 public:
  using pool_type = Pool;
  static constexpr std::size_t default_alignment = ::cuda::mr::default_cuda_malloc_alignment;

  /// A pool of its own, made from `args` (none: the pool's default).
  template <class... Args>
    requires std::constructible_from<Pool, Args...>
  explicit pool_resource(std::in_place_t, Args&&... args)
      : pool_(std::make_shared<Pool>(std::forward<Args>(args)...)) {}
  pool_resource()
    requires std::default_initializable<Pool>
      : pool_resource(std::in_place) {}
  /// Shares `pool` (a shared_ptr with an empty owner views a pool that lives elsewhere).
  explicit pool_resource(std::shared_ptr<Pool> pool) noexcept : pool_(std::move(pool)) {}

  // ---- CCCL 3.0 spelling ----------------------------------------------------------------------------
  [[nodiscard]] void* allocate(std::size_t bytes, std::size_t alignment = default_alignment) {
    return allocate_aligned(bytes, alignment, [&](std::size_t n) { return pool_->allocate(n); });
  }
  void deallocate(void* p, std::size_t bytes, std::size_t alignment = default_alignment) noexcept {
    free_aligned(p, bytes, alignment);
  }
  [[nodiscard]] void* allocate_async(std::size_t bytes, std::size_t alignment, ::cuda::stream_ref stream) {
    return allocate_aligned(bytes, alignment, [&](std::size_t n) { return allocate_on(n, stream); });
  }
  void deallocate_async(void* p, std::size_t bytes, std::size_t alignment,
                        ::cuda::stream_ref stream) noexcept {
    free_async(p, bytes, alignment, stream);
  }

  // ---- newer CCCL spelling --------------------------------------------------------------------------
  [[nodiscard]] void* allocate_sync(std::size_t bytes, std::size_t alignment = default_alignment) {
    return allocate(bytes, alignment);
  }
  void deallocate_sync(void* p, std::size_t bytes, std::size_t alignment = default_alignment) noexcept {
    deallocate(p, bytes, alignment);
  }
  [[nodiscard]] void* allocate(::cuda::stream_ref stream, std::size_t bytes,
                               std::size_t alignment = default_alignment) {
    return allocate_async(bytes, alignment, stream);
  }
  void deallocate(::cuda::stream_ref stream, void* p, std::size_t bytes,
                  std::size_t alignment = default_alignment) noexcept {
    free_async(p, bytes, alignment, stream);
  }

  /// Copies share the pool: equal when they draw from the same pool.
  friend bool operator==(const pool_resource& a, const pool_resource& b) noexcept {
    return a.pool_ == b.pool_;
  }
  friend bool operator!=(const pool_resource& a, const pool_resource& b) noexcept { return !(a == b); }

  Pool& pool() const noexcept { return *pool_; }
  const std::shared_ptr<Pool>& shared_pool() const noexcept { return pool_; }

 private:
  template <class Allocate>
  void* allocate_aligned(std::size_t bytes, std::size_t alignment, Allocate&& allocate_bytes) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) throw invalid_alignment(alignment);
    if (bytes == 0) return nullptr;
    if (alignment <= pool_alignment) return allocate_bytes(bytes);
    const std::size_t extra = alignment - pool_alignment;
    if (bytes > SIZE_MAX - extra)
      throw invalid_size(bytes, "too large for alignment " + std::to_string(alignment));
    const auto base = reinterpret_cast<std::uintptr_t>(allocate_bytes(bytes + extra));
    return reinterpret_cast<void*>((base + alignment - 1) & ~(alignment - 1));
  }

  /// The start of the block that holds `p`, an address allocate_aligned returned for `alignment`.
  void* block_of(void* p, std::size_t alignment) const noexcept {
    if (alignment <= pool_alignment) return p;
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    // The block starts at most alignment - 256 bytes below p, on a multiple of 256; no other live block
    // can start between its start and p, so the first live start found going down is it, if p is that
    // start rounded up to the alignment (else p lies inside a live block that allocate_aligned did not
    // return it for).
    for (std::uintptr_t back = 0; back < alignment && back <= a; back += pool_alignment) {
      const std::uintptr_t start = a - back;
      if (!pool_->owns(reinterpret_cast<void*>(start))) continue;
      return ((start + alignment - 1) & ~(alignment - 1)) == a ? reinterpret_cast<void*>(start) : p;
    }
    return p;  // not found: try_deallocate reports it
  }

  void free_aligned(void* p, std::size_t bytes, std::size_t alignment) noexcept {
    if (!p) return;
    void* block = block_of(p, alignment);
    if (!pool_->try_deallocate(block))
      fail_free(p, bytes, alignment,
                pool_->owns(block)
                    ? "a live allocation the pool could not free (out of host memory, or a stream it rejects)"
                    : "not a live allocation of this pool");
  }

  void free_async(void* p, std::size_t bytes, std::size_t alignment, ::cuda::stream_ref stream) noexcept {
    if (!p) return;
    if constexpr (requires(Pool& pool) { pool.deallocate(p, stash::stream{}); }) {
      void* block = block_of(p, alignment);
      if (!pool_->owns(block)) fail_free(p, bytes, alignment, "not a live allocation of this pool");
      try {
        pool_->deallocate(block, stash::stream(stream.get()));
      } catch (const std::exception& e) {  // a live block the pool could not free: say why
        fail_free(p, bytes, alignment, e.what());
      } catch (...) {
        fail_free(p, bytes, alignment, "a live allocation the pool could not free");
      }
    } else {
      // A host-ordered pool may hand the block out again at once: the stream's work on it must be done.
      if constexpr (Pool::kind == memory_kind::device || Pool::kind == memory_kind::pinned)
        (void)cudaStreamSynchronize(stream.get());
      free_aligned(p, bytes, alignment);
    }
  }

  void* allocate_on(std::size_t n, ::cuda::stream_ref stream) {
    if constexpr (requires(Pool& pool) { { pool.allocate(n, stash::stream{}) } -> std::same_as<void*>; })
      return pool_->allocate(n, stash::stream(stream.get()));
    else
      return pool_->allocate(n);
  }

  [[noreturn]] static void fail_free(void* p, std::size_t bytes, std::size_t alignment,
                                     const char* why) noexcept {
    std::fprintf(stderr, "stash::mr::pool_resource: deallocate(%p, %zu, %zu): %s\n", p, bytes, alignment,
                 why);
    std::terminate();
  }

  std::shared_ptr<Pool> pool_;
};

/// Device memory from the default composition (CUDA virtual memory).
using device_pool_resource = pool_resource<device_caching_allocator, ::cuda::mr::device_accessible>;
/// Device memory from cudaMalloc segments (devices without virtual memory management).
using segment_device_pool_resource = pool_resource<segment_device_allocator, ::cuda::mr::device_accessible>;
/// Pinned host memory: the host and the device can both reach it.
using pinned_pool_resource =
    pool_resource<pinned_caching_allocator, ::cuda::mr::host_accessible, ::cuda::mr::device_accessible>;
/// Ordinary host memory.
using host_pool_resource = pool_resource<host_caching_allocator, ::cuda::mr::host_accessible>;

static_assert(::cuda::mr::async_resource_with<device_pool_resource, ::cuda::mr::device_accessible>);
static_assert(!::cuda::mr::resource_with<device_pool_resource, ::cuda::mr::host_accessible>);
static_assert(::cuda::mr::async_resource_with<segment_device_pool_resource, ::cuda::mr::device_accessible>);
static_assert(::cuda::mr::async_resource_with<pinned_pool_resource, ::cuda::mr::host_accessible,
                                              ::cuda::mr::device_accessible>);
static_assert(::cuda::mr::async_resource_with<host_pool_resource, ::cuda::mr::host_accessible>);
static_assert(!::cuda::mr::resource_with<host_pool_resource, ::cuda::mr::device_accessible>);

}  // namespace mr
}  // namespace stash
