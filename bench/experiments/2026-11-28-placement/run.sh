#!/bin/sh
# Makes every file in this folder from a checkout of main at f3ece35 (run from its root).
set -e
HERE=bench/experiments/2026-11-28-placement
CXX="g++ -std=c++20 -O2 -Ibench -I/usr/local/cuda/include"
$CXX -Iinclude $HERE/placement_sweep.cpp bench/allocators/ordered_allocator.cpp -o /tmp/sweep_before
/tmp/sweep_before bench/traces/*.csv > $HERE/before.txt
rm -rf /tmp/placement && mkdir /tmp/placement && git archive HEAD include | tar -x -C /tmp/placement
patch -d /tmp/placement -p1 < $HERE/placement.patch
$CXX -I/tmp/placement/include $HERE/placement_sweep.cpp bench/allocators/ordered_allocator.cpp -o /tmp/sweep_x
XMODE=3 XMIN=0 /tmp/sweep_x bench/traces/*.csv > $HERE/after_mode3_min0.txt
XMODE=7 XMIN=0 /tmp/sweep_x bench/traces/*.csv > $HERE/after_mode7_min0.txt
XMODE=3 XMIN=8 /tmp/sweep_x bench/traces/*.csv > $HERE/after_mode3_min8.txt
XMODE=7 XMIN=64 /tmp/sweep_x bench/traces/*.csv > $HERE/after_mode7_min64.txt
XMODE=3 XGAIN=2 /tmp/sweep_x bench/traces/*.csv | diff - $HERE/before.txt  # looking alone changes nothing
XLOG=1 XMODE=3 XGAIN=2 /tmp/sweep_x bench/traces/ddp_gpt2_rank0.csv bench/traces/gpt2_varlen_e2e.csv \
  2> $HERE/large_requests_log.txt > /dev/null
for t in ddp_gpt2_rank0 gpt2_varlen_e2e; do
  XLOG=1 XMODE=3 XGAIN=2 /tmp/sweep_x bench/traces/$t.csv 2>&1 > /dev/null | grep "^req\|^span" |
    awk -v t=$t '/^req/{split($5,a,"=");split($6,b,"="); n++; if (b[2]+0<a[2]+0) d++}
                 /^span/{split($2,a,"=");split($3,b,"="); if (b[2]+0<a[2]+0) s++}
                 END{print t": "n" requests of >= 256 MiB needing pages (host, lag 0, lag 2; 4 replays each); a free block needing fewer new pages: "d+0"; a run of free blocks needing fewer: "s+0}'
done > $HERE/large_requests.txt
rm -rf /tmp/placement
