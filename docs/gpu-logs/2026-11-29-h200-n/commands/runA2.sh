#!/usr/bin/env bash
# GPU run A2 (one H200, twelfth session): every GPU suite and sanitizer and the NCCL suite again on main with
# the ipc test fixed after run A1 (its 40 MiB block had become one chunk). build/gpu built here. Carry: build/gpu.
L=/tmp/ga2; rm -rf $L; mkdir -p $L
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; git log --oneline -1 2>/dev/null; } > $L/gpu.txt 2>&1
STASH_GPU_DEADLINE=330 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 40 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
(cd $L && tar czf $OUT/logs.tgz .)
tail -n 13 $L/summary.txt; tail -n 2 $L/nccl.log; grep -h "test cases\|ERROR SUMMARY" $L/cuda-tests.log $L/memcheck.log | tail -4
