// churn: a thread per request, each allocating and freeing once on its own cudaStreamPerThread, on the
// stream-ordered simulated device (events completed every 64 threads); then the cost of a slow path
// that walks the streams (trim_cache) and the process's peak RSS (run under /usr/bin/time).
// Build: g++ -std=c++20 -O2 -DNDEBUG -Iinclude churn.cpp -o churn -pthread   Run: churn THREADS
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <mutex>
#include <vector>
#include "stash/caching_allocator.hpp"
#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/ordering/simulated_ordering.hpp"
using A = stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets, std::mutex, stash::basic_stats, stash::simulated_ordering>;
int main(int argc, char** argv) {
  int n = std::atoi(argv[1]);
  A a;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    std::thread([&] { void* p = a.allocate(1000, stash::stream::per_thread()); a.deallocate(p, stash::stream::per_thread()); }).join();
    if (i % 64 == 0) a.ordering().complete_all();
  }
  auto t1 = std::chrono::steady_clock::now();
  // slow path cost now: trims
  for (int i = 0; i < 1000; ++i) a.trim_cache(SIZE_MAX);
  auto t2 = std::chrono::steady_clock::now();
  std::printf("threads %d: churn %.1f us/thread, trim_cache %.2f us/call\n", n,
    std::chrono::duration<double, std::micro>(t1 - t0).count() / n, std::chrono::duration<double, std::micro>(t2 - t1).count() / 1000);
}
