#!/usr/bin/env bash
# GPU run U1 (one H200), main at 75d0de2 (chunks_per_block 8 and moves_per_block 8 the defaults):
# the replay of bench/traces against PyTorch and the previous defaults (stash-page-moves), twice in
# alternating order; then end to end (issue 8) gpt2_varlen and multistream under native, expandable
# segments, cudaMallocAsync and stash, three alternating repetitions.
# Carry: .devbuild/u1 (stash-replay, whl/), built by buildU1.sh.
L=/tmp/gu; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "rev $(cat .devbuild/u1/rev)" >> $L/gpu.txt
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2; do
  [ $r = 1 ] && A=torch,stash,stash-page-moves || A=stash-page-moves,stash,torch
  LD_LIBRARY_PATH=$TORCH/lib timeout 100 .devbuild/u1/stash-replay bench/traces --backend cuda --warm 3 \
    --allocators $A --json-file $L/replay$r.jsonl > $L/replay$r.txt 2>&1; echo "replay $r rc=$?" >> $L/replay$r.txt
  pack
done
export PYTHONUNBUFFERED=1
timeout 420 python3 scripts/e2e --reps 3 --steps 8 --warmup 2 --workloads gpt2_varlen,multistream \
  --allocators native,expandable,async,stash --wheels .devbuild/u1/whl --max-minutes 6 --out $L/e2e > $L/e2e.out 2>&1
echo "e2e rc=$?" >> $L/e2e.out
pack
cat $L/gpu.txt; grep -h "ddp\|e2e\|rc=" $L/replay1.txt $L/replay2.txt
grep "^\[e2e" $L/e2e.out | tail -4; sed -n '/stash against the others/,/^stash: options/p' $L/e2e/summary.md 2>/dev/null || tail -40 $L/e2e.out
