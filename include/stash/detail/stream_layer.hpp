#pragma once
// The caching allocator's stream layer: what it knows of the streams blocks are freed on, and when a
// block freed on one stream may be handed out on another.
//
// Whose handle is touched. The layer passes a stream's handle to the ordering policy (records an event
// on it, asks whether it captures, makes it wait) only inside a call that names that stream: an
// allocate, deallocate or record_stream on it, where by the caller's contract the stream is alive (the
// contract RMM and PyTorch have). A stream may be destroyed at any time after its last call, and using
// a destroyed stream's handle is undefined behaviour in CUDA, so the handles of other streams are never
// used. Events stay valid after their stream is destroyed: querying and waiting on events already
// recorded is safe from any call.
//
// Epochs. The frees made on a stream between two event records form one epoch and share one event:
// events are recorded per batch, not per free. A free block remembers the stream it was freed on (its
// owner) and the epoch (seq); it is ready, usable on every stream, once its owner's retired_seq has
// reached that epoch. On its owner it is usable at once: stream order makes that safe. The allocator
// tests this with usable_on(), one comparison or two, inline in its fast path.
//
// Closing an epoch (recording its event) happens in a call on its own stream (or in any call for the
// legacy default stream, which is never destroyed): when that call misses the cache, at the free that
// makes its open epoch 8192 frees long, after every free on a per-thread default stream, and at the
// next call on the stream after a close was requested. A close is requested for every stream with
// frees in its open epoch when a call on another stream misses the cache or the cache is trimmed. All
// of these are one number per stream, close_at: the free path compares the open epoch's length with
// it, one comparison, and a request sets it to 0.
//
// Synchronizing. empty_cache() and the out-of-memory retry wait on the host. They close the legacy
// default stream's epoch and wait for recorded events; only when some other stream still has frees
// with no event recorded does the ordering policy synchronize the device, after which every epoch of
// every stream, open or recorded, has completed, destroyed streams' included, without a stream handle
// being used. (A device-wide synchronize breaks a graph capture that another thread runs, whatever
// the capture mode; so it happens only when nothing else can tell when those frees are safe.) A stream
// destroyed with frees in its open epoch keeps them pending until then, or until its handle names a live
// stream again (the runtime hands a handle out again only after the old stream's work is done) and a call on
// it closes the epoch; on that handle they are reusable at once.
//
// Cross blocks. A block used on more than one stream (record_stream, or freed on a stream other than
// the one it was allocated on) waits for the epoch open at its free on every one of those streams.
// Its owner is then `nobody`, a tag no stream matches and no epoch retires; when its epochs have all
// completed, reclaim() makes it ready by clearing its owner.
//
// Pages. With a paged backend, a page under a free block that is not ready may not be moved or
// unmapped: the allocator finds those blocks (ready() false) when it picks pages to move or give back,
// a slow path, so that a free costs the layer no work per page.
//
// Capture. While a stream captures a graph no event is recorded on it and no stream is made to wait
// on one of its epochs, so a block freed during a capture is not handed to another stream until the
// capture has ended and an event recorded after it has completed. A device-wide synchronize that the
// runtime refuses because a capture is underway waits only for the epochs already recorded.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "stash/detail/block.hpp"
#include "stash/error.hpp"
#include "stash/ordering/ordering.hpp"
#include "stash/stream.hpp"

namespace stash::detail {

/// A stream as the allocator's blocks refer to it.
struct stream_tag {
  std::uintptr_t key = 0;         // the stream handle
  std::uint64_t open_seq = 1;     // the epoch collecting frees now
  std::uint64_t retired_seq = 0;  // every epoch up to this one has completed on the GPU
  bool referenced = false;        // forget_unused: a block refers to it
};

/// Whether free block b may be handed out on stream `to` now.
inline bool usable_on(const block* b, const stream_tag* to) noexcept {
  return b->owner == to || b->owner == nullptr || b->owner->retired_seq >= b->seq;
}
/// Whether free block b may be handed out on any stream (and its memory given back).
inline bool ready(const block* b) noexcept { return b->owner == nullptr || b->owner->retired_seq >= b->seq; }

template <ordering_policy Ordering>
class stream_layer {
  using event_type = typename Ordering::event_type;

 public:
  /// An open epoch is closed (its event recorded) at the free that makes it this long, so that frees
  /// keep becoming ready (their pages movable, their segments releasable) while a single stream
  /// works from its own cache. A close and its retire make four runtime calls, 1.1-1.4 us of host
  /// time on an H200; at 1024 the warm replays ran 1.2-5.5% slower per op than at 8192 (llama 4.2%),
  /// more than the calls alone, and held the same memory on the simulated device, lagged or not, as
  /// at 8192 or never (a miss closes its stream's epoch anyway; bench/RESULTS.md, twenty-fifth session).
  static constexpr std::size_t frees_per_epoch = 8192;

