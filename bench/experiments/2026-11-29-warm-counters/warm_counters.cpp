// Where a warm replay's time goes, from the CPU's own counters (perf_event_open, user space only, so
// perf_event_paranoid 2 allows it): per operation of the warm replays of each trace, cycles,
// instructions, branch misses, L1D read misses, dTLB read misses and last-level-cache misses, beside
// the wall time. The allocators are the simulated device's compositions (`stash`: host order;
// `stash-ordered`: stream order, events at once, each stream on a handle of its own), which run the
// same host instructions as the CUDA compositions less the CUDA runtime's, so this works on the GPU
// machine's host without a GPU call; `null` is the replay loop alone. A counter the machine does not expose prints as -.
// Build: g++ -std=c++20 -O2 -g -Ibench -I/usr/local/cuda/include -Iinclude
//          bench/experiments/2026-11-29-warm-counters/warm_counters.cpp bench/allocators/ordered_allocator.cpp
// Run:   ./a.out [--warm N] TRACE.csv...
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "allocators/ordered_allocator.hpp"
#include "allocators/stash_allocators.hpp"
#include "replay.hpp"

namespace {

struct counter_spec {
  const char* name;
  std::uint32_t type;
  std::uint64_t config;
};
constexpr std::uint64_t cache(std::uint64_t id, std::uint64_t op, std::uint64_t result) {
  return id | (op << 8) | (result << 16);
}
constexpr std::array<counter_spec, 6> specs{{
    {"cycles", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES},
    {"instr", PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS},
    {"br-miss", PERF_TYPE_HARDWARE, PERF_COUNT_HW_BRANCH_MISSES},
    {"L1D-miss", PERF_TYPE_HW_CACHE,
     cache(PERF_COUNT_HW_CACHE_L1D, PERF_COUNT_HW_CACHE_OP_READ, PERF_COUNT_HW_CACHE_RESULT_MISS)},
    {"dTLB-miss", PERF_TYPE_HW_CACHE,
     cache(PERF_COUNT_HW_CACHE_DTLB, PERF_COUNT_HW_CACHE_OP_READ, PERF_COUNT_HW_CACHE_RESULT_MISS)},
    {"LLC-miss", PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_MISSES},
}};

/// One counter per spec, each on its own (not a group: a machine may lack some), user space only.
class counters {
 public:
  counters() {
    for (std::size_t i = 0; i < specs.size(); ++i) {
      perf_event_attr a{};
      a.size = sizeof a;
      a.type = specs[i].type;
      a.config = specs[i].config;
      a.disabled = 1;
      a.exclude_kernel = 1;
      a.exclude_hv = 1;
      fd_[i] = static_cast<int>(syscall(SYS_perf_event_open, &a, 0, -1, -1, 0));
    }
  }
  ~counters() {
    for (int fd : fd_)
      if (fd >= 0) close(fd);
  }
  void start() {
    for (int fd : fd_)
      if (fd >= 0) {
        ioctl(fd, PERF_EVENT_IOC_RESET, 0);
        ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
      }
  }
  std::array<long long, specs.size()> stop() {
    std::array<long long, specs.size()> v{};
    for (std::size_t i = 0; i < specs.size(); ++i) {
      v[i] = -1;
      if (fd_[i] < 0) continue;
      ioctl(fd_[i], PERF_EVENT_IOC_DISABLE, 0);
      long long x = 0;
      if (read(fd_[i], &x, sizeof x) == sizeof x) v[i] = x;
    }
    return v;
  }

 private:
  std::array<int, specs.size()> fd_{};
};

/// What the replay loop costs without an allocator: allocate returns a pointer made from its size, free
/// does nothing (the loop's own loads and stores, which every allocator's figure includes).
class null_allocator : public stash::bench::replayable<null_allocator> {
 public:
  std::string_view name() const noexcept override { return "null"; }
  void* allocate(std::size_t n) override { return reinterpret_cast<void*>(n | 256); }
  void deallocate(void* p, std::size_t) override { sink_ ^= reinterpret_cast<std::uintptr_t>(p); }
  void empty_cache() override {}
  std::size_t peak_reserved_bytes() const override { return 0; }
  std::optional<std::uint64_t> backend_allocs() const override { return std::nullopt; }
  std::uintptr_t sink_ = 0;
};

template <class Adapter>
void measure(const char* name, Adapter& a, const stash::bench::trace& t, int warm, counters& c) {
  a.use_streams(stash::bench::simulated_stream_handles(t));
  std::vector<void*> slots(t.slot_count, nullptr);
  auto replay = [&] { a.run(t.ops, slots.data()); };
  replay();
  a.run(t.live_at_end, slots.data());
  std::array<long long, specs.size()> sum{};
  double ns = 0;
  for (int i = 0; i < warm; ++i) {
    c.start();
    const auto t0 = std::chrono::steady_clock::now();
    replay();
    const auto t1 = std::chrono::steady_clock::now();
    const auto v = c.stop();
    a.run(t.live_at_end, slots.data());
    ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    for (std::size_t k = 0; k < v.size(); ++k) sum[k] = v[k] < 0 || sum[k] < 0 ? -1 : sum[k] + v[k];
  }
  const double ops = double(warm) * double(t.ops.size());
  std::printf("%-24s %-14s %8.1f", t.name.c_str(), name, ns / ops);
  for (long long s : sum) {
    if (s < 0) std::printf(" %9s", "-");
    else std::printf(" %9.2f", double(s) / ops);
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  int warm = 20;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--warm") == 0 && i + 1 < argc) warm = std::atoi(argv[++i]);
    else files.emplace_back(argv[i]);
  }
  counters c;
  std::printf("%-24s %-14s %8s", "trace", "allocator", "ns/op");
  for (const auto& s : specs) std::printf(" %9s", s.name);
  std::printf("   (per op, %d warm replays)\n", warm);
  for (const auto& f : files) {
    const auto t = stash::bench::read_trace(f);
    {
      null_allocator a;
      measure("null", a, t, warm, c);
    }
    {
      stash::bench::stash_adapter<stash::simulated_caching_allocator> a("stash");
      measure("stash", a, t, warm, c);
    }
    {
      stash::bench::stash_adapter<stash::bench::simulated_ordered_allocator> a("stash-ordered");
      measure("stash-ordered", a, t, warm, c);
    }
  }
}
