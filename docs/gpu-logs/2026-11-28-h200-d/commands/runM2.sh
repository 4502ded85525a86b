#!/usr/bin/env bash
# GPU run M2 (one H200), at the rev in .devbuild/rev (chunks_per_block 16 and moves_per_block off by default, the new trace
# gpt2_varlen_e2e): the replay of bench/traces, cold and warm, twice, stash against its chunks of
# before (stash-fixed-chunks) and PyTorch.
L=/tmp/gm2; rm -rf $L; mkdir -p $L
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1; echo "main at $(cat .devbuild/rev)" >> $L/gpu.txt
for i in 1 2; do
  LD_LIBRARY_PATH=$TORCH/lib timeout 100 .devbuild/new5/bench/stash-replay bench/traces --backend cuda \
    --allocators torch,stash-fixed-chunks,stash --json-file $L/replay$i.jsonl > $L/replay$i.txt 2>&1
  echo "replay $i rc=$?" >> $L/replay$i.txt
done
(cd $L && tar czf $OUT/logs.tgz .)
grep -h "ddp\|gpt2_varlen_e2e\|rc=" $L/replay1.txt $L/replay2.txt
