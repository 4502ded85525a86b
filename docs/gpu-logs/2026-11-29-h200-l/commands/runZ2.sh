#!/usr/bin/env bash
# GPU run Z2 (one H200), the session's final library (rev in .devbuild/z2/rev): every GPU suite and sanitizer
# and the NCCL suite (build/gpu built here with `scripts/gpu-test build stash_nccl_tests`, carried less
# CMakeFiles), then stash-replay (built here with -DSTASH_WITH_TORCH=ON, stripped: .devbuild/z2/stash-replay)
# over bench/traces beside PyTorch, three runs in alternating order, 10 warm replays. Carry: build/gpu, .devbuild/z2.
L=/tmp/gz2; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; echo "rev $(cat .devbuild/z2/rev)"; } > $L/gpu.txt 2>&1
STASH_GPU_DEADLINE=300 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 40 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
pack
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2 3; do
  [ $((r % 2)) = 1 ] && A=torch,stash || A=stash,torch
  LD_LIBRARY_PATH=$TORCH/lib timeout 130 .devbuild/z2/stash-replay bench/traces --backend cuda --warm 10 \
    --allocators $A --json-file $L/replay-$r.jsonl > $L/replay-$r.txt 2>&1; echo "replay $r rc=$?" >> $L/replay-$r.txt
  pack
done
cat $L/gpu.txt; tail -n 13 $L/summary.txt; tail -n 2 $L/nccl.log
grep -h "rc=" $L/*.log $L/*.out $L/*.txt | tr '\n' ' '; echo
