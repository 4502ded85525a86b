#pragma once
// Streams and events without a GPU, for deterministic tests of stream-ordered allocation: the test
// makes streams, and decides when each recorded event completes (complete(), complete_stream(),
// complete_all()), so "the block freed on S is not handed to T before its event completes" is a
// sequence of calls with one right answer. A stream can be flagged as capturing a graph; recording an
// event on it, or making it wait on an event, is then counted as a capture violation (CUDA forbids
// the first and isolates captures from outside events), so a test can assert there were none.
//
// Stream order holds as on a GPU: completing an event completes every event recorded before it on the
// same stream, and a host wait (synchronize) completes the event it waits for.
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "stash/error.hpp"
#include "stash/ordering/ordering.hpp"

namespace stash {

class simulated_ordering {
 public:
  using event_type = std::uint64_t;  // 1, 2, ... in the order recorded
  static constexpr bool host_ordered = false;

  // ---- the test's side ---------------------------------------------------------------------------

  /// A new stream (a fake handle, never dereferenced). The legacy, per-thread and nullptr default
  /// streams exist from the start.
  stream make_stream() {
    const auto handle = reinterpret_cast<stream::native_handle_type>(next_handle_);
    next_handle_ += 0x100;
    known_.insert(stream(handle).key());
    return stream(handle);
  }
  /// The stream no longer exists: check() rejects it from now on.
  void destroy_stream(stream s) { known_.erase(s.key()); }

  /// Completes e and every event recorded before it on the same stream.
  void complete(event_type e) {
    const std::uintptr_t s = events_.at(e - 1).stream;
    for (event_type x : by_stream_[s]) {
      if (x > e) break;
      events_[x - 1].complete = true;
    }
  }
  /// Completes every event recorded on s so far.
  void complete_stream(stream s) {
    for (event_type x : by_stream_[s.key()]) events_[x - 1].complete = true;
  }
  void complete_all() {
    for (auto& e : events_) e.complete = true;
  }
  void set_capturing(stream s, bool on) {
    if (on) capturing_.insert(s.key());
    else capturing_.erase(s.key());
  }

  struct wait_record {
    stream waiter;
    event_type event;
  };
  /// Every wait() in order: which stream was made to wait for which event.
  const std::vector<wait_record>& waits() const noexcept { return waits_; }
  /// The stream an event was recorded on.
  stream stream_of(event_type e) const {
    return stream(reinterpret_cast<stream::native_handle_type>(events_.at(e - 1).stream));
  }
  bool is_complete(event_type e) const { return events_.at(e - 1).complete; }
  /// Events recorded on s so far (released or not).
  std::size_t recorded_on(stream s) const {
    const auto it = by_stream_.find(s.key());
    return it == by_stream_.end() ? 0 : it->second.size();
  }
  std::size_t records() const noexcept { return events_.size(); }
  std::size_t queries() const noexcept { return queries_; }
  std::size_t host_waits() const noexcept { return host_waits_; }
  /// Events recorded and not yet released: what a real policy would hold handles for.
  std::size_t unreleased_events() const noexcept { return events_.size() - released_; }
  std::size_t capture_violations() const noexcept { return capture_violations_; }
  /// Checks of handles the simulation did not know (each also threw invalid_stream).
  std::size_t rejected_streams() const noexcept { return rejected_; }

  // ---- the allocator's side (ordering_policy) ----------------------------------------------------

  void check(stream s) {
    if (known_.count(s.key())) return;
    ++rejected_;
    throw invalid_stream(s.native_handle(), "not a stream of this simulation (never made, or destroyed)");
  }
  bool is_capturing(stream s) const { return capturing_.count(s.key()) != 0; }
  /// A destroyed stream throws invalid_stream, as cuda_event_ordering does.
  event_type record(stream s) {
    if (!known_.count(s.key()))
      throw invalid_stream(s.native_handle(), "cannot record an event on it: destroyed");
    if (is_capturing(s)) ++capture_violations_;
    events_.push_back({s.key(), false, false});
    const event_type e = events_.size();
    by_stream_[s.key()].push_back(e);
    return e;
  }
  bool query(event_type e) {
    ++queries_;
    return events_.at(e - 1).complete;
  }
  void wait(stream s, event_type e) {
    if (is_capturing(s)) ++capture_violations_;
    waits_.push_back({s, e});
  }
  void synchronize(event_type e) {
    ++host_waits_;
    complete(e);
  }
  void release(event_type e) noexcept {
    if (e == 0 || e > events_.size() || events_[e - 1].released) {
      ++double_releases_;
      return;
    }
    events_[e - 1].released = true;
    ++released_;
  }
  /// Events released twice or never recorded: always 0 for a correct allocator.
  std::size_t bad_releases() const noexcept { return double_releases_; }

 private:
  struct event_state {
    std::uintptr_t stream;
    bool complete;
    bool released;
  };
  std::uintptr_t next_handle_ = 0x5000;
  std::unordered_set<std::uintptr_t> known_{0, 1, 2};  // nullptr, cudaStreamLegacy, cudaStreamPerThread
  std::unordered_set<std::uintptr_t> capturing_;
  std::vector<event_state> events_;
  std::unordered_map<std::uintptr_t, std::vector<event_type>> by_stream_;
  std::vector<wait_record> waits_;
  std::size_t queries_ = 0, host_waits_ = 0, released_ = 0, capture_violations_ = 0, rejected_ = 0;
  std::size_t double_releases_ = 0;
};

static_assert(ordering_policy<simulated_ordering>);

}  // namespace stash
