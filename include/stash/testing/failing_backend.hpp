#pragma once
// Wraps any backend and makes chosen calls fail: the tool that drives every error path in the tests.
// A "call" is an allocate (segment backends) or a map_page, map_pages or map_chunks (paged
// backends), or a remap_pages or alias_pages (backends that keep a chunk mapped at several addresses;
// they create no memory, so the byte limit never refuses them). Failures are either "out of memory"
// (nullptr / false, as a full device answers) or a thrown stash::cuda_error (as a broken driver answers).
// The bytes held are the physical memory: a chunk mapped at several addresses (remap_pages,
// alias_pages) is held until its last mapping is unmapped.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "stash/backend/backend.hpp"
#include "stash/ordering/default_ordering.hpp"
#include "stash/error.hpp"

namespace stash {

namespace detail {
/// Which mappings of a paged backend share one physical allocation (remap_pages, alias_pages), so that
/// a wrapper counting the memory held knows which unmap gives it back: the last mapping's
/// (backend.hpp, aliasing_paged_backend). A mapping is named by its first page; a chunk never mapped
/// at a second address is in no group and goes back with its only mapping.
class shared_mappings {
 public:
  /// The allocation mapped at `from` is mapped at `to` too. Call it before the backend maps: it may
  /// throw std::bad_alloc, and then nothing is recorded. Returns false when a mapping at `to` was
  /// recorded already (the backend refuses that call): then remove(to) must not follow.
  bool add(std::uintptr_t from, std::uintptr_t to) {
    const auto [at, fresh] = group_of_.try_emplace(from, next_group_);
    bool added = false;
    try {
      std::size_t& count = mappings_of_[at->second];  // 0 for a fresh group
      added = group_of_.emplace(to, at->second).second;
      count += (fresh ? 1 : 0) + (added ? 1 : 0);
    } catch (...) {
      if (fresh) {
        mappings_of_.erase(at->second);
        group_of_.erase(at);
      }
      throw;
    }
    if (fresh) ++next_group_;
    return added;
  }
  /// The mapping at `from` now lies at `to` (move_pages). Allocates nothing, so it cannot fail after
  /// the backend moved.
  void move(std::uintptr_t from, std::uintptr_t to) noexcept {
    auto node = group_of_.extract(from);
    if (node.empty()) return;
    node.key() = to;
    group_of_.insert(std::move(node));
  }
  /// The mapping at `a` is gone (unmapped, or never made: the backend refused it). Returns whether it
  /// was its allocation's last, whose memory goes back with it.
  bool remove(std::uintptr_t a) noexcept {
    const auto at = group_of_.find(a);
    if (at == group_of_.end()) return true;
    const auto group = mappings_of_.find(at->second);
    group_of_.erase(at);
    if (--group->second != 0) return false;
    mappings_of_.erase(group);
    return true;
  }

 private:
  std::map<std::uintptr_t, std::uint64_t> group_of_;  // a mapping's first page -> its allocation's group
  std::map<std::uint64_t, std::size_t> mappings_of_;  // a group -> how many of its mappings remain
  std::uint64_t next_group_ = 1;
};
}  // namespace detail

template <backend_policy Backend>
class failing_backend {
 public:
  static constexpr memory_kind kind = Backend::kind;
  /// The memory is the upstream's: so is the order it needs (stream-ordered over CUDA memory).
  using ordering_type = default_ordering_t<Backend>;
  static constexpr std::size_t no_limit = SIZE_MAX;

  explicit failing_backend(Backend upstream = Backend{}) : upstream_(std::move(upstream)) {}

