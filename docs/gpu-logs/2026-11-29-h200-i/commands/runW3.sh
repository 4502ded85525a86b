#!/usr/bin/env bash
# GPU run W3 (one H200): the replay of bench/traces with main's stash-replay at .devbuild/w3/rev (built
# here with -DSTASH_WITH_TORCH=ON): PyTorch, stash and stash-small-fill side by side, four runs in
# alternating order, 20 warm replays each; then end to end alloc_churn and decode_b1 under native,
# expandable segments and stash (the wheel of run W2), three alternating repetitions.
# Carry: .devbuild/w3 (stash-replay, rev), .devbuild/w2 (whl/).
L=/tmp/gw3; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1; echo "rev $(cat .devbuild/w3/rev)" >> $L/gpu.txt
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2 3 4; do
  [ $((r % 2)) = 1 ] && A=torch,stash,stash-small-fill || A=stash-small-fill,stash,torch
  LD_LIBRARY_PATH=$TORCH/lib timeout 120 .devbuild/w3/stash-replay bench/traces --backend cuda --warm 20 \
    --allocators $A --json-file $L/replay-$r.jsonl > $L/replay-$r.txt 2>&1; echo "replay $r rc=$?" >> $L/replay-$r.txt
done
pack
export PYTHONUNBUFFERED=1
timeout 360 python3 scripts/e2e --reps 3 --steps 8 --warmup 2 --workloads alloc_churn,decode_b1 \
  --allocators native,expandable,stash --wheels .devbuild/w2/whl --max-minutes 5.5 --out $L/e2e > $L/e2e.out 2>&1
echo "e2e rc=$?" >> $L/e2e.out
pack
grep -h "rc=" $L/*.txt $L/*.out | tr '\n' ' '; echo
sed -n '/stash against the others/,/^stash: options/p' $L/e2e/summary.md 2>/dev/null | head -12
