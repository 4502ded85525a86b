#pragma once
// The seed design: every request is rounded up to a power of two (at least 256 bytes), each size
// class has its own free list, and a block is only ever reused for its own class. Very fast and very
// wasteful: up to half of every block is padding, and memory cached in one class never serves another.
#include "stash/buckets/buckets.hpp"

namespace stash {

struct power_of_two_buckets {
  static constexpr std::size_t min_block = 256;
  static constexpr std::size_t max_size = std::size_t{1} << 62;
  static constexpr std::size_t bucket_count = 63;
  static constexpr bool exact_fit = true;

  static constexpr std::size_t round_up(std::size_t n) noexcept {
    if (n <= min_block) return min_block;
    return std::size_t{1} << (detail::log2_floor(n - 1) + 1);
  }
  static constexpr std::size_t bucket_index(std::size_t rounded) noexcept {
    return detail::log2_floor(rounded);
  }
  /// One segment per block, of exactly the class size.
  static constexpr std::size_t segment_size(std::size_t rounded) noexcept { return rounded; }
};

static_assert(bucket_policy<power_of_two_buckets>);
static_assert(power_of_two_buckets::round_up(1) == 256);
static_assert(power_of_two_buckets::round_up(257) == 512);
static_assert(power_of_two_buckets::round_up(power_of_two_buckets::max_size) ==
              power_of_two_buckets::max_size);

}  // namespace stash
