#include "ordered_allocator.hpp"

#include "stash_allocators.hpp"

namespace stash::bench {

std::unique_ptr<replay_allocator> make_ordered_stash_allocator() {
  return std::make_unique<stash_adapter<simulated_ordered_allocator>>("stash-ordered");
}

}  // namespace stash::bench
