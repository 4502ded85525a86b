#pragma once
// A backend adaptor that keeps its own ledger of what the allocator holds, outside the allocator: the
// allocator owns its backend by value, so a test that wants to see what the destructor gave back reads
// the ledger, which outlives it. Every call is checked the way foonathan/memory's checking allocator
// checks: a segment freed must be live with exactly the size it was allocated with, a page unmapped or
// moved away must be mapped, a page mapped or moved to must not be. Chunks (map_pages, map_chunks,
// move_pages, unmap_pages) are checked page by page the same way; a remap or an alias must map a mapped
// chunk at unmapped pages, and an alias unmapped (unmap_alias) must be one of the length given. Anything
// else counts as a misuse. The held bytes are the physical memory: a chunk mapped at several addresses
// is held until its last mapping goes.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "stash/backend/backend.hpp"
#include "stash/ordering/default_ordering.hpp"
#include "stash/testing/failing_backend.hpp"

namespace stash_test {

struct backend_ledger {
  std::map<std::uintptr_t, std::size_t> segments;  // live segments: address -> bytes
  std::set<std::uintptr_t> pages;                  // mapped pages (a chunk's own mapping, or an alias)
  std::map<std::uintptr_t, std::size_t> aliases;   // mappings that are not their
                                                   // chunk's own: first page -> pages
  stash::detail::shared_mappings shared;           // chunks mapped at several addresses
  std::uintptr_t reserved_base = 0;
  std::size_t reserved_bytes = 0;
  std::size_t held_bytes = 0;     // segment bytes or mapped page bytes
  std::size_t misuses = 0;
  std::size_t misaligned = 0;     // segments or pages not 256-byte aligned
  std::size_t calls = 0;          // allocate / map calls, successful or not
};

/// What a checked paged backend passes on: every call its upstream offers (chunks, remaps, aliases), or
/// only paged_backend's page-by-page ones, so that the allocator's page-by-page path runs, checked, over
/// a chunked upstream.
enum class checked_calls { all, pages_only };

template <stash::backend_policy Backend, checked_calls Calls = checked_calls::all>
class checked_backend {
  static constexpr bool chunked = Calls == checked_calls::all && stash::chunked_paged_backend<Backend>;
  static constexpr bool remapping = chunked && stash::remapping_paged_backend<Backend>;
  static constexpr bool aliasing = chunked && stash::aliasing_paged_backend<Backend>;

 public:
  static constexpr stash::memory_kind kind = Backend::kind;
  /// The memory is the upstream's: so is the order it needs (stream-ordered over CUDA memory).
  using ordering_type = stash::default_ordering_t<Backend>;

  explicit checked_backend(std::shared_ptr<backend_ledger> ledger = std::make_shared<backend_ledger>(),
                           Backend upstream = Backend{})
      : ledger_(std::move(ledger)), upstream_(std::move(upstream)) {}

  const backend_ledger& ledger() const noexcept { return *ledger_; }
  Backend& upstream() noexcept { return upstream_; }
  const Backend& upstream() const noexcept { return upstream_; }
  int device() const noexcept { return upstream_.device(); }

  // Segment backends.
  void* allocate(std::size_t bytes) requires stash::segment_backend<Backend> {
    ++ledger_->calls;
    void* p = upstream_.allocate(bytes);
    if (!p) return p;
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    try {  // the ledger's host memory may run out (tests that fail the heap): then nothing is held
      if (!ledger_->segments.emplace(a, bytes).second) ++ledger_->misuses;
    } catch (...) {
      upstream_.deallocate(p, bytes);
      throw;
    }
    if (a % 256 != 0) ++ledger_->misaligned;
    ledger_->held_bytes += bytes;
    return p;
  }
  void deallocate(void* p, std::size_t bytes) noexcept requires stash::segment_backend<Backend> {
    auto it = ledger_->segments.find(reinterpret_cast<std::uintptr_t>(p));
    if (it == ledger_->segments.end() || it->second != bytes) {
      ++ledger_->misuses;
    } else {
      ledger_->held_bytes -= bytes;
      ledger_->segments.erase(it);
    }
    upstream_.deallocate(p, bytes);
  }
  std::size_t granularity() const noexcept requires stash::segment_backend<Backend> {
    return upstream_.granularity();
  }

