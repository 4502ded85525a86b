#pragma once
// A walk over an allocator's memory (its visit_memory) whose blocks cover each region exactly, for
// PyTorch's memory snapshots: their readers place each block at its segment's address plus the sizes of
// the blocks before it. visit_memory reports block records only, and with power-of-two buckets an
// exact-fit block leaves the rest of its segment with no record; that rest is passed on as free memory.
#include <cstddef>
#include <cstdint>

namespace stash::detail {

/// visit(region, block) runs a visit_memory walk with the two callbacks given; region(begin, bytes) and
/// block(addr, bytes, requested) then see every region in address order, each followed by blocks that
/// tile it (requested 0: free, including the memory no record covers).
template <class Visit, class Region, class Block>
void visit_covering(Visit&& visit, Region&& region, Block&& block) {
  std::uintptr_t at = 0, end = 0;  // the walk's place in the current region, and that region's end
  auto free_up_to = [&](std::uintptr_t to) {
    if (to > at) block(at, static_cast<std::size_t>(to - at), std::size_t{0});
    at = to;
  };
  visit(
      [&](std::uintptr_t begin, std::size_t bytes) {
        free_up_to(end);  // the previous region's uncovered end
        region(begin, bytes);
        at = begin;
        end = begin + bytes;
      },
      [&](std::uintptr_t addr, std::size_t bytes, std::size_t requested) {
        free_up_to(addr);
        block(addr, bytes, requested);
        at = addr + bytes;
      });
  free_up_to(end);
}

}  // namespace stash::detail
