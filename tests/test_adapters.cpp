// device_allocator<T> and pinned_allocator<T> as standard Allocators, on host memory: through
// std::allocator_traits, in std containers, with rebind, equality and propagation.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/device_allocator.hpp"
#include "stash/logging_adaptor.hpp"
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
  STATIC_REQUIRE(noexcept(std::declval<A&>().deallocate(nullptr, 1)));
}

/// Runs `body` in a child process; returns its stderr if it died of SIGABRT (std::terminate), or
/// "exited" / "other signal" otherwise.
template <class Body>
std::string abort_message(Body body) {
  int err[2];
  REQUIRE(pipe(err) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(err[1], STDERR_FILENO);
    close(err[0]);
    body();
    _exit(0);
  }
  close(err[1]);
  std::string text;
  char buffer[512];
  for (ssize_t got; (got = read(err[0], buffer, sizeof buffer)) > 0;)
    text.append(buffer, static_cast<std::size_t>(got));
  close(err[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  if (WIFEXITED(status)) return "exited";
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) return "other signal";
  return text;
}

/// A resource over a host pool that fills every allocation with 0xA5 before handing it out, so a
/// test can see whether anything was stored into it.
class patterned_resource final : public stash::memory_resource {
 public:
  static constexpr unsigned char fill = 0xA5;
  void* allocate(std::size_t bytes) override { return std::memset(pool_.allocate(bytes), fill, bytes); }
  void deallocate(void* p, std::size_t bytes) override { pool_.deallocate(p, bytes); }
  std::size_t max_size() const noexcept override { return host_pool::max_size(); }
  stash::memory_kind kind() const noexcept override { return stash::memory_kind::device; }
  int device() const noexcept override { return 0; }
  host_pool& pool() noexcept { return pool_; }

 private:
  host_pool pool_;
};

bool untouched(const void* p, std::size_t bytes) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < bytes; ++i)
    if (b[i] != patterned_resource::fill) return false;
  return true;
}

struct pod_pair {
  int key;
  float value;
};

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
  double* q = alloc.allocate(10);
  alloc.deallocate(q, 10);
  REQUIRE(pool.stats().allocated_bytes == 0);
}

TEST_CASE("adapters: a bad deallocate never throws into the container, it ends the program with the error",
          "[adapters]") {
  host_pool pool;
  stash::resource_adaptor<host_pool> resource(pool);
  stash::pinned_allocator<double> alloc(resource);
  double* q = alloc.allocate(10);
  const std::string wrong_size = abort_message([&] { alloc.deallocate(q, 11); });
  CHECK_THAT(wrong_size, Catch::Contains("stash::invalid_size") && Catch::Contains("sized deallocate"));
  int local = 0;
  const std::string foreign = abort_message([&] { alloc.deallocate(reinterpret_cast<double*>(&local), 1); });
  CHECK_THAT(foreign, Catch::Contains("stash::invalid_pointer"));
  // The parent's pool never saw the bad frees.
  REQUIRE(pool.owns(q));
  REQUIRE(pool.stats().allocated_bytes == host_pool::good_size(10 * sizeof(double)));
  alloc.deallocate(q, 10);
}

TEST_CASE("adapters: max_size is the resource's limit, so containers get the standard exceptions",
          "[adapters]") {
  host_pool pool;
  stash::resource_adaptor<host_pool> resource(pool);
  REQUIRE(resource.max_size() == host_pool::max_size());
  REQUIRE(stash::pinned_allocator<char>(resource).max_size() == host_pool::max_size());
  REQUIRE(stash::device_allocator<double>(resource).max_size() == host_pool::max_size() / sizeof(double));
  // Through a wrapper that forwards to the pool, the pool's limit still.
  std::ostringstream log;
  stash::logging_adaptor<host_pool> logged(pool, log);
  stash::resource_adaptor<stash::logging_adaptor<host_pool>> logged_resource(logged);
  REQUIRE(logged_resource.max_size() == host_pool::max_size());
  auto& manager_pool = stash::memory_manager::instance().pinned_pool();
  REQUIRE(stash::pinned_allocator<char>().max_size() == manager_pool.max_size());

  std::vector<char, stash::pinned_allocator<char>> v{stash::pinned_allocator<char>(resource)};
  REQUIRE(v.max_size() == host_pool::max_size());
  // The largest size reaches the pool and fails as out of memory, a std::bad_alloc.
  REQUIRE_THROWS_AS(v.reserve(v.max_size()), std::bad_alloc);
  REQUIRE_THROWS_AS(v.reserve(v.max_size()), stash::out_of_memory);
  // One more is the container's own length_error; nothing reaches the pool.
  REQUIRE_THROWS_AS(v.reserve(v.max_size() + 1), std::length_error);
  REQUIRE_THROWS_AS((void)stash::pinned_allocator<char>(resource).allocate(host_pool::max_size() + 1),
                    std::bad_array_new_length);
  REQUIRE(pool.stats().allocations == 0);
  REQUIRE(pool.stats().allocated_bytes == 0);
}

