#include <cstdio>
#include <map>
#include <vector>
#include <x86intrin.h>
#include "stash/allocators.hpp"
#include "trace_reader.hpp"
int main(int argc, char** argv) {
  for (int ai = 1; ai < argc; ++ai) {
    auto t = stash::bench::read_trace(argv[ai]);
    stash::simulated_caching_allocator a;
    std::vector<void*> slots(t.slot_count);
    std::vector<std::size_t> sizes(t.slot_count);
    struct acc { double cyc = 0; std::size_t n = 0; };
    std::map<std::string, acc> m;
    auto cls = [](std::size_t s) { std::size_t pages = (s + (2u<<20) - 1) >> 21; return s <= 8192 ? std::string("<=8K") : s <= (1u<<20) ? std::string("<=1M") : pages <= 1 ? std::string("<=2M") : pages <= 4 ? std::string("2-4pg") : pages <= 64 ? std::string("5-64pg") : std::string(">64pg"); };
    for (int pass = 0; pass < 8; ++pass) {
      for (auto& op : t.ops) {
        unsigned aux;
        std::uint64_t t0 = __rdtscp(&aux);
        if (op.is_free) a.deallocate(slots[op.slot]); else slots[op.slot] = a.allocate(op.size);
        std::uint64_t t1 = __rdtscp(&aux);
        if (pass >= 3) { auto& x = m[std::string(op.is_free ? "free " : "alloc ") + cls(op.size)]; x.cyc += t1 - t0; x.n++; }
      }
      for (auto& op : t.live_at_end) a.deallocate(slots[op.slot]);
    }
    double tot = 0; std::size_t n = 0;
    for (auto& [k, v] : m) { tot += v.cyc; n += v.n; }
    std::printf("%s: %.1f cyc/op\n", t.name.c_str(), tot / n);
    for (auto& [k, v] : m) std::printf("  %-14s %6.1f%% of ops  %7.1f cyc  %5.1f%% of time\n", k.c_str(), 100.0 * v.n / n, v.cyc / v.n, 100 * v.cyc / tot);
  }
}
