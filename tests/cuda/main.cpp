// Entry point of stash_cuda_tests. On a machine without a usable CUDA device the suite is skipped
// with exit code 77 (CTest's SKIP_RETURN_CODE), unless STASH_REQUIRE_GPU=1 says a GPU must be there:
// then its absence is a failure, so a GPU run can never pass by skipping everything.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "stash/device_manager.hpp"
#include "stash/memory_manager.hpp"
#include "stash_c.h"

namespace stash_test {
int run_ipc_peer(int socket);  // test_ipc.cpp: the process a block is shared with
int run_ipc_c_exporter();      // test_ipc.cpp: the two processes of the C interface's sharing by text
int run_ipc_c_importer();
}

namespace {

bool gpu_required() {
  const char* v = std::getenv("STASH_REQUIRE_GPU");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

/// What the log of a GPU run needs to say which machine it ran on.
void print_devices(int count) {
  int driver = 0;
  int runtime = 0;
  (void)cudaDriverGetVersion(&driver);
  (void)cudaRuntimeGetVersion(&runtime);
  std::printf("stash_cuda_tests: %d CUDA device(s), driver API %d.%d, runtime %d.%d\n", count,
              driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, d) != cudaSuccess) continue;
    std::printf("  device %d: %s, sm_%d%d, %.1f GiB\n", d, prop.name, prop.major, prop.minor,
                static_cast<double>(prop.totalGlobalMem) / (1 << 30));
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char* argv[]) {
  // test_ipc.cpp starts this binary again as the peer it shares a block with.
  if (argc == 3 && std::strcmp(argv[1], "--ipc-peer") == 0)
    return stash_test::run_ipc_peer(std::atoi(argv[2]));
  if (argc == 2 && std::strcmp(argv[1], "--ipc-c-exporter") == 0) return stash_test::run_ipc_c_exporter();
  if (argc == 2 && std::strcmp(argv[1], "--ipc-c-importer") == 0) return stash_test::run_ipc_c_importer();

  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;

  // Listing tests or tags needs no device.
  const Catch::ConfigData& options = session.configData();
  if (options.listTests || options.listTestNamesOnly || options.listTags || options.listReporters ||
      options.showHelp)
    return session.run();

  const int count = stash::device_manager::device_count();
  if (count == 0) {
    const auto tests = Catch::getRegistryHub().getTestCaseRegistry().getAllTests().size();
    if (gpu_required()) {
      std::fprintf(stderr,
                   "ERROR: STASH_REQUIRE_GPU=1 but no CUDA device is usable (no GPU or no driver); "
                   "%zu CUDA tests not run\n",
                   tests);
      return 1;
    }
    std::printf("SKIPPED: no CUDA device (%zu CUDA tests not run)\n", tests);
    return 77;
  }
  print_devices(count);

  const int failed = session.run();

  // Give the process-wide caches back before exit, while the runtime is still up, so that the
  // sanitizer's leak check sees only what a test really leaked.
  auto& manager = stash::memory_manager::instance();
  for (int d = 0; d < count; ++d) manager.empty_cache(d);
  manager.empty_pinned_cache();
  // The C interface keeps a memory manager of its own for the whole process (never destroyed).
  stash_empty_cache(-1);
  stash_empty_pinned_cache();
  return failed;
}
