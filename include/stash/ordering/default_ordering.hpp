#pragma once
// Which ordering policy a caching allocator uses when its composition names none: the one its
// backend's memory needs. A backend that hands out memory the GPU uses names it as ordering_type (the
// CUDA backends name cuda_event_ordering); every other backend gets host order.
#include "stash/ordering/host_ordering.hpp"

namespace stash {

template <class Backend>
struct default_ordering {
  using type = host_ordering;
};
template <class Backend>
  requires requires { typename Backend::ordering_type; }
struct default_ordering<Backend> {
  using type = typename Backend::ordering_type;
};
template <class Backend>
using default_ordering_t = typename default_ordering<Backend>::type;

}  // namespace stash
