// detail::pointer_map, the address -> block table behind deallocate: probing, backward-shift deletion
// across colliding keys and the table's wrap-around, growth, and 100k random operations against
// std::unordered_map.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <unordered_map>
#include <vector>

#include "stash/detail/pointer_map.hpp"

namespace {

using map_type = stash::detail::pointer_map<int>;

/// Every entry of `m`, through for_each.
std::map<std::uintptr_t, int*> contents(const map_type& m) {
  std::map<std::uintptr_t, int*> out;
  m.for_each([&](std::uintptr_t k, int* v) { REQUIRE(out.emplace(k, v).second); });
  return out;
}

/// A 256-aligned key whose home slot in a table of `capacity` slots is `slot`. Mirrors the table's
/// Fibonacci hash of the key's 256-byte granule; only used to place keys where the probe run wraps.
std::uintptr_t key_with_home(std::size_t slot, std::size_t capacity) {
  const unsigned shift = 64 - static_cast<unsigned>(__builtin_ctzll(capacity));
  for (std::uintptr_t granule = 1;; ++granule)
    if (((granule * 0x9E3779B97F4A7C15ull) >> shift) == slot) return granule << 8;
}

}  // namespace

TEST_CASE("pointer_map: insert, find and erase", "[detail][pointer_map]") {
  map_type m;
  int values[3];
  REQUIRE(m.size() == 0);
  REQUIRE(m.find(0x1000) == nullptr);
  m.insert(0x1000, &values[0]);
  m.insert(0x2000, &values[1]);
  m.insert(0x1100, &values[2]);
  REQUIRE(m.size() == 3);
  REQUIRE(m.find(0x1000) == &values[0]);
  REQUIRE(m.find(0x2000) == &values[1]);
  REQUIRE(m.find(0x1100) == &values[2]);
  REQUIRE(m.find(0x1200) == nullptr);
  m.erase(0x1000);
  REQUIRE(m.size() == 2);
  REQUIRE(m.find(0x1000) == nullptr);
  REQUIRE(m.find(0x1100) == &values[2]);
  m.insert(0x1000, &values[1]);  // a key comes back with another value
  REQUIRE(m.find(0x1000) == &values[1]);
}

TEST_CASE("pointer_map: colliding keys survive erasure in any order, across the wrap-around",
          "[detail][pointer_map]") {
  // Keys in one 256-byte granule share a home slot, whatever the hash. Put the home in the last slot
  // of the initial 256-slot table so that the probe run wraps to slot 0.
  const std::uintptr_t base = key_with_home(255, 256);
  const std::uintptr_t other_home = key_with_home(0, 256);  // lives where the wrapped run lands
  std::vector<int> values(40);
  const auto order = GENERATE(0, 1, 2);
  map_type m;
  std::unordered_map<std::uintptr_t, int*> reference;
  auto put = [&](std::uintptr_t k, int* v) {
    m.insert(k, v);
    reference[k] = v;
  };
  for (std::uintptr_t i = 0; i < 12; ++i) put(base + i * 8, &values[i]);
  for (std::uintptr_t i = 0; i < 6; ++i) put(other_home + i, &values[20 + i]);
  for (std::uintptr_t i = 12; i < 20; ++i) put(base + i * 8, &values[i]);
  REQUIRE(m.size() == 26);
  REQUIRE(m.capacity() == 256);  // still the initial table: no rehash has moved anything

  std::vector<std::uintptr_t> keys;
  for (const auto& [k, v] : reference) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  if (order == 1) std::reverse(keys.begin(), keys.end());
  if (order == 2) std::shuffle(keys.begin(), keys.end(), std::mt19937_64(3));
  for (std::uintptr_t k : keys) {
    INFO("erasing " << k);
    m.erase(k);
    reference.erase(k);
    REQUIRE(m.find(k) == nullptr);
    REQUIRE(m.size() == reference.size());
    for (const auto& [rk, rv] : reference) REQUIRE(m.find(rk) == rv);
  }
  REQUIRE(contents(m).empty());
}

TEST_CASE("pointer_map: grows and keeps every entry", "[detail][pointer_map]") {
  map_type m;
  std::vector<int> values(5000);
  for (std::size_t i = 0; i < values.size(); ++i) {
    m.insert((i + 1) * 256, &values[i]);
    REQUIRE(m.capacity() >= 8 * m.size());  // at most an eighth of the slots used
  }
  REQUIRE(m.size() == values.size());
  REQUIRE(m.capacity() == 65536);  // 5000 entries: 32768 slots hold at most 4096
  for (std::size_t i = 0; i < values.size(); ++i) REQUIRE(m.find((i + 1) * 256) == &values[i]);
  REQUIRE(contents(m).size() == values.size());
  for (std::size_t i = 0; i < values.size(); i += 2) m.erase((i + 1) * 256);
  for (std::size_t i = 0; i < values.size(); ++i)
    REQUIRE(m.find((i + 1) * 256) == (i % 2 ? &values[i] : nullptr));
}

TEST_CASE("pointer_map: 100k random operations agree with std::unordered_map", "[detail][pointer_map]") {
  map_type m;
  std::unordered_map<std::uintptr_t, int*> reference;
  std::vector<std::uintptr_t> present;
  std::vector<int> values(64);
  std::mt19937_64 rng(GENERATE(as<std::uint64_t>{}, 1, 2));
  // Few distinct granules and several keys per granule: long probe runs and many collisions.
  auto random_key = [&] {
    const std::uintptr_t granule = 1 + rng() % 3000;
    return (granule << 8) + (rng() % 4) * 64;
  };
  for (int op = 0; op < 100000; ++op) {
    const bool insert = present.empty() || (rng() % 100 < (present.size() < 1500 ? 60 : 40));
    if (insert) {
      const std::uintptr_t k = random_key();
      if (reference.count(k)) {
        REQUIRE(m.find(k) == reference[k]);
        continue;
      }
      int* v = &values[rng() % values.size()];
      m.insert(k, v);
      reference.emplace(k, v);
      present.push_back(k);
    } else {
      const std::size_t i = rng() % present.size();
      const std::uintptr_t k = present[i];
      present[i] = present.back();
      present.pop_back();
      m.erase(k);
      reference.erase(k);
      REQUIRE(m.find(k) == nullptr);
    }
    REQUIRE(m.size() == reference.size());
    const std::uintptr_t probe = random_key();
    const auto it = reference.find(probe);
    REQUIRE(m.find(probe) == (it == reference.end() ? nullptr : it->second));
    if (op % 10000 == 0) {
      const auto all = contents(m);
      REQUIRE(all.size() == reference.size());
      for (const auto& [k, v] : all) REQUIRE(reference.at(k) == v);
    }
  }
  for (const auto& [k, v] : reference) REQUIRE(m.find(k) == v);
}
