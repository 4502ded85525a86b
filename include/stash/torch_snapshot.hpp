#pragma once
// Writes a stash allocator's state in the format of PyTorch's `torch.cuda.memory._snapshot()`, as the
// pickle file that PyTorch's memory viewers read: drag it onto https://pytorch.org/memory_viz, or run
// `python -m torch.cuda._memory_viz trace_plot snapshot.pickle -o out.html` (or `segment_plot`).
//
//   stash::device_caching_allocator pool;
//   stash::memory_history recorded(pool);             // torch's _record_memory_history: every event
//   ... recorded.allocate(n) / recorded.deallocate(p) ...
//   stash::write_torch_snapshot("snapshot.pickle", pool, &recorded);
//
// What is written (the keys _memory_viz.py and MemoryViz.js read):
//   segments: one per stretch of memory held from the backend (a cudaMalloc segment; a run of mapped
//     pages of a paged allocator, with is_expandable true, as PyTorch's expandable segments), each
//     with device, address, total_size, allocated_size, active_size, requested_size, stream (0),
//     segment_type ("large"), segment_pool_id ((0, 0)), is_expandable, frames ([]) and its blocks in
//     address order, covering it exactly: size, requested_size, address, state ("active_allocated" for
//     a live block, "inactive" for free memory) and frames ([]; stash records no stack traces).
//   device_traces: per device, the events a memory_history recorded: alloc, free_requested and
//     free_completed (a free is both, as PyTorch records a free without pending stream uses), with
//     addr, size (as asked for), stream, time_us and frames ([]).
// A pickle (protocol 2, written here) rather than JSON: the viewers read only pickles. It uses only
// the opcodes MemoryViz.js's unpickler knows.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stash/backend/backend.hpp"
#include "stash/detail/covering_walk.hpp"
#include "stash/error.hpp"
#include "stash/logging_adaptor.hpp"

namespace stash {

/// One event of a device trace, as PyTorch records it.
struct memory_event {
  enum class kind { alloc, free_requested, free_completed };
  kind action;
  std::uintptr_t addr;
  std::size_t size;        // as asked for
  std::uintptr_t stream;   // 0: the default stream
  std::int64_t time_us;    // microseconds since the history began
};

inline std::string_view to_string(memory_event::kind k) noexcept {
  switch (k) {
    case memory_event::kind::alloc: return "alloc";
    case memory_event::kind::free_requested: return "free_requested";
    case memory_event::kind::free_completed: return "free_completed";
  }
  return "alloc";
}

/// Records the allocations and frees made through it, keeping the last `max_entries` events (PyTorch's
/// _record_memory_history(max_entries=...)). A separate type over the allocator: nothing is recorded,
/// and nothing costs, unless the program allocates through it. Thread-safe as the allocator is; a free
/// is recorded once the allocator accepted it, with the history held, so the order is the real one.
template <loggable_allocator Allocator>
class memory_history {
 public:
  using upstream_type = Allocator;
  explicit memory_history(Allocator& upstream, std::size_t max_entries = 1000000)
      : upstream_(&upstream), max_entries_(max_entries) {}

  /// allocate(0) allocates nothing (the upstream returns nullptr) and records nothing.
  [[nodiscard]] void* allocate(std::size_t n) {
    void* p = upstream_->allocate(n);
    if (!p) return p;
    std::lock_guard guard(lock_);
    record(memory_event::kind::alloc, p, n);
    return p;
  }
  void deallocate(void* p) {
    if (!p) return;
    std::size_t n = 0;
    if constexpr (requires { upstream_->allocation_size(p); }) {
      try {
        n = upstream_->allocation_size(p);
      } catch (const error&) {
        return upstream_->deallocate(p);  // throws the upstream's error; nothing recorded
      }
    }
    std::lock_guard guard(lock_);
    upstream_->deallocate(p);
    record_free(p, n);
  }
  void deallocate(void* p, std::size_t n) {
    if (!p) return;
    std::lock_guard guard(lock_);
    if constexpr (requires { upstream_->deallocate(p, n); }) upstream_->deallocate(p, n);
    else upstream_->deallocate(p);
    record_free(p, n);
  }

  std::vector<memory_event> events() const {
    std::lock_guard guard(lock_);
    return {events_.begin(), events_.end()};
  }
  Allocator& get_upstream_resource() const noexcept { return *upstream_; }
  int device() const noexcept
    requires requires(const Allocator& a) { a.device(); }
  {
    return upstream_->device();
  }

