#pragma once
// The two shapes a backend (the source of raw memory) can take.
//
// segment_backend: hands out whole segments (cudaMalloc, cudaMallocHost, aligned host memory).
//   The caching allocator carves blocks out of segments and gives a segment back only when all of it
//   is free.
// paged_backend: reserves one large range of virtual addresses up front and backs pages of it with
//   physical memory on demand (CUDA's virtual memory management API). The caching allocator can then
//   give back the physical pages under any free range, whatever its neighbours, which is what keeps the
//   memory held close to the memory in use.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace stash {

/// What kind of memory a backend hands out; the adapters and the manager check it.
enum class memory_kind { device, pinned, host, simulated };

template <class B>
concept segment_backend = requires(B& b, const B& cb, void* p, std::size_t n) {
  /// Returns nullptr when the memory is exhausted (the allocator then frees its cache and retries);
  /// throws stash::cuda_error (or another stash::error) on any other failure.
  { b.allocate(n) } -> std::same_as<void*>;
  /// Gives back a segment exactly as it was allocated. Never throws.
  { b.deallocate(p, n) } noexcept;
  /// Segment sizes are rounded up to a multiple of this (a power of two); segments are aligned to it
  /// or to 256 bytes, whichever is smaller.
  { cb.granularity() } noexcept -> std::convertible_to<std::size_t>;
  /// Device ordinal the memory belongs to (-1 for host memory); used in error messages and stats.
  { cb.device() } noexcept -> std::convertible_to<int>;
  { B::kind } -> std::convertible_to<memory_kind>;
};

template <class B>
concept paged_backend = requires(B& b, const B& cb, std::uintptr_t a, std::size_t n) {
  /// Size of one physical page (the VMM allocation granularity, 2 MiB on current GPUs).
  { cb.page_size() } noexcept -> std::convertible_to<std::size_t>;
  /// Reserves `n` bytes (a multiple of page_size) of address space, maps nothing. Returns the base,
  /// page aligned. Called once, on first use. Throws stash::cuda_error on failure.
  { b.reserve(n) } -> std::same_as<std::uintptr_t>;
  /// Backs the page at `a` with fresh physical memory. false = out of memory.
  { b.map_page(a) } -> std::same_as<bool>;
  /// Moves the physical page mapped at `from` so that it backs `to` instead (no new physical memory).
  { b.move_page(a, a) } -> std::same_as<bool>;
  /// Unmaps the page at `a` and gives its physical memory back. Never throws.
  { b.unmap_page(a) } noexcept;
  { cb.device() } noexcept -> std::convertible_to<int>;
  { B::kind } -> std::convertible_to<memory_kind>;
  // The destructor unmaps every page still mapped and frees the reservation.
};

/// A paged backend that can also back a run of pages with one physical allocation: one driver
/// allocation, one mapping and one access grant for the run, where page by page costs that per page
/// (the driver's cost grows with the number of physical allocations, not with their size). Such a
/// chunk is unmapped and moved whole; its pages never move alone. Mapping and granting access are also
/// offered apart, so that one grant covers every chunk mapped or moved for a block.
template <class B>
concept chunked_paged_backend = paged_backend<B> && requires(B& b, std::uintptr_t a, std::size_t n) {
  /// Backs the n pages from `a` on (none mapped) with one physical allocation, read-write. false = out
  /// of memory, and then nothing is left mapped.
  { b.map_pages(a, n) } -> std::same_as<bool>;
  /// Backs the n pages from `a` on (none mapped) with physical allocations of `chunk` pages each, in
  /// address order (the last one may be shorter), and grants no access: nothing may use them before
  /// set_access covers them. Each chunk is unmapped alone, as if map_pages(its first page, its pages)
  /// had mapped it. false = out of memory, and then nothing is left mapped.
  { b.map_chunks(a, n, n) } -> std::same_as<bool>;
  /// Grants read-write access to the n pages from `a` on, all mapped (by any mix of chunks and moved
  /// pages; granting a page again is harmless). false = out of memory; the pages stay mapped.
  { b.set_access(a, n) } -> std::same_as<bool>;
  /// Unmaps the n pages map_pages(a, n) backed and gives their memory back. Never throws.
  { b.unmap_pages(a, n) } noexcept;
  /// Moves the chunk of n pages mapped at `a` (one physical allocation, n = 1 for a page mapped
  /// alone) to the n pages from the second address on (none mapped), and grants no access there:
  /// nothing may use them before set_access covers them. Two driver calls however many pages (no
  /// physical memory is created); what the pages held is no part of the contract. false = out of memory, and
  /// then the chunk stays where it was, usable as before.
  { b.move_pages(a, a, n) } -> std::same_as<bool>;
};

