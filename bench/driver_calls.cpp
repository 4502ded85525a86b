// driver_calls: how many driver calls the paged allocator's growth costs on each trace, counted on the
// simulated paged device (no GPU needed), which counts what cuda_vmm_backend would call for the same
// work: two per physical allocation (cuMemCreate, cuMemMap) and one cuMemSetAccess for all the pages a
// block maps or moves in, two per move of an idle chunk or page (cuMemUnmap, cuMemMap), two per release
// (cuMemUnmap, cuMemRelease). One cold replay (empty cache) and three warm ones per trace, page by page
// (max_chunk_pages 1) and in chunks (the default).
// bench/RESULTS.md records its output; the time the calls take is measured on a GPU (page_costs,
// stash-replay --backend cuda).
//
// Build: part of bench/ (target driver_calls). Run: build/.../bench/driver_calls [trace.csv or folder ...]
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/lock/null_lock.hpp"
#include "trace_reader.hpp"

namespace {

using paged = stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets, stash::null_lock>;

void replay(const stash::bench::trace& t, std::size_t max_chunk_pages) {
  stash::caching_options options;
  options.max_chunk_pages = max_chunk_pages;
  paged a(stash::simulated_paged_backend{}, options);
  std::vector<void*> slots(t.slot_count);
  std::size_t cold_calls = 0, cold_allocations = 0;
  double cold_ratio = 0;
  for (int pass = 0; pass < 4; ++pass) {
    for (const auto& op : t.ops) {
      if (op.is_free) a.deallocate(slots[op.slot]);
      else slots[op.slot] = a.allocate(op.size);
    }
    for (const auto& op : t.live_at_end) a.deallocate(slots[op.slot]);
    if (pass == 0) {
      cold_calls = a.backend().driver_calls();
      cold_allocations = a.stats().backend_allocations;
      cold_ratio = static_cast<double>(a.stats().peak_reserved_bytes) / static_cast<double>(t.peak_live_bytes);
    }
  }
  std::printf("%-24s %10zu %6zu ops %8zu calls %7.3f/op %6zu allocations %6zu moves  reserved/live %.4f  warm x3: %zu calls\n",
              t.name.c_str(), max_chunk_pages, t.ops.size(), cold_calls,
              static_cast<double>(cold_calls) / static_cast<double>(t.ops.size()), cold_allocations,
              static_cast<std::size_t>(a.page_moves()), cold_ratio, a.backend().driver_calls() - cold_calls);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path p = argv[i];
    if (std::filesystem::is_directory(p)) {
      for (const auto& f : stash::bench::list_traces(p)) files.push_back(f);
    } else {
      files.push_back(p);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: driver_calls trace.csv|folder ...\n");
    return 2;
  }
  std::printf("%-24s %10s (cold replay; moves over all four)\n", "trace", "max_chunk_pages");
  for (const auto& f : files) {
    const auto t = stash::bench::read_trace(f);
    replay(t, 1);
    replay(t, stash::caching_options{}.max_chunk_pages);
  }
}
