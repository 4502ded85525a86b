// libFuzzer harness: random operation programs against the reference model, for each composition of
// tests/support/compositions.hpp and three stream-ordered ones (simulated_ordering over segments,
// checked pages and failing pages). The first input byte picks the composition (and, from 242 up,
// caching_options::small_fill_mapped on; from 220 to 241, cross_stream_wait on; from 198 to 219,
// edge_pages_in_chunks off; from 176 to 197, chunk_room_share 4; from 154 to 175, fill_mapped_above
// 4 KiB; from 132 to 153, fill_mapped_above off; from 110 to 131, remap_pending_pages on, for blocks
// of any size and frees one epoch old; from 88 to 109, keep_page_aliases on with every idle page moved
// first; those two on the plain simulated paged composition only). An input may end with a trailer
// (sharing_trailer: a mode byte, then 0x5A 0xA5) that turns keep_page_aliases or remap_pending_pages on
// (or both: invalid_option) for every composition, the stream-ordered paged ones over a checked or
// failing chunked backend. Every following group of bytes is one operation:
//   allocate (sizes from 0 to beyond max_size) on a chosen stream, unsized / sized / wrong-sized free
//   on the block's stream or another, a free of a pointer inside a block or outside the allocator, a
//   second free, trim_cache, empty_cache, reset_peak, a backend fault at a chosen call index (out of
//   memory or a thrown cuda_error, failing compositions), a backend capacity change (simulated
//   backends); stream order: record_stream, events completing (one, a stream's, all), graph capture
//   on and off, a made stream destroyed or its handle given to a new stream, a burst of new streams
//   (past the 64 at which the allocator forgets unused streams while running), and an unknown stream;
//   free_records_used_streams on or off.
// After every operation the allocator must agree with the model (live blocks, every counter), the
// backend must hold exactly what the allocator says it reserved and have seen no misuse; after every
// error, the live blocks and their figures must be as before and the memory held no larger. Stream
// order: no block is handed to a stream before the stream model (support/stream_model.hpp) allows
// it, pages under frees some stream may still use stay mapped, no physical page lies under two
// addresses in use (live blocks, and pages of frees pending for another stream than the live block's:
// paged compositions over the simulated device), and no destroyed stream's handle is
// ever passed to the ordering policy (the program uses a destroyed stream in no call of its own:
// the legacy stream stands in). The program ends by freeing everything: then nothing may stay
// reserved, and every event has been released.
//
// Built with clang++ -fsanitize=fuzzer,address,undefined (tests/fuzz/CMakeLists.txt, option
// STASH_FUZZ). Run: stash_fuzz CORPUS_DIR tests/fuzz/corpus; replay: stash_fuzz -runs=0 tests/fuzz/corpus
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "stash/error.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "stash/stream.hpp"
#include "support/backend_probe.hpp"
#include "support/checked_backend.hpp"
#include "support/compositions.hpp"
#include "support/reference_model.hpp"
#include "support/stream_model.hpp"

