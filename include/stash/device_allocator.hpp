#pragma once
// stash::device_allocator<T>: a standard Allocator of device memory. By default it draws from the
// memory manager's pool of the device current when it is made; give it any memory_resource (for
// example resource_adaptor over your own caching_allocator) to draw from that instead. The memory is
// device memory: a container of it can be allocated and freed on the host, but not read there.
#include "stash/detail/resource_allocator.hpp"
#include "stash/memory_manager.hpp"

namespace stash {

template <class T>
class device_allocator : public detail::resource_allocator<T, device_allocator<T>> {
  using base = detail::resource_allocator<T, device_allocator<T>>;

 public:
  template <class U>
  struct rebind {
    using other = device_allocator<U>;
  };

  /// The manager's pool of the current device.
  device_allocator() : base(memory_manager::instance().device_pool(-1)) {}
  explicit device_allocator(int device_id) : base(memory_manager::instance().device_pool(device_id)) {}
  explicit device_allocator(memory_resource& resource) noexcept : base(resource) {}
  template <class U>
  device_allocator(const device_allocator<U>& other) noexcept : base(other.resource()) {}
};

}  // namespace stash
