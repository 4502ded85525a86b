#!/usr/bin/env bash
# GPU run A4 (one H200, twelfth session): runs 3 and 4 of run A3, on a machine lent afresh: the final library (a5dcb8e's; stash-replay built here from 7aebb24
# with -DSTASH_WITH_TORCH=ON, stripped: .devbuild/a1/replay-new) beside PyTorch over bench/traces, two runs in
# alternating order, 10 warm replays (as run Z2). Carry: .devbuild/a1.
L=/tmp/ga4; rm -rf $L; mkdir -p $L
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 3 4; do
  [ $r = 3 ] && A=torch,stash || A=stash,torch
  LD_LIBRARY_PATH=$TORCH/lib timeout 200 .devbuild/a1/replay-new bench/traces --backend cuda --warm 10 \
    --allocators $A --json-file $L/replay-$r.jsonl > $L/replay-$r.txt 2>&1; echo "replay $r rc=$?" >> $L/replay-$r.txt
  (cd $L && tar czf $OUT/logs.tgz .)
done
grep -h "rc=" $L/*.txt | tr '\n' ' '
