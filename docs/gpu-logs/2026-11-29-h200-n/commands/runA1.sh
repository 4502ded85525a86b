#!/usr/bin/env bash
# GPU run A1 (one H200, twelfth session): the library with a block's own edge pages mapped in its chunk
# (rev in .devbuild/a1/rev): every GPU suite and sanitizer and the NCCL suite (build/gpu built here with
# `scripts/gpu-test build stash_nccl_tests`, carried less CMakeFiles), then the cold start side by side:
# stash-replay of main before the change (.devbuild/a1/replay-old, 1361e54's library) and after it
# (.devbuild/a1/replay-new), both built here with -DSTASH_WITH_TORCH=ON and stripped, with PyTorch, over
# the four traces whose cold replay the change maps in fewer physical allocations on the simulated device
# (llama, seg, mlp, cnn), four runs alternating which binary goes first, 2 warm replays. Carry: build/gpu, .devbuild/a1.
L=/tmp/ga1; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; echo "rev $(cat .devbuild/a1/rev)"; } > $L/gpu.txt 2>&1
STASH_GPU_DEADLINE=330 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 40 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
pack
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2 3 4; do
  [ $((r % 2)) = 1 ] && V="old new" || V="new old"
  for v in $V; do
    LD_LIBRARY_PATH=$TORCH/lib timeout 60 .devbuild/a1/replay-$v bench/traces/{llama_train_ckpt_varlen,seg_train_multiscale,mlp_two_streams,cnn_train}.csv --backend cuda --warm 2 \
      --allocators torch,stash --json-file $L/replay-$v-$r.jsonl > $L/replay-$v-$r.txt 2>&1; echo "replay $v $r rc=$?" >> $L/replay-$v-$r.txt
  done
  pack
done
cat $L/gpu.txt; tail -n 13 $L/summary.txt; tail -n 2 $L/nccl.log
grep -h "rc=" $L/*.log $L/*.out $L/*.txt | tr '\n' ' '
