#pragma once
// counting_ordering: stream order without a GPU, for measuring what the stream layer asks of its
// ordering policy. Every event completes as soon as it is recorded (as on a GPU whose streams have no
// queued work, which is what a trace replay is), nothing captures, and every call is counted: on a
// GPU each one is a CUDA runtime call (cuda_event_ordering) costing 100 ns or more, so calls per
// operation are what the fast path's time on the GPU follows. Not host-ordered, so the allocator
// keeps its whole stream layer, exactly as with cuda_event_ordering.
//
// With a lag, the GPU runs behind the host as it does under a real workload: an event completes only
// once `lag` more events have been recorded after it (or a host wait has covered it). `stash-lagged`
// replays with a lag of 2, so that the frees of the epoch a miss closes are not yet ready when that
// miss looks for pages to move: what a training step's large allocations meet on a GPU.
#include <cstdint>

#include "stash/ordering/ordering.hpp"

namespace stash::bench {

class counting_ordering {
 public:
  using event_type = std::uint64_t;
  static constexpr bool host_ordered = false;

  explicit counting_ordering(std::uint64_t lag = 0) noexcept : lag_(lag) {}

  struct counters {
    std::uint64_t checks = 0, capture_checks = 0, records = 0, queries = 0, waits = 0, host_waits = 0,
                  device_syncs = 0, releases = 0;
    std::uint64_t total() const noexcept {
      return checks + capture_checks + records + queries + waits + host_waits + device_syncs;
    }
  };

  void check(stream) noexcept { ++counters_.checks; }
  bool is_capturing(stream) noexcept {
    ++counters_.capture_checks;
    return false;
  }
  event_type record(stream) noexcept {
    ++counters_.records;
    return ++last_;
  }
  bool query(event_type e) noexcept {
    ++counters_.queries;
    return e <= synchronized_ || last_ - e >= lag_;
  }
  void wait(stream, event_type) noexcept { ++counters_.waits; }
  void synchronize(event_type e) noexcept {
    ++counters_.host_waits;
    if (e > synchronized_) synchronized_ = e;
  }
  bool synchronize_device() noexcept {
    ++counters_.device_syncs;
    synchronized_ = last_;
    return true;
  }
  void release(event_type) noexcept { ++counters_.releases; }  // pooled by cuda_event_ordering: no runtime call

  const counters& stats() const noexcept { return counters_; }

 private:
  counters counters_;
  event_type last_ = 0;
  event_type synchronized_ = 0;  // every event up to this one was waited for on the host
  std::uint64_t lag_ = 0;
};

static_assert(ordering_policy<counting_ordering>);

}  // namespace stash::bench
