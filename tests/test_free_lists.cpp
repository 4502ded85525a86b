// detail::free_lists: per-bucket doubly linked lists and the two-level bitmap that finds the first
// non-empty bucket at or above an index, checked against a std::set across word boundaries.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "stash/detail/block.hpp"
#include "stash/detail/free_lists.hpp"

namespace {

using stash::detail::block;

/// Brute force: the smallest non-empty bucket >= i, or `none`.
std::size_t expected_first(const std::multiset<std::size_t>& buckets, std::size_t i, std::size_t none) {
  const auto it = buckets.lower_bound(i);
  return it == buckets.end() ? none : *it;
}

template <std::size_t N>
void require_all_queries(const stash::detail::free_lists<N>& lists,
                         const std::multiset<std::size_t>& buckets) {
  for (std::size_t i = 0; i <= N + 1; ++i) {
    const std::size_t want = expected_first(buckets, i, lists.none);
    if (lists.first_at_or_above(i) != want) {
      INFO("first_at_or_above(" << i << ") with " << buckets.size() << " blocks");
      REQUIRE(lists.first_at_or_above(i) == want);
    }
  }
}

}  // namespace

TEMPLATE_TEST_CASE_SIG("free_lists: first_at_or_above across word boundaries", "[detail][free_lists]",
                       ((std::size_t N), N), 1, 63, 64, 65, 817, 4096) {
  using lists_type = stash::detail::free_lists<N>;
  STATIC_REQUIRE(lists_type::none == N);
  auto lists = std::make_unique<lists_type>();
  std::multiset<std::size_t> buckets;
  require_all_queries(*lists, buckets);

  // Buckets at both edges of every 64-bit word, and the last one.
  std::vector<std::size_t> wanted;
  for (std::size_t w = 0; w * 64 < N; ++w)
    for (std::size_t i : {w * 64, w * 64 + 1, w * 64 + 62, w * 64 + 63})
      if (i < N) wanted.push_back(i);
  wanted.push_back(N - 1);
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  std::vector<block> blocks(wanted.size());

  for (std::size_t k = 0; k < wanted.size(); ++k) {
    lists->push(&blocks[k], wanted[k]);
    buckets.insert(wanted[k]);
    if (wanted.size() <= 64 || k % 8 == 0) require_all_queries(*lists, buckets);
    REQUIRE(lists->first_at_or_above(wanted[k]) == wanted[k]);
    if (wanted[k] > 0)
      REQUIRE(lists->first_at_or_above(wanted[k] - 1) == expected_first(buckets, wanted[k] - 1, N));
  }
  // Take them out from the lowest up: each removal moves the answer past a word boundary at times.
  for (std::size_t k = 0; k < wanted.size(); ++k) {
    lists->remove(&blocks[k]);
    buckets.erase(buckets.find(wanted[k]));
    if (wanted.size() <= 64 || k % 8 == 0) require_all_queries(*lists, buckets);
    REQUIRE(lists->first_at_or_above(wanted[k]) == expected_first(buckets, wanted[k], N));
    REQUIRE(lists->head(wanted[k]) == nullptr);
  }
}

TEST_CASE("free_lists: lists are LIFO and removal from the middle keeps the links", "[detail][free_lists]") {
  stash::detail::free_lists<817> lists;
  block b[4];
  for (block& x : b) lists.push(&x, 130);
  REQUIRE(lists.head(130) == &b[3]);
  lists.remove(&b[2]);  // middle
  REQUIRE(lists.head(130) == &b[3]);
  REQUIRE(b[3].next_free == &b[1]);
  REQUIRE(b[1].prev_free == &b[3]);
  lists.remove(&b[3]);  // head
  REQUIRE(lists.head(130) == &b[1]);
  REQUIRE(lists.is_head(&b[1]));  // its prev_free marks list 130 now
  REQUIRE_FALSE(lists.is_head(&b[0]));
  REQUIRE(lists.first_at_or_above(0) == 130);
  lists.remove(&b[0]);  // tail
  REQUIRE(b[1].next_free == nullptr);
  lists.remove(&b[1]);
  REQUIRE(lists.head(130) == nullptr);
  REQUIRE(lists.first_at_or_above(0) == lists.none);  // the bucket's bit went with its last block
}

