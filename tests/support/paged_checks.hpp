#pragma once
// Checks that the remap and alias tests make of a paged caching allocator over the simulated paged
// device: its figures are the memory the device holds (each physical page counted once, whatever the
// number of its mappings), and empty_cache gives every mapping back.
#include <catch2/catch.hpp>

namespace stash_test {

/// The arena's figures are the memory the backend holds, and the backend saw no misuse.
template <class A>
void check_counted(const A& a) {
  CHECK(a.reserved_bytes() == a.backend().mapped_bytes());
  CHECK(a.stats().reserved_bytes == a.reserved_bytes());
  CHECK(a.backend().misuses() == 0);
}

/// empty_cache (every block freed and, stream-ordered, every free completed) leaves no page mapped and
/// no alias.
template <class A>
void check_emptied(A& a) {
  a.empty_cache();
  CHECK(a.backend().aliased_pages() == 0);
  CHECK(a.backend().mapped_bytes() == 0);
  CHECK(a.reserved_bytes() == 0);
  check_counted(a);
}

}  // namespace stash_test
