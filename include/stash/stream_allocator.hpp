#pragma once
// stash::stream_allocator<T>: a standard Allocator bound to one stream, as RMM's
// stream_allocator_adaptor and Thrust's execution-policy allocators are: a container whose work runs
// on stream s allocates and frees on s, so a stream-ordered pool reuses its memory on s at once and
// hands it to other streams only after s's work is done. By default it draws from the memory manager's
// pool of the current device; any memory_resource will do.
//
// Two stream_allocators are equal when they draw from the same resource on the same stream: memory
// from one may be freed through the other. A container copied, moved or swapped takes its allocator
// (and so its stream) along.
#include <cstddef>
#include <new>
#include <type_traits>

#include "stash/memory_manager.hpp"
#include "stash/memory_resource.hpp"
#include "stash/stream.hpp"

namespace stash {

template <class T>
class stream_allocator {
 public:
  using value_type = T;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  using is_always_equal = std::false_type;
  template <class U>
  struct rebind {
    using other = stream_allocator<U>;
  };

  /// The manager's pool of `device_id` (-1: the current device), on stream s.
  explicit stream_allocator(stream s, int device_id = -1)
      : resource_(&memory_manager::instance().device_pool(device_id)), stream_(s) {}
  stream_allocator(memory_resource& resource, stream s) noexcept : resource_(&resource), stream_(s) {}
  template <class U>
  stream_allocator(const stream_allocator<U>& other) noexcept : resource_(&other.resource()), stream_(other.get_stream()) {}

  /// n == 0 returns nullptr; n > max_size() throws std::bad_array_new_length.
  [[nodiscard]] T* allocate(std::size_t n) {
    static_assert(alignof(T) <= memory_resource::alignment,
                  "stash allocations are 256-byte aligned: a type aligned to more cannot be placed in them");
    if (n == 0) return nullptr;
    if (n > max_size()) throw std::bad_array_new_length();
    return static_cast<T*>(resource_->allocate(n * sizeof(T), stream_));
  }
  /// Never throws (a container cannot recover from it): an error of the resource ends the program.
  void deallocate(T* p, std::size_t n) noexcept {
    if (p) resource_->deallocate(p, n * sizeof(T), stream_);
  }
  std::size_t max_size() const noexcept { return resource_->max_size() / sizeof(T); }

  memory_resource& resource() const noexcept { return *resource_; }
  stream get_stream() const noexcept { return stream_; }

  template <class U>
  friend bool operator==(const stream_allocator& a, const stream_allocator<U>& b) noexcept {
    return &a.resource() == &b.resource() && a.get_stream() == b.get_stream();
  }

 private:
  memory_resource* resource_;
  stream stream_;
};

}  // namespace stash
