#include "ordered_allocator.hpp"

#include "stash/backend/limited_backend.hpp"
#include "stash_allocators.hpp"

namespace stash::bench {

std::unique_ptr<replay_allocator> make_ordered_stash_allocator() {
  return std::make_unique<stash_adapter<simulated_ordered_allocator>>("stash-ordered");
}

std::unique_ptr<replay_allocator> make_lagged_stash_allocator() {
  return std::make_unique<stash_adapter<simulated_ordered_allocator>>("stash-lagged", stash::caching_options{},
                                                                      counting_ordering{lagged_records});
}

std::unique_ptr<replay_allocator> make_limited_ordered_stash_allocator(bool lagged) {
  using limited = stash::caching_allocator<stash::limited_backend<stash::simulated_paged_backend>,
                                           stash::segregated_fit_buckets, stash::spin_lock, stash::basic_stats,
                                           counting_ordering>;
  return std::make_unique<stash_adapter<limited>>(lagged ? "stash-lagged" : "stash-ordered", stash::caching_options{},
                                                  counting_ordering{lagged ? lagged_records : 0});
}

}  // namespace stash::bench
