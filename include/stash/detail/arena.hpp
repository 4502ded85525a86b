#pragma once
// What caching_allocator asks of the part that grows its memory from the backend and gives it back.
// Two models, chosen by the backend's concept (arena_for): segment_arena (detail/segment_arena.hpp)
// for a segment_backend, paged_arena (detail/paged_arena.hpp) for a paged_backend. Both file the
// memory they get as free blocks in the allocator's block heap (detail/block_heap.hpp) and take it
// back from there; locking, stats counting of live blocks and stream order stay with the allocator.
#include <concepts>
#include <cstddef>
#include <cstdint>

#include "stash/detail/block.hpp"

namespace stash::detail {

template <class A>
concept block_arena = requires(A& a, const A& ca, std::size_t n, std::uintptr_t addr, stream_tag* on) {
  typename A::backend_type;
  { a.backend() } noexcept -> std::same_as<typename A::backend_type&>;
  /// The pool (the heap's range of free lists) a request of n rounded bytes is served from.
  { ca.pool_for(n) } noexcept -> std::same_as<std::uint8_t>;
  /// No free block fits a request of n (rounded: size) bytes: gets memory from the backend and returns
  /// a free block of at least size bytes, filed in the heap. Throws out_of_memory, leaving the memory
  /// held as it was (less the cache given back).
  { a.grow(n, n, on) } -> std::same_as<block*>;
  /// Gives memory no live or pending block uses back to the backend until at most n bytes are cached.
  { a.release_cache(n) } noexcept;
  /// Stream order: merges neighbouring free blocks that are both ready.
  { a.coalesce() } noexcept;
  /// Stream order: whether the request being served is for a stream that captures a CUDA graph; until
  /// the next note, growth waits for nothing (no pending free is waited for, no cache is released to
  /// retry), since a capture forbids host waits on its device.
  { a.note_capture(true) } noexcept;
  /// Whether addr lies in memory held from the backend, and the first block of the run holding it.
  { ca.holds(addr) } noexcept -> std::same_as<bool>;
  { ca.first_block_holding(addr) } noexcept -> std::same_as<const block*>;
  /// Bytes held from the backend.
  { ca.reserved() } noexcept -> std::same_as<std::size_t>;
};

}  // namespace stash::detail
