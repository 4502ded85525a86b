#pragma once
// For an allocator used by one thread only: every operation is a no-op the compiler removes.
#include "stash/lock/lock.hpp"

namespace stash {

struct null_lock {
  constexpr void lock() noexcept {}
  constexpr bool try_lock() noexcept { return true; }
  constexpr void unlock() noexcept {}
};

static_assert(lock_policy<null_lock>);

}  // namespace stash