  // Paged backends.
  std::size_t page_size() const noexcept
    requires stash::paged_backend<Backend>
  {
    return upstream_.page_size();
  }
  std::size_t default_reserve_bytes() const noexcept
    requires stash::paged_backend<Backend> && requires(const Backend& b) { b.default_reserve_bytes(); }
  {
    return upstream_.default_reserve_bytes();
  }
  std::uintptr_t reserve(std::size_t bytes) requires stash::paged_backend<Backend> {
    if (ledger_->reserved_bytes != 0) ++ledger_->misuses;  // reserve is called once
    const std::uintptr_t base = upstream_.reserve(bytes);
    ledger_->reserved_base = base;
    ledger_->reserved_bytes = bytes;
    return base;
  }
  bool map_page(std::uintptr_t a) requires stash::paged_backend<Backend> {
    return map_run(a, 1, [&] { return upstream_.map_page(a); });
  }
  bool move_page(std::uintptr_t from, std::uintptr_t to) requires stash::paged_backend<Backend> {
    return move_run(from, to, 1, [&] { return upstream_.move_page(from, to); });
  }
  void unmap_page(std::uintptr_t a) noexcept requires stash::paged_backend<Backend> {
    unmap_run(a, 1);
    upstream_.unmap_page(a);
  }

  // Chunked paged backends (unless pages_only).
  bool map_pages(std::uintptr_t a, std::size_t n) requires chunked {
    return map_run(a, n, [&] { return upstream_.map_pages(a, n); });
  }
  bool map_chunks(std::uintptr_t a, std::size_t n, std::size_t chunk) requires chunked {
    return map_run(a, n, [&] { return upstream_.map_chunks(a, n, chunk); });
  }
  bool set_access(std::uintptr_t a, std::size_t n) requires chunked {
    for (std::size_t i = 0; i < n; ++i)
      if (!ledger_->pages.count(a + i * upstream_.page_size())) ++ledger_->misuses;
    return upstream_.set_access(a, n);
  }
  bool move_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n) requires chunked {
    return move_run(from, to, n, [&] { return upstream_.move_pages(from, to, n); });
  }
  void unmap_pages(std::uintptr_t a, std::size_t n) noexcept requires chunked {
    unmap_run(a, n);
    upstream_.unmap_pages(a, n);
  }

