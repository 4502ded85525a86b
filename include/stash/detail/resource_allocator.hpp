#pragma once
// The standard Allocator shape shared by device_allocator<T> and pinned_allocator<T>: a typed handle
// on a memory_resource. Containers copy, rebind and compare it through std::allocator_traits; two
// handles are equal when they draw from the same resource, and the resource travels with the container
// on copy, move and swap, so memory is always given back where it came from.
#include <cstddef>
#include <limits>
#include <new>
#include <type_traits>

#include "stash/memory_resource.hpp"

namespace stash::detail {

template <class T, class Derived>
class resource_allocator {
 public:
  using value_type = T;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  using is_always_equal = std::false_type;

  explicit resource_allocator(memory_resource& resource) noexcept : resource_(&resource) {}

  /// n == 0 returns nullptr (the core rejects 0 bytes; containers may ask for 0 elements).
  [[nodiscard]] T* allocate(std::size_t n) {
    if (n == 0) return nullptr;
    if (n > max_size()) throw std::bad_array_new_length();
    return static_cast<T*>(resource_->allocate(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) {
    if (p) resource_->deallocate(p, n * sizeof(T));
  }
  constexpr std::size_t max_size() const noexcept { return std::numeric_limits<std::size_t>::max() / 2 / sizeof(T); }
  memory_resource& resource() const noexcept { return *resource_; }

  friend bool operator==(const Derived& a, const Derived& b) noexcept { return a.resource_ == b.resource_; }

 private:
  memory_resource* resource_;
};

}  // namespace stash::detail
