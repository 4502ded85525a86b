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
#include "stash/detail/resource_allocator.hpp"
#include "stash/memory_manager.hpp"
#include "stash/memory_resource.hpp"
#include "stash/stream.hpp"

namespace stash {

template <class T>
class stream_allocator : public detail::resource_allocator<T, stream_allocator<T>> {
  using base = detail::resource_allocator<T, stream_allocator<T>>;

 public:
  template <class U>
  struct rebind {
    using other = stream_allocator<U>;
  };

  /// The manager's pool of `device_id` (-1: the current device), on stream s.
  explicit stream_allocator(stream s, int device_id = -1)
      : base(memory_manager::instance().device_pool(device_id), s) {}
  stream_allocator(memory_resource& resource, stream s) noexcept : base(resource, s) {}
  template <class U>
  stream_allocator(const stream_allocator<U>& other) noexcept : base(other.resource(), other.get_stream()) {}

  template <class U>
  friend bool operator==(const stream_allocator& a, const stream_allocator<U>& b) noexcept {
    return &a.resource() == &b.resource() && a.get_stream() == b.get_stream();
  }
};

}  // namespace stash
