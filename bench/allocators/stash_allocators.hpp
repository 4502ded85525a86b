#pragma once
// The stash compositions under benchmark, behind the replay interface. One adapter template serves
// every composition: caching_allocator's own stats give the peak held and the backend calls.
#include <string>

#include "replay_allocator.hpp"

#include "stash/allocators.hpp"
#include "stash/timeline.hpp"

namespace stash::bench {

template <class CachingAllocator>
class stash_adapter final : public replayable<stash_adapter<CachingAllocator>> {
  static constexpr bool stream_ordered = !CachingAllocator::ordering_type::host_ordered;

 public:
  explicit stash_adapter(std::string name) : name_(std::move(name)) {}
  stash_adapter(std::string name, stash::caching_options options,
                typename CachingAllocator::ordering_type ordering = {})
      : name_(std::move(name)), allocator_(typename CachingAllocator::backend_type{}, options, std::move(ordering)) {}
  /// Over a backend made by the caller (one made with options of its own).
  template <stash::backend_policy Backend>
  stash_adapter(std::string name, Backend backend) : name_(std::move(name)), allocator_(std::move(backend)) {}
  std::string_view name() const noexcept override { return name_; }
  void* allocate(std::size_t n) override { return allocator_.allocate(n); }
  void deallocate(void* p, std::size_t) override { allocator_.deallocate(p); }
  /// On the trace's streams (replayable::run calls these) for stream-ordered compositions; to a
  /// host-ordered one streams are names only, so its replay loop stays the streamless one.
  void* allocate_on(std::size_t n, void* s)
    requires stream_ordered
  {
    return allocator_.allocate(n, stream_of(s));
  }
  void deallocate_on(void* p, std::size_t, void* s)
    requires stream_ordered
  {
    allocator_.deallocate(p, stream_of(s));
  }
  void empty_cache() override { allocator_.empty_cache(); }
  std::size_t peak_reserved_bytes() const override { return allocator_.stats().peak_reserved_bytes; }
  std::optional<std::uint64_t> backend_allocs() const override {
    return allocator_.stats().backend_allocations;
  }
  std::optional<std::uint64_t> page_work() const override {
    if constexpr (requires {
                    requires stash::paged_backend<typename CachingAllocator::backend_type>;
                    allocator_.alias_unmaps();
                  }) {
      const auto s = allocator_.stats();
      return s.backend_allocations + s.backend_frees + allocator_.page_moves() + allocator_.alias_unmaps();
    } else {
      return std::nullopt;
    }
  }
  std::optional<std::size_t> reserved_bytes() const override { return allocator_.stats().reserved_bytes; }
  std::optional<std::uint64_t> events_recorded() const override {
    if constexpr (!stream_ordered) {
      return 0;
    } else if constexpr (requires { allocator_.ordering().stats().records; }) {
      return allocator_.ordering().stats().records;
    } else {
      return std::nullopt;
    }
  }
  std::optional<host_wait_counts> host_waits() const override {
    if constexpr (!stream_ordered) {
      return host_wait_counts{};
    } else if constexpr (requires { allocator_.ordering().stats().device_syncs; }) {
      const auto& counted = allocator_.ordering().stats();
      return host_wait_counts{counted.device_syncs, counted.host_waits};
    } else {
      return std::nullopt;
    }
  }
  std::size_t page_bytes() const override { return stash::timeline::page_bytes_of(allocator_); }
  /// The limit of a limited backend (limited_backend, as the memory manager's device pools have).
  bool set_memory_limit(std::size_t bytes) override {
    if constexpr (requires { allocator_.backend().set_limit(bytes); }) {
      allocator_.backend().set_limit(bytes);
      return true;
    } else {
      return false;
    }
  }
  CachingAllocator& allocator() noexcept { return allocator_; }

 private:
  static stash::stream stream_of(void* handle) noexcept { return static_cast<CUstream_st*>(handle); }
  std::string name_;
  CachingAllocator allocator_;  // neither copyable nor movable: lives here
};

/// stash::sharded_device_allocator's design over the simulated device (the library names no such
/// composition: only a benchmark wants it).
using simulated_sharded_allocator =
    stash::sharded_allocator<stash::simulated_caching_allocator, stash::sharded_device_allocator::shard_count>;

}  // namespace stash::bench