namespace {

using namespace stash_test;

constexpr std::size_t KiB = std::size_t{1} << 10;
constexpr std::size_t MiB = std::size_t{1} << 20;

/// Stops the run with a message libFuzzer shows with the crashing input.
[[noreturn]] void fail(const char* what, unsigned line) {
  std::fprintf(stderr, "stash_fuzz: check failed at line %u: %s\n", line, what);
  std::abort();
}
#define FUZZ_CHECK(cond) ((cond) ? void(0) : fail(#cond, __LINE__))

template <class Backend>
struct backend_traits {
  static constexpr bool failing = false;
  static constexpr bool checked = false;
  static Backend make() { return Backend{}; }
};
template <class Upstream>
struct backend_traits<stash::failing_backend<Upstream>> {
  static constexpr bool failing = true;
  static constexpr bool checked = false;
  static stash::failing_backend<Upstream> make() { return stash::failing_backend<Upstream>(Upstream{}); }
};
template <class Upstream, checked_calls Calls>
struct backend_traits<checked_backend<Upstream, Calls>> {
  static constexpr bool failing = false;
  static constexpr bool checked = true;
  static checked_backend<Upstream, Calls> make() { return checked_backend<Upstream, Calls>(); }
};

/// The simulated paged backend under a composition's wrappers (checked, failing), or null: the one
/// that can tell which physical page lies under an address.
template <class Backend>
const stash::simulated_paged_backend* simulated_pages_of(const Backend& b) {
  if constexpr (std::is_same_v<Backend, stash::simulated_paged_backend>) return &b;
  else if constexpr (requires { b.upstream(); }) return simulated_pages_of(b.upstream());
  else return nullptr;
}

using stream_segments =
    stash::caching_allocator<stash::simulated_backend, stash::segregated_fit_buckets, stash::null_lock,
                             stash::basic_stats, stash::simulated_ordering>;
// Page by page, as before the checked backend passed chunks on: the corpus's stream_pages programs.
using stream_pages =
    stash::caching_allocator<checked_backend<stash::simulated_paged_backend, checked_calls::pages_only>,
                             stash::segregated_fit_buckets, stash::null_lock, stash::basic_stats,
                             stash::simulated_ordering>;
// Chunks, remaps and aliases, checked: stream_pages' programs with a sharing trailer.
using stream_checked_chunks = stash::caching_allocator<checked_backend<stash::simulated_paged_backend>,
                                                       stash::segregated_fit_buckets, stash::null_lock,
                                                       stash::basic_stats, stash::simulated_ordering>;
using stream_failing_pages = stash::caching_allocator<stash::failing_backend<stash::simulated_paged_backend>,
                                                      stash::segregated_fit_buckets, stash::spin_lock,
                                                      stash::basic_stats, stash::simulated_ordering>;

/// Changes the capacity of a simulated backend (or of the one a failing_backend wraps); others have none.
template <class Backend>
void set_capacity(Backend& b, std::size_t bytes) {
  if constexpr (requires { b.set_capacity(bytes); }) b.set_capacity(bytes);
  else if constexpr (requires { b.upstream().set_capacity(bytes); }) b.upstream().set_capacity(bytes);
}

struct live_block {
  void* p;
  std::size_t n;
  unsigned char fill;
  stash::stream s;                   // allocated on
  std::vector<stash::stream> extra;  // record_stream'ed on
};

template <class Allocator>
class program {
  using backend = typename Allocator::backend_type;
  static constexpr bool failing = backend_traits<backend>::failing;
  static constexpr bool streamed = !Allocator::ordering_type::host_ordered;
  static constexpr bool host_memory = touches_memory<Allocator>;
  // Real host memory: keep what is live small so that a run stays fast under ASan.
  static constexpr std::size_t live_limit = host_memory ? 64 * MiB : SIZE_MAX;
  struct snapshot;  // what state() returns (below)

 public:
  /// `options`: what the input's first byte chose (options_of_first_byte).
  program(FuzzedDataProvider& in, stash::caching_options options) : in_(in) {
    // The first byte of a stream-ordered program turns free_records_used_streams on (the program then
    // keeps PyTorch's contract: a stream a live block was record_stream'ed on is not destroyed before
    // the block is freed). Wait mode is chosen by the input's first byte (options_of_first_byte): it hands
    // blocks over through chains of waits (T waited for S's event, U waits for an event on T), which
    // the stream model follows.
    if constexpr (streamed) options.free_records_used_streams = records_used_ = in_.ConsumeBool();
    a_ = std::make_unique<Allocator>(backend_traits<backend>::make(), options);
    streams_.push_back(stash::stream{});
    if constexpr (streamed) {
      for (int i = 0; i < 3; ++i) streams_.push_back(a_->ordering().make_stream());
      smodel_.emplace(a_->ordering());
    } else {
      streams_.push_back(stash::stream::per_thread());  // a name only: host order ignores it
    }
  }

  void run() {
    while (in_.remaining_bytes() > 0 && steps_++ < 4000) step();
    finish();
  }

 private:
  std::size_t pick_size() {
    switch (in_.ConsumeIntegralInRange<int>(0, 9)) {
      case 0: return 0;
      case 1: return in_.ConsumeIntegralInRange<std::size_t>(1, 256);
      case 2:
      case 3: return in_.ConsumeIntegralInRange<std::size_t>(1, 64 * KiB);
      case 4:
      case 5: return in_.ConsumeIntegralInRange<std::size_t>(1, 4 * MiB);
      case 6: return in_.ConsumeIntegralInRange<std::size_t>(MiB, 64 * MiB);
      case 7: return Allocator::max_size() - in_.ConsumeIntegralInRange<std::size_t>(0, 4096);
      case 8: return Allocator::max_size() + in_.ConsumeIntegralInRange<std::size_t>(1, 4096);
      default: return SIZE_MAX - in_.ConsumeIntegralInRange<std::size_t>(0, 300);
    }
  }

