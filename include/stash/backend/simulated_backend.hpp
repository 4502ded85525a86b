#pragma once
// A segment backend over a fake address space: it hands out addresses and touches no memory, so a
// trace larger than any machine replays anywhere, and a capacity makes out-of-memory happen on demand.
// It also checks its caller: every deallocate must match a live segment exactly. Segments are laid out
// one after another in windows of the fake address space that no other simulated backend shares.
#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include "stash/backend/backend.hpp"
#include "stash/detail/fake_address_space.hpp"

namespace stash {

class simulated_backend {
 public:
  static constexpr memory_kind kind = memory_kind::simulated;
  static constexpr std::size_t unlimited = SIZE_MAX;

  explicit simulated_backend(std::size_t capacity_bytes = unlimited, std::size_t granularity = 512)
      : capacity_(capacity_bytes), granularity_(granularity) {}

  /// nullptr when the capacity is reached. Throws std::bad_alloc (and changes nothing) when the host
  /// heap cannot record the segment.
  void* allocate(std::size_t bytes) {
    ++allocate_calls_;
    if (in_use_ > capacity_ || bytes > capacity_ - in_use_) return nullptr;  // capacity may drop below use
    if (bytes > SIZE_MAX - 2 * alignment) return nullptr;
    const std::size_t span =
        (bytes + alignment - 1) / alignment * alignment + alignment;  // a gap: no two touch
    if (span > window_left_) {  // the rest of the window is too small: a fresh one (the rest is never used)
      const std::uintptr_t base = detail::take_fake_address_window(span);
      if (base == 0) return nullptr;  // the fake address range is used up
      next_ = base;
      window_left_ = ((span - 1) / detail::fake_window_bytes + 1) * detail::fake_window_bytes;
    }
    const std::uintptr_t addr = next_;
    live_.emplace(addr, bytes);  // first: the only step that may throw
    next_ += span;
    window_left_ -= span;
    in_use_ += bytes;
    peak_in_use_ = in_use_ > peak_in_use_ ? in_use_ : peak_in_use_;
    return reinterpret_cast<void*>(addr);
  }
  void deallocate(void* p, std::size_t bytes) noexcept {
    auto it = live_.find(reinterpret_cast<std::uintptr_t>(p));
    if (it == live_.end() || it->second != bytes) {
      ++mismatched_frees_;
      return;
    }
    in_use_ -= bytes;
    live_.erase(it);
    ++deallocate_calls_;
  }
  std::size_t granularity() const noexcept { return granularity_; }
  int device() const noexcept { return device_; }
  void set_device(int d) noexcept { device_ = d; }

  // What the backend saw, for tests and the replay tool.
  std::size_t in_use_bytes() const noexcept { return in_use_; }
  std::size_t peak_in_use_bytes() const noexcept { return peak_in_use_; }
  std::size_t live_segments() const noexcept { return live_.size(); }
  std::size_t allocate_calls() const noexcept { return allocate_calls_; }
  std::size_t deallocate_calls() const noexcept { return deallocate_calls_; }
  std::size_t mismatched_frees() const noexcept { return mismatched_frees_; }
  void set_capacity(std::size_t bytes) noexcept { capacity_ = bytes; }

 private:
  static constexpr std::size_t alignment = 4096;
  std::size_t capacity_;
  std::size_t granularity_;
  int device_ = 0;
  std::uintptr_t next_ = 0;       // where the next segment goes
  std::size_t window_left_ = 0;   // bytes from next_ to the end of the window taken
  std::size_t in_use_ = 0, peak_in_use_ = 0;
  std::size_t allocate_calls_ = 0, deallocate_calls_ = 0, mismatched_frees_ = 0;
  std::unordered_map<std::uintptr_t, std::size_t> live_;
};

static_assert(segment_backend<simulated_backend>);

}  // namespace stash
