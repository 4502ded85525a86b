#!/usr/bin/env bash
# GPU run W4 (one H200), at the rev in .devbuild/w4/rev (the session's library: small_fill_mapped, the
# page span computed once on the allocate path): every GPU suite and sanitizer, and the NCCL suite.
# Built here: scripts/gpu-test build stash_nccl_tests; carried: build/gpu (less CMakeFiles), .devbuild/w4 (rev).
L=/tmp/gw4; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "rev $(cat .devbuild/w4/rev)" >> $L/gpu.txt
STASH_GPU_DEADLINE=400 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 40 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/gpu.txt; tail -n 13 $L/summary.txt; tail -n 2 $L/nccl.log
grep -h "rc=" $L/*.log $L/*.out
