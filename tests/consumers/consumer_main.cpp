// Smallest useful consumer: allocate, free, and get the cached block back.
#include <stash/backend/host_backend.hpp>
#include <stash/caching_allocator.hpp>

#include <cstdio>

int main() {
  stash::caching_allocator<stash::host_backend> allocator;

  void* first = allocator.allocate(1000);
  if (first == nullptr || !allocator.owns(first)) {
    std::puts("consumer: allocate returned no usable pointer");
    return 1;
  }
  allocator.deallocate(first);

  void* second = allocator.allocate(1000);
  if (second != first) {
    std::puts("consumer: the freed block was not reused");
    return 2;
  }
  allocator.deallocate(second, 1000);

  std::puts("consumer: ok");
  return 0;
}
