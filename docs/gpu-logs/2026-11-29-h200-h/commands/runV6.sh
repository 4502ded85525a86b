#!/usr/bin/env bash
# GPU run V6 (one H200): the replay of the session's final library (.devbuild/v6/rev: the block index
# at an eighth) against PyTorch, six runs with 20 warm replays each, the allocators' order alternated.
# Built here: build/u1 (-DSTASH_WITH_TORCH=ON, Release, -g); carried: .devbuild/v6 (stash-replay, rev).
L=/tmp/gv6; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1; echo "rev $(cat .devbuild/v6/rev)" >> $L/gpu.txt
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2 3 4 5 6; do
  [ $((r % 2)) = 1 ] && A=torch,stash || A=stash,torch
  LD_LIBRARY_PATH=$TORCH/lib timeout 120 .devbuild/v6/stash-replay bench/traces --backend cuda --warm 20 \
    --allocators $A --json-file $L/replay-$r.jsonl > $L/replay-$r.txt 2>&1; echo "replay $r rc=$?" >> $L/replay-$r.txt
done
(cd $L && tar czf $OUT/logs.tgz .)
grep -h "rc=" $L/*.txt | tr '\n' ' '
