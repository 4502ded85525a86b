#pragma once
// The standard Allocator shape shared by device_allocator<T>, pinned_allocator<T>, stream_allocator<T>
// and (through a member) thrust_allocator<T>: a typed handle on a memory_resource and the stream its
// memory is used on (device_allocator's and pinned_allocator's: the legacy default stream). Containers
// copy, rebind and compare it through std::allocator_traits; two handles are equal when they draw from
// the same resource (on the same stream), and the resource travels with the container on copy, move
// and swap, so memory is always given back where it came from.
#include <cstddef>
#include <new>
#include <type_traits>

#include "stash/memory_resource.hpp"
#include "stash/stream.hpp"

namespace stash::detail {

/// How std::allocator_traits moves every stash allocator with its container.
struct resource_allocator_propagation {
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  using is_always_equal = std::false_type;
};

template <class T, class Derived>
class resource_allocator : public resource_allocator_propagation {
 public:
  using value_type = T;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;

  explicit resource_allocator(memory_resource& resource, stream s = stream{}) noexcept
      : resource_(&resource), stream_(s) {}

  /// n == 0 returns nullptr (the core rejects 0 bytes; containers may ask for 0 elements).
  /// n > max_size() throws std::bad_array_new_length; out of memory throws stash::out_of_memory.
  [[nodiscard]] T* allocate(std::size_t n) {
    // Blocks are aligned to memory_resource::alignment and no more; a more aligned T placed in them
    // would be misaligned. Checked here, not at class scope, so that T may still be incomplete where
    // the allocator is only named (std::vector<Node, A> as a member of Node).
    static_assert(alignof(T) <= memory_resource::alignment,
                  "stash allocations are 256-byte aligned: a type aligned to more cannot be placed in them");
    if (n == 0) return nullptr;
    if (n > max_size()) throw std::bad_array_new_length();
    return static_cast<T*>(resource_->allocate(n * sizeof(T), stream_));
  }
  /// Never throws: a container cannot recover from a deallocate that throws (the Allocator
  /// requirements forbid it). A pointer or size the resource did not hand out is a broken
  /// container or a mixed-up allocator, so the resource's error (stash::invalid_pointer,
  /// stash::invalid_size) ends the program through std::terminate, with its message.
  void deallocate(T* p, std::size_t n) noexcept {
    if (p) resource_->deallocate(p, n * sizeof(T), stream_);
  }
  /// The resource's limit in elements of T: a larger request is refused before it reaches the
  /// resource, so containers see std::length_error or std::bad_alloc, never a stash::invalid_size.
  std::size_t max_size() const noexcept { return resource_->max_size() / sizeof(T); }
  memory_resource& resource() const noexcept { return *resource_; }
  /// The stream the memory is allocated and freed on.
  stream get_stream() const noexcept { return stream_; }

 private:
  memory_resource* resource_;
  stream stream_;
};

}  // namespace stash::detail