 private:
  void record_free(const void* p, std::size_t n) {
    record(memory_event::kind::free_requested, p, n);
    record(memory_event::kind::free_completed, p, n);
  }
  void record(memory_event::kind k, const void* p, std::size_t n) {
    if (max_entries_ == 0) return;
    if (events_.size() == max_entries_) events_.pop_front();
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start_);
    events_.push_back({k, reinterpret_cast<std::uintptr_t>(p), n, 0, us.count()});
  }

  Allocator* upstream_;
  std::size_t max_entries_;
  mutable std::mutex lock_;
  std::deque<memory_event> events_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

namespace detail {

/// The pickle opcodes of protocol 2 a snapshot needs (a subset MemoryViz.js's unpickler reads).
class pickle_writer {
 public:
  pickle_writer() { out_ += "\x80\x02"; }  // PROTO 2
  void dict() { out_ += "}("; }            // EMPTY_DICT MARK ... end_dict
  void end_dict() { out_ += 'u'; }         // SETITEMS
  void list() { out_ += "]("; }            // EMPTY_LIST MARK ... end_list
  void end_list() { out_ += 'e'; }         // APPENDS
  void empty_list() { out_ += ']'; }
  void boolean(bool v) { out_ += v ? '\x88' : '\x89'; }  // NEWTRUE / NEWFALSE
  void text(std::string_view s) {                         // BINUNICODE
    out_ += 'X';
    le(s.size(), 4);
    out_ += s;
  }
  void integer(std::int64_t v) {
    if (v >= 0 && v < 256) {
      out_ += 'K';  // BININT1
      le(static_cast<std::uint64_t>(v), 1);
    } else if (v >= 0 && v < 65536) {
      out_ += 'M';  // BININT2
      le(static_cast<std::uint64_t>(v), 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      out_ += 'J';  // BININT
      le(static_cast<std::uint64_t>(v), 4);
    } else {
      out_ += '\x8a';  // LONG1: little-endian two's complement, as few bytes as keep the sign
      std::size_t n = 8;
      const auto u = static_cast<std::uint64_t>(v);
      while (n > 1) {
        const std::uint64_t top = (u >> (8 * (n - 1))) & 0xff, next_sign = (u >> (8 * (n - 1) - 1)) & 1;
        if ((v >= 0 && top == 0 && next_sign == 0) || (v < 0 && top == 0xff && next_sign == 1)) --n;
        else break;
      }
      out_ += static_cast<char>(n);
      le(u, n);
    }
  }
  void key(std::string_view k) { text(k); }

  /// One key and its value, an integer or a text: the scalars of the dicts a snapshot is made of.
  struct field {
    field(std::string_view k, std::int64_t v) noexcept : key(k), number(v) {}
    field(std::string_view k, std::string_view v) noexcept : key(k), words(v), is_text(true) {}
    std::string_view key;
    std::int64_t number = 0;
    std::string_view words;
    bool is_text = false;
  };
  /// The fields, in order, into the dict open now.
  void fields(std::initializer_list<field> list) {
    for (const field& f : list) {
      key(f.key);
      if (f.is_text) text(f.words);
      else integer(f.number);
    }
  }
  /// A dict of the fields and an empty "frames" list: every block and every trace entry of a
  /// snapshot (stash records no stack traces).
  void frameless_dict(std::initializer_list<field> list) {
    dict();
    fields(list);
    key("frames");
    empty_list();
    end_dict();
  }

  void pair_of_zeros() {  // the tuple (0, 0)
    integer(0);
    integer(0);
    out_ += '\x86';  // TUPLE2
  }
  std::string finish() {
    out_ += '.';  // STOP
    return std::move(out_);
  }

 private:
  void le(std::uint64_t v, std::size_t bytes) {
    for (std::size_t i = 0; i < bytes; ++i) out_ += static_cast<char>((v >> (8 * i)) & 0xff);
  }
  std::string out_;
};

}  // namespace detail

/// A snapshot under construction: the segments of one or more allocators (one per device) and the
/// device traces.
class torch_snapshot {
 public:
  struct block {
    std::uintptr_t address;
    std::size_t size;
    std::size_t requested;  // 0: free
  };
  struct segment {
    int device;
    std::uintptr_t address;
    std::size_t total_size;
    bool expandable;
    std::vector<block> blocks;  // address order, covering the segment exactly
  };

