#!/usr/bin/env bash
# GPU run U5 (one H200): every GPU suite and sanitizer on the final library (6a28a63: merge_and_push always
# inlined), built with `scripts/gpu-test build stash_nccl_tests`. (Run U4 ran them after the remap test stopped launching
# kernels onto the stream its blocker holds (under compute-sanitizer a launch waits for its kernel, so
# run U3's sanitizer passes timed the blocker out). build/gpu as in run U3 with stash_cuda_tests
# rebuilt at the commit that changed the test.
L=/tmp/gu5; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
STASH_GPU_DEADLINE=300 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/gpu.txt; tail -n 13 $L/summary.txt; grep -h "remap" $L/*.log | head -8
