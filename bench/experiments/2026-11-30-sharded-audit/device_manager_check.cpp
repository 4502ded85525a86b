// stash::device_manager on a machine with GPUs (no GPU: every query must still answer, see the end).
// Build: g++ -std=c++20 -I../../../include -I/usr/local/cuda/include device_manager_check.cpp -L/usr/local/cuda/lib64 -lcudart -lpthread
#include <cuda_runtime_api.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "stash/device_manager.hpp"

using stash::device_manager;
static int failures = 0;
#define CHECK(c)                                                  \
  do {                                                            \
    if (!(c)) std::printf("FAIL line %d: %s\n", __LINE__, #c), ++failures; \
  } while (0)
template <class E, class F>
bool throws(F f) {
  try {
    f();
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
  return false;
}

int main() {
  const int n = device_manager::device_count();
  std::printf("devices: %d\n", n);
  CHECK(device_manager::has_gpu() == (n > 0));
  for (int bad : {-2, n, n + 1, INT_MAX, INT_MIN}) {
    CHECK(throws<stash::invalid_device>([&] { (void)device_manager::resolve(bad); }));
    CHECK(throws<stash::invalid_device>([&] { (void)device_manager::memory(bad); }));
  }
  if (n == 0) {
    CHECK(throws<stash::invalid_device>([] { (void)device_manager::resolve(-1); }));
    CHECK(throws<stash::error>([] { (void)device_manager::current_device(); }));
    std::printf("%s\n", failures ? "FAILED" : "ok (no GPU)");
    return failures != 0;
  }
  for (int cur = 0; cur < n; ++cur) {
    CHECK(cudaSetDevice(cur) == cudaSuccess);
    CHECK(device_manager::current_device() == cur);
    CHECK(device_manager::resolve(-1) == cur);
    for (int d = 0; d < n; ++d) {
      CHECK(device_manager::resolve(d) == d);
      const auto m = device_manager::memory(d);
      CHECK(m.total_bytes > 0 && m.free_bytes <= m.total_bytes);
      CHECK(device_manager::current_device() == cur);  // the guard put it back
      std::printf("current %d: memory(%d) = %zu free of %zu\n", cur, d, m.free_bytes, m.total_bytes);
    }
    const auto here = device_manager::memory(-1);
    CHECK(here.total_bytes == device_manager::memory(cur).total_bytes);
    CHECK(device_manager::current_device() == cur);
  }
  // Per thread: each thread's current device is its own.
  std::vector<std::thread> ts;
  std::vector<int> seen(n, -1);
  for (int d = 0; d < n; ++d)
    ts.emplace_back([&, d] {
      cudaSetDevice(d);
      (void)device_manager::memory((d + 1) % n);
      seen[d] = device_manager::resolve(-1);
    });
  for (auto& t : ts) t.join();
  for (int d = 0; d < n; ++d) CHECK(seen[d] == d);
  CHECK(cudaGetLastError() == cudaSuccess);  // no sticky error left behind
  std::printf("%s\n", failures ? "FAILED" : "ok");
  return failures != 0;
}
