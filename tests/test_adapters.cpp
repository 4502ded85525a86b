// device_allocator<T> and pinned_allocator<T> as standard Allocators, on host memory: through
// std::allocator_traits, in std containers, with rebind, equality and propagation.
#include <catch2/catch.hpp>

#include <list>
#include <map>
#include <memory>
#include <numeric>
#include <type_traits>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/device_allocator.hpp"
#include "stash/memory_resource.hpp"
#include "stash/pinned_allocator.hpp"

namespace {

using host_pool = stash::host_caching_allocator;

template <template <class> class Adapter>
void traits_are_standard() {
  using A = Adapter<float>;
  using traits = std::allocator_traits<A>;
  STATIC_REQUIRE(std::is_same_v<typename traits::value_type, float>);
  STATIC_REQUIRE(std::is_same_v<typename traits::template rebind_alloc<double>, Adapter<double>>);
  STATIC_REQUIRE(traits::propagate_on_container_copy_assignment::value);
  STATIC_REQUIRE(traits::propagate_on_container_move_assignment::value);
  STATIC_REQUIRE(traits::propagate_on_container_swap::value);
  STATIC_REQUIRE_FALSE(traits::is_always_equal::value);
  STATIC_REQUIRE(std::is_nothrow_copy_constructible_v<A>);
}

}  // namespace

TEST_CASE("adapters: allocator_traits sees standard Allocators", "[adapters]") {
  traits_are_standard<stash::device_allocator>();
  traits_are_standard<stash::pinned_allocator>();
}

TEST_CASE("adapters: allocate and deallocate go to the given resource, sized", "[adapters]") {
  host_pool pool;
  stash::resource_adaptor<host_pool> resource(pool);
  stash::device_allocator<double> alloc(resource);
  REQUIRE(&alloc.resource() == &resource);

  double* p = std::allocator_traits<stash::device_allocator<double>>::allocate(alloc, 1000);
  REQUIRE(pool.owns(p));
  REQUIRE(pool.allocation_size(p) == 1000 * sizeof(double));
  REQUIRE(reinterpret_cast<std::uintptr_t>(p) % 256 == 0);
  std::allocator_traits<stash::device_allocator<double>>::deallocate(alloc, p, 1000);
  REQUIRE_FALSE(pool.owns(p));
  REQUIRE(pool.stats().deallocations == 1);

  // 0 elements: nullptr and no call; more than max_size: the standard's exception, nothing allocated.
  REQUIRE(alloc.allocate(0) == nullptr);
  alloc.deallocate(nullptr, 0);
  REQUIRE_THROWS_AS((void)alloc.allocate(alloc.max_size() + 1), std::bad_array_new_length);
  REQUIRE(pool.stats().allocations == 1);
  // A wrong size on free is the core's typed error.
  double* q = alloc.allocate(10);
  REQUIRE_THROWS_AS(alloc.deallocate(q, 11), stash::invalid_size);
  alloc.deallocate(q, 10);
}

TEST_CASE("adapters: equality follows the resource, and survives rebind", "[adapters]") {
  host_pool pool_a, pool_b;
  stash::resource_adaptor<host_pool> a(pool_a), b(pool_b);
  stash::pinned_allocator<int> on_a(a), also_a(a), on_b(b);
  REQUIRE(on_a == also_a);
  REQUIRE(on_a != on_b);
  stash::pinned_allocator<char> rebound(on_a);
  REQUIRE(stash::pinned_allocator<int>(rebound) == on_a);
  REQUIRE(&rebound.resource() == &a);
}

TEST_CASE("adapters: std::vector over pinned_allocator just works (the manager's pinned pool)",
          "[adapters][manager]") {
  using pinned_vector = std::vector<float, stash::pinned_allocator<float>>;
  auto& pinned = stash::memory_manager::instance().pinned_pool();
  const auto before = pinned.stats();
  {
    pinned_vector v(1 << 16);
    std::iota(v.begin(), v.end(), 0.0f);
    for (int i = 0; i < 100000; ++i) v.push_back(static_cast<float>(i));  // grows: reallocates
    REQUIRE(v[12345] == 12345.0f);
    REQUIRE(v.back() == 99999.0f);
    REQUIRE(&v.get_allocator().resource() == &pinned);
    REQUIRE(pinned.stats().allocated_bytes - before.allocated_bytes >= v.capacity() * sizeof(float));
  }
  const auto after = pinned.stats();
  REQUIRE(after.allocated_bytes == before.allocated_bytes);
  REQUIRE(after.allocations > before.allocations);
  REQUIRE(after.allocations - before.allocations == after.deallocations - before.deallocations);
}

TEST_CASE("adapters: node containers rebind to their node types", "[adapters]") {
  host_pool pool;
  stash::resource_adaptor<host_pool> resource(pool);
  {
    std::list<int, stash::device_allocator<int>> list{stash::device_allocator<int>(resource)};
    std::map<int, int, std::less<>, stash::device_allocator<std::pair<const int, int>>> map{
        stash::device_allocator<std::pair<const int, int>>(resource)};
    for (int i = 0; i < 1000; ++i) {
      list.push_back(i);
      map[i] = i * i;
    }
    REQUIRE(std::accumulate(list.begin(), list.end(), 0) == 999 * 1000 / 2);
    REQUIRE(map.at(31) == 961);
    REQUIRE(pool.stats().allocations >= 2000);
  }
  REQUIRE(pool.stats().allocated_bytes == 0);
  REQUIRE(pool.stats().allocations == pool.stats().deallocations);
}

TEST_CASE("adapters: the resource travels with the container on copy, move and swap", "[adapters]") {
  host_pool pool_a, pool_b;
  stash::resource_adaptor<host_pool> a(pool_a), b(pool_b);
  using vec = std::vector<int, stash::device_allocator<int>>;
  vec from_a(100, 7, stash::device_allocator<int>(a));
  vec from_b(10, 3, stash::device_allocator<int>(b));

  vec copied{stash::device_allocator<int>(b)};
  copied = from_a;  // propagate_on_container_copy_assignment: now draws from a
  REQUIRE(copied.get_allocator() == from_a.get_allocator());
  REQUIRE(pool_a.owns(copied.data()));

  from_b.swap(copied);  // propagate_on_container_swap: the allocators swap with the memory
  REQUIRE(pool_a.owns(from_b.data()));
  REQUIRE(pool_b.owns(copied.data()));

  vec moved = std::move(from_b);
  REQUIRE(pool_a.owns(moved.data()));
  REQUIRE(moved.size() == 100);
  REQUIRE(moved[99] == 7);
}
