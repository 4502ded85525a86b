// page_release: what giving idle pages back costs on the simulated paged device (no GPU needed):
// empty_cache after k idle pages, for reservations of different sizes. The paged allocator finds each
// page to release as "the highest idle page"; this measures that the cost follows the pages released
// and not the size of the reservation. bench/RESULTS.md records its output.
//
// Build: part of bench/ (target page_release). Run: build/.../bench/page_release [repeats]
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

#include "stash/backend/simulated_paged_backend.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"
#include "stash/caching_allocator.hpp"

namespace {

using paged = stash::caching_allocator<stash::simulated_paged_backend, stash::segregated_fit_buckets, std::mutex>;
using clk = std::chrono::steady_clock;

constexpr std::size_t KiB = std::size_t{1} << 10;
constexpr std::size_t MiB = std::size_t{1} << 20;

double ms_since(clk::time_point start) { return std::chrono::duration<double, std::milli>(clk::now() - start).count(); }

/// A reservation of `reserved_pages` pages of `page` bytes; a live block keeps the lowest pages
/// touched, `idle_pages` pages above it are mapped then made idle; empty_cache gives them back.
/// Returns the median time of empty_cache over `repeats` fresh allocators.
double empty_cache_ms(std::size_t page, std::size_t reserved_pages, std::size_t idle_pages, int repeats) {
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    stash::caching_options options;
    options.reserve_bytes = reserved_pages * page;
    paged a(stash::simulated_paged_backend(stash::simulated_paged_backend::unlimited, page), options);
    void* low = a.allocate(1000);
    void* block = a.allocate(idle_pages * page);
    a.deallocate(block);
    const auto start = clk::now();
    a.empty_cache();
    times.push_back(ms_since(start));
    if (a.reserved_bytes() != page) std::abort();  // only the live block's page stays
    a.deallocate(low);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  std::printf("empty_cache on the simulated paged device, median of %d\n", repeats);
  std::printf("%10s %16s %12s %14s\n", "page", "reserved pages", "idle pages", "empty_cache ms");
  struct row {
    std::size_t page, reserved, idle;
  };
  for (const row r : {row{2 * MiB, 65536, 32768}, row{2 * MiB, 524288, 32768}, row{2 * MiB, 524288, 1024},
                      row{64 * KiB, std::size_t{1} << 24, 16384}}) {
    std::printf("%9zuK %16zu %12zu %14.3f\n", r.page / KiB, r.reserved, r.idle,
                empty_cache_ms(r.page, r.reserved, r.idle, repeats));
    std::fflush(stdout);
  }
}
