#pragma once
// Host order: deallocate means the memory is no longer in use anywhere, as for ordinary host memory or
// a program that synchronizes before it frees. Every event is complete at once, so the allocator keeps
// no per-stream state and compiles every stream path out: host-ordered compositions pay nothing for
// streams. The stream arguments of the allocator are then names only.
#include "stash/ordering/ordering.hpp"

namespace stash {

struct host_ordering {
  struct event_type {};
  static constexpr bool host_ordered = true;

  constexpr void check(stream) const noexcept {}
  constexpr bool is_capturing(stream) const noexcept { return false; }
  constexpr event_type record(stream) noexcept { return {}; }
  constexpr bool query(event_type) const noexcept { return true; }
  constexpr void wait(stream, event_type) noexcept {}
  constexpr void synchronize(event_type) noexcept {}
  constexpr bool synchronize_device() noexcept { return true; }
  constexpr void release(event_type) noexcept {}
};

static_assert(ordering_policy<host_ordering>);

}  // namespace stash