TEST_CASE("adapters: alignment up to 256 bytes is honoured", "[adapters]") {
  struct alignas(256) wide {
    char bytes[256];
  };
  host_pool pool;
  stash::resource_adaptor<host_pool> resource(pool);
  std::vector<wide, stash::pinned_allocator<wide>> v(3, wide{}, stash::pinned_allocator<wide>(resource));
  for (const wide& w : v) REQUIRE(reinterpret_cast<std::uintptr_t>(&w) % alignof(wide) == 0);
  STATIC_REQUIRE(stash::memory_resource::alignment == 256);
  // A more aligned type does not compile: see the compile_fail_overaligned test in tests/CMakeLists.txt.
}

TEST_CASE("adapters: a vector over device_allocator stores nothing from the host", "[adapters]") {
  patterned_resource resource;
  {
    std::vector<float, stash::device_allocator<float>> v(1000, stash::device_allocator<float>(resource));
    REQUIRE(v.size() == 1000);
    REQUIRE(resource.pool().owns(v.data()));
    REQUIRE(untouched(v.data(), 1000 * sizeof(float)));

    std::vector<pod_pair, stash::device_allocator<pod_pair>> pairs(
        77, stash::device_allocator<pod_pair>(resource));
    REQUIRE(untouched(pairs.data(), 77 * sizeof(pod_pair)));

    // Moving and swapping hand the memory over without touching it.
    const float* data = v.data();
    auto moved = std::move(v);
    REQUIRE(moved.data() == data);
    std::vector<float, stash::device_allocator<float>> other(5, stash::device_allocator<float>(resource));
    other.swap(moved);
    REQUIRE(other.data() == data);
    REQUIRE(untouched(other.data(), 1000 * sizeof(float)));
    other.clear();  // trivial destructors: no code, the memory stays as it was
    REQUIRE(untouched(data, 1000 * sizeof(float)));
  }
  REQUIRE(resource.pool().stats().allocated_bytes == 0);
  REQUIRE(resource.pool().stats().allocations == 3);
  REQUIRE(resource.pool().stats().deallocations == 3);
  // What would store from the host does not compile: see the compile_fail_device_* tests.
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
  // Allocators of different value types compare directly (the Allocator requirements).
  REQUIRE(rebound == on_a);
  REQUIRE(on_a == rebound);
  REQUIRE(stash::pinned_allocator<double>(b) != on_a);
  stash::device_allocator<int> device_a(a);
  stash::device_allocator<double> device_b(b);
  REQUIRE(device_a == stash::device_allocator<float>(a));
  REQUIRE(device_a != device_b);
  REQUIRE(stash::device_allocator<double>(device_a) != device_b);
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
    std::list<int, stash::pinned_allocator<int>> list{stash::pinned_allocator<int>(resource)};
    std::map<int, int, std::less<>, stash::pinned_allocator<std::pair<const int, int>>> map{
        stash::pinned_allocator<std::pair<const int, int>>(resource)};
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
  using vec = std::vector<int, stash::pinned_allocator<int>>;
  vec from_a(100, 7, stash::pinned_allocator<int>(a));
  vec from_b(10, 3, stash::pinned_allocator<int>(b));

  vec copied{stash::pinned_allocator<int>(b)};
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
