#pragma once
// Two-level segregated fit (the TLSF scheme): sizes are rounded to 256 bytes only, and free blocks are
// filed in 16 lists per power of two, so any list holds blocks within 1/16 (6.25%) of each other.
// Combined with splitting and coalescing in the allocator this gives an O(1) good fit: little padding,
// and a free block of any size can serve any smaller request.
#include "stash/buckets/buckets.hpp"

namespace stash {

struct segregated_fit_buckets {
  static constexpr std::size_t granule = 256;           // cudaMalloc's alignment guarantee
  static constexpr unsigned sub_bits = 4;               // 16 lists per power of two
  static constexpr std::size_t sub_count = std::size_t{1} << sub_bits;
  static constexpr std::size_t max_size = std::size_t{1} << 62;
  static constexpr bool exact_fit = false;

  /// n >= 1 (the concept's contract), so rounding up alone gives at least one granule.
  static constexpr std::size_t round_up(std::size_t n) noexcept { return detail::round_up_to(n, granule); }
  /// Granule counts below 16 get one list each; above, 16 lists per power of two: the list of a count
  /// with top bit `top` is (top - 4) * 16 plus its five leading bits (16-31). Counts below 16 take
  /// top = 4, shift by nothing and land on themselves, so the two cases are one formula with no branch
  /// (sizes mixed small and large on one path are a branch the CPU mispredicts).
  static constexpr std::size_t bucket_index(std::size_t rounded) noexcept {
    const std::size_t units = rounded / granule;
    const unsigned shift = detail::log2_floor(units | sub_count) - sub_bits;
    return shift * sub_count + (units >> shift);
  }
  static constexpr std::size_t bucket_count = 817;  // bucket_index(max_size) + 1, checked below

  /// Small requests share 2 MiB segments (fewer, cheaper backend calls); large ones get a segment of
  /// their own rounded to 2 MiB, so no memory sits in a segment only because a neighbour is alive.
  static constexpr std::size_t small_request = std::size_t{1} << 20;
  static constexpr std::size_t small_segment = std::size_t{2} << 20;
  static constexpr std::size_t segment_size(std::size_t rounded) noexcept {
    return rounded <= small_request ? small_segment : detail::round_up_to(rounded, small_segment);
  }
};

static_assert(bucket_policy<segregated_fit_buckets>);
static_assert(segregated_fit_buckets::bucket_count ==
              segregated_fit_buckets::bucket_index(segregated_fit_buckets::max_size) + 1);
static_assert(segregated_fit_buckets::round_up(1) == 256 && segregated_fit_buckets::round_up(257) == 512);
static_assert(segregated_fit_buckets::bucket_index(256) == 1);
static_assert(segregated_fit_buckets::bucket_index(16 * 256) == 16);
static_assert(segregated_fit_buckets::bucket_index(17 * 256) == 17);
static_assert(segregated_fit_buckets::bucket_index(32 * 256) == 32);
static_assert(segregated_fit_buckets::bucket_index(34 * 256) == 33);

}  // namespace stash
