// The failing host heap of support/failing_heap.hpp: this file replaces the global operator new of the
// test binary it is linked into (the host suite and the CUDA suite). It fails nothing unless armed.
#include "support/failing_heap.hpp"

#include <cstddef>
#include <cstdlib>
#include <new>

namespace {
thread_local std::size_t heap_countdown = 0;  // 0: not armed
thread_local bool heap_failed = false;
}  // namespace

void stash_test::failing_heap::arm(std::size_t k) noexcept {
  heap_countdown = k;
  heap_failed = false;
}
bool stash_test::failing_heap::disarm() noexcept {
  heap_countdown = 0;
  return heap_failed;
}

// Every replaceable form is replaced, aligned and nothrow ones included, so that one heap serves them
// all and no allocation made through one form is freed through another heap's delete
// (AddressSanitizer, whose own forms stand in for those not replaced, reported exactly that mismatch).
// The throwing forms fail when armed, aligned ones too: the allocators' 64-byte block records
// (detail::block) come from operator new[](size_t, align_val_t). The nothrow forms never fail by
// arming: stash asks for its bookkeeping through the throwing forms alone, and host_backend takes the
// memory it hands out (standing for device memory) through the nothrow form, whose failure is out of
// memory, a path of its own, not a failing host heap. The replacements pair malloc and aligned_alloc
// with free; GCC's -Wmismatched-new-delete (on at -O2) cannot see that operator new is the malloc.
namespace {
/// From the C heap: null when it has nothing.
void* heap_allocate(std::size_t n, std::size_t alignment) noexcept {
  if (n == 0) n = 1;
  if (alignment <= alignof(std::max_align_t)) return std::malloc(n);
  return std::aligned_alloc(alignment, (n + alignment - 1) / alignment * alignment);  // a multiple of it
}
/// The throwing forms: std::bad_alloc when armed and due to fail, or when the C heap has nothing.
void* heap_allocate_or_throw(std::size_t n, std::size_t alignment) {
  if (heap_countdown != 0 && --heap_countdown == 0) {
    heap_failed = true;
    throw std::bad_alloc();
  }
  if (void* p = heap_allocate(n, alignment)) return p;
  throw std::bad_alloc();
}
std::size_t alignment_of(std::align_val_t a) noexcept { return static_cast<std::size_t>(a); }
}  // namespace

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) { return heap_allocate_or_throw(n, 0); }
void* operator new[](std::size_t n) { return heap_allocate_or_throw(n, 0); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return heap_allocate(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return heap_allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return heap_allocate_or_throw(n, alignment_of(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return heap_allocate_or_throw(n, alignment_of(a)); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return heap_allocate(n, alignment_of(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return heap_allocate(n, alignment_of(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop

bool stash_test::failing_heap::can_fail() noexcept {
  arm(1);
  try {
    ::operator delete(::operator new(16));  // called by name: a new-expression could be elided
  } catch (const std::bad_alloc&) {
  }
  return disarm();
}
