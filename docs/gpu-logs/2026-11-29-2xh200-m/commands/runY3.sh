#!/usr/bin/env bash
# GPU run Y3 (two H200s, twelfth session, same machine as Y2): (1) cold start with both GPUs visible, so every
# page is granted to the peer (peer_access: all): stash-replay over bench/traces beside PyTorch, two runs in
# alternating order, 3 warm replays (stash-replay built here with -DSTASH_WITH_TORCH=ON, stripped:
# .devbuild/y2/stash-replay). (2) PyTorch's multistream workload (copy stream + record_stream) for 200 timed
# steps under native, expandable and stash, to see whether stash's peak keeps growing past the 8 steps of
# runs Z4/Z6. Carry: .devbuild/y2.
L=/tmp/gy3; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2; do
  [ $r = 1 ] && A=torch,stash || A=stash,torch
  LD_LIBRARY_PATH=$TORCH/lib timeout 100 .devbuild/y2/stash-replay bench/traces --backend cuda --warm 3 \
    --allocators $A --json-file $L/replay-$r.jsonl > $L/replay-$r.txt 2>&1; echo "replay $r rc=$?" >> $L/replay-$r.txt
  pack
done
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
for s in 8 200; do
  timeout 150 python3 scripts/e2e --reps 1 --steps $s --warmup 2 --workloads multistream --allocators native,expandable,stash \
    --wheels .devbuild/y2/whl --out $L/ms-$s > $L/ms-$s.out 2>&1; echo "ms $s rc=$?" >> $L/ms-$s.out
  pack
done
cat $L/replay-1.txt | head -30; cat $L/replay-2.txt | tail -n 16
for s in 8 200; do echo "steps $s"; sed -n '/Peak reserved/,/Results/p' $L/ms-$s/summary.md; done
grep -h "rc=" $L/*.txt $L/*.out | tr '\n' ' '