  struct counters {
    std::uint64_t epochs_recorded = 0;
    std::uint64_t epochs_retired = 0;
    std::uint64_t cross_blocks = 0;     // blocks freed after use on several streams
    std::uint64_t waits = 0;            // streams made to wait on another stream's epoch
    std::uint64_t close_requests = 0;   // epochs another stream's miss or a trim asked their owner to close
    std::uint64_t device_syncs = 0;     // device-wide host waits (empty_cache, out of memory)
    std::uint64_t host_waits = 0;       // epochs waited for on the host when the device could not be
    std::uint64_t capture_skips = 0;    // epochs left open because their stream was capturing, and
                                        // device-wide waits refused because a capture was underway
    std::uint64_t streams_forgotten = 0;  // streams forget_unused dropped (empty_cache, and while running)
  };

  explicit stream_layer(Ordering ordering = Ordering{}) noexcept : ordering_(std::move(ordering)) {}
  stream_layer(const stream_layer&) = delete;
  stream_layer& operator=(const stream_layer&) = delete;
  ~stream_layer() {
    for (auto& [key, s] : streams_)
      for (epoch& e : s->recorded) ordering_.release(e.event);
  }

  Ordering& ordering() noexcept { return ordering_; }
  const Ordering& ordering() const noexcept { return ordering_; }
  const counters& stats() const noexcept { return counters_; }
  std::size_t stream_count() const noexcept { return streams_.size(); }
  /// Nothing freed is waiting for the GPU: every free block is ready.
  bool settled() const noexcept { return pending_streams() == 0 && cross_.empty(); }

  /// The tag of stream s, named by the caller: made on first use after the ordering policy has checked
  /// the handle (stash::invalid_stream; nothing changes then). A close requested for s happens here.
  stream_tag* tag(stream s) {
    return tag(s, [](std::size_t, stream_tag*) noexcept {});
  }
  /// As tag(s), and where s is not the stream the last call named, on_switch(stream_count(), tag) after
  /// the lookup (for what depends on how many streams the allocator serves).
  template <class OnSwitch>
  stream_tag* tag(stream s, OnSwitch&& on_switch) {
    if (key_of(s) == last_key_) [[likely]]
      return last_;
    stream_tag* const t = find_or_add(s);
    on_switch(stream_count(), t);
    return t;
  }
  /// How the layer keys a stream: stream::ordering_key (cudaStreamPerThread per calling thread).
  static std::uintptr_t key_of(stream s) noexcept { return s.ordering_key(); }
  /// After a free on t, in the call that named t: t's epoch is closed once it is frees_per_epoch
  /// long, if that was requested, and always for a per-thread default stream (no other thread can
  /// record on it). Never throws: an epoch that cannot be closed stays open, and stays due.
  void after_free(stream_tag* t) noexcept {
    state* s = as_state(t);
    if (s->open_frees < s->close_at) [[likely]]
      return;
    close_as_due(*s);
  }
  /// The tag every cross block is owned by: no stream has it and no epoch of it ever retires.
  stream_tag* nobody() noexcept { return &nobody_; }

  /// A block freed on its own stream: returns the epoch to stamp it with.
  std::uint64_t note_free(stream_tag* t) noexcept {
    ++as_state(t)->open_frees;
    return t->open_seq;
  }
  /// Whether the stream t names is capturing a graph now; only for the stream the call names.
  bool capturing(const stream_tag* t) { return ordering_.is_capturing(static_cast<const state*>(t)->handle); }

  /// Makes b a cross block: used on every stream of `uses` (its own included), ready once the epoch
  /// open now on each of them has completed.
  template <class Tags>
  void add_cross(block* b, const Tags& uses) {
    cross_entry entry{b, {}};
    entry.tickets.reserve(uses.size());
    for (stream_tag* t : uses) entry.tickets.push_back({as_state(t), t->open_seq});
    cross_.push_back(std::move(entry));  // the only step that can throw comes before any change
    for (stream_tag* t : uses) ++as_state(t)->open_frees;
    b->owner = &nobody_;
    b->seq = 1;
    ++counters_.cross_blocks;
  }

