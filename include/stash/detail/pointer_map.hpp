#pragma once
// Address -> block lookup for deallocate(p): an open-addressing hash table with linear probing and
// backward-shift deletion. No allocation per entry and one or two cache lines per lookup, which is
// what keeps deallocate on the order of ten nanoseconds (std::unordered_map allocates a node per
// insert). Keys are block addresses, never 0.
//
// At most an eighth of the slots are used (16 bytes per slot: 128 bytes of table per block). A lookup
// then nearly always ends at its first or second slot, and an erase shifts back almost nothing, so the
// probe loops' exits are predictable. At half full the loops' mispredicted exits cost more than a
// sparser table's extra cache misses: at an eighth, warm replays ran 12-20% faster per operation on the
// large-heap traces on one H200's host (bench/RESULTS.md, eighth session, run V5).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

namespace stash::detail {

template <class Value>
class pointer_map {
 public:
  pointer_map() { rehash(256); }

  Value* find(std::uintptr_t key) const noexcept {
    for (std::size_t i = slot_of(key);; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return slots_[i].value;
      if (slots_[i].key == 0) return nullptr;
    }
  }

  /// Makes sure the next insert cannot throw (std::bad_alloc here leaves the map as it was).
  void reserve_one() {
    if (size_ >= grow_at_) [[unlikely]] rehash(capacity_ * 2);
  }

  void insert(std::uintptr_t key, Value* value) {
    reserve_one();
    insert_reserved(key, value);
  }
  /// insert() after a reserve_one() with no insert since (the allocate path reserves first).
  void insert_reserved(std::uintptr_t key, Value* value) noexcept {
    place(key, value);
    ++size_;
  }

  /// Removes key (which must be present) and shifts later entries of its probe run back, so lookups
  /// never need tombstones.
  void erase(std::uintptr_t key) noexcept {
    std::size_t hole = slot_of(key);
    while (slots_[hole].key != key) hole = (hole + 1) & mask_;
    for (std::size_t next = (hole + 1) & mask_; slots_[next].key != 0; next = (next + 1) & mask_) {
      const std::size_t home = slot_of(slots_[next].key);
      // Move `next` into the hole unless its home lies cyclically in (hole, next].
      const bool stays = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next);
      if (!stays) {
        slots_[hole] = slots_[next];
        hole = next;
      }
    }
    slots_[hole] = {};
    --size_;
  }

  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }

  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < capacity_; ++i)
      if (slots_[i].key != 0) f(slots_[i].key, slots_[i].value);
  }

 private:
  struct slot {
    std::uintptr_t key = 0;
    Value* value = nullptr;
  };

  std::size_t slot_of(std::uintptr_t key) const noexcept {
    // Blocks are 256-byte aligned: drop the zero bits, then Fibonacci hashing spreads the rest.
    return static_cast<std::size_t>(((key >> 8) * 0x9E3779B97F4A7C15ull) >> shift_);
  }

  void place(std::uintptr_t key, Value* value) noexcept {
    std::size_t i = slot_of(key);
    while (slots_[i].key != 0) i = (i + 1) & mask_;
    slots_[i] = {key, value};
  }

  void rehash(std::size_t capacity) {
    auto fresh = std::make_unique<slot[]>(capacity);  // may throw: nothing has changed yet
    auto old = std::exchange(slots_, std::move(fresh));
    const std::size_t old_capacity = capacity_;
    capacity_ = capacity;
    grow_at_ = capacity / max_load_inverse;
    mask_ = capacity - 1;
    shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(capacity));
    for (std::size_t i = 0; i < old_capacity; ++i)
      if (old[i].key != 0) place(old[i].key, old[i].value);
  }

  std::unique_ptr<slot[]> slots_;
  std::size_t capacity_ = 0;
  static constexpr std::size_t max_load_inverse = 8;  // at most 1 / this of the slots are used
  std::size_t grow_at_ = 0;  // one more insert at this size grows the table
  std::size_t mask_ = 0;
  unsigned shift_ = 64;
  std::size_t size_ = 0;
};

}  // namespace stash::detail
