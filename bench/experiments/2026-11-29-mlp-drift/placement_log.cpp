// Where every block of a two-stream trace lands, replay by replay (stash-ordered, simulated device):
// one line per op (r<replay> <op> A|F <KiB> s<stream> at <KiB from the first block>, for allocations
// also the reserved KiB it added, the page moves it made and the 2 MiB pages mapped (+) and unmapped (-)
// in it). LAG=n: events n records late; DUMP=1: the memory map after each replay; XSETTLE=1: every
// stream's frees retired and merged (by hand, through trim_cache and a call on each stream) before
// each warm replay. From the root of a checkout:
//   g++ -std=c++20 -O2 -Iinclude -Ibench bench/experiments/2026-11-29-mlp-drift/placement_log.cpp \
//       bench/allocators/ordered_allocator.cpp -o /tmp/placement_log
//   /tmp/placement_log bench/traces/mlp_two_streams.csv 4
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <set>
#include "allocators/counting_ordering.hpp"
#include "allocators/ordered_allocator.hpp"
#include "replay.hpp"
#include "trace_reader.hpp"
using namespace stash::bench;
int main(int argc, char** argv) {
  const auto t = read_trace(argv[1]);
  const int reps = argc > 2 ? std::atoi(argv[2]) : 3;
  stash::caching_options o;
  simulated_ordered_allocator a(stash::simulated_paged_backend{}, o, counting_ordering{std::getenv("LAG") ? std::strtoull(std::getenv("LAG"), nullptr, 0) : 0});
  auto handles = simulated_stream_handles(t);
  std::vector<void*> s(t.slot_count);
  std::uintptr_t base = 0;
  auto st = [&](std::uint8_t i) { return stash::stream{static_cast<stash::stream::native_handle_type>(handles[i])}; };
  std::set<long long> prev;
  auto mapped = [&]{ std::set<long long> m; a.visit_memory([&](std::uintptr_t b, std::size_t n){ for (std::size_t q=0;q<n;q+=2<<20) m.insert((long long)(b+q-base)>>21);}, [](std::uintptr_t, std::size_t, std::size_t){}); return m; };
  auto diff = [&]{ auto m = mapped(); std::string d; for (auto p: m) if(!prev.count(p)) d += " +"+std::to_string(p); for (auto p: prev) if(!m.count(p)) d += " -"+std::to_string(p); prev = m; return d; };
  for (int rep = 0; rep < reps; ++rep) {
    std::size_t i = 0;
    for (const auto& op : t.ops) {
      ++i;
      const std::size_t before = a.reserved_bytes(); const auto mv = a.page_moves();
      if (op.is_free) { a.deallocate(s[op.slot], st(op.stream));
        std::printf("r%d %zu F %zu s%d at %lld\n", rep, i, op.size>>10, op.stream, (long long)(reinterpret_cast<std::uintptr_t>(s[op.slot]) - base) >> 10);
        continue; }
      s[op.slot] = a.allocate(op.size, st(op.stream));
      if (!base) base = reinterpret_cast<std::uintptr_t>(s[op.slot]);
      std::printf("r%d %zu A %zu s%d at %lld res %zd mv %lld%s\n", rep, i, op.size >> 10, op.stream,
                    (long long)(reinterpret_cast<std::uintptr_t>(s[op.slot]) - base) >> 10, (std::ptrdiff_t)(a.reserved_bytes() - before)>>10, (long long)(a.page_moves()-mv), diff().c_str());
    }
    for (const auto& op : t.live_at_end) { a.deallocate(s[op.slot], st(op.stream));
        std::printf("r%d end F %zu s%d at %lld\n", rep, op.size>>10, op.stream, (long long)(reinterpret_cast<std::uintptr_t>(s[op.slot]) - base) >> 10); }
    if (std::getenv("XSETTLE")) { a.trim_cache(SIZE_MAX); for (std::size_t k = 1; k < handles.size(); ++k) a.deallocate(a.allocate(1, st(k)), st(k)); a.trim_cache(SIZE_MAX); }
    if (std::getenv("DUMP")) a.visit_memory([&](std::uintptr_t b, std::size_t n) { std::printf("  region %lld KiB +%zu KiB\n", (long long)(b - base) >> 10, n >> 10); },
                     [&](std::uintptr_t b, std::size_t n, std::size_t req) { std::printf("    block %lld KiB +%zu KiB %s\n", (long long)(b - base) >> 10, n >> 10, req ? "live" : "free"); });
    std::printf("== after replay %d: peak %.4f moves %llu\n", rep, double(a.stats().peak_reserved_bytes) / double(t.peak_live_bytes), (unsigned long long)a.page_moves());
  }
}
