#!/usr/bin/env bash
# GPU run W5 (one H200): ResNet-50 training end to end under native, expandable segments and stash (the
# wheel of run W2: small_fill_mapped on), two alternating repetitions. Carry: .devbuild/w2 (whl/, rev).
L=/tmp/gw5; rm -rf $L; mkdir -p $L
export PYTHONUNBUFFERED=1
timeout 330 python3 scripts/e2e --reps 2 --steps 8 --warmup 2 --workloads resnet50 \
  --allocators native,expandable,stash --wheels .devbuild/w2/whl --max-minutes 4.5 --out $L/e2e > $L/e2e.out 2>&1
echo "e2e rc=$?" >> $L/e2e.out
(cd $L && tar czf $OUT/logs.tgz .)
tail -n 8 $L/e2e.out; sed -n '/Peak reserved MiB/,/^Results/p' $L/e2e/summary.md 2>/dev/null
