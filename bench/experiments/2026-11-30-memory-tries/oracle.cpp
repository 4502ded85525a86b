// oracle: route blocks with long lifetimes (known from the trace) to a second allocator.
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <filesystem>
#include "stash/allocators.hpp"
#include "stash/lock/null_lock.hpp"
#include "trace_reader.hpp"
using A = stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets, stash::null_lock>;
int main(int argc, char** argv) {
  double L = std::atof(std::getenv("L") ? std::getenv("L") : "0");   // lifetime threshold in allocations; 0 = one allocator
  std::size_t minsize = std::getenv("MIN") ? std::atoll(std::getenv("MIN")) : 0;
  for (auto& f : stash::bench::list_traces(argv[1])) {
    auto t = stash::bench::read_trace(f);
    // lifetime of each alloc op, in allocations
    std::vector<std::size_t> life(t.ops.size(), SIZE_MAX);
    std::vector<std::size_t> open(t.slot_count, SIZE_MAX), openalloc(t.slot_count);
    std::size_t nalloc = 0;
    for (std::size_t i = 0; i < t.ops.size(); ++i) {
      auto& op = t.ops[i];
      if (op.is_free) { if (open[op.slot] != SIZE_MAX) life[open[op.slot]] = nalloc - openalloc[op.slot]; open[op.slot] = SIZE_MAX; }
      else { open[op.slot] = i; openalloc[op.slot] = nalloc++; }
    }
    stash::caching_options o;
    A a(stash::simulated_paged_backend{}, o), b(stash::simulated_paged_backend{}, o);
    std::vector<void*> slots(t.slot_count); std::vector<char> which(t.slot_count);
    std::size_t peak = 0, cold = 0;
    for (int pass = 0; pass < 4; ++pass) {
      for (std::size_t i = 0; i < t.ops.size(); ++i) {
        auto& op = t.ops[i];
        if (op.is_free) { (which[op.slot] ? b : a).deallocate(slots[op.slot]); continue; }
        bool lng = L > 0 && op.size >= minsize && life[i] > L;
        which[op.slot] = lng;
        slots[op.slot] = (lng ? b : a).allocate(op.size);
        peak = std::max(peak, a.reserved_bytes() + b.reserved_bytes());
      }
      for (auto& op : t.live_at_end) (which[op.slot] ? b : a).deallocate(slots[op.slot]);
      if (pass == 0) cold = peak;
    }
    std::printf("%-26s cold %.4f settled %.4f\n", t.name.c_str(), double(cold) / t.peak_live_bytes, double(peak) / t.peak_live_bytes);
  }
}
