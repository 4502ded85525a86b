// Randomized, model-checked driver for stash::stream_allocator<T>: std containers of several element
// types (rebinding) on random streams over a stream-ordered sharded pool, copied, moved, swapped and
// assigned at random. Every block must be freed on the stream it was allocated on (the stream travels
// with the memory), with the size it was allocated with, and the pool's live bytes must equal the
// blocks outstanding after every step.
// Usage: stream_alloc_driver SEED STEPS  (ASAN_OPTIONS=allocator_may_return_null=1: max_size() runs out of memory)
#include <cstdio>
#include <cstdlib>
#include <list>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "stash/backend/host_backend.hpp"
#include "stash/caching_allocator.hpp"
#include "stash/lock/spin_lock.hpp"
#include "stash/memory_resource.hpp"
#include "stash/ordering/simulated_ordering.hpp"
#include "stash/sharded_allocator.hpp"
#include "stash/stream_allocator.hpp"

using namespace stash;
using shard = caching_allocator<host_backend, segregated_fit_buckets, spin_lock, basic_stats, simulated_ordering>;
using pool_t = sharded_allocator<shard, 2>;

static unsigned long long g_seed;
static long g_step;
#define CHECKF(c, what)                                                                                         \
  do {                                                                                                          \
    if (!(c)) {                                                                                                 \
      std::fprintf(stderr, "FAIL seed=%llu step=%ld line %d: %s :: %s\n", g_seed, g_step, __LINE__, #c, what); \
      std::exit(1);                                                                                             \
    }                                                                                                           \
  } while (0)

/// Passes every call to the pool and keeps the stream and size of every block outstanding.
class checking_resource final : public memory_resource {
 public:
  explicit checking_resource(pool_t& p) : pool_(p) {}
  void* allocate(std::size_t bytes) override { return do_allocate(bytes, stream{}); }
  void deallocate(void* p, std::size_t bytes) override { do_deallocate(p, bytes, stream{}); }
  std::size_t max_size() const noexcept override { return pool_t::max_size(); }
  memory_kind kind() const noexcept override { return memory_kind::simulated; }
  int device() const noexcept override { return 0; }
  std::map<void*, std::pair<stream, std::size_t>> live;
  std::size_t outstanding = 0;

 private:
  void* do_allocate(std::size_t bytes, stream s) override {
    void* p = pool_.allocate(bytes, s);
    CHECKF(!live.count(p), "address handed out twice");
    live[p] = {s, bytes};
    outstanding += bytes;
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, stream s) override {
    auto it = live.find(p);
    CHECKF(it != live.end(), "freeing a block that is not outstanding");
    CHECKF(it->second.first == s, "freed on another stream than it was allocated on");
    CHECKF(it->second.second == bytes, "freed with another size");
    outstanding -= bytes;
    live.erase(it);
    pool_.deallocate(p, bytes, s);
  }
  pool_t& pool_;
};

struct big {
  alignas(64) char bytes[192];
};

int main(int argc, char** argv) {
  g_seed = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 1;
  const long steps = argc > 2 ? std::strtol(argv[2], nullptr, 0) : 5000;
  std::mt19937_64 rng(g_seed);
  pool_t pool([](std::size_t) { return host_backend{}; });  // host memory (containers store), stream order simulated
  std::vector<stream> streams{stream{}};
  for (int k = 0; k < 3; ++k) {
    stream s;
    for (std::size_t i = 0; i < 2; ++i) s = pool.shard(i).ordering().make_stream();
    streams.push_back(s);
  }
  checking_resource r1(pool), r2(pool);
  auto any_alloc = [&]() -> stream_allocator<int> {
    return stream_allocator<int>(rng() % 4 ? r1 : r2, streams[rng() % streams.size()]);
  };
  using ivec = std::vector<int, stream_allocator<int>>;
  using blist = std::list<big, stream_allocator<big>>;
  using dmap = std::map<int, double, std::less<int>, stream_allocator<std::pair<const int, double>>>;
  std::vector<ivec> vecs;
  std::vector<blist> lists;
  std::vector<dmap> maps;
  for (int i = 0; i < 4; ++i) {
    vecs.emplace_back(any_alloc());
    lists.emplace_back(stream_allocator<big>(any_alloc()));
    maps.emplace_back(stream_allocator<std::pair<const int, double>>(any_alloc()));
  }
  for (g_step = 0; g_step < steps; ++g_step) {
    const unsigned op = rng() % 20;
    auto& v = vecs[rng() % vecs.size()];
    auto& l = lists[rng() % lists.size()];
    auto& m = maps[rng() % maps.size()];
    switch (op) {
      case 0: case 1: case 2: for (int k = rng() % 300; k > 0; --k) v.push_back(k); break;
      case 3: v.clear(); v.shrink_to_fit(); break;
      case 4: l.emplace_back(); break;
      case 5: if (!l.empty()) l.pop_front(); break;
      case 6: m[static_cast<int>(rng() % 1000)] = 1.0; break;
      case 7: if (!m.empty()) m.erase(m.begin()); break;
      case 8: vecs[rng() % vecs.size()] = v; break;                       // copy assignment (propagates)
      case 9: { ivec tmp(v); vecs[rng() % vecs.size()] = std::move(tmp); break; }  // move assignment
      case 10: v.swap(vecs[rng() % vecs.size()]); break;                   // swap (propagates)
      case 11: l.swap(lists[rng() % lists.size()]); break;
      case 12: maps[rng() % maps.size()] = m; break;
      case 13: { lists[rng() % lists.size()] = blist(l); break; }
      case 14: vecs[rng() % vecs.size()] = ivec(any_alloc()); break;      // a fresh allocator and stream
      case 15: {  // equality and rebinding
        const stream_allocator<int> a = v.get_allocator();
        const stream_allocator<double> d(a);
        CHECKF(d == a && a == d, "rebound allocator unequal");
        const stream_allocator<int> other(a.resource(), streams[(rng() % (streams.size() - 1)) + 1]);
        CHECKF((other == a) == (other.get_stream() == a.get_stream()), "equality ignores the stream");
        CHECKF(stream_allocator<int>(&a.resource() == &r1 ? r2 : r1, a.get_stream()) != a, "equal across resources");
        break;
      }
      case 16: {  // odd sizes
        stream_allocator<int> a = v.get_allocator();
        CHECKF(a.allocate(0) == nullptr, "allocate(0)");
        bool threw = false;
        try {
          (void)a.allocate(a.max_size() + 1);
        } catch (const std::bad_array_new_length&) {
          threw = true;
        }
        CHECKF(threw, "max_size()+1 accepted");
        threw = false;
        try {
          (void)a.allocate(a.max_size());
        } catch (const out_of_memory&) {
          threw = true;
        }
        CHECKF(threw, "max_size() did not run out of memory");
        stream_allocator<big> b(a);
        CHECKF(b.max_size() == pool_t::max_size() / sizeof(big), "rebound max_size");
        break;
      }
      case 17: pool.trim_cache(rng() % (8 << 20)); break;
      case 18: for (std::size_t i = 0; i < 2; ++i) pool.shard(i).ordering().complete_all(); break;
      default: pool.empty_cache(); break;
    }
    const auto st = pool.stats();
    CHECKF(st.requested_bytes == r1.outstanding + r2.outstanding, "pool live bytes differ from the blocks outstanding");
  }
  vecs.clear();
  lists.clear();
  maps.clear();
  CHECKF(r1.live.empty() && r2.live.empty(), "blocks left outstanding");
  CHECKF(pool.stats().allocated_bytes == 0, "pool not empty");
  pool.empty_cache();
  CHECKF(pool.stats().reserved_bytes == 0, "memory held at the end");
  std::printf("stream_allocator seed %llu: %ld steps ok, %llu allocations\n", g_seed, steps, (unsigned long long)pool.stats().allocations);
}