  /// Adds the memory `allocator` holds as device `device`'s segments (-1: the allocator's device, or 0
  /// for host memory).
  template <class Allocator>
  void add_segments(const Allocator& allocator, int device = -1) {
    if (device < 0) device = std::max(0, allocator.device());
    constexpr bool expandable = paged_backend<typename Allocator::backend_type>;
    detail::visit_covering(
        [&](auto&& region, auto&& block) { allocator.visit_memory(region, block); },
        [&](std::uintptr_t begin, std::size_t bytes) {
          segments_.push_back({device, begin, bytes, expandable, {}});
        },
        [&](std::uintptr_t addr, std::size_t bytes, std::size_t requested) {
          segments_.back().blocks.push_back({addr, bytes, requested});
        });
  }

  /// Adds events to device `device`'s trace.
  void add_trace(int device, const std::vector<memory_event>& events) {
    if (device < 0) device = 0;
    if (traces_.size() <= static_cast<std::size_t>(device))
      traces_.resize(static_cast<std::size_t>(device) + 1);
    auto& trace = traces_[static_cast<std::size_t>(device)];
    trace.insert(trace.end(), events.begin(), events.end());
  }

  const std::vector<segment>& segments() const noexcept { return segments_; }

  /// The snapshot as pickle bytes.
  std::string pickle() const {
    detail::pickle_writer w;
    w.dict();
    w.key("segments");
    if (segments_.empty()) w.empty_list();
    else {
      w.list();
      for (const auto& s : segments_) write_segment(w, s);
      w.end_list();
    }
    w.key("device_traces");
    std::size_t devices = traces_.size();
    for (const auto& s : segments_) devices = std::max(devices, static_cast<std::size_t>(s.device) + 1);
    if (devices == 0) devices = 1;
    w.list();
    for (std::size_t d = 0; d < devices; ++d) {
      if (d >= traces_.size() || traces_[d].empty()) {
        w.empty_list();
        continue;
      }
      w.list();
      for (const auto& e : traces_[d]) {
        w.frameless_dict({{"action", to_string(e.action)},
                          {"addr", static_cast<std::int64_t>(e.addr)},
                          {"size", static_cast<std::int64_t>(e.size)},
                          {"stream", static_cast<std::int64_t>(e.stream)},
                          {"time_us", static_cast<std::int64_t>(e.time_us)}});
      }
      w.end_list();
    }
    w.end_list();
    w.end_dict();
    return w.finish();
  }

  /// Writes pickle() to `file`; throws stash::error when it cannot.
  void write(const std::filesystem::path& file) const {
    const std::string bytes = pickle();
    std::ofstream out(file, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) throw error("torch_snapshot: cannot write " + file.string());
  }

 private:
  static void write_segment(detail::pickle_writer& w, const segment& s) {
    std::size_t allocated = 0, requested = 0;
    for (const auto& b : s.blocks)
      if (b.requested) allocated += b.size, requested += b.requested;
    w.dict();
    w.fields({{"device", static_cast<std::int64_t>(s.device)},
              {"address", static_cast<std::int64_t>(s.address)},
              {"total_size", static_cast<std::int64_t>(s.total_size)},
              {"allocated_size", static_cast<std::int64_t>(allocated)},
              {"active_size", static_cast<std::int64_t>(allocated)},
              {"requested_size", static_cast<std::int64_t>(requested)},
              {"stream", std::int64_t{0}},
              {"segment_type", "large"}});
    w.key("segment_pool_id");
    w.pair_of_zeros();
    w.key("is_expandable");
    w.boolean(s.expandable);
    w.key("frames");
    w.empty_list();
    w.key("blocks");
    w.list();
    for (const auto& b : s.blocks) {
      w.frameless_dict({{"address", static_cast<std::int64_t>(b.address)},
                        {"size", static_cast<std::int64_t>(b.size)},
                        {"requested_size", static_cast<std::int64_t>(b.requested)},
                        {"state", b.requested ? "active_allocated" : "inactive"}});
    }
    w.end_list();
    w.end_dict();
  }

  std::vector<segment> segments_;
  std::vector<std::vector<memory_event>> traces_;
};

/// One call: `allocator`'s segments, and the events `history` recorded (if any), written to `file`.
template <class Allocator, class History = memory_history<Allocator>>
void write_torch_snapshot(const std::filesystem::path& file, const Allocator& allocator,
                          const History* history = nullptr, int device = -1) {
  torch_snapshot snapshot;
  snapshot.add_segments(allocator, device);
  if (history) snapshot.add_trace(device < 0 ? std::max(0, allocator.device()) : device, history->events());
  snapshot.write(file);
}

}  // namespace stash