  std::size_t pick_live() { return in_.ConsumeIntegralInRange<std::size_t>(0, live_.size() - 1); }
  /// A stream for a call: a destroyed one is replaced by the legacy stream (calls on a destroyed
  /// stream are the program's undefined behaviour, not the allocator's).
  stash::stream pick_stream() {
    return alive(streams_[in_.ConsumeIntegralInRange<std::size_t>(0, streams_.size() - 1)]);
  }
  stash::stream alive(stash::stream s) const {
    for (stash::stream d : destroyed_)
      if (d == s) return stash::stream{};
    return s;
  }

  void step() {
    switch (in_.ConsumeIntegralInRange<int>(0, 18)) {
      case 0:
      case 1:
      case 2: return allocate(pick_size());
      case 3:
      case 4: return free(false);
      case 5: return free(true);
      case 6: return wrong_size_free();
      case 7: return bad_pointer_free();
      case 8: return second_free();
      case 9: return trim();
      case 10: {
        a_->empty_cache();
        return check();
      }
      case 11: {
        a_->reset_peak();
        model_.reset_peak();
        return check();
      }
      case 12: return backend_fault();
      case 13: return capacity_change();
      case 14: return record_stream();
      case 15: return complete_events();
      case 16: return capture();
      case 17: return free_completed();
      default: return unknown_stream();
    }
  }

  void allocate(std::size_t n) {
    if (n != 0 && n <= Allocator::max_size() && n > live_limit - std::min(live_limit, live_bytes_)) n = 1;
    const auto before = state();
    allocate_on(n, pick_stream(), before);
  }
  /// Returns whether a block was allocated (then the last of live_).
  bool allocate_on(std::size_t n, stash::stream s, const snapshot& before) {
    void* p = nullptr;
    try {
      p = a_->allocate(n, s);
    } catch (const stash::capture_error& e) {
      FUZZ_CHECK(streamed && a_->ordering().is_capturing(s));
      FUZZ_CHECK(e.requested_bytes() == n);
      check_after_failure(before);
      return false;
    } catch (const stash::invalid_size& e) {
      FUZZ_CHECK(n > Allocator::max_size());
      FUZZ_CHECK(e.size() == n);
      check_unchanged(before);
      return false;
    } catch (const stash::out_of_memory& e) {
      FUZZ_CHECK(e.requested_bytes() == n);
      FUZZ_CHECK(e.reserved_bytes() == a_->reserved_bytes());
      FUZZ_CHECK(e.cached_bytes() == a_->cached_bytes());
      check_after_failure(before);
      return false;
    } catch (const stash::cuda_error&) {
      FUZZ_CHECK(failing);  // only an injected fault throws
      check_after_failure(before);
      return false;
    }
    if (n == 0) {
      FUZZ_CHECK(p == nullptr);
      check_unchanged(before);
      return false;
    }
    FUZZ_CHECK(n <= Allocator::max_size());
    FUZZ_CHECK(p != nullptr);
    FUZZ_CHECK(reinterpret_cast<std::uintptr_t>(p) % 256 == 0);
    FUZZ_CHECK(model_.allocate(p, n, Allocator::good_size(n)));  // overlaps no live block
    if constexpr (streamed) FUZZ_CHECK(!smodel_->violates(p, Allocator::good_size(n), s));
    const auto fill = static_cast<unsigned char>(steps_ | 1);
    if constexpr (host_memory) {  // ASan sees every byte written
      auto* bytes = static_cast<unsigned char*>(p);
      bytes[0] = bytes[n / 2] = bytes[n - 1] = fill;
    }
    live_.push_back({p, n, fill, s, {}});
    live_bytes_ += n;
    check();
    return true;
  }

