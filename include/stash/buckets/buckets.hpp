#pragma once
// A bucketing policy says what size a request really gets (good_size), which free list (bucket) a
// block of a given size lives in, and how much to ask a segment backend for when the cache is empty.
// Policies are stateless: every member is static and constexpr.
#include <concepts>
#include <cstddef>

namespace stash {

template <class B>
concept bucket_policy = requires(std::size_t n) {
  /// Largest request accepted; larger ones are a stash::invalid_size error, so round_up never wraps.
  { B::max_size } -> std::convertible_to<std::size_t>;
  /// The size a request of n bytes (1 <= n <= max_size) really occupies. A multiple of 256.
  { B::round_up(n) } -> std::same_as<std::size_t>;
  /// Number of free lists; bucket_index(n) < bucket_count for every rounded n.
  { B::bucket_count } -> std::convertible_to<std::size_t>;
  /// Free list of a block of (rounded) size n; non-decreasing in n.
  { B::bucket_index(n) } -> std::same_as<std::size_t>;
  /// true: a request is served only from blocks of exactly its rounded size (no splitting).
  { B::exact_fit } -> std::convertible_to<bool>;
  /// Bytes to ask a segment backend for when no free block fits a rounded request of n bytes
  /// (>= n; the allocator further rounds it to the backend's granularity).
  { B::segment_size(n) } -> std::same_as<std::size_t>;
};

namespace detail {
constexpr std::size_t round_up_to(std::size_t n, std::size_t multiple) noexcept {
  return (n + multiple - 1) / multiple * multiple;
}
constexpr unsigned log2_floor(std::size_t n) noexcept {
  return static_cast<unsigned>(8 * sizeof(std::size_t) - 1 - static_cast<unsigned>(__builtin_clzll(n)));
}
}  // namespace detail

}  // namespace stash
