#pragma once
// fmt formatters for stash's statistics, in a header of their own so the core never needs fmt.
//   fmt::print("{}\n", allocator.stats());
// prints one line of byte counts (in MiB) and event counts.
#include <fmt/format.h>

#include "stash/memory_manager.hpp"
#include "stash/stats/stats.hpp"

template <>
struct fmt::formatter<stash::stats_snapshot> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  template <class FormatContext>
  auto format(const stash::stats_snapshot& s, FormatContext& ctx) const {
    constexpr double mib = 1024.0 * 1024.0;
    return fmt::format_to(
        ctx.out(),
        "allocated {:.2f} MiB (requested {:.2f}, peak {:.2f}), cached {:.2f} MiB, reserved {:.2f} MiB "
        "(peak {:.2f}); {} allocations, {} deallocations, {} cache hits, {} backend allocations, "
        "{} backend frees, {} OOM retries",
        s.allocated_bytes / mib, s.requested_bytes / mib, s.peak_allocated_bytes / mib, s.cached_bytes / mib,
        s.reserved_bytes / mib, s.peak_reserved_bytes / mib, s.allocations, s.deallocations, s.cache_hits,
        s.backend_allocations, s.backend_frees, s.oom_retries);
  }
};

template <>
struct fmt::formatter<stash::memory_stats> : fmt::formatter<stash::stats_snapshot> {
  template <class FormatContext>
  auto format(const stash::memory_stats& s, FormatContext& ctx) const {
    return fmt::formatter<stash::stats_snapshot>::format(s.detail, ctx);
  }
};
