#!/usr/bin/env bash
# GPU run F on one H200: end to end with three alternating repetitions (launch-bound and short workloads),
# native, expandable segments and stash.
L=/tmp/gl; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
timeout 560 python3 scripts/e2e --reps 3 --steps 10 --warmup 2 --workloads small_tensors,decode_b1,resnet50,multistream \
  --allocators native,expandable,stash --max-minutes 8.2 --out $L/e2e > $L/e2e.out 2>&1; echo "e2e rc=$?" >> $L/e2e.out
cd $L && tar czf $OUT/logs.tgz . ; cd - >/dev/null
cat $L/gpu.txt; sed -n '/ms\/step/,$p' $L/e2e/summary.md | head -60; tail -3 $L/e2e.out
