#include <cstdio>
#include <mutex>
#include "stash/backend/simulated_backend.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "support/failing_heap.hpp"
namespace fh = stash_test::failing_heap;
using segs = stash::caching_allocator<stash::simulated_backend, stash::segregated_fit_buckets, std::mutex, stash::basic_stats, stash::simulated_ordering>;
constexpr std::size_t MiB = 1 << 20;
struct world { segs a; stash::stream on, x; };
// the frees on x are recorded and complete, not yet retired; a trim_cache(0) waits for them; on has an open free
void setup(world& w, bool on_first) {
  stash::stream s1 = w.a.ordering().make_stream(), s2 = w.a.ordering().make_stream();
  w.on = on_first ? s1 : s2; w.x = on_first ? s2 : s1;
  void* p_on = nullptr; void* px = nullptr;
  if (on_first) { p_on = w.a.allocate(1000, w.on); px = w.a.allocate(8 * MiB, w.x); }
  else { px = w.a.allocate(8 * MiB, w.x); p_on = w.a.allocate(1000, w.on); }
  w.a.deallocate(px, w.x);
  w.a.flush_stream(w.x);
  w.a.trim_cache(0);
  w.a.deallocate(p_on, w.on);
  w.a.ordering().complete_stream(w.x);
}
int main() {
  for (bool on_first : {true, false}) {
    world ref; setup(ref, on_first);
    (void)ref.a.allocate(16 * MiB, ref.on);
    std::printf("order %d: reference cached %zu reserved %zu\n", on_first, ref.a.cached_bytes(), ref.a.reserved_bytes());
    for (std::size_t k = 1;; ++k) {
      world w; setup(w, on_first);
      const auto retired = w.a.stream_stats().epochs_retired;
      fh::arm(k);
      bool threw = false;
      try { (void)w.a.allocate(16 * MiB, w.on); } catch (const std::bad_alloc&) { threw = true; }
      fh::disarm();
      if (!threw) break;
      const bool partial = w.a.stream_stats().epochs_retired != retired;
      (void)w.a.allocate(16 * MiB, w.on);
      std::printf("  k=%zu retired-in-failed-call=%d: then cached %zu reserved %zu\n", k, partial, w.a.cached_bytes(), w.a.reserved_bytes());
    }
  }
}
