#pragma once
// Where the benchmark traces are for the host tests: $STASH_TRACES_DIR when it is set (a copy of the
// repository on another machine, as scripts/gpu-test sets it), else bench/traces of the source tree the
// suite was built from (STASH_DEFAULT_TRACES_DIR, which tests/CMakeLists.txt defines).
#include <cstdlib>
#include <filesystem>

namespace stash_test {

inline std::filesystem::path traces_dir() {
  if (const char* dir = std::getenv("STASH_TRACES_DIR"); dir != nullptr && *dir != '\0') return dir;
#ifdef STASH_DEFAULT_TRACES_DIR
  return STASH_DEFAULT_TRACES_DIR;
#else
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() / "bench" / "traces";
#endif
}

}  // namespace stash_test
