#pragma once
// The simplest allocator bookkeeping that can be right: a map of live pointers to the size asked for
// and the size good_size promised. The typed suites run random sequences against it and compare every
// counter the allocator reports.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>

namespace stash_test {

class reference_model {
 public:
  struct live_block {
    std::size_t requested;
    std::size_t good_size;
  };

  /// false if [p, p + good_size) overlaps a live block (the block is recorded anyway).
  bool allocate(const void* p, std::size_t requested, std::size_t good_size) {
    const auto a = address(p);
    bool overlap = false;
    auto next = live_.lower_bound(a);
    if (next != live_.end() && next->first < a + good_size) overlap = true;
    if (next != live_.begin() && std::prev(next)->first + std::prev(next)->second.good_size > a)
      overlap = true;
    live_[a] = {requested, good_size};
    allocated_ += good_size;
    requested_ += requested;
    peak_allocated_ = std::max(peak_allocated_, allocated_);
    peak_requested_ = std::max(peak_requested_, requested_);
    ++allocations_;
    return !overlap;
  }

  void deallocate(const void* p) {
    auto it = live_.find(address(p));
    allocated_ -= it->second.good_size;
    requested_ -= it->second.requested;
    live_.erase(it);
    ++deallocations_;
  }

  void reset_peak() {
    peak_allocated_ = allocated_;
    peak_requested_ = requested_;
  }

  const std::map<std::uintptr_t, live_block>& live() const noexcept { return live_; }
  std::size_t allocated_bytes() const noexcept { return allocated_; }
  std::size_t requested_bytes() const noexcept { return requested_; }
  std::size_t peak_allocated_bytes() const noexcept { return peak_allocated_; }
  std::size_t peak_requested_bytes() const noexcept { return peak_requested_; }
  std::uint64_t allocations() const noexcept { return allocations_; }
  std::uint64_t deallocations() const noexcept { return deallocations_; }

  /// Pages of page_bytes that at least one live block touches (paged backends keep exactly these).
  /// Whether a live block lies (by its good size) on some byte of [lo, hi).
  bool touches(std::uintptr_t lo, std::uintptr_t hi) const {
    auto it = live_.lower_bound(hi);  // the first block at or past hi; the one before may reach lo
    if (it == live_.begin()) return false;
    --it;
    return it->first + it->second.good_size > lo;
  }

  std::size_t touched_pages(std::size_t page_bytes) const {
    std::size_t count = 0;
    std::uintptr_t last_counted = UINTPTR_MAX;
    for (const auto& [a, b] : live_) {  // in address order: only the previous block can share a page
      const std::uintptr_t first = a / page_bytes, last = (a + b.good_size - 1) / page_bytes;
      count += last - first + 1 - (first == last_counted ? 1 : 0);
      last_counted = last;
    }
    return count;
  }

 private:
  static std::uintptr_t address(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }

  std::map<std::uintptr_t, live_block> live_;
  std::size_t allocated_ = 0, requested_ = 0, peak_allocated_ = 0, peak_requested_ = 0;
  std::uint64_t allocations_ = 0, deallocations_ = 0;
};

}  // namespace stash_test
