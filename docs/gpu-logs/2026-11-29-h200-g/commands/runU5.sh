#!/usr/bin/env bash
# GPU run U5 (one H200): every GPU suite and sanitizer on the final library (6a28a63:
# block_heap::merge_and_push always inlined), build/gpu from `scripts/gpu-test build stash_nccl_tests`.
L=/tmp/gu5; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
STASH_GPU_DEADLINE=300 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/gpu.txt; tail -n 13 $L/summary.txt; grep -h "remap" $L/*.log | head -8
