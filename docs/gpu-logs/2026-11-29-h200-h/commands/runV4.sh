#!/usr/bin/env bash
# GPU run V4 (one H200): the block index's load factor, A/B on the warm replay. Three stash-replay
# builds (with PyTorch) of the same library but for pointer_map's grow_at_: capacity / 2 (base, main),
# / 4 and / 8; each replays bench/traces with 20 warm replays against PyTorch, three rounds, the
# builds' order rotated each round and the allocators' order alternated.
# Built here: build/u1 (-DSTASH_WITH_TORCH=ON, Release, -g) with the edit; carried: .devbuild/v4.
L=/tmp/gv4; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2 3; do
  case $r in 1) V="base load4 load8";; 2) V="load4 load8 base";; 3) V="load8 base load4";; esac
  for v in $V; do
    [ $((r % 2)) = 1 ] && A=torch,stash || A=stash,torch
    LD_LIBRARY_PATH=$TORCH/lib timeout 120 .devbuild/v4/stash-replay-$v bench/traces --backend cuda --warm 20 \
      --allocators $A --json-file $L/replay-$v-$r.jsonl > $L/replay-$v-$r.txt 2>&1; echo "replay $v $r rc=$?" >> $L/replay-$v-$r.txt
  done
done
(cd $L && tar czf $OUT/logs.tgz .)
grep -h "rc=" $L/*.txt
