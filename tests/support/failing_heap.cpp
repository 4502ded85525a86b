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

// The replacements pair malloc with free; GCC's -Wmismatched-new-delete (on at -O2) cannot see that
// operator new itself is the malloc here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  if (heap_countdown != 0 && --heap_countdown == 0) {
    heap_failed = true;
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

bool stash_test::failing_heap::can_fail() noexcept {
  arm(1);
  try {
    ::operator delete(::operator new(16));  // called by name: a new-expression could be elided
  } catch (const std::bad_alloc&) {
  }
  return disarm();
}
