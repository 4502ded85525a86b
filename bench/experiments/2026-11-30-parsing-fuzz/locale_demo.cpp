#include <clocale>
#include <cstdio>
#include "stash_c.h"
int main() {
  if (!std::setlocale(LC_ALL, "de_DE.UTF-8")) { std::puts("no de_DE locale"); return 2; }
  int s = stash_configure("page_slack:0.5");
  std::printf("configure(page_slack:0.5) = %d  %s\n", s, stash_last_error());
  s = stash_configure("max_held_over_live:1.5");
  std::printf("configure(max_held_over_live:1.5) = %d  %s\n", s, stash_last_error());
  std::printf("stash_options() = %s\n", stash_options());
  s = stash_configure(stash_options());
  std::printf("configure(stash_options()) = %d  %s\n", s, stash_last_error());
}
