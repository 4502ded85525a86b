#!/usr/bin/env bash
# GPU run D6 (fifteenth session, one H200 visible): the least memory GPT-2 training with random lengths runs in
# inside PyTorch 2.11 (scripts/e2e --least-memory: a process per probe, the limit set with
# torch.cuda.set_per_process_memory_fraction, which stash takes through its hook), under PyTorch's native
# allocator, its expandable segments and stash (stash.torch's defaults), one untimed and two steps, limits in
# steps of 32 MiB. Wheel: pip wheel --no-deps ./python at the fifteenth session's tree (.devbuild/d6).
# Carry: .devbuild/d6.
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0
L=/tmp/gd6; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
timeout 500 python3 scripts/e2e --least-memory --workloads gpt2_varlen --allocators native,expandable,stash \
  --steps 2 --warmup 1 --least-step-mib 32 --timeout 120 --max-minutes 7 --wheels .devbuild/d6 --out $L/e2e > $L/e2e.out 2>&1
echo "e2e rc=$?" >> $L/e2e.out
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/gpu.txt; grep -E "least|rc=|hooks" $L/e2e.out | cut -c1-160; cat $L/e2e/least.md 2>/dev/null
