#!/usr/bin/env bash
# CPU diagnostic (fifth session, docs/design.md "When the GPU runs behind the host"): what would moving
# pages that pending frees hold give, if it were safe? A copy of include/ where move_idle_page_to, when
# no idle page is free of pending frees, takes the highest page a pending free holds anyway (UNSAFE on a
# GPU: queued work may still use it; the design's remapping would make it safe for the requesting stream,
# and every trace replays on one stream). Prints reserved/live with events two records late (LAGV=2) for
# the default options, before (base) and with the change (A). Run from the repository root.
set -e
D=/tmp/pending-diag; rm -rf $D; mkdir -p $D; cp -r include $D/includeA
python3 - "$D/includeA/stash/detail/paged_arena.hpp" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
old = """    const bool holding = hold_pending_pages();
    const std::size_t from = pages_.highest_idle();
    if (holding) release_pending_pages();
"""
new = """    const bool holding = hold_pending_pages();
    std::size_t from = pages_.highest_idle();
    if (holding) release_pending_pages();
    if (from == page_table::none && holding) from = pages_.highest_idle();  // DIAGNOSTIC: a pending page
"""
assert old in s; open(p, "w").write(s.replace(old, new))
PY
sed -e 's/for (auto \[c, m\] : {std::pair{0, 0}, {8, 8}, {8, 0}, {16, 0}})/for (auto [c, m] : {std::pair{16, 0}})/' \
  docs/gpu-logs/2026-11-28-h200-d/commands/option_sweep.cpp > $D/sweep.cpp
for v in base A; do
  I=$([ $v = A ] && echo $D/includeA || echo include)
  g++ -std=c++20 -O2 -DLAGV=2 -I$I -Ibench -I/usr/local/cuda/include $D/sweep.cpp bench/allocators/ordered_allocator.cpp -o $D/sweep_$v
  echo "== $v"; $D/sweep_$v bench/traces/*.csv | grep -v "^  host"
done
