#pragma once
// What an allocator's memory is made of, beyond its counters: the largest free block it holds, how
// fragmented its cache is, and which block sizes hold the most. The memory manager's pools attach one
// to every out_of_memory they throw (stash::out_of_memory::details()); describe_memory(allocator)
// gives one at any time.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace stash {

/// Live blocks of one size: `count` of them, `total_bytes` together.
struct size_class_use {
  std::size_t block_bytes = 0;
  std::size_t count = 0;
  std::size_t total_bytes = 0;
};

struct memory_report {
  std::size_t reserved_bytes = 0;   // held from the backend
  std::size_t cached_bytes = 0;     // held but free
  std::size_t largest_free_block = 0;  // the largest run of free memory held (what one request can get
                                       // without the backend)
  /// 1 - largest_free_block / cached_bytes: 0 when the cache is one block (or empty), near 1 when it
  /// is in many small pieces.
  double fragmentation = 0;
  std::vector<size_class_use> top_size_classes;  // live blocks by size, most bytes first
  std::size_t device_free_bytes = 0;   // the driver's free and total memory of the device
  std::size_t device_total_bytes = 0;  // (cudaMemGetInfo); 0 when not known (host memory, no GPU)
};

namespace detail {

inline std::string report_bytes(std::size_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[48];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return buf;
}

}  // namespace detail

/// One line: "the driver has 1.00 GiB free of 80.00 GiB; largest free block 2.00 MiB of 6.00 MiB cached
/// (fragmentation 66.7%); live blocks by size: 1.00 GiB x 3, 256.00 MiB x 10".
inline std::string to_string(const memory_report& r) {
  using detail::report_bytes;
  std::string out;
  if (r.device_total_bytes > 0)
    out += "the driver has " + report_bytes(r.device_free_bytes) + " free of " +
           report_bytes(r.device_total_bytes) + "; ";
  char fragmentation[32];
  std::snprintf(fragmentation, sizeof fragmentation, "%.1f%%", 100.0 * r.fragmentation);
  out += "largest free block " + report_bytes(r.largest_free_block) + " of " + report_bytes(r.cached_bytes) +
         " cached (fragmentation " + fragmentation + ")";
  if (!r.top_size_classes.empty()) {
    out += "; live blocks by size:";
    for (std::size_t i = 0; i < r.top_size_classes.size(); ++i) {
      const auto& c = r.top_size_classes[i];
      out += (i ? ", " : " ") + report_bytes(c.block_bytes) + " x " + std::to_string(c.count);
    }
  }
  return out;
}

/// The report of a caching allocator (anything with visit_memory and stats), the `top` block sizes
/// holding the most bytes. Walks every block under the allocator's lock: a slow path, for reports.
template <class Allocator>
  requires requires(const Allocator& a) {
    a.visit_memory([](std::uintptr_t, std::size_t) {}, [](std::uintptr_t, std::size_t, std::size_t) {});
  }
memory_report describe_memory(const Allocator& allocator, std::size_t top = 5) {
  memory_report r;
  std::map<std::size_t, size_class_use> by_size;
  std::size_t free_run = 0;  // free blocks adjacent in a region form one run
  allocator.visit_memory(
      [&](std::uintptr_t, std::size_t bytes) {
        r.reserved_bytes += bytes;
        free_run = 0;
      },
      [&](std::uintptr_t, std::size_t bytes, std::size_t requested) {
        if (requested == 0) {
          free_run += bytes;
          r.cached_bytes += bytes;
          r.largest_free_block = std::max(r.largest_free_block, free_run);
          return;
        }
        free_run = 0;
        auto& c = by_size[bytes];
        c.block_bytes = bytes;
        ++c.count;
        c.total_bytes += bytes;
      });
  if (r.cached_bytes > 0)
    r.fragmentation = 1.0 - static_cast<double>(r.largest_free_block) / static_cast<double>(r.cached_bytes);
  for (const auto& [size, use] : by_size) r.top_size_classes.push_back(use);
  std::sort(r.top_size_classes.begin(), r.top_size_classes.end(), [](const auto& a, const auto& b) {
    return a.total_bytes != b.total_bytes ? a.total_bytes > b.total_bytes : a.block_bytes > b.block_bytes;
  });
  if (r.top_size_classes.size() > top) r.top_size_classes.resize(top);
  return r;
}

}  // namespace stash