/// A chunked paged backend that can map a chunk at a second address while it stays mapped at the first
/// (cuMemMap of one handle at two addresses), for a chunk that work queued earlier may still use at its
/// old address while later work on the same stream uses it at the new one: the old mapping goes once
/// that work has completed (caching_options::remap_pending_pages).
template <class B>
concept remapping_paged_backend =
    chunked_paged_backend<B> && requires(B& b, std::uintptr_t a, std::size_t n) {
      /// Maps the chunk of n pages mapped at `a` also at the n pages from the second address on (none
      /// mapped), with no access there until set_access covers them; the chunk's memory then belongs to
      /// the new address (unmap_pages, move_pages, export_chunk there), and the old one is an alias that
      /// still reads and writes it. No physical memory is created. false = out of memory, and then nothing
      /// changed; any other failure throws (stash::error), and then nothing changed either.
      { b.remap_pages(a, a, n) } -> std::same_as<bool>;
      /// Unmaps the alias of n pages remap_pages left at `a`, without giving the memory back (it stays
      /// mapped at its new address, or was given back there). Never throws.
      { b.unmap_alias(a, n) } noexcept;
    };

/// A remapping paged backend that keeps a chunk mapped at several addresses for as long as the caller
/// likes (caching_options::keep_page_aliases): the paged arena lets blocks use one of them at a time and
/// switches between them without a driver call.
template <class B>
concept aliasing_paged_backend =
    remapping_paged_backend<B> && requires(B& b, std::uintptr_t a, std::size_t n) {
      /// Maps the physical allocation mapped at `a` (a whole chunk of n pages as mapped, or a whole alias
      /// of one) also at the n pages from the second address on (none mapped), as an alias, with no access
      /// there until set_access covers them. No physical memory is created: it is held until its last
      /// mapping is unmapped (unmap_pages at the chunk's own address, unmap_alias at an alias, in any
      /// order). false = out of memory, and then nothing changed.
      { b.alias_pages(a, a, n) } -> std::same_as<bool>;
    };

/// A paged backend whose physical allocations can be handed to another process (stash/ipc.hpp).
template <class B>
concept shareable_paged_backend = paged_backend<B> && requires(const B& cb, std::uintptr_t a) {
  /// A new file descriptor (the caller's) for the physical allocation backing the mapped page at `a`.
  { cb.export_chunk(a) } -> std::same_as<int>;
};

/// A paged backend of device memory whose pages other devices' kernels and copies may be granted:
/// grant_peer(d) maps every page mapped now, and every page mapped from then on, for device d too.
template <class B>
concept peer_paged_backend = paged_backend<B> && requires(B& b, const B& cb, int device) {
  /// Throws stash::invalid_device for a device that is none or cannot reach the backend's memory,
  /// another stash::error when the driver refuses; no page is granted to it then.
  b.grant_peer(device);
  /// The devices other than its own that may use its pages.
  { cb.peers() } -> std::same_as<std::vector<int>>;
};

/// A paged backend that can tell how much more memory it could map now: a device's free memory, or
/// what a limit leaves. The paged arena maps smaller chunks as that room shrinks
/// (caching_options::chunk_room_share), so that memory taken when the device is nearly full is held
/// in grains that can move one by one when it runs out.
template <class B>
concept room_telling_backend = paged_backend<B> && requires(const B& cb) {
  /// Bytes that could still be mapped now; SIZE_MAX where the backend knows no bound. Never throws.
  { cb.room_bytes() } noexcept -> std::same_as<std::size_t>;
};

template <class B>
concept backend_policy = segment_backend<B> || paged_backend<B>;

}  // namespace stash
