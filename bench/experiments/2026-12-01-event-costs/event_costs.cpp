// Host ns per call of the CUDA runtime calls the stream layer makes when it closes an epoch (one per
// 1024 frees on a stream working alone): cudaStreamIsCapturing, cudaStreamGetDevice, cudaEventRecord,
// and later cudaEventQuery with the capture mode relaxed (two cudaThreadExchangeStreamCaptureMode).
// Each call is timed over a loop of N, on the legacy default stream and on a created stream, idle GPU.
// Build: g++ -std=c++20 -O2 -I/usr/local/cuda/include event_costs.cpp -L/usr/local/cuda/lib64 -lcudart -o event_costs
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace {
constexpr int n = 20000;

template <class F>
double ns_per_call(F&& f) {
  std::vector<double> runs;
  for (int r = 0; r < 7; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) f(i);
    const auto stop = std::chrono::steady_clock::now();
    runs.push_back(std::chrono::duration<double, std::nano>(stop - start).count() / n);
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

void measure(const char* name, cudaStream_t s) {
  std::vector<cudaEvent_t> events(n);
  for (auto& e : events) cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
  int device = -1;
  cudaStreamCaptureStatus status{};
  const double capturing = ns_per_call([&](int) { cudaStreamIsCapturing(s, &status); });
  const double get_device = ns_per_call([&](int) { cudaStreamGetDevice(s, &device); });
  const double record = ns_per_call([&](int i) { cudaEventRecord(events[i], s); });
  cudaDeviceSynchronize();
  const double query = ns_per_call([&](int i) {
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    cudaThreadExchangeStreamCaptureMode(&mode);
    cudaEventQuery(events[i]);
    cudaThreadExchangeStreamCaptureMode(&mode);
  });
  const double query_bare = ns_per_call([&](int i) { cudaEventQuery(events[i]); });
  // What one close and its retire cost together, as the allocator makes them (record now, query later).
  const double close = ns_per_call([&](int i) {
    cudaStreamIsCapturing(s, &status);
    cudaStreamGetDevice(s, &device);
    cudaEventRecord(events[i], s);
    if (i > 0) {
      cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
      cudaThreadExchangeStreamCaptureMode(&mode);
      cudaEventQuery(events[i - 1]);
      cudaThreadExchangeStreamCaptureMode(&mode);
    }
  });
  cudaDeviceSynchronize();
  std::printf("%-8s is_capturing %6.1f  get_device %6.1f  record %7.1f  query(relaxed) %6.1f  query %6.1f  close+retire %7.1f ns\n",
              name, capturing, get_device, record, query, query_bare, close);
  for (auto& e : events) cudaEventDestroy(e);
}
}  // namespace

int main() {
  cudaFree(nullptr);
  cudaStream_t created = nullptr;
  cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking);
  for (int round = 0; round < 3; ++round) {
    measure("legacy", nullptr);
    measure("created", created);
  }
  cudaStreamDestroy(created);
  return cudaGetLastError() == cudaSuccess ? 0 : 1;
}
