#include <thrust/device_vector.h>
#include <type_traits>
#include "stash/thrust_allocator.hpp"
#include "stash/allocators.hpp"
using A = stash::thrust_allocator<float>;
using traits = std::allocator_traits<A>;
static_assert(std::is_same_v<traits::pointer, thrust::device_ptr<float>>);
static_assert(std::is_same_v<traits::rebind_alloc<int>, stash::thrust_allocator<int>>);
static_assert(traits::propagate_on_container_copy_assignment::value);
static_assert(traits::propagate_on_container_move_assignment::value);
static_assert(traits::propagate_on_container_swap::value);
static_assert(!traits::is_always_equal::value);
using TT = thrust::detail::allocator_traits<A>;
bool eq(const A& a, const stash::thrust_allocator<int>& b) { return a == b && !(a != b); }
bool ne(const A& a, const A& b) { return a != b; }
void use(stash::memory_resource& r, stash::stream s) {
  thrust::device_vector<float, A> v(10, 1.0f, A(r, s));
  thrust::device_vector<float, A> w(v);
  w = v;
  w.swap(v);
  thrust::device_vector<float, A> m(std::move(v));
  m.resize(100);
  m.push_back(2.0f);
  m.clear(); m.shrink_to_fit();
  thrust::device_vector<int, stash::thrust_allocator<int>> x(5, 0, stash::thrust_allocator<int>(A(r, s)));
}
int main() {}
