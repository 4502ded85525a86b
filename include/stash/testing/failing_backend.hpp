#pragma once
// Wraps any backend and makes chosen calls fail: the tool that drives every error path in the tests.
// A "call" is an allocate (segment backends) or a map_page, map_pages or map_chunks (paged
// backends). Failures are either "out of memory" (nullptr / false, as a full device answers) or a thrown stash::cuda_error (as a
// broken driver answers).
#include <cstddef>
#include <cstdint>
#include <set>
#include <utility>

#include "stash/backend/backend.hpp"
#include "stash/ordering/default_ordering.hpp"
#include "stash/error.hpp"

namespace stash {

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
  std::size_t granularity() const noexcept requires segment_backend<Backend> { return upstream_.granularity(); }

  // Paged backends.
  std::size_t page_size() const noexcept requires paged_backend<Backend> { return upstream_.page_size(); }
  std::size_t default_reserve_bytes() const noexcept
    requires paged_backend<Backend> && requires(const Backend& b) { b.default_reserve_bytes(); }
  {
    return upstream_.default_reserve_bytes();
  }
  std::uintptr_t reserve(std::size_t bytes) requires paged_backend<Backend> { return upstream_.reserve(bytes); }
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
  bool map_chunks(std::uintptr_t a, std::size_t n, std::size_t chunk) requires chunked_paged_backend<Backend> {
    if (should_fail(n * upstream_.page_size())) return false;
    const bool ok = upstream_.map_chunks(a, n, chunk);
    if (ok) held_ += n * upstream_.page_size();
    return ok;
  }
  bool set_access(std::uintptr_t a, std::size_t n) requires chunked_paged_backend<Backend> {
    return upstream_.set_access(a, n);
  }
  void unmap_pages(std::uintptr_t a, std::size_t n) noexcept requires chunked_paged_backend<Backend> {
    held_ -= n * upstream_.page_size();
    upstream_.unmap_pages(a, n);
  }
  bool move_page(std::uintptr_t from, std::uintptr_t to) requires paged_backend<Backend> {
    return upstream_.move_page(from, to);
  }
  bool move_pages(std::uintptr_t from, std::uintptr_t to, std::size_t n) requires chunked_paged_backend<Backend> {
    return upstream_.move_pages(from, to, n);
  }
  void unmap_page(std::uintptr_t a) noexcept requires paged_backend<Backend> {
    held_ -= upstream_.page_size();
    upstream_.unmap_page(a);
  }

 private:
  bool should_fail(std::size_t bytes) {
    ++calls_;
    if (throwing_calls_.erase(calls_)) throw cuda_error(2, "injected failure on backend call " + std::to_string(calls_));
    const bool fail = fail_all_ || out_of_memory_calls_.erase(calls_) > 0 || bytes > byte_limit_ - std::min(held_, byte_limit_);
    failures_ += fail ? 1 : 0;
    return fail;
  }

  Backend upstream_;
  std::size_t calls_ = 0, failures_ = 0, held_ = 0;
  std::size_t byte_limit_ = no_limit;
  bool fail_all_ = false;
  std::set<std::size_t> out_of_memory_calls_, throwing_calls_;
};

}  // namespace stash

#include "stash/backend/host_backend.hpp"
#include "stash/backend/simulated_paged_backend.hpp"

namespace stash {
static_assert(segment_backend<failing_backend<host_backend>>);
static_assert(paged_backend<failing_backend<simulated_paged_backend>>);
}  // namespace stash
