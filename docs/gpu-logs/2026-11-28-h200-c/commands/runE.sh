#!/usr/bin/env bash
# GPU run E on two GPUs: why DDP holds more under stash. ddp under native and expandable (with PyTorch's
# memory history, to replay here) and under stash with three configurations; per-step allocator figures.
L=/tmp/gl; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
E="python3 scripts/e2e --reps 1 --steps 6 --warmup 2 --workloads ddp"
timeout 150 $E --allocators native,stash,expandable --memory-history $L/hist --out $L/e2e > $L/e2e.out 2>&1; echo "e2e rc=$?" >> $L/e2e.out
STASH_CONF=pages_between_moves:0,page_slack:0.03 timeout 60 $E --allocators stash --out $L/e2e-moves > $L/e2e-moves.out 2>&1
STASH_CONF=backend:segments timeout 60 $E --allocators stash --out $L/e2e-segments > $L/e2e-segments.out 2>&1
cd $L && tar czf $OUT/logs.tgz . ; cd - >/dev/null
cat $L/gpu.txt; for d in e2e e2e-moves e2e-segments; do sed -n '/Peak reserved/,$p' $L/$d/summary.md | head -24; done; tail -3 $L/*.out; ls -la $L/hist