  void free(bool sized) {
    if (live_.empty()) return;
    const std::size_t i = pick_live();
    // Mostly on the block's own stream; sometimes on another (a record_stream and a free on its own).
    const stash::stream f = in_.ConsumeIntegralInRange<int>(0, 7) == 0 ? pick_stream() : alive(live_[i].s);
    free_block(i, sized, f);
  }
  void free_block(std::size_t i, bool sized, stash::stream f) {
    const live_block b = live_[i];
    if constexpr (host_memory) {
      const auto* bytes = static_cast<const unsigned char*>(b.p);
      FUZZ_CHECK(bytes[0] == b.fill && bytes[b.n / 2] == b.fill && bytes[b.n - 1] == b.fill);
    }
    [[maybe_unused]] stream_model::mark before{};
    if constexpr (streamed) before = smodel_->now();
    if (sized) a_->deallocate(b.p, b.n, f);
    else a_->deallocate(b.p, f);
    model_.deallocate(b.p);
    if constexpr (streamed) {
      std::vector<stash::stream> uses{b.s};
      for (stash::stream x : b.extra) uses.push_back(x);
      if (f != b.s) uses.push_back(f);
      smodel_->freed(b.p, Allocator::good_size(b.n), uses, uses.size() == 1, b.s, before);
    }
    forget_live(i);
  }
  /// live_[i] was freed: it leaves the live blocks, and joins the recent frees second_free picks from.
  void forget_live(std::size_t i) {
    const live_block b = live_[i];
    live_[i] = live_.back();
    live_.pop_back();
    live_bytes_ -= b.n;
    freed_.push_back(b.p);
    if (freed_.size() > 64) freed_.erase(freed_.begin());
    check();
  }

  /// A free once the device has finished every use of the block (graph_pools::return_released after a
  /// device-wide synchronize): the test synchronizes the simulated device, which the allocator is not
  /// told of, then frees with deallocate_completed. Refused while a stream captures: then no free.
  void free_completed() {
    if (live_.empty()) return;
    if constexpr (streamed) {
      if (!a_->ordering().synchronize_device()) return;
    }
    const std::size_t i = pick_live();
    a_->deallocate_completed(live_[i].p);
    model_.deallocate(live_[i].p);  // nothing pending: the device-wide synchronize covers every use
    forget_live(i);
  }

  void wrong_size_free() {
    if (live_.empty()) return;
    const live_block b = live_[pick_live()];
    const std::size_t wrong =
        b.n + in_.ConsumeIntegralInRange<std::size_t>(1, 1000) * (in_.ConsumeBool() ? 1 : -1);
    const auto before = state();
    bool threw = false;
    try {
      a_->deallocate(b.p, wrong);
    } catch (const stash::invalid_size& e) {
      threw = true;
      FUZZ_CHECK(e.size() == wrong);
    }
    FUZZ_CHECK(threw);
    check_unchanged(before);
  }

  /// Inside a live block (not at its start), or an address of the program's own.
  void bad_pointer_free() {
    const auto before = state();
    int local = 0;
    void* p = &local;
    if (!live_.empty() && in_.ConsumeBool()) {
      const live_block b = live_[pick_live()];
      // Strictly inside the block as rounded (its end may be the start of the next block).
      p = static_cast<char*>(b.p) + in_.ConsumeIntegralInRange<std::size_t>(1, Allocator::good_size(b.n) - 1);
    }
    expect_invalid_pointer(p, in_.ConsumeBool());
    check_unchanged(before);
  }

  /// A pointer freed before that is not live again.
  void second_free() {
    if (freed_.empty()) return;
    void* p = freed_[in_.ConsumeIntegralInRange<std::size_t>(0, freed_.size() - 1)];
    if (model_.live().count(reinterpret_cast<std::uintptr_t>(p))) return;  // handed out again since
    const auto before = state();
    expect_invalid_pointer(p, in_.ConsumeBool());
    check_unchanged(before);
  }

  void expect_invalid_pointer(void* p, bool sized) {
    bool threw = false;
    try {
      if (sized) a_->deallocate(p, 1000);
      else a_->deallocate(p);
    } catch (const stash::invalid_pointer& e) {  // double_free is one too
      threw = true;
      FUZZ_CHECK(e.pointer() == p);
    }
    FUZZ_CHECK(threw);
    FUZZ_CHECK(!a_->try_deallocate(p));
    FUZZ_CHECK(!a_->owns(p));
  }

  void trim() {
    const std::size_t cached = a_->cached_bytes();
    const std::size_t target = in_.ConsumeIntegralInRange<std::size_t>(0, cached);
    a_->trim_cache(target);
    // Then nothing more can go; in stream order trim_cache never waits, so memory under pending frees
    // may stay that empty_cache (which waits on the host) gives back.
    if (a_->cached_bytes() > target && !streamed) {
      const std::size_t reserved = a_->reserved_bytes();
      a_->empty_cache();
      FUZZ_CHECK(a_->reserved_bytes() == reserved);
    }
    check();
  }

