#!/usr/bin/env bash
# GPU run W2 (one H200): end to end with the wheel of main at .devbuild/w2/rev (stash.torch turns
# small_fill_mapped on): gpt2_varlen and multistream under native, expandable segments and stash, three
# alternating repetitions; then stash alone with STASH_CONF=small_fill_mapped:off, three repetitions.
# Carry: .devbuild/w2 (whl/, rev), built by `pip wheel --no-deps -w .devbuild/w2/whl python`.
L=/tmp/gw2; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1; echo "rev $(cat .devbuild/w2/rev)" >> $L/gpu.txt
export PYTHONUNBUFFERED=1
timeout 330 python3 scripts/e2e --reps 3 --steps 8 --warmup 2 --workloads gpt2_varlen,multistream \
  --allocators native,expandable,stash --wheels .devbuild/w2/whl --max-minutes 5 --out $L/e2e > $L/e2e.out 2>&1
echo "e2e rc=$?" >> $L/e2e.out
pack
STASH_CONF=small_fill_mapped:off timeout 170 python3 scripts/e2e --reps 3 --steps 8 --warmup 2 \
  --workloads gpt2_varlen,multistream --allocators stash --wheels .devbuild/w2/whl --max-minutes 2.5 \
  --out $L/e2e-off > $L/e2e-off.out 2>&1
echo "e2e-off rc=$?" >> $L/e2e-off.out
pack
grep -h "rc=" $L/*.out; sed -n '/stash against the others/,/^stash: options/p' $L/e2e/summary.md 2>/dev/null | head -30
grep -h "stash: options" $L/e2e/summary.md $L/e2e-off/summary.md 2>/dev/null; grep -A8 "^| workload" $L/e2e-off/summary.md 2>/dev/null | head -12
