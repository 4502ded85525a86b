// Randomized driver over the std adapters (pinned/device/stream allocators), resource_adaptor,
// logging_adaptor and sharded_allocator, with backend and host-heap failures injected.
#include <cstdio>
#include <cstdlib>
#include <list>
#include <map>
#include <random>
#include <sstream>
#include <unordered_map>
#include <vector>

#include "../audit-adapt/bench/trace_reader.hpp"
#include "stash/allocators.hpp"
#include "stash/device_allocator.hpp"
#include "stash/logging_adaptor.hpp"
#include "stash/memory_resource.hpp"
#include "stash/pinned_allocator.hpp"
#include "stash/stream_allocator.hpp"
#include "support/compositions.hpp"
#include "support/failing_heap.hpp"

#define ENSURE(c)                                                                        \
  do {                                                                                   \
    if (!(c)) {                                                                          \
      std::fprintf(stderr, "%s:%d: ENSURE(%s) failed (seed %u step %d)\n", __FILE__, __LINE__, #c, g_seed, g_step); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

static unsigned g_seed;
/// Bookkeeping of the driver itself: never from the failing operator new.
template <class T>
struct malloc_alloc {
  using value_type = T;
  malloc_alloc() = default;
  template <class U> malloc_alloc(const malloc_alloc<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(std::malloc(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) { std::free(p); }
  friend bool operator==(malloc_alloc, malloc_alloc) { return true; }
};
template <class K, class V>
using umap = std::unordered_map<K, V, std::hash<K>, std::equal_to<K>, malloc_alloc<std::pair<const K, V>>>;
static int g_step;

using pool_t = stash_test::failing_host_segregated;
using sim_stream_pool = stash::caching_allocator<stash::failing_backend<stash::simulated_paged_backend>,
                                                 stash::segregated_fit_buckets, stash::spin_lock,
                                                 stash::basic_stats, stash::simulated_ordering>;

/// Sits between an allocator and the resource under test: checks that every free matches a live
/// allocation exactly (pointer, bytes, stream) and that each is freed once.
class tracking_resource final : public stash::memory_resource {
 public:
  explicit tracking_resource(stash::memory_resource& up) : up_(up) {}
  void* allocate(std::size_t bytes) override { return note(up_.allocate(bytes), bytes, stash::stream{}); }
  void deallocate(void* p, std::size_t bytes) override { forget(p, bytes, stash::stream{}); up_.deallocate(p, bytes); }
  std::size_t max_size() const noexcept override { return up_.max_size(); }
  stash::memory_kind kind() const noexcept override { return up_.kind(); }
  int device() const noexcept override { return up_.device(); }
  umap<void*, std::pair<std::size_t, stash::stream>> live;
  std::size_t live_bytes_rounded() const {
    std::size_t s = 0;
    for (auto& [p, v] : live) s += pool_t::good_size(v.first);
    return s;
  }

 private:
  void* note(void* p, std::size_t bytes, stash::stream s) {
    ENSURE(p != nullptr && bytes > 0);
    ENSURE(reinterpret_cast<std::uintptr_t>(p) % 256 == 0);
    ENSURE(live.emplace(p, std::make_pair(bytes, s)).second);
    return p;
  }
  void forget(void* p, std::size_t bytes, stash::stream s) {
    auto it = live.find(p);
    ENSURE(it != live.end());
    ENSURE(it->second.first == bytes);
    ENSURE(it->second.second == s);
    live.erase(it);
  }
  void* do_allocate(std::size_t bytes, stash::stream s) override {
    void* p = up_.allocate(bytes, s);
    return note(p, bytes, s);
  }
  void do_deallocate(void* p, std::size_t bytes, stash::stream s) override {
    forget(p, bytes, s);
    up_.deallocate(p, bytes, s);
  }
  stash::memory_resource& up_;
};

struct world {
  pool_t pool_a, pool_b, pool_c;
  std::ostringstream log;
  stash::logging_adaptor<pool_t> logged{pool_c, log};
  stash::resource_adaptor<pool_t> ra{pool_a}, rb{pool_b};
  stash::resource_adaptor<stash::logging_adaptor<pool_t>> rc{logged};
  tracking_resource ta{ra}, tb{rb}, tc{rc};
  tracking_resource* res[3] = {&ta, &tb, &tc};
  pool_t* pools[3] = {&pool_a, &pool_b, &pool_c};
};

static stash::stream fake(std::uintptr_t v) { return stash::stream(reinterpret_cast<CUstream_st*>(v)); }

template <class Vec, bool writable, class MakeAlloc>
void vector_ops(world& w, std::mt19937& rng, MakeAlloc make) {
  std::vector<Vec> vs;
  for (int i = 0; i < 4; ++i) vs.emplace_back(make(rng() % 3, rng() % 3));
  for (int step = 0; step < 400; ++step) {
    g_step = step;
    Vec& v = vs[rng() % vs.size()];
    Vec& u = vs[rng() % vs.size()];
    const int op = static_cast<int>(rng() % 12);
    const int fail = static_cast<int>(rng() % 6);  // 0: backend fails next call, 1: heap fails
    const auto stats_before = std::make_tuple(w.pool_a.stats(), w.pool_b.stats(), w.pool_c.stats());
    const auto size_before = v.size();
    const auto data_before = v.data();
    const auto cap_before = v.capacity();
    if (fail == 0) for (auto* p : w.pools) p->backend().fail_call(1);
    bool threw = false;
    try {
      stash_test::failing_heap::armed heap(fail == 1 ? 1 + rng() % 3 : 0);
      switch (op) {
        case 0: if constexpr (writable) v.resize(v.size() + rng() % 3000); else v = Vec(rng() % 3000, v.get_allocator()); break;
        case 1: if constexpr (writable) { for (int i = rng() % 500; i-- > 0;) v.push_back(typename Vec::value_type{}); } break;
        case 2: if constexpr (writable) v.reserve(v.capacity() + rng() % 5000); else { Vec n(rng() % 5000, make(rng() % 3, rng() % 3)); n.swap(v); } break;
        case 3: if constexpr (writable) u = v; break;
        case 4: if (&u != &v) u = std::move(v); break;
        case 5: u.swap(v); break;
        case 6: v.clear(); if constexpr (writable) v.shrink_to_fit(); break;
        case 7: v = Vec(make(rng() % 3, rng() % 3)); break;
        case 8: if constexpr (writable) { try { v.reserve(v.max_size() + 1); ENSURE(false); } catch (const std::length_error&) {} } else { try { Vec n(v.max_size() + 1, v.get_allocator()); ENSURE(false); } catch (const std::length_error&) {} } break;
        case 9: if constexpr (writable) { try { v.reserve(v.max_size()); ENSURE(false); } catch (const stash::out_of_memory&) {} } break;
        case 10: if constexpr (writable) { Vec c(v); c.resize(c.size() / 2); } break;
        case 11: if constexpr (writable) { Vec c(v, make(rng() % 3, rng() % 3)); v = std::move(c); } break;
      }
    } catch (const stash::out_of_memory&) {
      threw = true;
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    for (auto* p : w.pools) p->backend().cancel_pending();
    if (writable && threw && (op == 2 || op == 1 || op == 0)) {
      // vector::reserve, push_back and resize give the strong guarantee (trivial elements).
      if (op == 2) { ENSURE(v.size() == size_before); ENSURE(v.data() == data_before); ENSURE(v.capacity() == cap_before); }
    }
    (void)stats_before;
    // Every pool holds exactly what the tracker says is live.
    for (int i = 0; i < 3; ++i)
      if (w.pools[i]->stats().allocated_bytes != w.res[i]->live_bytes_rounded())
        std::fprintf(stderr, "pool %d op %d fail %d threw %d: pool %zu tracker %zu (%zu live)\n", i, op, fail, threw,
                     w.pools[i]->stats().allocated_bytes, w.res[i]->live_bytes_rounded(), w.res[i]->live.size());
    for (int i = 0; i < 3; ++i) ENSURE(w.pools[i]->stats().allocated_bytes == w.res[i]->live_bytes_rounded());
  }
}

template <class T>
struct pinned_maker {
  world* w;
  stash::pinned_allocator<T> operator()(unsigned r, unsigned) const { return stash::pinned_allocator<T>(*w->res[r]); }
};
template <class T>
struct device_maker {
  world* w;
  stash::device_allocator<T> operator()(unsigned r, unsigned) const { return stash::device_allocator<T>(*w->res[r]); }
};
template <class T>
struct stream_maker {
  world* w;
  stash::stream_allocator<T> operator()(unsigned r, unsigned s) const {
    return stash::stream_allocator<T>(*w->res[r], s == 0 ? stash::stream{} : fake(0x1000 * s));
  }
};

template <class Alloc>
void node_ops(world& w, std::mt19937& rng, Alloc a0, Alloc a1) {
  using map_t = std::map<int, int, std::less<>, typename std::allocator_traits<Alloc>::template rebind_alloc<std::pair<const int, int>>>;
  using list_t = std::list<int, typename std::allocator_traits<Alloc>::template rebind_alloc<int>>;
  map_t m0(a0), m1(a1);
  list_t l0(a0), l1(a1);
  for (int step = 0; step < 300; ++step) {
    g_step = step;
    const int fail = static_cast<int>(rng() % 5);
    if (fail == 0) for (auto* p : w.pools) p->backend().fail_call(1);
    try {
      stash_test::failing_heap::armed heap(fail == 1 ? 1 + rng() % 2 : 0);
      switch (rng() % 6) {
        case 0: for (int i = 0; i < 50; ++i) m0[static_cast<int>(rng() % 1000)] = i; break;
        case 1: for (int i = 0; i < 50; ++i) l1.push_back(i); break;
        case 2: m1 = m0; break;
        case 3: l0.swap(l1); m0.swap(m1); break;
        case 4: l0 = std::move(l1); break;
        case 5: m0.clear(); l1.clear(); break;
      }
    } catch (const std::bad_alloc&) {
    }
    for (auto* p : w.pools) p->backend().cancel_pending();
    for (int i = 0; i < 3; ++i) ENSURE(w.pools[i]->stats().allocated_bytes == w.res[i]->live_bytes_rounded());
  }
}

/// The log of pool_c against what the tracker saw.
void check_log(world& w) {
  w.logged.flush();
  const std::string text = w.log.str();
  if (getenv("DUMP")) std::fprintf(stderr, "%s\n---- lost %llu\n", text.c_str(), (unsigned long long)w.logged.lines_lost());
  if (w.logged.lines_lost() == 0) {
    const auto t = stash::bench::parse_trace_string(text);
    ENSURE(t.skipped_frees == 0);
  }
  // Stream column: every free line carries the stream of its allocation line.
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  std::unordered_map<std::string, std::string> stream_of;
  int bad = 0;
  while (std::getline(in, line)) {
    if (w.logged.lines_lost() != 0 && in.eof()) break;  // the line the stream failed in may be cut short
    auto f = stash::bench::detail::split_csv(line);
    if (f.size() != 6) break;  // a line cut short where the stream failed (lines lost from there)
    std::string action(f[2]), ptr(f[3]), st(f[5]);
    if (action == "allocate") stream_of[ptr] = st;
    else if (action == "free") {
      if (stream_of[ptr] != st) {
        if (bad++ < 3) std::fprintf(stderr, "log: free of %s on %s, allocated on %s\n", ptr.c_str(), st.c_str(), stream_of[ptr].c_str());
      }
    }
  }
  if (bad) std::fprintf(stderr, "log: %d frees logged on another stream than their allocation\n", bad);
  ENSURE(bad == 0);
}

int main(int argc, char** argv) {
  const unsigned seeds = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 20;
  const bool check_streams = argc > 2 ? std::atoi(argv[2]) != 0 : true;
  ENSURE(stash_test::failing_heap::can_fail());
  for (g_seed = getenv("FIRST") ? atoi(getenv("FIRST")) : 1; g_seed <= seeds; ++g_seed) {
    if (getenv("V")) std::fprintf(stderr, "seed %u\n", g_seed);
    std::mt19937 rng(g_seed);
    world w;
    vector_ops<std::vector<int, stash::pinned_allocator<int>>, true>(w, rng, pinned_maker<int>{&w});
    vector_ops<std::vector<float, stash::device_allocator<float>>, false>(w, rng, device_maker<float>{&w});
    vector_ops<std::vector<double, stash::stream_allocator<double>>, true>(w, rng, stream_maker<double>{&w});
    node_ops(w, rng, stash::pinned_allocator<int>(w.ta), stash::pinned_allocator<int>(w.tc));
    node_ops(w, rng, stash::stream_allocator<int>(w.tc, fake(0x5000)), stash::stream_allocator<int>(w.tb, fake(0x6000)));
    for (int i = 0; i < 3; ++i) {
      ENSURE(w.res[i]->live.empty());
      ENSURE(w.pools[i]->stats().allocated_bytes == 0);
      ENSURE(w.pools[i]->stats().allocations == w.pools[i]->stats().deallocations);
    }
    if (check_streams) check_log(w);
  }
  std::printf("adapters driver: %u seeds ok\n", seeds);
}