  /// With free_records_used_streams the free of a block uses the streams record_stream named for it:
  /// such a stream stays alive until then (PyTorch's contract).
  bool named_by_live_block(stash::stream s) const {
    if (!records_used_) return false;
    for (const live_block& b : live_)
      if (std::find(b.extra.begin(), b.extra.end(), s) != b.extra.end()) return true;
    return false;
  }

  void record_stream() {
    if (live_.empty()) return;
    live_block& b = live_[pick_live()];
    const stash::stream u = pick_stream();
    a_->record_stream(b.p, u);
    if (u != b.s) b.extra.push_back(u);
    check();
  }

  void complete_events() {
    if constexpr (streamed) {
      auto& o = a_->ordering();
      switch (in_.ConsumeIntegralInRange<int>(0, 2)) {
        case 0:
          if (o.records() > 0) o.complete(in_.ConsumeIntegralInRange<std::size_t>(1, o.records()));
          break;
        case 1: o.complete_stream(pick_stream()); break;
        default: o.complete_all(); break;
      }
      check();
    }
  }

  /// A made stream starts or ends capturing a graph (the default streams never capture here), is
  /// destroyed (flushed first or not), or its handle is given to a new stream (as the runtime may once the
  /// old one's work is done); or, where that stream is alive, a burst of new streams is made (up to 80 at
  /// once, 320 in all), so that calls name more than the 64 streams past which the allocator forgets, while
  /// the program runs, the streams nothing refers to (caching_allocator::forget_streams_while_running).
  void capture() {
    if constexpr (streamed) {
      auto& o = a_->ordering();
      const stash::stream s = streams_[in_.ConsumeIntegralInRange<std::size_t>(1, streams_.size() - 1)];
      const auto dead = std::find(destroyed_.begin(), destroyed_.end(), s);
      switch (const int what = in_.ConsumeIntegralInRange<int>(0, 3)) {
        case 0:
        case 1:
          if (dead == destroyed_.end()) o.set_capturing(s, what == 1);
          break;
        case 2:
          if (dead == destroyed_.end() && !named_by_live_block(s)) {
            if (in_.ConsumeBool()) a_->flush_stream(s);  // the program done with s (CuPy's per-batch streams)
            o.destroy(s);
            destroyed_.push_back(s);
          }
          break;
        default:
          if (dead != destroyed_.end()) {
            o.reuse_handle(s);
            destroyed_.erase(dead);
          } else {
            new_streams(in_.ConsumeIntegralInRange<int>(1, 80));
          }
          break;
      }
      check();
    }
  }

  /// Makes up to `count` streams (320 in all) and allocates and frees a small block on each, one
  /// request per stream, as a server making a stream per request does.
  void new_streams(int count) {
    if constexpr (streamed) {
      for (int i = 0; i < count && streams_.size() < 320; ++i) {
        const stash::stream s = a_->ordering().make_stream();
        streams_.push_back(s);
        if (allocate_on(1000, s, state())) free_block(live_.size() - 1, false, s);
      }
    }
  }

  /// A stream the ordering policy never made: invalid_stream, and nothing changes.
  void unknown_stream() {
    if constexpr (streamed) {
      const stash::stream bad(reinterpret_cast<stash::stream::native_handle_type>(std::uintptr_t{0xdead00}));
      const auto before = state();
      bool threw = false;
      try {
        if (live_.empty() || in_.ConsumeBool()) (void)a_->allocate(1000, bad);
        else a_->deallocate(live_[pick_live()].p, bad);
      } catch (const stash::invalid_stream&) {
        threw = true;
      }
      FUZZ_CHECK(threw);
      check_unchanged(before);
    }
  }

  void backend_fault() {
    if constexpr (failing) {
      auto& b = a_->backend();
      const std::size_t k = in_.ConsumeIntegralInRange<std::size_t>(1, 8);
      switch (in_.ConsumeIntegralInRange<int>(0, 4)) {
        case 0: b.fail_call(k); break;
        case 1: b.throw_on_call(k); break;
        case 2: b.fail_all(in_.ConsumeBool()); break;
        case 3: b.set_byte_limit(in_.ConsumeIntegralInRange<std::size_t>(0, 128) * MiB); break;
        default: b.cancel_pending(); break;
      }
    }
  }

  void capacity_change() {
    const auto mib = in_.ConsumeIntegralInRange<std::size_t>(0, 257);
    set_capacity(a_->backend(), mib == 257 ? SIZE_MAX : mib * MiB);
  }

