#!/bin/sh
# Makes every .txt in this folder, from the root of a checkout that has the change (idle chunks move
# whole), against main before it (BEFORE: ad8221f, main before it, by default) and the checkout's own headers.
set -e
HERE=bench/experiments/2026-11-28-chunk-moves
BEFORE=${BEFORE:-ad8221f}
CXX="g++ -std=c++20 -O2 -Ibench -I/usr/local/cuda/include"
rm -rf /tmp/chunk-moves-before && mkdir /tmp/chunk-moves-before && git archive "$BEFORE" include | tar -x -C /tmp/chunk-moves-before
for v in before after; do
  INC=include; [ $v = before ] && INC=/tmp/chunk-moves-before/include
  $CXX -I$INC $HERE/options_sweep.cpp bench/allocators/ordered_allocator.cpp -o /tmp/chunk-moves-sweep-$v
  $CXX -I$INC $HERE/breakdown.cpp -o /tmp/chunk-moves-breakdown-$v
  /tmp/chunk-moves-breakdown-$v bench/traces/ddp_gpt2_rank0.csv bench/traces/gpt2_varlen_e2e.csv > $HERE/breakdown_$v.txt
  /tmp/chunk-moves-sweep-$v bench/traces/*.csv > $HERE/defaults_$v.txt
  XCPB=8 XMPB=8 /tmp/chunk-moves-sweep-$v bench/traces/*.csv > $HERE/cpb8_mpb8_$v.txt
  XMHOL=1.05 /tmp/chunk-moves-sweep-$v bench/traces/*.csv > $HERE/max_held_1.05_$v.txt
  XPBM=4 /tmp/chunk-moves-sweep-$v bench/traces/*.csv > $HERE/pbm4_$v.txt
  XPBM=16 /tmp/chunk-moves-sweep-$v bench/traces/*.csv > $HERE/pbm16_$v.txt
  XMCP=8 /tmp/chunk-moves-sweep-$v bench/traces/*.csv > $HERE/mcp8_$v.txt
  XPBM=0 /tmp/chunk-moves-sweep-$v bench/traces/*.csv > $HERE/pbm0_$v.txt
done
rm -rf /tmp/chunk-moves-before
