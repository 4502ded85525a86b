#pragma once
// Reads an allocation trace in the CSV format of RMM's logging_resource_adaptor
// (`Thread,Time,Action,Pointer,Size,Stream`) into a flat list of operations a replay can run without
// looking anything up: every pointer of the trace is resolved here, once, to an index into an array
// of `void*` slots, so the timed loop does no hashing.
//
// Slots are recycled: a slot freed by the trace is handed to the next allocation, so the slot array
// is as long as the most blocks ever live at once and stays in cache.
//
// What the trace may contain that a replay cannot use is skipped and counted, not fatal:
//   - a free of an address that is not live (never allocated, or freed already: traces recorded from
//     a ring buffer start with frees of blocks allocated before recording began);
//   - RMM's `allocate failure` lines (an allocation that failed upstream: nothing to replay).
// Anything malformed (missing column, unknown action, bad number, allocation of a live address, a
// size above max_allocation_size, more bytes live at once than a 64-bit count holds) is a
// trace_error naming the file and the line.
#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <istream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "stash/buckets/power_of_two_buckets.hpp"
#include "stash/buckets/segregated_fit_buckets.hpp"

namespace stash::bench {

/// The largest allocation a trace may hold: stash's max_size() (every bucket policy's limit), so a
/// replay never asks an allocator for more than it can accept.
inline constexpr std::size_t max_allocation_size = segregated_fit_buckets::max_size;
static_assert(max_allocation_size == power_of_two_buckets::max_size);

class trace_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct trace_op {
  std::size_t size;    // bytes asked for (a free carries the size of the allocation it ends)
  std::uint32_t slot;  // index into the replay's slot array
  bool is_free;
  std::uint8_t stream = 0;  // index into trace::streams: the stream of the allocate or free line
};

struct trace {
  std::string name;                       // file stem
  std::vector<trace_op> ops;              // in trace order
  std::vector<trace_op> live_at_end;      // frees of the blocks the trace leaves live
  std::size_t slot_count = 0;             // most blocks live at once
  std::size_t peak_live_bytes = 0;        // high tide of the bytes live, as asked for
  std::size_t allocations = 0;
  std::size_t frees = 0;
  std::size_t skipped_frees = 0;          // frees of an address that was not live
  std::size_t skipped_failures = 0;       // `allocate failure` lines
  std::vector<std::uint64_t> streams;     // the Stream column's distinct values, first seen first
                                          // ({0}, the default stream, when there is no such column)
};

namespace detail {

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

inline std::vector<std::string_view> split_csv(std::string_view line) {
  std::vector<std::string_view> fields;
  for (;;) {
    const auto comma = line.find(',');
    fields.push_back(trim(line.substr(0, comma)));
    if (comma == std::string_view::npos) return fields;
    line.remove_prefix(comma + 1);
  }
}

/// Parses all of `text` as an unsigned number in `base`; false if anything is left over.
inline bool parse_number(std::string_view text, int base, std::uint64_t& out) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  return ec == std::errc{} && end == text.data() + text.size();
}

inline bool parse_pointer(std::string_view text, std::uint64_t& out) {
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) text.remove_prefix(2);
  return parse_number(text, 16, out);
}

}  // namespace detail

