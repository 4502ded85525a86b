#pragma once
// `stash+log`: the default stash composition with every call written by stash::logging_adaptor (RMM
// CSV) to /dev/null, to measure what logging costs per operation. Built in a translation unit of its
// own, linked after stash-replay's: the compiler's inlining of the unlogged composition in the main
// translation unit (what `stash` measures) is then the same as in a build without logging.
#include <memory>

#include "replay_allocator.hpp"

namespace stash::bench {

/// `cuda`: over stash::device_caching_allocator, else over stash::simulated_caching_allocator.
std::unique_ptr<replay_allocator> make_logged_stash_allocator(bool cuda);

}  // namespace stash::bench
