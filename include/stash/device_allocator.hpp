#pragma once
// stash::device_allocator<T>: a standard Allocator of device memory. By default it draws from the
// memory manager's pool of the device current when it is made; give it any memory_resource (for
// example resource_adaptor over your own caching_allocator) to draw from that instead.
//
// The memory is device memory, which host code must not read or write. So the allocator constructs
// elements only where that writes nothing: std::vector<T, device_allocator<T>> v(n) default-initializes
// its n elements of a trivially default constructible T (no store, the memory keeps whatever it held),
// and destroys only trivially destructible ones. Everything that would store from the host (a value to
// copy, a fill value, push_back, growing with resize, copying the vector) is a compile error. Fill and
// read the memory with cudaMemcpy or kernels on v.data().
#include <type_traits>
#include <utility>

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

  /// Default-initialization, which for a trivially default constructible U stores nothing. Any
  /// other construction would run on the host against device memory, and does not compile.
  template <class U, class... Args>
  void construct(U* p, Args&&...) noexcept {
    static_assert(sizeof...(Args) == 0 && std::is_trivially_default_constructible_v<U>,
                  "device_allocator: elements in device memory cannot be constructed from the host; "
                  "make the container with a size only (a trivially default constructible type), then "
                  "fill it with cudaMemcpy or a kernel");
    ::new (static_cast<void*>(p)) U;
  }
  /// Destroying a trivially destructible U runs no code; any other destructor would run on the host.
  template <class U>
  void destroy(U*) noexcept {
    static_assert(std::is_trivially_destructible_v<U>,
                  "device_allocator: elements in device memory cannot be destroyed from the host");
  }
};

/// Equal when they draw from the same resource, whatever their value types (rebound copies compare).
template <class T, class U>
bool operator==(const device_allocator<T>& a, const device_allocator<U>& b) noexcept {
  return &a.resource() == &b.resource();
}

}  // namespace stash
