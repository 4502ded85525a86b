#!/usr/bin/env bash
# GPU run V2 (one H200's host; no GPU call): the CPU's counters over warm replays of every trace
# (bench/experiments/2026-11-29-warm-counters/warm_counters.cpp, built here with the command in its
# header at the rev in .devbuild/v1/rev plus that file), twice.
L=/tmp/gv2; rm -rf $L; mkdir -p $L
lscpu > $L/lscpu.txt 2>&1
for r in 1 2; do timeout 200 .devbuild/v2/warm_counters --warm 20 bench/traces/*.csv > $L/counters-$r.txt 2>&1; echo "rc=$?" >> $L/counters-$r.txt; done
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/counters-1.txt $L/counters-2.txt; grep -E "Model name|MHz|L1d|L2|L3|Hypervisor" $L/lscpu.txt
