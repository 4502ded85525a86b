// stash::stream_allocator<T>: a standard Allocator bound to a stream. Every allocation and free goes to
// the resource's stream-ordered entry points with that stream; equality needs the same resource and
// the same stream; containers carry the allocator (and its stream) along.
#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "stash/allocators.hpp"
#include "stash/memory_resource.hpp"
#include "stash/stream_allocator.hpp"

namespace {

using host_pool = stash::host_caching_allocator;

/// Host memory, and a log of the stream of every stream-ordered call.
class recording_resource final : public stash::memory_resource {
 public:
  void* allocate(std::size_t bytes) override { return pool_.allocate(bytes); }
  void deallocate(void* p, std::size_t bytes) override { pool_.deallocate(p, bytes); }
  std::size_t max_size() const noexcept override { return host_pool::max_size(); }
  stash::memory_kind kind() const noexcept override { return stash::memory_kind::host; }
  int device() const noexcept override { return 0; }

  std::vector<stash::stream> allocations, frees;
  host_pool pool_;

 private:
  void* do_allocate(std::size_t bytes, stash::stream s) override {
    allocations.push_back(s);
    return allocate(bytes);
  }
  void do_deallocate(void* p, std::size_t bytes, stash::stream s) override {
    frees.push_back(s);
    deallocate(p, bytes);
  }
};

stash::stream fake_stream(std::uintptr_t v) { return reinterpret_cast<CUstream_st*>(v); }

}  // namespace

TEST_CASE("stream_allocator: a container allocates and frees on its stream", "[adapters][streams]") {
  using traits = std::allocator_traits<stash::stream_allocator<int>>;
  STATIC_REQUIRE(std::is_same_v<traits::rebind_alloc<double>, stash::stream_allocator<double>>);
  STATIC_REQUIRE(traits::propagate_on_container_swap::value);
  STATIC_REQUIRE_FALSE(traits::is_always_equal::value);

  recording_resource r;
  const stash::stream s = fake_stream(0x5100);
  {
    std::vector<int, stash::stream_allocator<int>> v(stash::stream_allocator<int>(r, s));
    for (int i = 0; i < 1000; ++i) v.push_back(i);
    CHECK(v[999] == 999);
    CHECK(v.get_allocator().get_stream() == s);
    CHECK(r.pool_.stats().allocations == r.allocations.size());
  }
  REQUIRE_FALSE(r.allocations.empty());
  CHECK(r.frees.size() == r.allocations.size());
  for (const auto& x : r.allocations) CHECK(x == s);
  for (const auto& x : r.frees) CHECK(x == s);
  CHECK(r.pool_.stats().allocated_bytes == 0);
}

TEST_CASE("stream_allocator: equal only for the same resource and the same stream", "[adapters][streams]") {
  recording_resource r1, r2;
  const stash::stream s = fake_stream(0x5100), t = fake_stream(0x5200);
  const stash::stream_allocator<int> a(r1, s), same(r1, s), other_stream(r1, t), other_resource(r2, s);
  CHECK(a == same);
  CHECK_FALSE(a == other_stream);
  CHECK_FALSE(a == other_resource);
  const stash::stream_allocator<double> rebound(a);
  CHECK(rebound.get_stream() == s);
  CHECK(&rebound.resource() == &r1);
  CHECK(rebound == a);

  stash::stream_allocator<int> m(r2, t);
  int* p = m.allocate(0);
  CHECK(p == nullptr);
  CHECK(r2.allocations.empty());
  CHECK_THROWS_AS(m.allocate(m.max_size() + 1), std::bad_array_new_length);
}

TEST_CASE("stream_allocator: swap and move take the stream along", "[adapters][streams]") {
  recording_resource r;
  const stash::stream s = fake_stream(0x5100), t = fake_stream(0x5200);
  using vec = std::vector<int, stash::stream_allocator<int>>;
  vec a({1, 2, 3}, stash::stream_allocator<int>(r, s));
  vec b({4, 5}, stash::stream_allocator<int>(r, t));
  a.swap(b);
  CHECK(a.get_allocator().get_stream() == t);
  CHECK(b.get_allocator().get_stream() == s);
  vec c(std::move(a));
  CHECK(c.get_allocator().get_stream() == t);
  CHECK(c == vec({4, 5}, stash::stream_allocator<int>(r, t)));
}

TEST_CASE("memory_resource: the stream-ordered entry points default to the plain ones",
          "[adapters][streams]") {
  host_pool pool;
  stash::resource_adaptor<host_pool> res(pool);
  stash::memory_resource& m = res;
  void* p = m.allocate(1000, fake_stream(0x5100));
  CHECK(pool.owns(p));
  m.deallocate(p, 1000, fake_stream(0x5100));
  CHECK_FALSE(pool.owns(p));
}
