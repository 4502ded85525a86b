#include "logged_allocator.hpp"

#include <optional>
#include <string_view>

#include "stash/allocators.hpp"
#include "stash/logging_adaptor.hpp"

namespace stash::bench {
namespace {

template <class CachingAllocator>
class logged_stash_adapter final : public replayable<logged_stash_adapter<CachingAllocator>> {
 public:
  std::string_view name() const noexcept override { return "stash+log"; }
  void* allocate(std::size_t n) override { return logged_.allocate(n); }
  void deallocate(void* p, std::size_t n) override { logged_.deallocate(p, n); }
  void empty_cache() override { allocator_.empty_cache(); }
  std::size_t peak_reserved_bytes() const override { return allocator_.stats().peak_reserved_bytes; }
  std::optional<std::uint64_t> backend_allocs() const override { return allocator_.stats().backend_allocations; }

 private:
  CachingAllocator allocator_;
  stash::logging_adaptor<CachingAllocator> logged_{allocator_, std::filesystem::path("/dev/null")};
};

}  // namespace

std::unique_ptr<replay_allocator> make_logged_stash_allocator(bool cuda) {
  if (cuda) return std::make_unique<logged_stash_adapter<stash::device_caching_allocator>>();
  return std::make_unique<logged_stash_adapter<stash::simulated_caching_allocator>>();
}

}  // namespace stash::bench
