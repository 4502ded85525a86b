// Quickstart: the memory manager, a caching allocator of your own, and the statistics.
// Runs on the GPU when there is one, on host memory otherwise.
#include <stash/fmt.hpp>
#include <stash/stash.hpp>

#include <vector>

int main() {
  auto& mm = stash::memory_manager::instance();
  fmt::print("stash quickstart: {} memory, {} device(s)\n",
             mm.backed_by() == stash::memory_manager::backing::cuda ? "CUDA" : "host (no GPU found)",
             mm.device_count());

  // Allocate and free through the manager: the second allocation of the same size is a cache hit and
  // returns the same address, without calling the driver.
  void* first = mm.allocate(64 << 20, stash::memory_type::device);
  mm.deallocate(first);
  void* again = mm.allocate(64 << 20, stash::memory_type::device);
  fmt::print("reused the cached block: {}\n", first == again);

  // A burst of mixed sizes, freed again, then the cache trimmed and emptied.
  std::vector<void*> blocks;
  for (std::size_t size = 256; size <= (16u << 20); size *= 2) blocks.push_back(mm.allocate(size + 100, stash::memory_type::device));
  fmt::print("after the burst:  {}\n", mm.get_stats(0));
  for (void* p : blocks) mm.deallocate(p);
  mm.trim_cache(32 << 20, 0);
  fmt::print("trimmed to 32 MiB cached: {}\n", mm.get_stats(0));
  mm.deallocate(again);

  // Errors are typed and change nothing: freeing a block twice while its memory is still cached.
  try {
    mm.deallocate(again);
  } catch (const stash::double_free& e) {
    fmt::print("caught: {}\n", e.what());
  }
  mm.empty_cache(0);
  fmt::print("emptied:          {}\n", mm.get_stats(0));

  // A caching allocator of your own, with the policies spelled out: the seed's power-of-two design
  // over simulated device memory (addresses only, nothing touched).
  stash::simulated_pow2_allocator pow2;
  void* p = pow2.allocate(1000);
  fmt::print("pow2: asked 1000 bytes, got a {}-byte block\n", pow2.good_size(1000));
  pow2.deallocate(p);
  return first == again ? 0 : 1;
}