  struct snapshot {
    stash::stats_snapshot stats;
    std::size_t reserved, cached;
    std::optional<std::size_t> held;
  };
  snapshot state() const {
    return {a_->stats(), a_->reserved_bytes(), a_->cached_bytes(), held_bytes(a_->backend())};
  }

  void check_unchanged(const snapshot& before) {
    const snapshot now = state();
    FUZZ_CHECK(now.stats == before.stats);
    FUZZ_CHECK(now.reserved == before.reserved);
    FUZZ_CHECK(now.cached == before.cached);
    FUZZ_CHECK(now.held == before.held);
    check();
  }

  /// Out of memory or a backend error: live blocks as before; the cache may have been released for the
  /// retry, nothing more may be held.
  void check_after_failure(const snapshot& before) {
    const snapshot now = state();
    FUZZ_CHECK(now.stats.allocated_bytes == before.stats.allocated_bytes);
    FUZZ_CHECK(now.stats.requested_bytes == before.stats.requested_bytes);
    FUZZ_CHECK(now.stats.allocations == before.stats.allocations);
    FUZZ_CHECK(now.stats.deallocations == before.stats.deallocations);
    FUZZ_CHECK(now.reserved <= before.reserved);
    check();
  }

  /// No physical page lies under two addresses that live blocks use (page aliases, remapped chunks).
  /// Stream order: nor under a live block and a page of a free some stream's work may still touch (that
  /// page stays mapped), unless the free's memory is the live block's stream's already: the block's
  /// work is queued after the free's (remap_pending_pages maps a chunk of a free pending on the
  /// requesting stream at the new block).
  void check_no_shared_pages(const stash::simulated_paged_backend& device) {
    using physical = std::pair<std::uint32_t, std::size_t>;
    struct user {
      std::uintptr_t at;
      stash::stream s;
    };
    const std::size_t page = device.page_size();
    std::map<physical, user> used;
    for (const live_block& b : live_) {
      const auto at = reinterpret_cast<std::uintptr_t>(b.p);
      for (std::uintptr_t q = at & ~(page - 1); q < at + std::max<std::size_t>(b.n, 1); q += page) {
        const auto [it, fresh] = used.emplace(device.physical_page(q), user{q, b.s});
        FUZZ_CHECK(it->second.at == q);
      }
    }
    if constexpr (streamed)
      smodel_->for_each_pending_page(page, [&](std::uintptr_t q) {
        const physical under = device.physical_page(q);
        FUZZ_CHECK(under != physical{});  // pages under pending frees stay mapped
        const auto it = used.find(under);
        if (it == used.end() || it->second.at == q) return;
        FUZZ_CHECK(!smodel_->violates(reinterpret_cast<const void*>(q), page, it->second.s));
      });
  }

  void check() {
    const auto s = a_->stats();
    FUZZ_CHECK(s.allocated_bytes == model_.allocated_bytes());
    FUZZ_CHECK(s.requested_bytes == model_.requested_bytes());
    FUZZ_CHECK(s.peak_allocated_bytes == model_.peak_allocated_bytes());
    FUZZ_CHECK(s.peak_requested_bytes == model_.peak_requested_bytes());
    FUZZ_CHECK(s.allocations == model_.allocations());
    FUZZ_CHECK(s.deallocations == model_.deallocations());
    FUZZ_CHECK(s.reserved_bytes == a_->reserved_bytes());
    FUZZ_CHECK(s.cached_bytes == s.reserved_bytes - s.allocated_bytes);
    FUZZ_CHECK(s.reserved_bytes >= s.allocated_bytes);
    FUZZ_CHECK(s.peak_reserved_bytes >= s.reserved_bytes);
    if (const auto held = held_bytes(a_->backend())) FUZZ_CHECK(*held == s.reserved_bytes);
    FUZZ_CHECK(misuses(a_->backend()) == 0);
    if (const auto* device = simulated_pages_of(a_->backend()); device && steps_ % 4 == 0)
      check_no_shared_pages(*device);
    if (!live_.empty()) {  // one live block, fully
      const live_block& b = live_[steps_ % live_.size()];
      FUZZ_CHECK(a_->owns(b.p));
      FUZZ_CHECK(a_->allocation_size(b.p) == b.n);
    }
    if constexpr (streamed && backend_traits<backend>::checked && stash::paged_backend<backend>) {
      if (steps_ % 8 == 0)  // pages under frees that some stream may still use stay mapped
        smodel_->for_each_pending_page(a_->backend().page_size(), [&](std::uintptr_t page) {
          FUZZ_CHECK(a_->backend().ledger().pages.count(page) == 1);
        });
    }
  }

