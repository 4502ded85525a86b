#!/usr/bin/env bash
# GPU run G2 (one H200, right after G): gpt2_varlen and llama_generate, three alternating repetitions.
# The call's time limit (400 s) ended it during the last llama repetitions: the records of the runs that
# finished are in bench/results/e2e-h200-2026-11-28-c2-records (no summary.md was written).
L=/tmp/gl2; mkdir -p $L
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
timeout 400 python3 scripts/e2e --reps 3 --steps 6 --warmup 2 --workloads gpt2_varlen,llama_generate \
  --allocators native,expandable,stash --max-minutes 6 --out $L/e2e > $L/e2e.out 2>&1