  /// Closes the epoch of `on`, the stream the call names (none: trim_cache), requests a close from
  /// every other stream with frees in its open epoch, retires the epochs that have completed, oldest
  /// first on each stream, and makes ready the cross blocks whose epochs have all completed. Never
  /// blocks the host. Returns how many epochs and cross blocks were retired.
  /// Not all-or-nothing: closing `on` may throw (the policy's error, or std::bad_alloc for the event's
  /// record) after the streams walked before it have had their closes requested and their completed
  /// epochs retired. Those stay: each is true of the GPU, and only makes memory reusable sooner (the
  /// caller keeps a deferred trim due for them: caching_allocator::reclaim).
  std::size_t reclaim(stream_tag* on) {
    std::size_t retired = 0;
    for (auto& [key, s] : streams_) {
      if (s.get() == on) close(*s);
      else if (always_alive(*s)) close_or_request(*s);  // no call names it: trim_cache
                                                        // asks the heap for nothing
      else if (has_open_frees(*s)) request_close(*s);
      retired += retire_completed(*s);
    }
    return retired + settle_cross();
  }

  /// What empty_cache() and the out-of-memory retry do: waits on the host until every epoch of every
  /// stream, open or recorded, has completed, and retires them all, through a device-wide synchronize
  /// of the ordering policy; no stream handle is used. When the policy cannot synchronize the device
  /// (a graph capture is underway), waits for the recorded epochs only, and the open ones stay pending.
  /// Returns how many epochs and cross blocks were retired.
  std::size_t synchronize() {
    if (settled()) return 0;
    std::size_t retired = 0;
    bool unrecorded = false;  // frees no recorded event covers, on a stream whose handle may be gone
    for (auto& [key, s] : streams_) {
      if (always_alive(*s)) close_or_request(*s);  // one that cannot be recorded (no host memory) is waited
      unrecorded = unrecorded || has_open_frees(*s);  // for by the device-wide synchronize below
    }
    if (!unrecorded) {  // recorded events say it all: no device-wide wait
      for (auto& [key, s] : streams_) {
        if (!s->recorded.empty()) {
          ordering_.synchronize(s->recorded.back().event);  // stream order: the newest completes last
          ++counters_.host_waits;
        }
        retired += retire_completed(*s);
      }
    } else if (ordering_.synchronize_device()) {
      ++counters_.device_syncs;
      for (auto& [key, s] : streams_) retired += retire_all(*s);
    } else {
      ++counters_.capture_skips;
      for (auto& [key, s] : streams_) {
        if (!s->recorded.empty()) {
          ordering_.synchronize(s->recorded.back().event);  // stream order: the newest completes last
          ++counters_.host_waits;
        }
        retired += retire_completed(*s);
        if (has_open_frees(*s)) request_close(*s);
      }
    }
    return retired + settle_cross();
  }

  /// Drops the streams that nothing refers to: no epoch open or recorded, not the legacy default
  /// stream, not `keep` (the stream of the call under way), no cross block waiting for it, and not
  /// passed to mark by for_each_reference(mark), which the caller calls for the owner of every block
  /// that is live or not ready (a free block that is ready may be handed out on any stream: the caller
  /// clears its owner instead) and every stream record_stream named for a live block. A stream whose
  /// epochs have all retired has no block that is not ready, so what is dropped is only what no block
  /// needs. A program that makes streams without end (one per request, or a thread per request, each
  /// with its own cudaStreamPerThread) then keeps what it knows of them bounded by what it still uses;
  /// a stream seen again is checked and added anew. Returns how many were dropped.
  template <class ForEachReference>
  std::size_t forget_unused(ForEachReference&& for_each_reference,
                            const stream_tag* keep = nullptr) noexcept {
    for (auto& [key, s] : streams_) s->referenced = s.get() == keep;
    for (const cross_entry& c : cross_)
      for (const ticket& t : c.tickets) t.stream->referenced = true;
    for_each_reference([](stream_tag* t) noexcept {
      if (t) t->referenced = true;
    });
    std::size_t dropped = 0;
    for (auto it = streams_.begin(); it != streams_.end();) {
      state& s = *it->second;
      if (s.referenced || always_alive(s) || has_open_frees(s) || !s.recorded.empty()) {
        ++it;
        continue;
      }
      if (last_ == &s) {
        last_ = nullptr;
        last_key_ = no_key;
      }
      it = streams_.erase(it);
      ++dropped;
    }
    counters_.streams_forgotten += dropped;
    return dropped;
  }

  /// Retires the epochs of every stream whose events have completed, and makes ready the cross blocks
  /// whose epochs all have: queries only, no close requested, no host wait, no stream handle used.
  /// Never throws: a query that fails leaves its epoch recorded.
  void retire_completed_everywhere() noexcept {
    for (auto& [key, s] : streams_) {
      try {
        retire_completed(*s);
      } catch (...) {
      }
    }
    settle_cross();
  }

