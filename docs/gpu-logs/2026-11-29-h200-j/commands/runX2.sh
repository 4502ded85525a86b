#!/usr/bin/env bash
# GPU run X2 (one H200): the three new traces and four others replayed with main's stash-replay (a56f7cc + the
# new capture script; built with PyTorch: stash, torch, cudaMallocAsync) and with the below-top change
# (stash), alternating, 5 warm replays. Carry: .devbuild/x2 (two binaries, traces/).
L=/tmp/gx2; rm -rf $L; mkdir -p $L
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2; do
  LD_LIBRARY_PATH=$TORCH/lib timeout 150 .devbuild/x2/replay-main-torch .devbuild/x2/traces --backend cuda --warm 5 \
    --allocators stash,torch,cudaMallocAsync --json-file $L/main-$r.jsonl > $L/main-$r.txt 2>&1; echo "main $r rc=$?" >> $L/main-$r.txt
  timeout 100 .devbuild/x2/replay-new .devbuild/x2/traces --backend cuda --warm 5 --allocators stash \
    --json-file $L/new-$r.jsonl > $L/new-$r.txt 2>&1; echo "new $r rc=$?" >> $L/new-$r.txt
done
cp -r $L $OUT/; cat $L/main-1.txt $L/new-1.txt | grep -v "^$" | cut -c1-150
