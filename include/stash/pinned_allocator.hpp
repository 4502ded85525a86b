#pragma once
// stash::pinned_allocator<T>: a standard Allocator of page-locked host memory, so that
//   std::vector<float, stash::pinned_allocator<float>> v(n);
// can be the source or target of a truly asynchronous cudaMemcpyAsync. By default it draws from the
// memory manager's pinned pool (ordinary host memory when there is no GPU); give it any
// memory_resource to draw from that instead.
#include "stash/detail/resource_allocator.hpp"
#include "stash/memory_manager.hpp"

namespace stash {

template <class T>
class pinned_allocator : public detail::resource_allocator<T, pinned_allocator<T>> {
  using base = detail::resource_allocator<T, pinned_allocator<T>>;

 public:
  template <class U>
  struct rebind {
    using other = pinned_allocator<U>;
  };

  pinned_allocator() : base(memory_manager::instance().pinned_pool()) {}
  explicit pinned_allocator(memory_resource& resource) noexcept : base(resource) {}
  template <class U>
  pinned_allocator(const pinned_allocator<U>& other) noexcept : base(other.resource()) {}
};

/// Equal when they draw from the same resource, whatever their value types (rebound copies compare).
template <class T, class U>
bool operator==(const pinned_allocator<T>& a, const pinned_allocator<U>& b) noexcept {
  return &a.resource() == &b.resource();
}

}  // namespace stash