  /// The n-th call from now on (1 = the next) runs out of memory.
  void fail_call(std::size_t n) { out_of_memory_calls_.insert(calls_ + n); }
  /// The n-th call from now on throws stash::cuda_error.
  void throw_on_call(std::size_t n) { throwing_calls_.insert(calls_ + n); }
  /// Forgets the failures fail_call and throw_on_call set up that have not happened yet.
  void cancel_pending() noexcept {
    out_of_memory_calls_.clear();
    throwing_calls_.clear();
  }
  /// Every call runs out of memory while it is on.
  void fail_all(bool on) noexcept { fail_all_ = on; }
  /// Calls run out of memory once the bytes held would exceed the limit.
  void set_byte_limit(std::size_t bytes) noexcept { byte_limit_ = bytes; }

  std::size_t calls() const noexcept { return calls_; }
  std::size_t failures() const noexcept { return failures_; }
  std::size_t held_bytes() const noexcept { return held_; }
  Backend& upstream() noexcept { return upstream_; }
  const Backend& upstream() const noexcept { return upstream_; }
  int device() const noexcept { return upstream_.device(); }

  // Segment backends.
  void* allocate(std::size_t bytes) requires segment_backend<Backend> {
    if (should_fail(bytes)) return nullptr;
    void* p = upstream_.allocate(bytes);
    if (p) held_ += bytes;
    return p;
  }
  void deallocate(void* p, std::size_t bytes) noexcept requires segment_backend<Backend> {
    held_ -= bytes;
    upstream_.deallocate(p, bytes);
  }
  std::size_t granularity() const noexcept
    requires segment_backend<Backend>
  {
    return upstream_.granularity();
  }

  // Paged backends.
  std::size_t page_size() const noexcept requires paged_backend<Backend> { return upstream_.page_size(); }
  std::size_t default_reserve_bytes() const noexcept
    requires paged_backend<Backend> && requires(const Backend& b) { b.default_reserve_bytes(); }
  {
    return upstream_.default_reserve_bytes();
  }
  std::uintptr_t reserve(std::size_t bytes)
    requires paged_backend<Backend>
  {
    return upstream_.reserve(bytes);
  }
  void grant_peer(int device)
    requires peer_paged_backend<Backend>
  {
    upstream_.grant_peer(device);
  }
  std::vector<int> peers() const
    requires peer_paged_backend<Backend>
  {
    return upstream_.peers();
  }
  /// What the byte limit leaves, or less where the upstream has less room (room_telling_backend), so
  /// that the arena sizes its chunks as it would on a device that full (caching_options::chunk_room_share).
  std::size_t room_bytes() const noexcept
    requires paged_backend<Backend>
  {
    std::size_t room = byte_limit_ == no_limit ? SIZE_MAX : byte_limit_ - std::min(held_, byte_limit_);
    if constexpr (room_telling_backend<Backend>) room = std::min(room, upstream_.room_bytes());
    return room;
  }
  /// Exporting a chunk maps nothing: not a call that can be made to fail.
  int export_chunk(std::uintptr_t a) const
    requires shareable_paged_backend<Backend>
  {
    return upstream_.export_chunk(a);
  }
  bool map_page(std::uintptr_t a) requires paged_backend<Backend> {
    if (should_fail(upstream_.page_size())) return false;
    const bool ok = upstream_.map_page(a);
    if (ok) held_ += upstream_.page_size();
    return ok;
  }
  /// One call, however many pages (a chunk is one physical allocation).
  bool map_pages(std::uintptr_t a, std::size_t n) requires chunked_paged_backend<Backend> {
    if (should_fail(n * upstream_.page_size())) return false;
    const bool ok = upstream_.map_pages(a, n);
    if (ok) held_ += n * upstream_.page_size();
    return ok;
  }
  /// One call, however many chunks: the run is mapped whole or not at all.
  bool map_chunks(std::uintptr_t a, std::size_t n, std::size_t chunk)
    requires chunked_paged_backend<Backend>
  {
    if (should_fail(n * upstream_.page_size())) return false;
    const bool ok = upstream_.map_chunks(a, n, chunk);
    if (ok) held_ += n * upstream_.page_size();
    return ok;
  }
  bool set_access(std::uintptr_t a, std::size_t n) requires chunked_paged_backend<Backend> {
    return upstream_.set_access(a, n);
  }
  void unmap_pages(std::uintptr_t a, std::size_t n) noexcept requires chunked_paged_backend<Backend> {
    if (shared_.remove(a)) held_ -= n * upstream_.page_size();
    upstream_.unmap_pages(a, n);
  }
  bool move_page(std::uintptr_t from, std::uintptr_t to) requires paged_backend<Backend> {
    const bool ok = upstream_.move_page(from, to);
    if (ok) shared_.move(from, to);
    return ok;
  }
  bool move_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n)
    requires chunked_paged_backend<Backend>
  {
    const bool ok = upstream_.move_pages(from, to, n);
    if (ok) shared_.move(from, to);  // a remapped chunk's aliases stay where they are
    return ok;
  }
  void unmap_page(std::uintptr_t a) noexcept requires paged_backend<Backend> {
    if (shared_.remove(a)) held_ -= upstream_.page_size();
    upstream_.unmap_page(a);
  }

