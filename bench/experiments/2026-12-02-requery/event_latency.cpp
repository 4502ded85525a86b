// How long an idle GPU takes to complete an event the host has just recorded, as a stash miss meets it:
// cudaEventRecord on a stream with nothing queued, then cudaEventQuery at once and again in a loop until
// it completes. Prints whether the first query already found it complete, the queries it took, and the
// host ns from the record's return to the first query that found it complete (median, p10, p90 of 2000
// tries), on the legacy default stream and on a created stream, with the host spinning 0, 2, 5 and 10 us
// between the record and the first query.
// Build: g++ -std=c++20 -O2 -I/usr/local/cuda/include event_latency.cpp -L/usr/local/cuda/lib64 -lcudart -o event_latency
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace {
using clock_type = std::chrono::steady_clock;

void spin_ns(double ns) {
  const auto until = clock_type::now() + std::chrono::nanoseconds(static_cast<long long>(ns));
  while (clock_type::now() < until) {
  }
}

void measure(const char* name, cudaStream_t s, double gap_ns) {
  constexpr int tries = 2000;
  cudaEvent_t e;
  cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
  std::vector<double> latency;
  std::vector<int> queries;
  int first_complete = 0;
  for (int i = 0; i < tries; ++i) {
    cudaDeviceSynchronize();
    spin_ns(20000);  // the GPU idle, as in a replay that launches no kernel
    cudaEventRecord(e, s);
    const auto recorded = clock_type::now();
    if (gap_ns > 0) spin_ns(gap_ns);
    int q = 0;
    cudaError_t r;
    do {
      r = cudaEventQuery(e);
      ++q;
    } while (r == cudaErrorNotReady);
    const auto done = clock_type::now();
    if (r != cudaSuccess) {
      std::printf("query failed: %s\n", cudaGetErrorString(r));
      return;
    }
    first_complete += q == 1;
    queries.push_back(q);
    latency.push_back(std::chrono::duration<double, std::nano>(done - recorded).count());
  }
  std::sort(latency.begin(), latency.end());
  std::sort(queries.begin(), queries.end());
  std::printf("%-14s gap %5.0f ns: complete at the first query %5.1f%%; queries median %d p90 %d; "
              "ns to complete median %.0f p10 %.0f p90 %.0f\n",
              name, gap_ns, 100.0 * first_complete / tries, queries[tries / 2], queries[tries * 9 / 10],
              latency[tries / 2], latency[tries / 10], latency[tries * 9 / 10]);
  cudaEventDestroy(e);
}
}  // namespace

int main() {
  cudaFree(nullptr);
  cudaStream_t created;
  cudaStreamCreate(&created);
  for (double gap : {0.0, 2000.0, 5000.0, 10000.0}) {
    measure("legacy default", nullptr, gap);
    measure("created", created, gap);
  }
  cudaStreamDestroy(created);
  return 0;
}
