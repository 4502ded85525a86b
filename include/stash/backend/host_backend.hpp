#pragma once
// Ordinary host memory, 256-byte aligned like cudaMalloc's. Lets every composition run, and be
// tested under valgrind, on a machine without a GPU.
#include <cstddef>
#include <new>

#include "stash/backend/backend.hpp"

namespace stash {

class host_backend {
 public:
  static constexpr memory_kind kind = memory_kind::host;
  static constexpr std::size_t alignment = 256;

  /// `device`: what device() reports (-1, host memory). A host-backed memory manager gives each pretend
  /// device's pool its id, so that errors name the device the caller asked for.
  host_backend() noexcept = default;
  explicit host_backend(int device) noexcept : device_(device) {}

  void* allocate(std::size_t bytes) noexcept {
    return ::operator new(bytes, std::align_val_t{alignment}, std::nothrow);
  }
  void deallocate(void* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{alignment}); }
  std::size_t granularity() const noexcept { return alignment; }
  int device() const noexcept { return device_; }

 private:
  int device_ = -1;
};

static_assert(segment_backend<host_backend>);

}  // namespace stash
