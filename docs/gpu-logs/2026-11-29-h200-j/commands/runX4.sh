#!/usr/bin/env bash
# GPU run X4 (one H200), the session's final library (rev in .devbuild/x4/rev): every GPU suite and
# sanitizer and the NCCL suite (built here: scripts/gpu-test build stash_nccl_tests; carried: build/gpu less
# CMakeFiles), then stash-replay (built here with -DSTASH_WITH_TORCH=ON, .devbuild/x4/stash-replay) over
# bench/traces with PyTorch, stash and stash-small-fill, three runs in alternating order, 10 warm replays.
L=/tmp/gx4; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "rev $(cat .devbuild/x4/rev)" >> $L/gpu.txt
STASH_GPU_DEADLINE=380 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 40 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
(cd $L && tar czf $OUT/logs.tgz .)
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2 3; do
  [ $((r % 2)) = 1 ] && A=torch,stash,stash-small-fill || A=stash-small-fill,stash,torch
  LD_LIBRARY_PATH=$TORCH/lib timeout 100 .devbuild/x4/stash-replay bench/traces --backend cuda --warm 10 \
    --allocators $A --json-file $L/replay-$r.jsonl > $L/replay-$r.txt 2>&1; echo "replay $r rc=$?" >> $L/replay-$r.txt
done
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/gpu.txt; tail -n 13 $L/summary.txt; tail -n 2 $L/nccl.log
grep -h "rc=" $L/*.log $L/*.out $L/*.txt | tr '\n' ' '; echo
