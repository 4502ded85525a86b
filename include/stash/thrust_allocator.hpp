#pragma once
// stash::thrust_allocator<T>: device memory from a stash pool for thrust's containers.
//
//   thrust::device_vector<float, stash::thrust_allocator<float>> v(n);        // the current device's
//                                                                              // memory-manager pool
//   stash::resource_adaptor mine(my_pool);                                    // or a pool of your own
//   thrust::device_vector<int, stash::thrust_allocator<int>> w(n, 0, stash::thrust_allocator<int>(mine));
//
// Its pointer type is thrust::device_ptr<T>, so thrust dispatches algorithms on the container to the
// device. Optional: the one stash header that needs thrust (CCCL, shipped with the CUDA toolkit; compile
// the file that includes it with nvcc, -std=c++20).
//
// Like stash::device_allocator it draws from a stash::memory_resource; copies, rebinds and comparison
// follow the same rules (equal when they draw from the same resource; the resource travels with the
// container). It allocates and frees on the stream it is bound to (default: the legacy default
// stream, where device_vector runs thrust's algorithms) through the resource's stream-ordered calls.
#include <thrust/device_malloc_allocator.h>
#include <thrust/device_ptr.h>

#include "stash/detail/resource_allocator.hpp"
#include "stash/memory_manager.hpp"
#include "stash/memory_resource.hpp"
#include "stash/stream.hpp"

namespace stash {

// The member types (value_type, pointer = thrust::device_ptr<T>, ...) are device_malloc_allocator's,
// named again where this class uses them; the allocation rules and the propagation are every stash
// allocator's (detail/resource_allocator.hpp).
template <class T>
class thrust_allocator : public thrust::device_malloc_allocator<T>,
                         public detail::resource_allocator_propagation {
  using typed = detail::resource_allocator<T, thrust_allocator<T>>;

 public:
  using pointer = thrust::device_ptr<T>;
  using size_type = std::size_t;
  template <class U>
  struct rebind {
    using other = thrust_allocator<U>;
  };

  /// The memory manager's pool of the current device.
  thrust_allocator() : typed_(memory_manager::instance().device_pool(-1)) {}
  explicit thrust_allocator(memory_resource& resource, stash::stream stream = {}) noexcept
      : typed_(resource, stream) {}
  template <class U>
  thrust_allocator(const thrust_allocator<U>& other) noexcept  // NOLINT(google-explicit-constructor)
      : typed_(other.resource(), other.stream()) {}

  /// n == 0 returns a null pointer. Throws what the resource throws (stash::out_of_memory, ...).
  pointer allocate(size_type n) { return pointer(typed_.allocate(n)); }
  /// Never throws (a container cannot recover from it); a pointer the resource rejects ends the
  /// program, as any exception escaping here would.
  void deallocate(pointer p, size_type n) noexcept { typed_.deallocate(p.get(), n); }

  size_type max_size() const noexcept { return typed_.max_size(); }
  memory_resource& resource() const noexcept { return typed_.resource(); }
  stash::stream stream() const noexcept { return typed_.get_stream(); }

  /// Equal when they allocate from the same resource on the same stream, whatever their value types
  /// (a rebound copy compares equal); != is rewritten from it. A template, so that it is a better match
  /// than thrust's device_malloc_allocator<T>::operator==, which the class inherits.
  template <class U>
  friend bool operator==(const thrust_allocator& a, const thrust_allocator<U>& b) noexcept {
    return &a.resource() == &b.resource() && a.stream() == b.stream();
  }

 private:
  typed typed_;
};

}  // namespace stash
