#include "ordered_allocator.hpp"

#include "stash_allocators.hpp"

namespace stash::bench {

std::unique_ptr<replay_allocator> make_ordered_stash_allocator() {
  return std::make_unique<stash_adapter<simulated_ordered_allocator>>("stash-ordered");
}

std::unique_ptr<replay_allocator> make_lagged_stash_allocator() {
  return std::make_unique<stash_adapter<simulated_ordered_allocator>>("stash-lagged", stash::caching_options{},
                                                                      counting_ordering{lagged_records});
}

}  // namespace stash::bench
