// replay with caching_options from env; cold / settled reserved/live; driver calls and moves per warm replay
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "stash/allocators.hpp"
#include "stash/lock/null_lock.hpp"
#include "trace_reader.hpp"
using A = stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets, stash::null_lock>;
static double envd(const char* n, double d) { const char* e = std::getenv(n); return e ? std::atof(e) : d; }
int main(int argc, char** argv) {
  for (int ai = 1; ai < argc; ++ai)
  for (auto& f : std::filesystem::is_directory(argv[ai]) ? stash::bench::list_traces(argv[ai]) : std::vector<std::filesystem::path>{argv[ai]}) {
    auto t = stash::bench::read_trace(f);
    stash::caching_options o;
    o.page_slack = envd("SLACK", o.page_slack);
    o.pages_between_moves = envd("PBM", o.pages_between_moves);
    o.max_held_over_live = envd("LEAN", 0);
    o.moves_per_block = envd("MPB", o.moves_per_block);
    o.chunks_per_block = envd("CPB", o.chunks_per_block);
    o.max_chunk_pages = envd("MCP", o.max_chunk_pages);
    o.small_region = envd("SMALL", 1) != 0;
    o.small_fill_mapped = envd("SFILL", 0) != 0;
    if (std::getenv("FILLA")) o.fill_mapped_above = std::strtoull(std::getenv("FILLA"), nullptr, 10);
    A a(stash::simulated_paged_backend{}, o);
    std::vector<void*> slots(t.slot_count);
    std::size_t peak = 0, cold = 0, calls0 = 0, moves0 = 0;
    int passes = envd("PASSES", 4);
    std::vector<std::size_t> calls, moves;
    for (int pass = 0; pass < passes; ++pass) {
      std::size_t c = a.backend().driver_calls(), m = a.page_moves();
      for (auto& op : t.ops) {
        if (op.is_free) a.deallocate(slots[op.slot]); else { slots[op.slot] = a.allocate(op.size); peak = std::max(peak, a.reserved_bytes()); }
      }
      for (auto& op : t.live_at_end) a.deallocate(slots[op.slot]);
      if (pass == 0) cold = peak;
      calls.push_back(a.backend().driver_calls() - c); moves.push_back(a.page_moves() - m);
    }
    std::printf("%-24s cold %.4f settled %.4f  calls/moves per replay:", t.name.c_str(), double(cold) / t.peak_live_bytes, double(peak) / t.peak_live_bytes);
    for (std::size_t i = 0; i < calls.size(); ++i) std::printf(" %zu/%zu", calls[i], moves[i]);
    std::printf("\n");
  }
}