  // Backends that map a chunk at several addresses: a call each, which may fail as a map may (the
  // arena then maps the pages anew, or the error reaches the caller), but never for the byte limit.
  bool remap_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n)
    requires remapping_paged_backend<Backend>
  {
    return second_mapping(from, to, [&] { return upstream_.remap_pages(from, to, n); });
  }
  /// Unmaps an alias: the chunk's memory goes back only if this was its last mapping.
  void unmap_alias(std::uintptr_t a, std::size_t n) noexcept requires remapping_paged_backend<Backend> {
    if (shared_.remove(a)) held_ -= n * upstream_.page_size();
    upstream_.unmap_alias(a, n);
  }
  bool alias_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n)
    requires aliasing_paged_backend<Backend>
  {
    return second_mapping(from, to, [&] { return upstream_.alias_pages(from, to, n); });
  }

 private:
  /// remap_pages or alias_pages (`map`): the allocation at `from` mapped at `to` too, recorded before
  /// the upstream maps it and forgotten when that fails (false or a throw).
  template <class Map>
  bool second_mapping(std::uintptr_t from, std::uintptr_t to, Map&& map) {
    if (should_fail(0)) return false;
    const bool added = shared_.add(from, to);
    bool ok = false;
    try {
      ok = map();
    } catch (...) {
      if (added) shared_.remove(to);
      throw;
    }
    if (!ok && added) shared_.remove(to);
    return ok;
  }

  bool should_fail(std::size_t bytes) {
    ++calls_;
    if (throwing_calls_.erase(calls_))
      throw cuda_error(2, "injected failure on backend call " + std::to_string(calls_));
    const bool fail = fail_all_ || out_of_memory_calls_.erase(calls_) > 0 ||
                      bytes > byte_limit_ - std::min(held_, byte_limit_);
    failures_ += fail ? 1 : 0;
    return fail;
  }

  Backend upstream_;
  std::size_t calls_ = 0, failures_ = 0, held_ = 0;
  std::size_t byte_limit_ = no_limit;
  bool fail_all_ = false;
  std::set<std::size_t> out_of_memory_calls_, throwing_calls_;
  detail::shared_mappings shared_;  // chunks mapped at several addresses: held until the last goes
};

}  // namespace stash

#include "stash/backend/host_backend.hpp"
#include "stash/backend/simulated_paged_backend.hpp"

namespace stash {
static_assert(segment_backend<failing_backend<host_backend>>);
static_assert(paged_backend<failing_backend<simulated_paged_backend>>);
// Every shape of the upstream comes through, aliases (keep_page_aliases) included.
static_assert(aliasing_paged_backend<failing_backend<simulated_paged_backend>>);
static_assert(peer_paged_backend<failing_backend<simulated_paged_backend>>);
static_assert(shareable_paged_backend<failing_backend<simulated_paged_backend>>);
static_assert(room_telling_backend<failing_backend<simulated_paged_backend>>);
}  // namespace stash
