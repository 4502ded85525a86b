#pragma once
// The reference model of stream order, for the stream tests and the fuzz harness: a block freed on a
// stream must reach another stream only after an event recorded on the freeing stream (after the
// free) has completed, or after the receiving stream was made to wait for such an event. It reads
// the events and waits from simulated_ordering, so it holds whatever the allocator batched. A
// device-wide synchronize (empty_cache, the out-of-memory retry) covers every free made before it.
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "stash/ordering/simulated_ordering.hpp"
#include "stash/stream.hpp"

namespace stash_test {

/// Frees whose memory other streams must not get yet. A free made on stream u (after `events_before`
/// events had been recorded in all) is covered on u once an event recorded on u after it has completed,
/// or the receiving stream was made to wait for such an event.
struct pending_free {
  std::uintptr_t begin, end;
  std::vector<stash::stream> uses;  // streams whose work may still touch it
  stash::stream own;                // reusable on this stream at once (none for a cross-stream free)
  bool has_own;
  std::size_t events_before;
  std::size_t device_syncs_before;
};

class stream_model {
  static std::uintptr_t model_address(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }

 public:
  explicit stream_model(const stash::simulated_ordering& o) : o_(o) {}

  /// How far the simulation had got: taken just before a free, since the free itself may record
  /// events after it (closing an epoch whose close was requested), and those cover it.
  struct mark {
    std::size_t events, device_syncs;
  };
  mark now() const noexcept { return {o_.records(), o_.device_syncs()}; }

  void freed(const void* p, std::size_t n, std::vector<stash::stream> uses, bool has_own, stash::stream own,
             mark before) {
    pending_.push_back({model_address(p), model_address(p) + n, std::move(uses), own, has_own, before.events,
                        before.device_syncs});
  }

  /// Whether [p, p + n) handed out on stream `to` overlaps a free not yet safe for `to`.
  bool violates(const void* p, std::size_t n, stash::stream to) const {
    for (const pending_free& f : pending_) {
      if (model_address(p) >= f.end || f.begin >= model_address(p) + n) continue;
      for (stash::stream u : f.uses) {
        if (f.has_own && u == to && f.own == to) continue;
        if (!covered(f, u, to)) return true;
      }
    }
    return false;
  }

  /// Calls f(page address) for every page under a free that some stream's work may still touch.
  template <class F>
  void for_each_pending_page(std::size_t page, F&& f) const {
    const stash::stream nobody(reinterpret_cast<CUstream_st*>(UINTPTR_MAX));  // waited for by no one
    for (const pending_free& x : pending_) {
      bool pending = false;
      for (stash::stream u : x.uses) pending = pending || !covered(x, u, nobody);
      if (!pending) continue;
      for (std::uintptr_t pg = x.begin / page * page; pg < x.end; pg += page) f(pg);
    }
  }

 private:
  /// Whether the work of f's free on u is done before new work on `to`: a device-wide synchronize
  /// since, an event of u recorded since that has completed, or `to` ordered after such an event by
  /// waits, directly or through other streams (CUDA's order is transitive: an event recorded on v after
  /// v waited for u's event completes after it).
  bool covered(const pending_free& f, stash::stream u, stash::stream to) const {
    if (o_.device_syncs() > f.device_syncs_before) return true;
    for (std::size_t e = f.events_before + 1; e <= o_.records(); ++e)
      if (o_.is_complete(e) && (o_.stream_of(e) == u || after_u(o_.stream_of(e), e, u, f.events_before, 0)))
        return true;
    return after_u(to, SIZE_MAX, u, f.events_before, 0);
  }
  /// Whether the work queued on v before event `before` (SIZE_MAX: v's next work) comes after an event
  /// of u recorded after `since`, through the waits queued on v before then.
  bool after_u(stash::stream v, std::size_t before, stash::stream u, std::size_t since, int depth) const {
    for (const auto& w : o_.waits()) {
      if (w.waiter != v || w.after >= before || w.event <= since) continue;
      const stash::stream from = o_.stream_of(w.event);
      if (from == u) return true;
      if (depth < 4 && from != v && after_u(from, w.event, u, since, depth + 1)) return true;
    }
    return false;
  }
  const stash::simulated_ordering& o_;
  std::vector<pending_free> pending_;
};

}  // namespace stash_test
