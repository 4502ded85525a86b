#!/usr/bin/env bash
# GPU run I (one H200): which VMM driver calls wait for queued GPU work (bench/vmm_blocking.cu), and
# gpt2_varlen step times with stash's driver calls and page moves per step, by default and with page
# moves switched off (pages_between_moves huge: new pages are mapped instead), three alternating reps.
# Carry: .devbuild/probe (nvcc -std=c++17 -O2 -arch=sm_90 bench/vmm_blocking.cu -lcuda) and .whl.
L=$OUT/runI; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv > $L/gpu.txt 2>&1
.devbuild/probe/vmm_blocking 200 > $L/vmm_blocking.txt 2>&1; echo "probe rc=$?" >> $L/vmm_blocking.txt
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
timeout 200 python3 scripts/e2e --reps 3 --steps 12 --warmup 2 --workloads gpt2_varlen \
  --allocators native,expandable,stash --max-minutes 3 --out $L/default > $L/default.out 2>&1
STASH_CONF=pages_between_moves:1000000000 timeout 150 python3 scripts/e2e --reps 3 --steps 12 --warmup 2 \
  --workloads gpt2_varlen --allocators native,stash --max-minutes 2 --out $L/nomoves > $L/nomoves.out 2>&1
nvidia-smi --query-gpu=clocks.sm,temperature.gpu --format=csv >> $L/gpu.txt 2>&1
tail -5 $L/*.out
cat $L/vmm_blocking.txt
