#pragma once
// A backend adaptor that keeps its own ledger of what the allocator holds, outside the allocator: the
// allocator owns its backend by value, so a test that wants to see what the destructor gave back reads
// the ledger, which outlives it. Every call is checked the way foonathan/memory's checking allocator
// checks: a segment freed must be live with exactly the size it was allocated with, a page unmapped or
// moved away must be mapped, a page mapped or moved to must not be. Anything else counts as a misuse.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "stash/backend/backend.hpp"
#include "stash/ordering/default_ordering.hpp"

namespace stash_test {

struct backend_ledger {
  std::map<std::uintptr_t, std::size_t> segments;  // live segments: address -> bytes
  std::set<std::uintptr_t> pages;                  // mapped pages
  std::uintptr_t reserved_base = 0;
  std::size_t reserved_bytes = 0;
  std::size_t held_bytes = 0;     // segment bytes or mapped page bytes
  std::size_t misuses = 0;
  std::size_t misaligned = 0;     // segments or pages not 256-byte aligned
  std::size_t calls = 0;          // allocate / map_page calls, successful or not
};

template <stash::backend_policy Backend>
class checked_backend {
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
  std::size_t page_size() const noexcept requires stash::paged_backend<Backend> { return upstream_.page_size(); }
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
    ++ledger_->calls;
    if (!in_reservation(a) || ledger_->pages.count(a)) ++ledger_->misuses;
    const bool recorded = ledger_->pages.insert(a).second;  // first: it may throw, nothing mapped yet
    const bool ok = upstream_.map_page(a);
    if (recorded && !ok) ledger_->pages.erase(a);
    if (recorded && ok) ledger_->held_bytes += upstream_.page_size();
    return ok;
  }
  bool move_page(std::uintptr_t from, std::uintptr_t to) requires stash::paged_backend<Backend> {
    if (!ledger_->pages.count(from) || ledger_->pages.count(to) || !in_reservation(to)) ++ledger_->misuses;
    const bool recorded = ledger_->pages.insert(to).second;  // first: it may throw, nothing moved yet
    const bool ok = upstream_.move_page(from, to);
    if (ok) ledger_->pages.erase(from);
    else if (recorded) ledger_->pages.erase(to);
    return ok;
  }
  void unmap_page(std::uintptr_t a) noexcept requires stash::paged_backend<Backend> {
    if (ledger_->pages.erase(a) == 0) ++ledger_->misuses;
    else ledger_->held_bytes -= upstream_.page_size();
    upstream_.unmap_page(a);
  }

 private:
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