  void finish() {
    if constexpr (failing) {
      a_->backend().cancel_pending();
      a_->backend().fail_all(false);
      a_->backend().set_byte_limit(SIZE_MAX);
    }
    set_capacity(a_->backend(), SIZE_MAX);
    if constexpr (streamed)
      for (stash::stream s : streams_)
        if (alive(s) == s) a_->ordering().set_capturing(s, false);
    while (!live_.empty()) free(false);
    a_->empty_cache();
    FUZZ_CHECK(a_->reserved_bytes() == 0);
    FUZZ_CHECK(a_->stats().allocated_bytes == 0);
    if (const auto held = held_bytes(a_->backend())) FUZZ_CHECK(*held == 0);
    check();
    if constexpr (streamed) {
      const auto& o = a_->ordering();
      FUZZ_CHECK(o.unreleased_events() == 0);
      FUZZ_CHECK(o.bad_releases() == 0);
      FUZZ_CHECK(o.capture_violations() == 0);
      FUZZ_CHECK(o.destroyed_stream_uses() == 0);
    }
  }

  FuzzedDataProvider& in_;
  std::unique_ptr<Allocator> a_;
  std::vector<stash::stream> streams_;
  std::vector<stash::stream> destroyed_;  // made streams destroyed and not given out again
  bool records_used_ = false;             // caching_options::free_records_used_streams
  reference_model model_;
  std::optional<stream_model> smodel_;  // stream-ordered compositions
  std::vector<live_block> live_;
  std::vector<void*> freed_;
  std::size_t live_bytes_ = 0;
  std::size_t steps_ = 0;
};


/// The options the first input byte turns on: from 242 up (5 of the committed corpus's inputs, which came
/// before the option) caching_options::small_fill_mapped; from 220 to 241 (38 inputs of the corpus as it
/// was, 25 of them stream-ordered) cross_stream_wait; from 198 to 219 (42 inputs of the corpus)
/// edge_pages_in_chunks off (the default before the fourteenth session: edge pages alone); from 176 to 197
/// (27 inputs) chunk_room_share 4 (fifteenth session); from 154 to 175 (149 inputs of the corpus as it was in
/// the twenty-first session) fill_mapped_above 4 KiB, so that small requests of either side of the bound
/// fill mapped memory of the large region; from 132 to 153 fill_mapped_above off (the default until the
/// twenty-second session, 8 KiB since); from 110 to 131 (370 inputs of the corpus as it was in the
/// twenty-third session, 100 of them stream-ordered and paged) remap_pending_pages, with remap_min_pages 1
/// and remap_min_age 1 so that a program's small blocks remap too; from 88 to 109 (twenty-fourth
/// session) keep_page_aliases with max_held_over_live 1, so that every page backed moves an idle one and
/// keeps its old address as an alias. Paged compositions only change with the first, third, fourth,
/// fifth, sixth and eighth, stream-ordered ones with the second, stream-ordered paged ones with the
/// seventh. The seventh and eighth share pages only on the plain simulated paged backend
/// (first_byte_sharing_as_before), and a remap needs stream order too: the seventh never remapped a
/// chunk (the stream-ordered paged compositions wrap the backend, whose wrappers hid remap_pages when
/// the corpus was written; the option only changed where runs of chunks end, nothing_to_move). A
/// sharing trailer (sharing_trailer) turns both on where they act.
stash::caching_options options_of_first_byte(std::uint8_t first) {
  stash::caching_options options;
  options.small_fill_mapped = first >= 242;
  options.cross_stream_wait = first >= 220 && first < 242;
  options.edge_pages_in_chunks = !(first >= 198 && first < 220);
  // The capacity changes of a program are small (at most 256 MiB), where the default share of the room
  // maps most pages one by one; a share of 4 keeps chunks of several pages under them.
  if (first >= 176 && first < 198) options.chunk_room_share = 4;
  if (first >= 154 && first < 176) options.fill_mapped_above = 4096;
  if (first >= 132 && first < 154) options.fill_mapped_above = SIZE_MAX;
  if (first >= 110 && first < 132) {
    options.remap_pending_pages = true;
    options.remap_min_pages = 1;
    options.remap_min_age = 1;
  }
  if (first >= 88 && first < 110) {  // every idle page moved before a new one is mapped, and kept as an alias
    options.keep_page_aliases = true;
    options.max_held_over_live = 1.0;
  }
  return options;
}

/// The first byte's page sharing as it acted before the checked and failing backends passed
/// remap_pages and alias_pages on, so that the corpus keeps its meaning: on the plain simulated paged
/// backend only. Over the wrappers its aliases are off and its remaps remap nothing (remap_min_pages
/// past any block), while remap_pending_pages still keeps a run of chunks from going on where nothing
/// idle can move (paged_arena::nothing_to_move reads it whatever the backend), as it did.
template <class Allocator>
stash::caching_options first_byte_sharing_as_before(stash::caching_options o) {
  if constexpr (!std::is_same_v<typename Allocator::backend_type, stash::simulated_paged_backend>) {
    o.keep_page_aliases = false;
    if (o.remap_pending_pages) o.remap_min_pages = SIZE_MAX;
  }
  return o;
}

/// What a sharing trailer turns on: kept aliases, remaps of pending chunks, or both (invalid_option).
enum class page_sharing { aliases, remaps, both };

/// An input ending with the two bytes 0x5A 0xA5 has a sharing trailer: the byte before them picks the
/// page sharing (its value mod 3), which replaces the first byte's, for every composition; the three
/// bytes are no part of the program. No input of tests/fuzz/corpus ended so when the trailer came in
/// (5,661 inputs), so each kept its meaning.
constexpr std::uint8_t trailer_mark[2] = {0x5A, 0xA5};
constexpr std::size_t trailer_bytes = 3;
std::optional<page_sharing> sharing_trailer(const std::uint8_t* data, std::size_t size) {
  if (size < 1 + trailer_bytes || data[size - 2] != trailer_mark[0] || data[size - 1] != trailer_mark[1])
    return std::nullopt;
  return static_cast<page_sharing>(data[size - trailer_bytes] % 3);
}

/// The trailer's sharing, as the first byte turns each on: aliases with every idle page moved first,
/// remaps for blocks of any size and frees one epoch old.
void turn_on(page_sharing sharing, stash::caching_options& o) {
  o.keep_page_aliases = sharing != page_sharing::remaps;
  o.remap_pending_pages = sharing != page_sharing::aliases;
  if (o.keep_page_aliases) o.max_held_over_live = 1.0;
  if (o.remap_pending_pages) o.remap_min_pages = 1, o.remap_min_age = 1;
}

/// Options no allocator can use: the constructor throws invalid_option, and nothing runs.
template <class Allocator>
void expect_invalid_option(const stash::caching_options& options) {
  using backend = typename Allocator::backend_type;
  bool threw = false;
  try {
    Allocator a(backend_traits<backend>::make(), options);
  } catch (const stash::invalid_option& e) {
    threw = e.option() == "keep_page_aliases";
  }
  FUZZ_CHECK(threw);
}

template <class Allocator>
void run(FuzzedDataProvider& in, const stash::caching_options& first_byte,
         std::optional<page_sharing> trailer) {
  stash::caching_options options = first_byte_sharing_as_before<Allocator>(first_byte);
  if (trailer) turn_on(*trailer, options);
  if (options.keep_page_aliases && options.remap_pending_pages)
    return expect_invalid_option<Allocator>(options);
  program<Allocator>(in, options).run();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::optional<page_sharing> trailer = sharing_trailer(data, size);
  FuzzedDataProvider in(data + 1, size - 1 - (trailer ? trailer_bytes : 0));
  // The first byte picks the composition (its value mod 11) and options (options_of_first_byte).
  const stash::caching_options options = options_of_first_byte(data[0]);
  switch (data[0] % 11) {
    case 0: run<host_segregated>(in, options, trailer); break;
    case 1: run<host_pow2>(in, options, trailer); break;
    case 2: run<simulated_segregated>(in, options, trailer); break;
    case 3: run<simulated_pow2>(in, options, trailer); break;
    case 4: run<paged_segregated>(in, options, trailer); break;
    case 5: run<failing_host_segregated>(in, options, trailer); break;
    case 6: run<failing_simulated_pow2>(in, options, trailer); break;
    case 7: run<failing_paged_segregated>(in, options, trailer); break;
    case 8: run<stream_segments>(in, options, trailer); break;
    case 9:  // page by page as it always was; with a trailer, over chunks (page sharing needs them)
      if (trailer) run<stream_checked_chunks>(in, options, trailer);
      else run<stream_pages>(in, options, trailer);
      break;
    default: run<stream_failing_pages>(in, options, trailer); break;
  }
  return 0;
}
