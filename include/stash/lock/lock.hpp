#pragma once
// A lock policy has the shape of std::mutex, so the allocator never branches on whether it is
// thread safe: std::mutex, stash::null_lock and stash::spin_lock all model it.
#include <concepts>
#include <mutex>

namespace stash {

template <class L>
concept lock_policy = std::default_initializable<L> && requires(L& l) {
  l.lock();
  l.unlock();
  { l.try_lock() } -> std::convertible_to<bool>;
};

static_assert(lock_policy<std::mutex>);

}  // namespace stash