/// Parses a whole trace; `source` names it in error messages and `name` becomes trace::name.
inline trace parse_trace(std::istream& in, std::string name, const std::string& source) {
  trace t;
  t.name = std::move(name);
  std::size_t line_no = 0;
  auto fail = [&](const std::string& why) -> trace_error {
    return trace_error(source + ":" + std::to_string(line_no) + ": " + why);
  };

  // Columns are found by name, so a trace with its columns in another order still reads.
  std::string line;
  std::size_t action_col = 0, pointer_col = 0, size_col = 0, columns = 0;
  std::size_t stream_col = SIZE_MAX;  // optional
  {
    bool have_header = false;
    while (!have_header && std::getline(in, line)) {
      ++line_no;
      if (detail::trim(line).empty()) continue;
      const auto header = detail::split_csv(line);
      bool have_action = false, have_pointer = false, have_size = false;
      for (std::size_t i = 0; i < header.size(); ++i) {
        if (header[i] == "Action") action_col = i, have_action = true;
        if (header[i] == "Pointer") pointer_col = i, have_pointer = true;
        if (header[i] == "Size") size_col = i, have_size = true;
        if (header[i] == "Stream") stream_col = i;
      }
      if (!have_action || !have_pointer || !have_size)
        throw fail("expected a header naming the columns Action, Pointer and Size "
                   "(RMM logging_resource_adaptor: Thread,Time,Action,Pointer,Size,Stream), got '" +
                   line + "'");
      columns = header.size();
      have_header = true;
    }
    if (!have_header) throw fail("empty trace: no header line");
  }

  struct live_block {
    std::uint32_t slot;
    std::size_t size;
    std::uint8_t stream;
  };
  std::unordered_map<std::uint64_t, live_block> live;  // trace address -> its slot while live
  std::vector<std::uint32_t> free_slots;
  std::size_t live_bytes = 0;

  while (std::getline(in, line)) {
    ++line_no;
    if (detail::trim(line).empty()) continue;
    const auto fields = detail::split_csv(line);
    if (fields.size() != columns)
      throw fail("expected " + std::to_string(columns) + " comma-separated fields, got " +
                 std::to_string(fields.size()));
    const std::string_view action = fields[action_col];
    std::uint64_t address = 0;
    if (action == "allocate failure") {
      ++t.skipped_failures;
      continue;
    }
    if (action != "allocate" && action != "free")
      throw fail("unknown action '" + std::string(action) + "' (expected allocate or free)");
    if (!detail::parse_pointer(fields[pointer_col], address))
      throw fail("bad pointer '" + std::string(fields[pointer_col]) + "' (expected hexadecimal)");
    std::uint64_t handle = 0;
    if (stream_col != SIZE_MAX && !detail::parse_pointer(fields[stream_col], handle))
      throw fail("bad stream '" + std::string(fields[stream_col]) + "' (expected a hexadecimal handle)");
    std::uint64_t size = 0;  // a free repeats its allocation's size: checked as a number, not used
    if (!detail::parse_number(fields[size_col], 10, size))
      throw fail("bad size '" + std::string(fields[size_col]) + "' (expected a decimal byte count)");
    // The stream's index, taken only for an operation that is replayed (a skipped free names no stream).
    auto stream_index = [&]() -> std::uint8_t {
      if (stream_col == SIZE_MAX) return 0;
      auto known = std::find(t.streams.begin(), t.streams.end(), handle);
      if (known == t.streams.end()) {
        if (t.streams.size() == 256) throw fail("more than 256 distinct streams");
        t.streams.push_back(handle);
        known = t.streams.end() - 1;
      }
      return static_cast<std::uint8_t>(known - t.streams.begin());
    };

    if (action == "free") {
      const auto it = live.find(address);
      if (it == live.end()) {
        ++t.skipped_frees;
        continue;
      }
      const std::uint8_t stream = stream_index();
      t.ops.push_back({it->second.size, it->second.slot, true, stream});
      free_slots.push_back(it->second.slot);
      live_bytes -= it->second.size;
      live.erase(it);
      ++t.frees;
      continue;
    }

    if (size == 0) throw fail("allocation of 0 bytes");
    if (size > max_allocation_size)
      throw fail("allocation of " + std::to_string(size) + " bytes, above the allocators' limit of " +
                 std::to_string(max_allocation_size));
    if (live_bytes > SIZE_MAX - size) throw fail("more bytes live at once than a 64-bit count holds");
    if (live.contains(address))
      throw fail("allocation of address " + std::string(fields[pointer_col]) +
                 " which is already live (no free between two allocations)");
    const std::uint8_t stream = stream_index();
    std::uint32_t slot;
    if (free_slots.empty()) {
      slot = static_cast<std::uint32_t>(t.slot_count++);
    } else {
      slot = free_slots.back();
      free_slots.pop_back();
    }
    live.emplace(address, live_block{slot, static_cast<std::size_t>(size), stream});
    t.ops.push_back({static_cast<std::size_t>(size), slot, false, stream});
    live_bytes += size;
    if (live_bytes > t.peak_live_bytes) t.peak_live_bytes = live_bytes;
    ++t.allocations;
  }

  if (t.streams.empty()) t.streams.push_back(0);
  t.live_at_end.reserve(live.size());
  for (const auto& [address, block] : live) t.live_at_end.push_back({block.size, block.slot, true, block.stream});
  std::sort(t.live_at_end.begin(), t.live_at_end.end(),  // hash order is not reproducible
            [](const trace_op& a, const trace_op& b) { return a.slot < b.slot; });
  return t;
}

inline trace parse_trace_string(std::string_view text, std::string name = "inline") {
  std::istringstream in{std::string(text)};
  return parse_trace(in, name, name);
}

inline trace read_trace(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw trace_error(file.string() + ": cannot open");
  return parse_trace(in, file.stem().string(), file.string());
}

/// Every `*.csv` under `dir`, sorted by name so runs are reproducible.
inline std::vector<std::filesystem::path> list_traces(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().extension() == ".csv") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace stash::bench
