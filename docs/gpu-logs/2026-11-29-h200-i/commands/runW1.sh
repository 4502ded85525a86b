#!/usr/bin/env bash
# GPU run W1 (one H200): main against main with mapped_fit (a small request whose own region has no
# mapped room takes mapped memory of the large region before a page is mapped for it; bench/RESULTS.md,
# ninth session), side by side with PyTorch: six rounds alternating the builds and the allocators'
# order, 20 warm replays each. Built here: build/u1 (-DSTASH_WITH_TORCH=ON, Release, -g) of each;
# carried: .devbuild/w1/{main,fit}/stash-replay.
L=/tmp/gw1; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2 3 4 5 6; do
  [ $((r % 2)) = 1 ] && V="main fit" || V="fit main"
  [ $(((r + 1) / 2 % 2)) = 1 ] && A=torch,stash || A=stash,torch
  for v in $V; do
    LD_LIBRARY_PATH=$TORCH/lib timeout 150 .devbuild/w1/$v/stash-replay bench/traces --backend cuda --warm 20 \
      --allocators $A --json-file $L/replay-$v-$r.jsonl > $L/replay-$v-$r.txt 2>&1; echo "replay $v $r rc=$?" >> $L/replay-$v-$r.txt
  done
done
(cd $L && tar czf $OUT/logs.tgz .)
grep -h "rc=" $L/*.txt | tr '\n' ' '