  /// Records t's epoch now, in a free that does not name t: a stream record_stream named for the block
  /// being freed, under caching_options::free_records_used_streams (the caller promises t is alive).
  /// Never throws; if t cannot be closed now (capturing, another thread's per-thread stream, a runtime
  /// error) a close is requested instead, as without the option.
  void close_used_stream(stream_tag* t) noexcept { close_or_request(*as_state(t)); }

  /// In a call that names s, which its caller is done with (about to destroy it): records the event
  /// of s's open epoch now, so that its frees become ready once the work queued before them completes
  /// (found by event query, no host wait), and retires what has completed. Without it a destroyed
  /// stream's open epoch waits for a device-wide synchronize. A stream the layer does not know has
  /// nothing pending: nothing is checked or added. Capturing (or another thread's per-thread stream):
  /// stays open, a close requested. Throws the ordering policy's error if the record fails; s's epoch
  /// stays open then.
  void flush(stream s) {
    const auto it = streams_.find(key_of(s));
    if (it == streams_.end()) return;
    state& found = *it->second;
    if (close(found)) retire_completed(found);
    else request_close(found);
  }

  /// Makes stream `to` (the stream the call names) wait on the GPU for the epoch of free block b,
  /// once that epoch is recorded. false when that cannot be done: b is a cross block, its epoch is
  /// still open (its owner is asked to close it), or `to` is capturing.
  bool order_after(stream_tag* to, const block* b) {
    if (b->owner == &nobody_ || b->owner == nullptr) return b->owner == nullptr;
    state* from = as_state(b->owner);
    if (b->seq >= from->open_seq) {
      request_close(*from);
      return false;
    }
    if (ordering_.is_capturing(as_state(to)->handle)) return false;
    for (epoch& e : from->recorded) {
      if (e.seq < b->seq) continue;
      ordering_.wait(as_state(to)->handle, e.event);
      ++counters_.waits;
      return true;
    }
    return true;  // its epoch has retired since: nothing to wait for
  }

 private:
  struct epoch {
    std::uint64_t seq;
    event_type event;
  };
  struct state : stream_tag {
    stream handle;
    bool per_thread = false;         // cudaStreamPerThread of the thread its key names
    std::size_t open_frees = 0;      // frees (and cross tickets) in the open epoch
    std::size_t close_at = frees_per_epoch;  // the open epoch is closed at the next call on this stream
                                             // once open_frees reaches it: 0 when a close was requested,
                                             // 1 for a per-thread default stream
    std::deque<epoch> recorded;      // closed epochs not yet known complete, oldest first
  };
  struct ticket {
    state* stream;
    std::uint64_t seq;
  };
  struct cross_entry {
    block* b;
    std::vector<ticket> tickets;
  };

  static constexpr std::uintptr_t no_key = UINTPTR_MAX;    // what no stream is keyed as
  static state* as_state(stream_tag* t) noexcept { return static_cast<state*>(t); }
  state* cache(state& s) noexcept {
    last_key_ = s.key;
    return last_ = &s;
  }
  static bool has_open_frees(const state& s) noexcept { return s.open_frees != 0; }
  static bool close_due(const state& s) noexcept { return s.open_frees >= s.close_at; }
  static std::size_t normal_close_at(const state& s) noexcept { return s.per_thread ? 1 : frees_per_epoch; }
  /// The legacy default stream (nullptr, or cudaStreamLegacy = 1) is never destroyed: its handle may be
  /// used in any call.
  static bool always_alive(const state& s) noexcept { return s.key == 0 || s.key == 1; }

  /// A close due on s is carried out here, in whatever call names s, before that call can fail: a
  /// failed allocate, free or record_stream leaves the event recorded (its frees ready sooner), as the
  /// next call on s would have. A new stream is added only after the policy has checked it, and an
  /// insertion that fails (std::bad_alloc) adds nothing.
  stream_tag* find_or_add(stream s) {
    if (auto it = streams_.find(key_of(s)); it != streams_.end()) {
      state& found = *it->second;
      if (close_due(found)) {
        close_as_due(found);
        if (close_due(found)) return &found;  // not cached: the next call tries again
      }
      return cache(found);
    }
    ordering_.check(s);
    auto made = std::make_unique<state>();
    made->key = key_of(s);
    made->handle = s;
    made->per_thread = s.key() == stream::per_thread_handle;
    made->close_at = normal_close_at(*made);
    state* raw = made.get();
    streams_.emplace(made->key, std::move(made));
    return cache(*raw);
  }

