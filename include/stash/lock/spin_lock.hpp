#pragma once
// A test-and-test-and-set spin lock. The allocator's critical sections are a few dozen nanoseconds,
// far shorter than a futex sleep and wake, so under contention spinning keeps the throughput that
// std::mutex loses to the kernel. Spins on a plain load (no cache-line ping-pong) with a pause hint,
// and yields the thread after a while so an oversubscribed machine still makes progress.
#include <atomic>
#include <thread>

#include "stash/lock/lock.hpp"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define STASH_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define STASH_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define STASH_CPU_RELAX() ((void)0)
#endif

namespace stash {

class spin_lock {
 public:
  void lock() noexcept {
    if (!locked_.exchange(true, std::memory_order_acquire)) [[likely]] return;
    wait_and_lock();
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  /// Contended: out of line, so that the uncontended lock() inlined into the allocator's fast path is
  /// one exchange and a branch, and keeps no spin counter in a register.
  [[gnu::cold, gnu::noinline]] void wait_and_lock() noexcept {
    for (int spins = 0;; ++spins) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 1024) {
          STASH_CPU_RELAX();
        } else {
          std::this_thread::yield();
        }
      }
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
    }
  }

  alignas(64) std::atomic<bool> locked_{false};
};

static_assert(lock_policy<spin_lock>);

}  // namespace stash
