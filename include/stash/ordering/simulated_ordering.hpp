#pragma once
// Streams and events without a GPU, for deterministic tests of stream-ordered allocation: the test
// makes streams, and decides when each recorded event completes (complete(), complete_stream(),
// complete_all()), so "the block freed on S is not handed to T before its event completes" is a
// sequence of calls with one right answer. A stream can be flagged as capturing a graph; recording an
// event on it, or making it wait on an event, is then counted as a capture violation (CUDA forbids
// the first and isolates captures from outside events), so a test can assert there were none.
//
// A stream can be destroyed (destroy()). Using a destroyed stream's handle is undefined behaviour in
// CUDA, so any call that passes one (check, is_capturing, record, wait as the waiter) counts as a
// destroyed-stream use and throws std::logic_error, which no allocator path expects: a test asserts
// destroyed_stream_uses() == 0. Events recorded before the destruction stay valid, as in CUDA.
//
// Stream order holds as on a GPU: completing an event completes every event recorded before it on the
// same stream, a host wait (synchronize) completes the event it waits for, and a device-wide
// synchronize completes every event; it is refused (returns false) while a stream captures.
//
// Not thread-safe, and every thread's cudaStreamPerThread is one stream to it: the allocator calls it
// under its own lock, but a test that completes events (allocator.ordering().complete...) while other
// threads call the allocator must serialize those calls with them.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
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
  /// The stream no longer exists: from now on every call that passes its handle is a destroyed-stream
  /// use. Its events stay valid.
  void destroy(stream s) {
    known_.erase(s.key());
    capturing_.erase(s.key());
    destroyed_.insert(s.key());
  }
  /// A new stream that the runtime gave the handle of a destroyed one: the runtime does so only once
  /// the old stream's work is done, so every event recorded on the old one completes.
  stream reuse_handle(stream destroyed) {
    complete_stream(destroyed);
    destroyed_.erase(destroyed.key());
    known_.insert(destroyed.key());
    return destroyed;
  }

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
    event_type after;  // the last event recorded (on any stream) before the wait: the waiter's events
                       // recorded from then on come after it
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
  /// Host waits: on one event, or device-wide (synchronize_device that was not refused).
  std::size_t host_waits() const noexcept { return host_waits_; }
  std::size_t device_syncs() const noexcept { return device_syncs_; }
  /// Calls that passed a destroyed stream's handle: always 0 for a correct allocator.
  std::size_t destroyed_stream_uses() const noexcept { return destroyed_uses_; }
  /// Events recorded and not yet released: what a real policy would hold handles for.
  std::size_t unreleased_events() const noexcept { return events_.size() - released_; }
  std::size_t capture_violations() const noexcept { return capture_violations_; }
  /// Checks of handles the simulation did not know (each also threw invalid_stream).
  std::size_t rejected_streams() const noexcept { return rejected_; }

  // ---- the allocator's side (ordering_policy) ----------------------------------------------------

  void check(stream s) {
    refuse_destroyed(s, "check");
    if (known_.count(s.key())) return;
    ++rejected_;
    throw invalid_stream(s.native_handle(), "not a stream of this simulation");
  }
  bool is_capturing(stream s) {
    refuse_destroyed(s, "is_capturing");
    return capturing_.count(s.key()) != 0;
  }
  event_type record(stream s) {
    refuse_destroyed(s, "record");
    if (!known_.count(s.key())) throw invalid_stream(s.native_handle(), "cannot record an event on it");
    auto& on_stream = by_stream_[s.key()];  // the host memory first: a bad_alloc records nothing
    if (on_stream.size() == on_stream.capacity())
      on_stream.reserve(std::max<std::size_t>(8, 2 * on_stream.size()));
    events_.push_back({s.key(), false, false});
    if (capturing_.count(s.key())) ++capture_violations_;
    const event_type e = events_.size();
    on_stream.push_back(e);  // reserved: cannot throw
    return e;
  }
  bool query(event_type e) {
    ++queries_;
    return events_.at(e - 1).complete;
  }
  void wait(stream s, event_type e) {
    refuse_destroyed(s, "wait");
    if (capturing_.count(s.key())) ++capture_violations_;
    waits_.push_back({s, e, static_cast<event_type>(events_.size())});
  }
  void synchronize(event_type e) {
    ++host_waits_;
    complete(e);
  }
  /// Every event completes, and so does the work queued before it on every stream (destroyed ones
  /// too); refused while a stream captures.
  bool synchronize_device() {
    if (!capturing_.empty()) return false;
    ++host_waits_;
    ++device_syncs_;
    complete_all();
    return true;
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
  std::unordered_set<std::uintptr_t> known_ = default_streams();
  /// nullptr, cudaStreamLegacy and cudaStreamPerThread. Inserted one by one: GCC 12 at -O3 took a brace
  /// list here, inlined into a test's constructor, for a dangling pointer (-Wdangling-pointer).
  static std::unordered_set<std::uintptr_t> default_streams() {
    std::unordered_set<std::uintptr_t> known;
    known.insert(0);
    known.insert(1);
    known.insert(2);
    return known;
  }
  std::unordered_set<std::uintptr_t> destroyed_;
  std::unordered_set<std::uintptr_t> capturing_;
  std::vector<event_state> events_;
  std::unordered_map<std::uintptr_t, std::vector<event_type>> by_stream_;
  std::vector<wait_record> waits_;
  std::size_t queries_ = 0, host_waits_ = 0, released_ = 0, capture_violations_ = 0, rejected_ = 0;
  std::size_t double_releases_ = 0, device_syncs_ = 0, destroyed_uses_ = 0;

  void refuse_destroyed(stream s, const char* call) {
    if (!destroyed_.count(s.key())) [[likely]]
      return;
    ++destroyed_uses_;
    throw std::logic_error(std::string("simulated_ordering::") + call +
                           " was passed a destroyed stream's handle");
  }
};

static_assert(ordering_policy<simulated_ordering>);

}  // namespace stash
