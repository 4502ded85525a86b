#pragma once
// PyTorch's CUDA caching allocator (c10::cuda::CUDACachingAllocator), called from C++. Built only
// with -DSTASH_WITH_TORCH=ON; its headers stay in torch_allocator.cpp.
#include <memory>

#include "replay_allocator.hpp"

namespace stash::bench {

std::unique_ptr<replay_allocator> make_torch_allocator();

}  // namespace stash::bench
