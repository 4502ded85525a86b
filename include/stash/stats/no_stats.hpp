#pragma once
// Counts nothing and costs nothing: every hook is an empty inline function, the object is empty.
#include "stash/stats/stats.hpp"

namespace stash {

struct no_stats {
  constexpr void on_allocate(std::size_t, std::size_t, bool) noexcept {}
  constexpr void on_deallocate(std::size_t, std::size_t) noexcept {}
  constexpr void on_reserve(std::size_t) noexcept {}
  constexpr void on_release(std::size_t) noexcept {}
  constexpr void on_oom_retry() noexcept {}
  constexpr void reset_peak() noexcept {}
  /// All zeros: the allocator does not keep what it is not asked to.
  constexpr stats_snapshot snapshot() const noexcept { return {}; }
};

static_assert(stats_policy<no_stats>);

}  // namespace stash
