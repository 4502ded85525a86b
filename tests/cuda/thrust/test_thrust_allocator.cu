// thrust::device_vector with stash::thrust_allocator on the GPU: fill, transform, sort, resize, copy,
// with memory from the memory manager's pool and from a pool of the test's own. Compiled by nvcc
// (-std=c++20: the stash headers are C++20). A plain main, no Catch2 (its header is not built for
// nvcc here): each check prints what failed; the exit status is the number of failures, 77 (a skip
// to CTest) without a CUDA device, unless STASH_REQUIRE_GPU=1.
#include <cuda_runtime_api.h>
#include <thrust/copy.h>
#include <thrust/device_vector.h>
#include <thrust/equal.h>
#include <thrust/functional.h>
#include <thrust/host_vector.h>
#include <thrust/reduce.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>
#include <thrust/transform.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/memory_manager.hpp"
#include "stash/memory_resource.hpp"
#include "stash/thrust_allocator.hpp"

namespace {

int failures = 0;

#define EXPECT(cond)                                                               \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::printf("FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
      ++failures;                                                                  \
    }                                                                              \
  } while (0)

template <class T>
using stash_vector = thrust::device_vector<T, stash::thrust_allocator<T>>;

static_assert(std::is_same_v<stash::thrust_allocator<float>::pointer, thrust::device_ptr<float>>);
static_assert(std::is_same_v<stash_vector<float>::pointer, thrust::device_ptr<float>>);
static_assert(std::is_same_v<std::allocator_traits<stash::thrust_allocator<float>>::rebind_alloc<int>,
                             stash::thrust_allocator<int>>);

struct affine {
  __host__ __device__ float operator()(float x) const { return 2.0f * x + 1.0f; }
};

/// Fill, transform, sort, resize and copy back, drawing from `alloc`, checking the data each time.
void exercise(const stash::thrust_allocator<float>& alloc, std::size_t n) {
  stash_vector<float> v(n, 0.0f, alloc);
  thrust::sequence(v.begin(), v.end());  // 0, 1, 2, ...
  thrust::transform(v.begin(), v.end(), v.begin(), affine());
  thrust::sort(v.begin(), v.end(), thrust::greater<float>());
  thrust::host_vector<float> h = v;
  bool ordered = true;
  for (std::size_t i = 0; i < n; ++i) ordered = ordered && h[i] == 2.0f * static_cast<float>(n - 1 - i) + 1.0f;
  EXPECT(ordered);

  v.resize(2 * n, -1.0f);  // grows: new storage from the same allocator, old contents copied
  thrust::host_vector<float> grown = v;
  EXPECT(grown[0] == 2.0f * static_cast<float>(n - 1) + 1.0f);
  EXPECT(grown[n - 1] == 1.0f);
  EXPECT(grown[n] == -1.0f && grown[2 * n - 1] == -1.0f);
  v.resize(n / 2);
  v.shrink_to_fit();
  EXPECT(v.size() == n / 2);
  thrust::host_vector<float> shrunk = v;
  EXPECT(shrunk[n / 2 - 1] == 2.0f * static_cast<float>(n - n / 2) + 1.0f);

  stash_vector<float> copy = v;  // copy construction: same allocator, equal
  EXPECT(copy.get_allocator() == v.get_allocator());
  // A rebound copy compares equal (the Allocator requirements; once ambiguous with thrust's own ==).
  const stash::thrust_allocator<int> rebound(v.get_allocator());
  EXPECT(rebound == v.get_allocator() && !(rebound != v.get_allocator()));
  EXPECT(thrust::equal(copy.begin(), copy.end(), v.begin()));
  EXPECT(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    const char* required = std::getenv("STASH_REQUIRE_GPU");
    if (required && std::strcmp(required, "1") == 0) {
      std::printf("FAILED: STASH_REQUIRE_GPU=1 but no CUDA device\n");
      return 1;
    }
    std::printf("SKIPPED: no CUDA device\n");
    return 77;
  }

  // The memory manager's pool of the current device (the default).
  auto& mm = stash::memory_manager::instance();
  const auto before = mm.get_stats(0);
  {
    stash::thrust_allocator<float> alloc;
    EXPECT(&alloc.resource() == &mm.device_pool(0));
    exercise(alloc, 1 << 20);
    const auto during = mm.get_stats(0);
    EXPECT(during.detail.allocations >= before.detail.allocations + 4);
  }
  const auto after = mm.get_stats(0);
  EXPECT(after.total_allocated == before.total_allocated);  // every vector gave its memory back

  // A pool of the test's own, through resource_adaptor: the memory comes from it.
  {
    stash::device_caching_allocator pool;
    stash::resource_adaptor<stash::device_caching_allocator> resource(pool);
    stash::thrust_allocator<float> alloc(resource);
    EXPECT(alloc != stash::thrust_allocator<float>());
    {
      stash_vector<float> v(1000, 3.0f, alloc);
      EXPECT(pool.owns(thrust::raw_pointer_cast(v.data())));
      EXPECT(pool.stats().allocated_bytes >= 1000 * sizeof(float));
      stash_vector<int> ints(77, 5, stash::thrust_allocator<int>(alloc));  // rebound
      EXPECT(pool.owns(thrust::raw_pointer_cast(ints.data())));
      EXPECT(thrust::reduce(ints.begin(), ints.end()) == 77 * 5);
    }
    exercise(alloc, 12345);
    EXPECT(pool.stats().allocated_bytes == 0);
    EXPECT(pool.stats().allocations >= 6);
  }

  std::printf("%s: %d failure(s)\n", failures == 0 ? "PASSED" : "FAILED", failures);
  return failures;
}
