#pragma once
// An ordering policy tells the caching allocator when memory freed on one stream may be used on
// another. It is the allocator's only view of GPU work: events recorded on streams, asked whether they
// have completed, or waited on by another stream. The allocator decides when (it records one event per
// stream for a whole batch of frees, and only when another stream needs the memory); the policy is how.
//
// host_ordered policies (host_ordering) say that every event is complete at once: the allocator then
// treats every free as final, keeps no per-stream state and makes no call to the policy, so host-ordered
// compositions pay nothing for stream ordering. The allocator calls the policy under its lock, and
// passes it the handle of a stream only in a call that names that stream (detail/stream_layer.hpp).
#include <concepts>
#include <type_traits>

#include "stash/stream.hpp"

namespace stash {

template <class O>
concept ordering_policy =
    std::is_nothrow_move_constructible_v<O> && std::is_trivially_copyable_v<typename O::event_type> &&
    requires(O& o, const O& co, stream s, typename O::event_type e) {
      /// Every event is complete when recorded: frees are final, streams are names only.
      { O::host_ordered } -> std::convertible_to<bool>;
      /// Throws stash::invalid_stream for a handle that is not a stream (as far as the policy can
      /// tell cheaply); called once per stream the allocator starts keeping state for.
      o.check(s);
      /// Whether s is capturing a CUDA graph: then no event may be recorded on it, it may not wait on
      /// an event recorded outside the capture, and the host waits for nothing in its name (memory
      /// may still be mapped for it: stash/cuda/capture_mode.hpp).
      { o.is_capturing(s) } -> std::same_as<bool>;
      /// An event that completes when the work queued on s so far has completed. s must not be
      /// capturing. Throws stash::invalid_stream when s no longer exists, stash::cuda_error on other
      /// failures.
      { o.record(s) } -> std::same_as<typename O::event_type>;
      /// Whether e has completed; never blocks the host.
      { o.query(e) } -> std::same_as<bool>;
      /// Work queued on s from now on runs after e has completed; never blocks the host.
      o.wait(s, e);
      /// Blocks the host until e has completed.
      o.synchronize(e);
      /// Blocks the host until all work queued so far on every stream of the devices the allocator's
      /// streams belong to has completed, destroyed streams' included, without a stream handle: what
      /// empty_cache() and the out-of-memory retry call. false when it cannot (a graph capture is
      /// underway and the runtime refuses), having waited for nothing.
      { o.synchronize_device() } -> std::same_as<bool>;
      /// e is no longer needed (its handle goes back to the policy's pool).
      { o.release(e) } noexcept;
    };

}  // namespace stash