TEST_CASE("free_lists: random pushes and removals agree with a multiset", "[detail][free_lists]") {
  constexpr std::size_t n = 817;
  auto lists = std::make_unique<stash::detail::free_lists<n>>();
  std::multiset<std::size_t> buckets;
  std::vector<std::unique_ptr<block>> in;
  std::map<const block*, std::size_t> list_of;  // the records do not say which list they are in
  std::mt19937_64 rng(99);
  for (int op = 0; op < 20000; ++op) {
    if (in.empty() || rng() % 100 < (in.size() < 60 ? 55 : 45)) {
      auto b = std::make_unique<block>();
      const std::size_t i = rng() % 4 == 0 ? rng() % n : 60 + rng() % 140;
      lists->push(b.get(), i);
      buckets.insert(i);
      list_of[b.get()] = i;
      in.push_back(std::move(b));
    } else {
      const std::size_t k = rng() % in.size();
      lists->remove(in[k].get());
      buckets.erase(buckets.find(list_of.at(in[k].get())));
      list_of.erase(in[k].get());
      in[k] = std::move(in.back());
      in.pop_back();
    }
    const std::size_t i = rng() % (n + 1);
    REQUIRE(lists->first_at_or_above(i) == expected_first(buckets, i, lists->none));
    if (op % 1000 == 0) require_all_queries(*lists, buckets);
  }
  // Every list holds exactly the blocks of its bucket.
  std::size_t counted = 0;
  for (std::size_t i = 0; i < n; ++i)
    for (block* b = lists->head(i); b; b = b->next_free) {
      REQUIRE(list_of.at(b) == i);
      REQUIRE(lists->is_head(b) == (b == lists->head(i)));
      ++counted;
    }
  REQUIRE(counted == in.size());
}

TEST_CASE("free_lists: with most lists holding one block or none, every link and bit stays right",
          "[detail][free_lists]") {
  // push and remove select their cases with masks (a list emptied or not, a block at its head, at
  // its end or both): lists of one block, the common case of a large heap, take every combination.
  constexpr std::size_t n = 817;
  auto lists = std::make_unique<stash::detail::free_lists<n>>();
  std::vector<std::vector<block*>> model(n);  // each list from its head
  std::vector<std::unique_ptr<block>> in;
  std::map<const block*, std::size_t> list_of;
  std::mt19937_64 rng(2026);
  auto require_list = [&](std::size_t i) {
    const std::vector<block*>& want = model[i];
    block* b = lists->head(i);
    for (std::size_t k = 0; k < want.size(); ++k, b = b->next_free) {
      REQUIRE(b == want[k]);
      REQUIRE(lists->is_head(b) == (k == 0));
      if (k > 0) REQUIRE(b->prev_free == want[k - 1]);
    }
    REQUIRE(b == nullptr);
  };
  for (int op = 0; op < 30000; ++op) {
    std::size_t touched = 0;
    if (in.empty() || rng() % 2 == 0) {
      auto b = std::make_unique<block>();
      touched = rng() % n;
      lists->push(b.get(), touched);
      model[touched].insert(model[touched].begin(), b.get());
      list_of[b.get()] = touched;
      in.push_back(std::move(b));
    } else {
      const std::size_t k = rng() % in.size();
      block* const b = in[k].get();
      touched = list_of.at(b);
      lists->remove(b);
      auto& m = model[touched];
      m.erase(std::find(m.begin(), m.end(), b));
      list_of.erase(b);
      in[k] = std::move(in.back());
      in.pop_back();
    }
    require_list(touched);
    std::size_t first = lists->none;
    for (std::size_t i = touched; i < n; ++i)
      if (!model[i].empty()) {
        first = i;
        break;
      }
    REQUIRE(lists->first_at_or_above(touched) == first);
    if (op % 3000 == 0)
      for (std::size_t i = 0; i < n; ++i) require_list(i);
  }
  for (std::size_t i = 0; i < n; ++i) require_list(i);
}

TEST_CASE("block: one cache line, and the flags in prev_adjacent's low bits survive relinking",
          "[detail][free_lists]") {
  STATIC_REQUIRE(sizeof(block) == 64);
  STATIC_REQUIRE(alignof(block) == 64);
  auto r = std::make_unique<block[]>(4);
  block& b = r[1];
  REQUIRE(b.prev_adjacent() == nullptr);
  REQUIRE_FALSE(b.is_free());
  REQUIRE_FALSE(b.is_live());  // not filed, and not indexed: neither free nor handed out

  b.start_above(&r[0]);
  REQUIRE(b.prev_adjacent() == &r[0]);
  REQUIRE(b.pool() == 0);
  b.set_indexed(true);
  b.set_pool(1);
  b.set_used_elsewhere(true);
  REQUIRE(b.is_live());
  b.replace_prev_adjacent(&r[0], &r[3]);  // the flags stay as they were
  REQUIRE(b.prev_adjacent() == &r[3]);
  REQUIRE(b.indexed());
  REQUIRE(b.pool() == 1);
  REQUIRE(b.used_elsewhere());
  b.set_used_elsewhere(false);
  REQUIRE(b.pool() == 1);
  REQUIRE_FALSE(b.used_elsewhere());

  r[2].start_above(&b);  // a split's rest: b's pool, no other flag
  REQUIRE(r[2].prev_adjacent() == &b);
  REQUIRE(r[2].pool() == 1);
  REQUIRE_FALSE(r[2].indexed());
  REQUIRE_FALSE(r[2].used_elsewhere());

  stash::detail::free_lists<817> lists;  // filed is free; taken out and cleared is not
  lists.push(&b, 5);
  REQUIRE(b.is_free());
  REQUIRE_FALSE(b.is_live());
  lists.remove(&b);
  b.prev_free = nullptr;
  REQUIRE_FALSE(b.is_free());
  REQUIRE(b.is_live());
  REQUIRE(b.prev_adjacent() == &r[3]);
}