  std::size_t pending_streams() const noexcept {
    std::size_t n = 0;
    for (const auto& [key, s] : streams_) n += (has_open_frees(*s) || !s->recorded.empty()) ? 1 : 0;
    return n;
  }

  /// s's owner records the event of its open epoch at its next call: the stream of that call is the
  /// only one whose handle is known to be alive then. The lookup cache is cleared so that the next
  /// tag() of s reaches find_or_add, where the request is carried out.
  void request_close(state& s) noexcept {
    if (s.close_at != 0) ++counters_.close_requests;
    s.close_at = 0;
    if (last_ == &s) last_key_ = no_key;
  }
  /// In a call on s: closes its epoch, which is due, and retires s's epochs that have completed (so
  /// that a stream that never misses keeps few events); the epoch stays due if it cannot be closed
  /// (capturing, or the policy failed).
  void close_as_due(state& s) noexcept {
    try {
      if (close(s)) retire_completed(s);
    } catch (...) {
    }
  }

  /// close(s), where a failure (no host memory for the event's record, a runtime error) must not
  /// escape: s's epoch stays open and due, as if it were capturing. empty_cache, trim_cache and the
  /// out-of-memory retry close the legacy default stream's epoch so, and ask the heap for nothing.
  void close_or_request(state& s) noexcept {
    try {
      if (close(s)) return;
    } catch (...) {
    }
    request_close(s);
  }

  /// Records the event of s's open epoch if it has frees; false if s is capturing (it stays open).
  /// Only where s's handle is known to be alive: in a call that names s, or in a free whose caller
  /// promised it (close_used_stream).
  bool close(state& s) {
    if (!has_open_frees(s)) {
      s.close_at = normal_close_at(s);
      return true;
    }
    if (s.per_thread && s.key != key_of(stream::per_thread())) return false;  // another thread's stream
    if (ordering_.is_capturing(s.handle)) {
      ++counters_.capture_skips;
      return false;
    }
    const event_type e = ordering_.record(s.handle);
    try {
      s.recorded.push_back({s.open_seq, e});
    } catch (...) {
      ordering_.release(e);  // recorded and let go: nothing waits on it, the epoch stays open
      throw;
    }
    ++s.open_seq;
    s.open_frees = 0;
    s.close_at = normal_close_at(s);
    ++counters_.epochs_recorded;
    return true;
  }

  std::size_t retire_completed(state& s) {
    std::size_t retired = 0;
    while (!s.recorded.empty() && ordering_.query(s.recorded.front().event)) {
      retire_oldest(s);
      ++retired;
    }
    return retired;
  }
  /// After a device-wide synchronize: every recorded epoch of s has completed, and so has its open
  /// one (the work queued before its frees is done), which retires without an event.
  std::size_t retire_all(state& s) {
    std::size_t retired = 0;
    for (; !s.recorded.empty(); ++retired) retire_oldest(s);
    if (has_open_frees(s)) {
      s.retired_seq = s.open_seq++;
      s.open_frees = 0;
      s.close_at = normal_close_at(s);
      ++counters_.epochs_retired;
      ++retired;
    }
    return retired;
  }
  void retire_oldest(state& s) {
    epoch& e = s.recorded.front();
    s.retired_seq = e.seq;
    ordering_.release(e.event);
    s.recorded.pop_front();
    ++counters_.epochs_retired;
  }

  std::size_t settle_cross() {
    std::size_t settled = 0;
    for (std::size_t i = 0; i < cross_.size();) {
      bool done = true;
      for (const ticket& t : cross_[i].tickets) done = done && t.stream->retired_seq >= t.seq;
      if (!done) {
        ++i;
        continue;
      }
      cross_[i].b->owner = nullptr;
      cross_[i].b->seq = 0;
      cross_[i] = std::move(cross_.back());
      cross_.pop_back();
      ++settled;
    }
    return settled;
  }

  Ordering ordering_;
  std::unordered_map<std::uintptr_t, std::unique_ptr<state>> streams_;
  std::uintptr_t last_key_ = no_key;  // the stream of the last lookup (most programs use one or two),
  state* last_ = nullptr;             // cleared when that stream's close is requested
  stream_tag nobody_{UINTPTR_MAX, 1, 0};
  std::vector<cross_entry> cross_;
  counters counters_;
};

/// Host order keeps no stream state: the policy alone (empty for host_ordering).
template <ordering_policy Ordering>
struct no_stream_layer {
  explicit no_stream_layer(Ordering o) noexcept : policy(std::move(o)) {}
  Ordering& ordering() noexcept { return policy; }
  const Ordering& ordering() const noexcept { return policy; }
  [[no_unique_address]] Ordering policy;
};

}  // namespace stash::detail
