#!/usr/bin/env bash
# GPU run V9 (one H200): end to end with the session's final library (the wheel in .devbuild/v9, built
# by `scripts/e2e --fetch-wheels` at the rev in .devbuild/v9/rev): alloc_churn (allocation-bound),
# decode_b1 (launch-bound) and multistream under native, expandable segments, cudaMallocAsync and
# stash, three alternating repetitions.
L=/tmp/gv9; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1; echo "rev $(cat .devbuild/v9/rev)" >> $L/gpu.txt
export PYTHONUNBUFFERED=1
timeout 540 python3 scripts/e2e --reps 3 --steps 8 --warmup 2 --workloads alloc_churn,decode_b1,multistream \
  --allocators native,expandable,async,stash --wheels .devbuild/v9/whl --max-minutes 8 --out $L/e2e > $L/e2e.out 2>&1
echo "e2e rc=$?" >> $L/e2e.out
(cd $L && tar czf $OUT/logs.tgz .)
grep "^\[e2e" $L/e2e.out | tail -3; sed -n '/stash against the others/,/^stash: options/p' $L/e2e/summary.md 2>/dev/null || tail -30 $L/e2e.out
