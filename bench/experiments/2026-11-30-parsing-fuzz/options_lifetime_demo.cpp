#include <cstdio>
#include "stash_c.h"
int main() {
  const char* first = stash_options();   // "valid until the next stash_configure"
  const char* second = stash_options();  // no stash_configure in between
  std::printf("%s\n%s\n", second, first);
}
