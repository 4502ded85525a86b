#!/usr/bin/env bash
# GPU run Y1 (two H200s, eleventh session), main 7c8e8ad (rev in .devbuild/y1/rev): every GPU suite and
# sanitizer with two GPUs, so the peer and multi-GPU cases run (scripts/gpu-test run all; build/gpu built here
# with `scripts/gpu-test build stash_nccl_tests`, carried less CMakeFiles), the NCCL suite (all-reduce in place
# on stash buffers across both GPUs), then DDP end to end (scripts/e2e, one repetition each of native,
# expandable_segments and stash; wheels from `scripts/e2e --fetch-wheels .devbuild/y1/whl`).
# Carry: build/gpu, .devbuild/y1.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=/tmp/gy1; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvidia-smi topo -m; echo "rev $(cat .devbuild/y1/rev)"; } > $L/gpu.txt 2>&1
STASH_GPU_DEADLINE=330 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 60 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
pack
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
timeout 150 python3 scripts/e2e --reps 1 --steps 6 --warmup 2 --workloads ddp --allocators native,expandable,stash \
  --wheels .devbuild/y1/whl --max-minutes 2 --out $L/e2e > $L/e2e.out 2>&1; echo "e2e rc=$?" >> $L/e2e.out
pack
cat $L/gpu.txt | head -8; tail -n 14 $L/summary.txt; tail -n 3 $L/nccl.log
grep -h "rc=" $L/*.log $L/*.out | tr '\n' ' '; echo
sed -n '/Peak reserved/,/^stash: options/p' $L/e2e/summary.md 2>/dev/null | head -30
