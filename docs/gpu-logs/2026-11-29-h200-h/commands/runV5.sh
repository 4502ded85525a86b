#!/usr/bin/env bash
# GPU run V5 (one H200): run V4's A/B again, the base build against the index at load 1/8 only, six
# rounds alternating the builds and the allocators' order, 20 warm replays each.
L=/tmp/gv5; rm -rf $L; mkdir -p $L
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2 3 4 5 6; do
  [ $((r % 2)) = 1 ] && V="base load8" || V="load8 base"
  [ $(((r + 1) / 2 % 2)) = 1 ] && A=torch,stash || A=stash,torch
  for v in $V; do
    LD_LIBRARY_PATH=$TORCH/lib timeout 120 .devbuild/v4/stash-replay-$v bench/traces --backend cuda --warm 20 \
      --allocators $A --json-file $L/replay-$v-$r.jsonl > $L/replay-$v-$r.txt 2>&1; echo "replay $v $r rc=$?" >> $L/replay-$v-$r.txt
  done
done
(cd $L && tar czf $OUT/logs.tgz .)
grep -h "rc=" $L/*.txt | tr '\n' ' '
