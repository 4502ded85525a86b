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

#include <cstddef>
#include <new>
#include <type_traits>

#include "stash/memory_manager.hpp"
#include "stash/memory_resource.hpp"
#include "stash/stream.hpp"

namespace stash {

template <class T>
class thrust_allocator : public thrust::device_malloc_allocator<T> {
 public:
  using value_type = T;
  using pointer = thrust::device_ptr<T>;
  using const_pointer = thrust::device_ptr<const T>;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  using is_always_equal = std::false_type;
  template <class U>
  struct rebind {
    using other = thrust_allocator<U>;
  };

  /// The memory manager's pool of the current device.
  thrust_allocator() : resource_(&memory_manager::instance().device_pool(-1)) {}
  explicit thrust_allocator(memory_resource& resource, stash::stream stream = {}) noexcept
      : resource_(&resource), stream_(stream) {}
  template <class U>
  thrust_allocator(const thrust_allocator<U>& other) noexcept  // NOLINT(google-explicit-constructor)
      : resource_(&other.resource()), stream_(other.stream()) {}

  /// n == 0 returns a null pointer. Throws what the resource throws (stash::out_of_memory, ...).
  pointer allocate(size_type n) {
    if (n == 0) return pointer(static_cast<T*>(nullptr));
    if (n > max_size()) throw std::bad_array_new_length();
    return pointer(static_cast<T*>(allocate_on(*resource_, n * sizeof(T), stream_)));
  }

  /// Never throws (a container cannot recover from it); a pointer the resource rejects ends the
  /// program, as any exception escaping here would.
  void deallocate(pointer p, size_type n) noexcept {
    if (p.get()) deallocate_on(*resource_, p.get(), n * sizeof(T), stream_);
  }

  size_type max_size() const noexcept { return resource_->max_size() / sizeof(T); }
  memory_resource& resource() const noexcept { return *resource_; }
  stash::stream stream() const noexcept { return stream_; }

  friend bool operator==(const thrust_allocator& a, const thrust_allocator& b) noexcept {
    return a.resource_ == b.resource_ && a.stream_ == b.stream_;
  }
  friend bool operator!=(const thrust_allocator& a, const thrust_allocator& b) noexcept { return !(a == b); }

 private:
  // The stream goes to a resource that takes one (a template, so the test is made per resource type).
  template <class Resource>
  static void* allocate_on(Resource& r, std::size_t bytes, stash::stream s) {
    if constexpr (requires { r.allocate(bytes, s); }) return r.allocate(bytes, s);
    else return r.allocate(bytes);
  }
  template <class Resource>
  static void deallocate_on(Resource& r, void* p, std::size_t bytes, stash::stream s) {
    if constexpr (requires { r.deallocate(p, bytes, s); }) r.deallocate(p, bytes, s);
    else r.deallocate(p, bytes);
  }

  memory_resource* resource_;
  stash::stream stream_;
};

}  // namespace stash
