#!/usr/bin/env bash
# GPU run D on two GPUs: scripts/e2e ddp (2 processes, NCCL) and multistream, three allocators, one repetition.
L=/tmp/gl; mkdir -p $L
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
timeout 330 python3 scripts/e2e --reps 1 --steps 6 --warmup 2 --workloads ddp,multistream --allocators native,expandable,stash --max-minutes 4.5 --out $L/e2e > $L/e2e.out 2>&1; echo "e2e rc=$?" >> $L/e2e.out
cd $L && tar czf $OUT/logs.tgz . ; cd - >/dev/null
cat $L/e2e/summary.md 2>/dev/null | head -40; tail -5 $L/e2e.out
