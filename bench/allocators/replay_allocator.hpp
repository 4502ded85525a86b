#pragma once
// The one interface every allocator under benchmark is put behind. It is small on purpose: what a
// replay needs (allocate, deallocate, empty the cache) and what it reports (peak bytes held from the
// driver, how many times the driver was asked).
//
// The timed loop must not pay for the indirection, so it is not written against this interface:
// replayable<Derived> implements run() with qualified, non-virtual calls into the concrete class.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "../trace_reader.hpp"

namespace stash::bench {

/// Host waits an allocator made (replay_allocator::host_waits).
struct host_wait_counts {
  std::uint64_t device_syncs = 0;  // device-wide synchronizations
  std::uint64_t host_waits = 0;    // every host wait, device-wide ones included
};

class replay_allocator {
 public:
  virtual ~replay_allocator() = default;
  virtual std::string_view name() const noexcept = 0;
  virtual void* allocate(std::size_t n) = 0;
  /// `n` is the size given to allocate; adapters that count bytes themselves need it.
  virtual void deallocate(void* p, std::size_t n) = 0;
  /// Gives every cached, unused byte back to the driver.
  virtual void empty_cache() = 0;
  /// High tide of the bytes held from the driver (live + cached) since construction.
  virtual std::size_t peak_reserved_bytes() const = 0;
  /// Calls into the driver for memory (cudaMalloc, pages mapped) since construction; nullopt when
  /// the allocator does not tell.
  virtual std::optional<std::uint64_t> backend_allocs() const = 0;
  /// Page operations a paged stash has made since construction, each at least one driver call: chunks
  /// mapped and given back, page moves, kept aliases unmapped (a warm replay that makes any is not
  /// served from the cache alone); nullopt for other allocators.
  virtual std::optional<std::uint64_t> page_work() const { return std::nullopt; }
  /// Events a stream-ordered stash has recorded since construction (each epoch it closed: a free
  /// batch's event, on the request path the close before asking the events); 0 for a host-ordered one,
  /// nullopt where the adapter cannot tell.
  virtual std::optional<std::uint64_t> events_recorded() const { return std::nullopt; }
  /// Bytes held from the driver now, for the timeline (stash-replay --timeline); nullopt when the
  /// adapter cannot tell, and the allocator is then left out of the timeline.
  virtual std::optional<std::size_t> reserved_bytes() const { return std::nullopt; }
  /// Host waits the allocator has made since construction: a stream-ordered stash reads them from its
  /// ordering policy, the only place its library code blocks the host (cuda_event_ordering:
  /// cudaEventSynchronize, cudaDeviceSynchronize); a host-ordered one makes none. nullopt when the
  /// adapter cannot tell.
  virtual std::optional<host_wait_counts> host_waits() const { return std::nullopt; }
  /// The page size of a paged allocator (the timeline shows its mapped pages), else 0.
  virtual std::size_t page_bytes() const { return 0; }
  /// Plays `ops` against the allocator: slot i holds the pointer of the trace's i-th live block.
  virtual void run(std::span<const trace_op> ops, void** slots) = 0;

  /// Limits the bytes the allocator may hold from the driver from now on (stash-replay
  /// --least-memory); false where the adapter cannot (its allocator takes no limit).
  virtual bool set_memory_limit(std::size_t /*bytes*/) { return false; }
  /// Whether `e`, thrown by allocate, says the allocator is out of memory (stash::out_of_memory is a
  /// std::bad_alloc); adapters whose allocator throws something else say so here.
  virtual bool is_out_of_memory(const std::exception& e) const noexcept {
    return dynamic_cast<const std::bad_alloc*>(&e) != nullptr;
  }

  /// The stream handles (cudaStream_t) that trace_op::stream indexes. Adapters of stream-ordered
  /// allocators (those with allocate_on/deallocate_on) pass them on; the others ignore them.
  void use_streams(std::vector<void*> handles) { streams_ = std::move(handles); }
  std::size_t stream_count() const noexcept { return streams_.size(); }
  /// The handle of trace stream i (use_streams), null where none was given.
  void* stream_handle(std::size_t i) const noexcept { return i < streams_.size() ? streams_[i] : nullptr; }

  /// Whether the adapter has allocate_on/deallocate_on (for stash-replay --cross-stream, which calls
  /// the two below outside a trace).
  virtual bool takes_streams() const noexcept = 0;
  /// On the stream `s` (a cudaStream_t); only where takes_streams(), else std::logic_error.
  virtual void* allocate_on_stream(std::size_t n, void* s) = 0;
  virtual void deallocate_on_stream(void* p, std::size_t n, void* s) = 0;

 protected:
  std::vector<void*> streams_;
};

/// Base of every adapter: supplies run() with the concrete allocate/deallocate inlined.
template <class Derived>
class replayable : public replay_allocator {
  static constexpr bool stream_hooks = requires(Derived& d, void* s) {
    d.Derived::allocate_on(std::size_t{1}, s);
    d.Derived::deallocate_on(s, std::size_t{1}, s);
  };

 public:
  bool takes_streams() const noexcept final { return stream_hooks; }
  void* allocate_on_stream(std::size_t n, void* s) final {
    if constexpr (stream_hooks) return static_cast<Derived&>(*this).Derived::allocate_on(n, s);
    else throw std::logic_error(std::string(name()) + " takes no streams");
  }
  void deallocate_on_stream(void* p, std::size_t n, void* s) final {
    if constexpr (stream_hooks) static_cast<Derived&>(*this).Derived::deallocate_on(p, n, s);
    else throw std::logic_error(std::string(name()) + " takes no streams");
  }
  void run(std::span<const trace_op> ops, void** slots) final {
    Derived& self = static_cast<Derived&>(*this);
    if constexpr (requires(void* s) { self.Derived::allocate_on(std::size_t{1}, s); }) {
      for (const trace_op& op : ops) {
        void* s = this->streams_[op.stream];
        if (op.is_free) {
          self.Derived::deallocate_on(slots[op.slot], op.size, s);
        } else {
          slots[op.slot] = self.Derived::allocate_on(op.size, s);
        }
      }
    } else {
      for (const trace_op& op : ops) {
        if (op.is_free) {
          self.Derived::deallocate(slots[op.slot], op.size);
        } else {
          slots[op.slot] = self.Derived::allocate(op.size);
        }
      }
    }
  }
};

}  // namespace stash::bench
