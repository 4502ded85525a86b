#!/usr/bin/env bash
# GPU run B2: scripts/e2e, the four single-GPU workloads not run before, five allocators.
L=/tmp/gl; mkdir -p $L
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
timeout 540 python3 scripts/e2e --reps ${REPS:-2} --steps 6 --warmup 2 --workloads resnet50,gpt2_varlen,llama_generate,decode_b1 --allocators native,expandable,async,rmm,stash --max-minutes ${E2E_MIN:-7.5} --out $L/e2e > $L/e2e.out 2>&1; echo "e2e rc=$?" >> $L/e2e.out
cd $L && tar czf $OUT/logs.tgz . ; cd - >/dev/null
cat $L/e2e/summary.md 2>/dev/null | head -60; tail -5 $L/e2e.out
