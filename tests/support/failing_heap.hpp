#pragma once
// A host heap that fails on demand: the replaceable global operator new of the test binary (every form
// is replaced, in tests/support/failing_heap.cpp) counts down while armed and throws std::bad_alloc when
// the count reaches zero; aligned forms count too, nothrow ones never fail (failing_heap.cpp says why).
// Arm it around one operation with countdown k to fail that operation's k-th heap allocation; run
// k = 1, 2, ... until the operation no longer reaches k allocations, and every place where it asks the
// heap for memory has failed once. Only this thread's allocations count.
#include <cstddef>

namespace stash_test::failing_heap {

/// The calling thread's k-th operator new from now on throws std::bad_alloc (k >= 1), once.
void arm(std::size_t k) noexcept;
/// Stops counting; returns whether the armed failure happened.
bool disarm() noexcept;

/// Whether the failing operator new is the one in use: a tool such as valgrind replaces it with its
/// own, and then no failure can be injected.
bool can_fail() noexcept;

/// Arms on construction, disarms on destruction.
class armed {
 public:
  explicit armed(std::size_t k) noexcept { arm(k); }
  ~armed() { disarm(); }
  armed(const armed&) = delete;
  armed& operator=(const armed&) = delete;
};

}  // namespace stash_test::failing_heap
