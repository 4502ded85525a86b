#!/usr/bin/env bash
# GPU run C4 (two H200s, fourteenth session): stash.torch with eaf6cb0's library (a block's edge pages join its
# chunk). Every PyTorch smoke check (python/tests/gpu/smoke_torch.py), then DDP end to end (GPT-2, 6 layers,
# one process a GPU, both GPUs visible to each) under native and stash, one repetition each, as run B3.
# Wheel built here: `pip wheel --no-deps ./python` at eaf6cb0 (.devbuild/c2/new, run C3's). Carry: .devbuild/c2.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
L=/tmp/gc4; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/c2/new/stash*.whl > $L/pip.log 2>&1
PYTHONPATH=/tmp/site timeout 300 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$?" >> $L/smoke_torch.log
pack
timeout 230 python3 scripts/e2e --reps 1 --steps 6 --warmup 2 --workloads ddp --allocators native,stash \
  --wheels .devbuild/c2/new --max-minutes 3.5 --out $L/e2e > $L/e2e.out 2>&1; echo "e2e rc=$?" >> $L/e2e.out
pack
cat $L/gpu.txt; grep -v "^    " $L/smoke_torch.log | tail -n 26; grep "rep " $L/e2e.out | cut -c1-100; tail -n 2 $L/e2e.out
sed -n '/Peak reserved/,/^stash: options/p' $L/e2e/summary.md 2>/dev/null | head -30
