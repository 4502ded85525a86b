#!/usr/bin/env bash
# GPU run V7 (one H200), at the rev in .devbuild/v7/rev (the session's final library: the block index at
# an eighth, every caching option in STASH_CONF): every GPU suite and sanitizer, and the NCCL suite.
# Built here: scripts/gpu-test build stash_nccl_tests page_costs; carried: build/gpu (less CMakeFiles),
# .devbuild/v7 (rev).
L=/tmp/gv7; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "rev $(cat .devbuild/v7/rev)" >> $L/gpu.txt
STASH_GPU_DEADLINE=300 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 40 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/gpu.txt; tail -n 13 $L/summary.txt; tail -n 2 $L/nccl.log
grep -h "rc=" $L/*.log $L/*.out
