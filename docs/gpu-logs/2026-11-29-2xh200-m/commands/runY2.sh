#!/usr/bin/env bash
# GPU run Y2 (two H200s, twelfth session): DDP end to end (issue 8's two-GPU workload: GPT-2, 6 layers, DDP over
# NCCL, one process a GPU) under every allocator of scripts/e2e (native, expandable_segments, cudaMallocAsync,
# RMM's pool, stash through stash.torch), three repetitions (scripts/e2e alternates the order). Library: main
# (rev in .devbuild/y2/rev); the stash wheel built here with `pip wheel --no-deps ./python`, RMM's wheels from
# `scripts/e2e --fetch-wheels`. Carry: .devbuild/y2.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
L=/tmp/gy2; rm -rf $L; mkdir -p $L
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; echo "rev $(cat .devbuild/y2/rev)"; } > $L/gpu.txt 2>&1
timeout 540 python3 scripts/e2e --reps 3 --steps 6 --warmup 2 --workloads ddp --allocators native,expandable,async,rmm,stash \
  --wheels .devbuild/y2/whl --max-minutes 7.5 --out $L/e2e > $L/e2e.out 2>&1; echo "e2e rc=$?" >> $L/e2e.out
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/gpu.txt; grep "rep " $L/e2e.out | cut -c1-100; tail -n 2 $L/e2e.out
sed -n '/Peak reserved/,/^stash: options/p' $L/e2e/summary.md 2>/dev/null | head -40
