#!/usr/bin/env bash
# GPU run Z1 (one H200, eleventh session): the library with blocks below the free top filed apart for any
# number of streams (rev in .devbuild/z1/rev): every GPU suite and sanitizer (scripts/gpu-test run all; build/gpu
# built here with `scripts/gpu-test build stash_nccl_tests`, carried less CMakeFiles) and the NCCL suite; then
# mlp_two_streams (a copy stream and the default stream) replayed by main's stash-replay (7c8e8ad's library)
# and the new one, alternating, six rounds of 10 warm replays, with PyTorch and cudaMallocAsync in the first
# two. Both stash-replay builds made here with -DSTASH_WITH_TORCH=ON. Carry: build/gpu, .devbuild/z1.
L=/tmp/gz1; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; echo "rev $(cat .devbuild/z1/rev)"; } > $L/gpu.txt 2>&1
STASH_GPU_DEADLINE=330 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 40 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
pack
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2 3 4 5 6; do
  [ $r -le 2 ] && X=,torch,cudaMallocAsync || X=
  for b in new main; do [ $((r % 2)) = 0 ] && b=$([ $b = new ] && echo main || echo new)
    LD_LIBRARY_PATH=$TORCH/lib timeout 60 .devbuild/z1/replay-$b bench/traces/mlp_two_streams.csv --backend cuda --warm 10 \
      --allocators stash$X --json-file $L/mlp-$b-$r.jsonl > $L/mlp-$b-$r.txt 2>&1; echo "mlp $b $r rc=$?" >> $L/mlp-$b-$r.txt
  done
done
pack
cat $L/gpu.txt; tail -n 13 $L/summary.txt; tail -n 2 $L/nccl.log
grep -h "rc=" $L/*.log $L/*.out $L/*.txt | tr '\n' ' '; echo
grep -h "mlp_two_streams" $L/mlp-*.txt | cut -c1-140
