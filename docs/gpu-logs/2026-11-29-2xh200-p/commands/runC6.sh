#!/usr/bin/env bash
# GPU run C6 (two H200s, fourteenth session): every GPU suite and sanitizer and the NCCL suite on 886d832 (idle
# chunks also move onto edge pages where those join chunks), built here with scripts/gpu-test's build dir
# (build/gpu). Carry: build/gpu.
L=/tmp/gc6; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
export NCCL_NVLS_ENABLE=0
start=$SECONDS
STASH_GPU_DEADLINE=400 OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$?" >> $L/suites.txt
pack
timeout 50 build/gpu/tests/stash_nccl_tests > $L/nccl.txt 2>&1; echo "nccl rc=$?" >> $L/nccl.txt
pack
tail -n 14 $L/suites.txt; tail -n 3 $L/nccl.txt; echo "total $((SECONDS - start)) s"