  // Remapping and aliasing paged backends (unless pages_only). remap_pages leaves the old mapping as
  // the alias; alias_pages makes the new one an alias (of a chunk's own mapping, or of an alias).
  bool remap_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n) requires remapping {
    if (!own_mapping(from, n)) ++ledger_->misuses;
    return second_mapping(from, to, n, from, [&] { return upstream_.remap_pages(from, to, n); });
  }
  void unmap_alias(std::uintptr_t a, std::size_t n) noexcept requires remapping {
    const auto alias = ledger_->aliases.find(a);
    if (alias == ledger_->aliases.end() || alias->second != n) {
      ++ledger_->misuses;
    } else {
      ledger_->aliases.erase(alias);
      forget_pages(a, n);
      if (ledger_->shared.remove(a)) ledger_->held_bytes -= n * upstream_.page_size();
    }
    upstream_.unmap_alias(a, n);
  }
  bool alias_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n) requires aliasing {
    if (!mapped_run(from, n)) ++ledger_->misuses;
    return second_mapping(from, to, n, to, [&] { return upstream_.alias_pages(from, to, n); });
  }

 private:
  /// map_page, map_pages, map_chunks (`map`): the n pages from `a` on are recorded as mapped before the
  /// upstream maps them (the ledger's host memory may run out, and then nothing is mapped), and
  /// forgotten if it refuses.
  template <class Map>
  bool map_run(std::uintptr_t a, std::size_t n, Map&& map) {
    ++ledger_->calls;
    if (!unmapped_run(a, n)) ++ledger_->misuses;
    const std::vector<std::uintptr_t> recorded = record_pages(a, n);
    const bool ok = map();
    if (!ok) forget(recorded);
    else ledger_->held_bytes += recorded.size() * upstream_.page_size();
    return ok;
  }

  /// move_page, move_pages (`move`): a chunk's own mapping of n pages moves to unmapped pages.
  template <class Move>
  bool move_run(std::uintptr_t from, std::uintptr_t to, std::size_t n, Move&& move) {
    if (!own_mapping(from, n) || !unmapped_run(to, n)) ++ledger_->misuses;
    const std::vector<std::uintptr_t> recorded = record_pages(to, n);
    const bool ok = move();
    if (!ok) {
      forget(recorded);
      return false;
    }
    forget_pages(from, n);
    ledger_->shared.move(from, to);  // its aliases stay where they are
    return true;
  }

  /// unmap_page, unmap_pages: a chunk's own mapping of n pages goes; its memory with it, unless an
  /// alias still maps it.
  void unmap_run(std::uintptr_t a, std::size_t n) noexcept {
    if (!own_mapping(a, n)) {
      ++ledger_->misuses;
      return;
    }
    forget_pages(a, n);
    if (ledger_->shared.remove(a)) ledger_->held_bytes -= n * upstream_.page_size();
  }

  /// remap_pages, alias_pages (`map`): the chunk mapped at `from` is mapped at the n unmapped pages
  /// from `to` on too, and the mapping at `alias` (one of the two) is not the chunk's own from then
  /// on. No memory is created. Everything is recorded before the upstream maps, and forgotten if it
  /// fails (false or a throw).
  template <class Map>
  bool second_mapping(std::uintptr_t from, std::uintptr_t to, std::size_t n, std::uintptr_t alias,
                      Map&& map) {
    ++ledger_->calls;
    if (!unmapped_run(to, n) || ledger_->aliases.count(alias)) ++ledger_->misuses;
    const std::vector<std::uintptr_t> recorded = record_pages(to, n);
    bool noted_alias = false, shared = false;
    auto undo = [&]() noexcept {
      if (shared) ledger_->shared.remove(to);
      if (noted_alias) ledger_->aliases.erase(alias);
      forget(recorded);
    };
    try {
      noted_alias = ledger_->aliases.emplace(alias, n).second;
      shared = ledger_->shared.add(from, to);
      if (map()) return true;
    } catch (...) {
      undo();
      throw;
    }
    undo();
    return false;
  }

  /// Records the n pages from `a` on as mapped; returns those that were not (the others are a misuse
  /// counted already). Throws std::bad_alloc with nothing recorded when the ledger's memory runs out.
  std::vector<std::uintptr_t> record_pages(std::uintptr_t a, std::size_t n) {
    std::vector<std::uintptr_t> recorded;
    recorded.reserve(n);
    try {
      for (std::size_t i = 0; i < n; ++i)
        if (ledger_->pages.insert(a + i * upstream_.page_size()).second)
          recorded.push_back(a + i * upstream_.page_size());
    } catch (...) {
      forget(recorded);
      throw;
    }
    return recorded;
  }
  void forget(const std::vector<std::uintptr_t>& recorded) noexcept {
    for (std::uintptr_t p : recorded) ledger_->pages.erase(p);
  }
  void forget_pages(std::uintptr_t a, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) ledger_->pages.erase(a + i * upstream_.page_size());
  }

  /// Whether the n pages from `a` on lie in the reservation, none of them mapped.
  bool unmapped_run(std::uintptr_t a, std::size_t n) const noexcept {
    for (std::size_t i = 0; i < n; ++i) {
      const std::uintptr_t p = a + i * upstream_.page_size();
      if (!in_reservation(p) || ledger_->pages.count(p)) return false;
    }
    return true;
  }
  /// Whether the n pages from `a` on are all mapped.
  bool mapped_run(std::uintptr_t a, std::size_t n) const noexcept {
    for (std::size_t i = 0; i < n; ++i)
      if (!ledger_->pages.count(a + i * upstream_.page_size())) return false;
    return true;
  }
  /// Whether the n pages from `a` on are mapped, and by a chunk's own mapping, not by an alias.
  bool own_mapping(std::uintptr_t a, std::size_t n) const noexcept {
    if (!mapped_run(a, n)) return false;
    auto above = ledger_->aliases.upper_bound(a + (n - 1) * upstream_.page_size());
    if (above == ledger_->aliases.begin()) return true;
    --above;  // the alias starting at or below the run's last page: it must end before the run
    return above->first + above->second * upstream_.page_size() <= a;
  }

  bool in_reservation(std::uintptr_t a) const noexcept {
    if constexpr (stash::paged_backend<Backend>) {
      return a >= ledger_->reserved_base && a < ledger_->reserved_base + ledger_->reserved_bytes &&
             (a - ledger_->reserved_base) % upstream_.page_size() == 0;
    } else {
      return false;
    }
  }

  std::shared_ptr<backend_ledger> ledger_;
  Backend upstream_;
};

}  // namespace stash_test

#include "stash/backend/simulated_paged_backend.hpp"

namespace stash_test {
// The upstream's shape comes through, aliases (keep_page_aliases) included, unless pages_only.
static_assert(stash::aliasing_paged_backend<checked_backend<stash::simulated_paged_backend>>);
static_assert(
    stash::paged_backend<checked_backend<stash::simulated_paged_backend, checked_calls::pages_only>>);
static_assert(!stash::chunked_paged_backend<
              checked_backend<stash::simulated_paged_backend, checked_calls::pages_only>>);
}  // namespace stash_test
