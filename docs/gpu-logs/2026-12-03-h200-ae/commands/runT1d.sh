#!/usr/bin/env bash
# GPU run T1, part d (thirtieth session, one H200): llama_generate under PyTorch's native allocator and
# expandable segments, 2 repetitions each, to see whether its generated-token digests vary between
# processes of one allocator (they do: native's two differ on 3 of 13 steps). No stash, no wheel needed.
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0; L=/tmp/gt1d; mkdir -p $L
timeout 250 python3 scripts/e2e --workloads llama_generate --allocators native,expandable --reps 2 --steps 10 --warmup 3 \
  --timeout 100 --max-minutes 3.5 --out $L/e2e-d > $L/e2e-d.out 2>&1; echo "rc=$?" >> $L/e2e-d.out
(cd $L && tar czf $OUT/logs-d.tgz .)
grep "^\[e2e" $L/e2e-d.out | tail; sed -n '/Results (losses/,/^$/p' $L/e2e-d/summary.md
python3 -c "
import json; r=json.load(open('$L/e2e-d/results.json'))
for e in r['runs']: print(e['allocator'], e['rep'], [int(x)%100000 for x in e['results']])"
