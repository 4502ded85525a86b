#!/usr/bin/env bash
# GPU run H on two GPUs: DDP under native and stash after place_lower (c1e6abd), two alternating repetitions.
L=/tmp/gl; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
timeout 170 python3 scripts/e2e --reps 2 --steps 6 --warmup 2 --workloads ddp --allocators native,stash --out $L/e2e > $L/e2e.out 2>&1; echo "e2e rc=$?" >> $L/e2e.out
cd $L && tar czf $OUT/logs.tgz . ; cd - >/dev/null
cat $L/gpu.txt; sed -n '/Peak reserved/,$p' $L/e2e/summary.md | head -30; tail -3 $L/e2e.out
