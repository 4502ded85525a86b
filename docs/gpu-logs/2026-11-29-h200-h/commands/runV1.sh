#!/usr/bin/env bash
# GPU run V1 (one H200), the library at .devbuild/v1/rev: the replay against PyTorch over bench/traces,
# three times in alternating order with 20 warm replays (median) and once with 3, to see how much of the
# warm figure's run-to-run spread a longer median removes.
# Built here: `cmake --build build/u1 --target stash-replay` (configured with -DSTASH_WITH_TORCH=ON,
# Release, -g); carried: .devbuild/v1 (stash-replay, rev).
L=/tmp/gv1; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
lscpu | grep -E "Model name|^CPU\(s\)|MHz" >> $L/gpu.txt
echo "rev $(cat .devbuild/v1/rev)" >> $L/gpu.txt
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
replay() {  # name warm allocators
  LD_LIBRARY_PATH=$TORCH/lib timeout 120 .devbuild/v1/stash-replay bench/traces --backend cuda --warm $2 \
    --allocators $3 --json-file $L/replay-$1.jsonl > $L/replay-$1.txt 2>&1; echo "replay $1 rc=$?" >> $L/replay-$1.txt
}
replay w20-1 20 torch,stash
replay w20-2 20 stash,torch
replay w20-3 20 torch,stash
replay w20-4 20 stash,torch
replay w3-1 3 torch,stash
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/gpu.txt; grep -h "rc=" $L/*.txt
