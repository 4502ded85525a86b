// Randomized driver over stash::mr::pool_resource (cuda_mr.hpp): every spelling, alignments 1..2^17,
// invalid alignments, huge sizes, backend and host-heap failures; pools on host memory, on a simulated
// paged device, and a simulated stream-ordered device.
#include "stash/cuda_mr.hpp"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>

#include "support/compositions.hpp"
#include "support/failing_heap.hpp"

#define ENSURE(c)                                                                                        \
  do {                                                                                                   \
    if (!(c)) {                                                                                          \
      std::fprintf(stderr, "%s:%d: ENSURE(%s) failed (seed %u step %d)\n", __FILE__, __LINE__, #c, g_seed, g_step); \
      std::abort();                                                                                      \
    }                                                                                                    \
  } while (0)

static unsigned g_seed;
static int g_step;
static long n_alloc, n_big_align, n_threw, n_free, n_cross;

namespace cmr = ::cuda::mr;
using sim_stream_pool = stash::caching_allocator<stash::failing_backend<stash::simulated_paged_backend>,
                                                 stash::segregated_fit_buckets, stash::spin_lock,
                                                 stash::basic_stats, stash::simulated_ordering>;

struct item {
  std::size_t bytes, alignment;
  int stream;
  unsigned char tag;
};

template <class Pool>
void run(std::mt19937& rng, bool streamed, bool host_memory) {
  using R = stash::mr::pool_resource<Pool, cmr::device_accessible>;
  R mr;
  R copy = mr;
  std::vector<cudaStream_t> streams{nullptr};
  if constexpr (requires(Pool& p) { p.ordering().make_stream(); }) {
    for (int i = 0; i < 3; ++i) streams.push_back(mr.pool().ordering().make_stream().native_handle());
  } else {
    streams.push_back(reinterpret_cast<cudaStream_t>(std::uintptr_t{0x7000}));
  }
  cmr::async_resource_ref<cmr::device_accessible> ref{mr};
  std::map<std::uintptr_t, item> live;
  auto expected_allocated = [&] {
    std::size_t s = 0;
    for (auto& [p, it] : live)
      s += Pool::good_size(it.alignment > 256 ? it.bytes + it.alignment - 256 : it.bytes);
    return s;
  };
  for (int step = 0; step < 3000; ++step) {
    g_step = step;
    const auto before = mr.pool().stats();
    const int what = static_cast<int>(rng() % 10);
    if (what < 5 || live.empty()) {
      std::size_t alignment = std::size_t{1} << (rng() % 18);
      const int bad = static_cast<int>(rng() % 20);
      if (bad == 0) alignment = 0;
      if (bad == 1) alignment = 256 * 3;
      if (bad == 2) alignment += 1 + rng() % 100;
      if ((alignment & (alignment - 1)) != 0 && alignment == 2) alignment = 3;
      std::size_t bytes = static_cast<std::size_t>(std::exp2(std::uniform_real_distribution<>(0, 21)(rng)));
      if (rng() % 30 == 0) bytes = 0;
      if (rng() % 40 == 0) bytes = SIZE_MAX - rng() % (1u << 20);
      if (rng() % 40 == 0) bytes = Pool::max_size() - rng() % 4096;
      const int fail = static_cast<int>(rng() % 8);
      if (fail == 0) mr.pool().backend().fail_call(1 + rng() % 2);
      if (fail == 1) mr.pool().backend().throw_on_call(1);
      const int spelling = static_cast<int>(rng() % 5);
      const int s = static_cast<int>(rng() % streams.size());
      void* p = nullptr;
      bool threw = false;
      const bool valid_alignment = alignment != 0 && (alignment & (alignment - 1)) == 0;
      try {
        stash_test::failing_heap::armed heap(fail == 2 ? 1 + rng() % 3 : 0);
        switch (spelling) {
          case 0: p = mr.allocate(bytes, alignment); break;
          case 1: p = copy.allocate_sync(bytes, alignment); break;
          case 2: p = mr.allocate_async(bytes, alignment, ::cuda::stream_ref(streams[s])); break;
          case 3: p = copy.allocate(::cuda::stream_ref(streams[s]), bytes, alignment); break;
          case 4: p = ref.allocate_async(bytes, alignment, ::cuda::stream_ref(streams[s])); break;
        }
      } catch (const stash::invalid_alignment& e) {
        threw = true;
        ENSURE(!valid_alignment);
        ENSURE(e.alignment() == alignment);
      } catch (const stash::invalid_size&) {
        threw = true;
        ENSURE(valid_alignment);
      } catch (const std::bad_alloc&) {
        threw = true;
        ENSURE(valid_alignment || fail == 2);  // the error's message needs the heap
      } catch (const stash::error&) {  // cuda_error from the backend
        threw = true;
        ENSURE(valid_alignment);
      }
      mr.pool().backend().cancel_pending();
      if (!valid_alignment) ENSURE(threw);
      n_threw += threw;
      if (threw || p == nullptr) {
        ENSURE(p == nullptr);
        if (!threw) ENSURE(bytes == 0);
        const auto after = mr.pool().stats();
        ENSURE(after.allocated_bytes == before.allocated_bytes);
        ENSURE(after.allocations == before.allocations);
        ENSURE(after.requested_bytes == before.requested_bytes);
      } else {
        const auto a = reinterpret_cast<std::uintptr_t>(p);
        ENSURE(a % alignment == 0);
        ENSURE(a % 256 == 0);
        // No overlap with any live range.
        auto next = live.lower_bound(a);
        if (next != live.end()) ENSURE(a + bytes <= next->first);
        if (next != live.begin()) {
          auto prev = std::prev(next);
          ENSURE(prev->first + prev->second.bytes <= a);
        }
        const unsigned char tag = static_cast<unsigned char>(rng());
        if (host_memory) {
          static_cast<unsigned char*>(p)[0] = tag;
          static_cast<unsigned char*>(p)[bytes - 1] = tag;
        }
        live[a] = item{bytes, alignment, s, tag};
        ++n_alloc; if (alignment > 256) ++n_big_align;
        ENSURE(mr.pool().stats().allocations == before.allocations + 1);
      }
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      void* p = reinterpret_cast<void*>(it->first);
      const item x = it->second;
      if (host_memory) {
        ENSURE(static_cast<unsigned char*>(p)[0] == x.tag);
        ENSURE(static_cast<unsigned char*>(p)[x.bytes - 1] == x.tag);
      }
      const int s = rng() % 3 == 0 ? static_cast<int>(rng() % streams.size()) : x.stream;
      switch (rng() % 5) {
        case 0: mr.deallocate(p, x.bytes, x.alignment); break;
        case 1: copy.deallocate_sync(p, x.bytes, x.alignment); break;
        case 2: mr.deallocate_async(p, x.bytes, x.alignment, ::cuda::stream_ref(streams[s])); break;
        case 3: copy.deallocate(::cuda::stream_ref(streams[s]), p, x.bytes, x.alignment); break;
        case 4: ref.deallocate_async(p, x.bytes, x.alignment, ::cuda::stream_ref(streams[s])); break;
      }
      live.erase(it);
      ++n_free; n_cross += s != x.stream;
      ENSURE(mr.pool().stats().deallocations == before.deallocations + 1);
      ENSURE(!mr.pool().owns(p) || live.count(reinterpret_cast<std::uintptr_t>(p)));
    }
    if (!streamed || true) ENSURE(mr.pool().stats().allocated_bytes == expected_allocated());
    if constexpr (requires(Pool& p) { p.ordering().complete_all(); }) {
      if (rng() % 50 == 0) mr.pool().ordering().complete_all();
    }
    if (rng() % 200 == 0) mr.pool().empty_cache();
  }
  for (auto& [a, x] : live) mr.deallocate(reinterpret_cast<void*>(a), x.bytes, x.alignment);
  ENSURE(mr.pool().stats().allocated_bytes == 0);
  ENSURE(mr.pool().stats().allocations == mr.pool().stats().deallocations);
}

int main(int argc, char** argv) {
  const unsigned seeds = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 10;
  ENSURE(stash_test::failing_heap::can_fail());
  for (g_seed = 1; g_seed <= seeds; ++g_seed) {
    std::mt19937 rng(g_seed);
    run<stash_test::failing_host_segregated>(rng, false, true);
    run<stash_test::failing_paged_segregated>(rng, false, false);
    run<stash_test::failing_simulated_pow2>(rng, false, false);
    run<sim_stream_pool>(rng, true, false);
  }
  std::printf("mr driver: %u seeds ok: %ld allocations (%ld aligned > 256), %ld threw, %ld frees (%ld on another stream)\n", seeds, n_alloc, n_big_align, n_threw, n_free, n_cross);
}
