#!/bin/sh
# Makes every file in this folder from a checkout of main at ad8221f (run from its root). The sweep is
# bench/experiments/2026-11-28-placement/placement_sweep.cpp, built against main's headers and against
# keep.patch's, whose knobs (MiB thresholds, 0: off) are read from the environment:
#   XHIGH  requests of at least this size are carved from the high end of their free block
#   XREV=1 with XHIGH: requests below it from the high end instead (large ones from the low end)
#   XHUGE  requests of at least this size are carved from a third region of their own
#   XBEST  requests of at least this size take the smallest usable free block of their pool (exact best fit)
#   XTOP   requests of at least this size, taken from a free block whose pages are mapped for more than
#          the request and then stop, end where the mapped pages end (the mapped prefix's high end)
#   XTOPREADY=1 with XTOP: only from a free block of no stream (stream order)
#   XTOPNB=1 with XTOP: a request of at least XTOP from a fully mapped free block whose upper neighbour is
#          free (a block that could not merge with it: another stream's, or one of no stream) takes the
#          free block's high end (the same place in stream order as XTOP's in host order, where the two
#          would have merged)
#   XTOPCO=1 with XTOP: in stream order a request of at least XTOP first retires the frees whose events
#          have completed and merges ready neighbours (as the slow paths do), then looks again and places
#   XSPILL=1 with XHUGE: a huge request takes a block of the large region first
set -e
HERE=bench/experiments/2026-11-29-keep-large
SWEEP=bench/experiments/2026-11-28-placement/placement_sweep.cpp
CXX="g++ -std=c++20 -O2 -Ibench -I/usr/local/cuda/include"
rm -rf /tmp/keep_large && mkdir /tmp/keep_large && git archive HEAD include | tar -x -C /tmp/keep_large
patch -s -d /tmp/keep_large -p1 < $HERE/keep.patch
$CXX -Iinclude $SWEEP bench/allocators/ordered_allocator.cpp -o /tmp/keep_large/sweep_before
$CXX -I/tmp/keep_large/include $SWEEP bench/allocators/ordered_allocator.cpp -o /tmp/keep_large/sweep_x
$CXX -Iinclude $HERE/large_log.cpp bench/allocators/ordered_allocator.cpp -o /tmp/keep_large/log_before
$CXX -I/tmp/keep_large/include $HERE/large_log.cpp bench/allocators/ordered_allocator.cpp -o /tmp/keep_large/log_x
/tmp/keep_large/sweep_before bench/traces/*.csv > $HERE/before.txt
/tmp/keep_large/sweep_x bench/traces/*.csv | diff - $HERE/before.txt  # every knob off: main's figures
v() { name=$1; shift; env "$@" /tmp/keep_large/sweep_x bench/traces/*.csv > $HERE/sweep/$name.txt; }
mkdir -p $HERE/sweep
for t in 4 64 256 512 1024 2048; do v high$t XHIGH=$t; done
for t in 1 4 64 256; do v rev$t XHIGH=$t XREV=1; done
for t in 64 256 512 1024 2048; do v huge$t XHUGE=$t; done
v huge256spill XHUGE=256 XSPILL=1
v huge1024high XHUGE=1024 XHIGH=1024
v huge1024best XHUGE=1024 XBEST=1024
for t in 1 16 32 64 128 256 1024; do v best$t XBEST=$t; done
for t in 1 16 64 256 512 1024; do v top$t XTOP=$t; done
for t in 256 1024; do v topready$t XTOP=$t XTOPREADY=1; done
for t in 256 512 1024; do v topnb$t XTOP=$t XTOPNB=1; done
for t in 256 512 1024; do v topco$t XTOP=$t XTOPCO=1; v topconb$t XTOP=$t XTOPCO=1 XTOPNB=1; done
python3 $HERE/summarize.py $HERE/before.txt $HERE/sweep/*.txt > $HERE/summary.txt
for t in ddp_gpt2_rank0 gpt2_varlen_e2e; do
  /tmp/keep_large/log_before bench/traces/$t.csv 256 > $HERE/log_${t}_main.txt
  XTOP=1024 /tmp/keep_large/log_x bench/traces/$t.csv 256 > $HERE/log_${t}_top1024.txt
  XTOP=1024 LAG=0 /tmp/keep_large/log_x bench/traces/$t.csv 256 > $HERE/log_${t}_top1024_lag0.txt
  XTOP=1024 XTOPNB=1 LAG=0 /tmp/keep_large/log_x bench/traces/$t.csv 256 > $HERE/log_${t}_topnb1024_lag0.txt
done
rm -rf /tmp/keep_large
