// Uses of the std adapters that must not compile. Each STASH_CASE_* is built on its own by a ctest
// (tests/CMakeLists.txt), which passes when the build fails with the adapter's static_assert message.
// With no case defined the file compiles: the control that the failures come from the cases.
#include <string>
#include <vector>

#include "stash/device_allocator.hpp"
#include "stash/pinned_allocator.hpp"

int main() {
  [[maybe_unused]] stash::device_allocator<float> device;
#if defined(STASH_CASE_DEVICE_FILL)
  std::vector<float, stash::device_allocator<float>> v(10, 1.0f, device);  // stores 1.0f from the host
#elif defined(STASH_CASE_DEVICE_GROW)
  std::vector<float, stash::device_allocator<float>> v(10, device);
  v.push_back(1.0f);  // stores from the host, and moves the elements on growth
#elif defined(STASH_CASE_DEVICE_COPY)
  std::vector<float, stash::device_allocator<float>> v(10, device);
  auto copy = v;  // reads and stores device memory element by element on the host
#elif defined(STASH_CASE_DEVICE_NONTRIVIAL)
  std::vector<std::string, stash::device_allocator<std::string>> v(
      10, stash::device_allocator<std::string>(device));
#elif defined(STASH_CASE_OVERALIGNED)
  struct alignas(512) page {
    char bytes[512];
  };
  stash::pinned_allocator<page> pinned;
  pinned.deallocate(pinned.allocate(1), 1);
#endif
}
