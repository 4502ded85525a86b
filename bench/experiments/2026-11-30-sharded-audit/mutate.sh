#!/bin/bash
# Mutation check of the drivers: each mutation is applied to a copy of include/ (never to the tree), the
# driver that should notice it is built against the copy and run; a mutation is caught when the run fails.
# ./mutate.sh [work dir, default /tmp/stash-mutants]   (ONLY=M11 runs the mutations whose name has M11)
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
WORK=${1:-/tmp/stash-mutants}
export ASAN_OPTIONS=allocator_may_return_null=1:alloc_dealloc_mismatch=0
mutate() {  # name driver file old new run-args...
  local name=$1 driver=$2 file=$3 old=$4 new=$5; shift 5
  if [ -n "$ONLY" ] && [[ $name != *$ONLY* ]]; then return; fi
  local dir=$WORK/$name
  rm -rf "$dir"; mkdir -p "$dir"; cp -r "$ROOT/include" "$dir/include"; ln -s "$ROOT/tests" "$dir/tests"
  python3 - "$dir/include/$file" "$old" "$new" <<'PY' || { echo "$name: mutation does not apply"; return; }
import sys
p, old, new = sys.argv[1:4]
s = open(p).read()
if s.count(old) != 1: sys.exit(1)
open(p, "w").write(s.replace(old, new))
PY
  ROOT=$dir OUT=$dir DRIVERS=$driver "$HERE/build.sh" > "$dir/build.log" 2>&1 || { echo "$name: does not build"; return; }
  local caught=0
  for args in "$@"; do
    [ -x "$dir/$driver" ] || { echo "$name: no binary"; return; }
    if ! timeout 300 "$dir/$driver" $args > "$dir/run.log" 2>&1; then caught=1; break; fi
  done
  if [ $caught = 1 ]; then echo "$name: CAUGHT ($driver $args): $(grep -m1 -E 'FAIL|ERROR|runtime error' "$dir/run.log" | cut -c1-200)"
  else echo "$name: not caught"; fi
}
S=stash/sharded_allocator.hpp
mutate M1_stats_sum_drops_cache_hits sharded_driver $S "      sum.cache_hits += x.cache_hits;" "" "1 2000 0" "2 2000 1"
mutate M2_sized_free_drops_size sharded_driver $S "owner_of(p).deallocate(p, n, s);" "owner_of(p).deallocate(p, s);" "1 3000 0" "2 3000 2"
mutate M3_shard_per_call_not_per_thread sharded_driver $S "thread_local const std::size_t mine" "const std::size_t mine" "1 2000 0" "2 2000 2"
mutate M4_reset_peak_first_shard_only sharded_driver $S "    for (auto& s : shards_) s->reset_peak();" "    shards_[0]->reset_peak();" "1 3000 0" "2 3000 1"
mutate M5_segment_owner_by_owns_only sharded_driver $S "if (s->owns(p) || s->holds(p)) return *s;" "if (s->owns(p)) return *s;" "1 4000 1" "2 4000 2" "3 4000 1"
mutate M6_report_run_crosses_regions sharded_driver stash/memory_report.hpp "        r.reserved_bytes += bytes;
        free_run = 0;" "        r.reserved_bytes += bytes;" "1 3000 1" "2 3000 2" "3 3000 0" "4 3000 1"
mutate M7_report_sort_reversed sharded_driver stash/memory_report.hpp "a.total_bytes > b.total_bytes : a.block_bytes > b.block_bytes" "a.total_bytes < b.total_bytes : a.block_bytes > b.block_bytes" "1 2000 0"
mutate M8_timeline_accepts_any_x timeline_driver stash/timeline.hpp "    if (!std::isfinite(x)) throw error" "    if (false) throw error" "1 1500" "2 1500"
mutate M9_stream_allocator_equal_ignores_stream stream_alloc_driver stash/stream_allocator.hpp "return &a.resource() == &b.resource() && a.get_stream() == b.get_stream();" "return &a.resource() == &b.resource();" "1 3000" "2 3000"
mutate M10_trim_whole_target_per_shard sharded_driver $S "s->trim_cache(target_cached_bytes / Shards);" "s->trim_cache(target_cached_bytes);" "1 4000 2" "2 4000 2" "3 4000 2"
# The stream-order check of sharded_driver (a block freed on one stream handed to another too early):
mutate M11_stream_layer_everything_usable sharded_driver stash/detail/stream_layer.hpp "  return b->owner == to || b->owner == nullptr || b->owner->retired_seq >= b->seq;" "  return (void)to, true;" "1 3000 0" "2 3000 1"
