#!/usr/bin/env bash
# GPU run V3 (thirty-second session, one H200): scripts/e2e's multistream and cuda_graph workloads (the
# two that use several streams or a CUDA graph) under PyTorch's native allocator and stash.torch, with the
# wheel of run V1 (065f51e's library; 677370d changed only line breaks), 3 repetitions of 20 steps in
# alternating order. Carry: .devbuild/v1.
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0
L=/tmp/gv3; mkdir -p $L
{ nvidia-smi --query-gpu=name,driver_version --format=csv; echo "wheel rev $(cat .devbuild/v1/rev)"; } > $L/gpu.txt 2>&1
start=$SECONDS
timeout 540 python3 scripts/e2e --workloads multistream,cuda_graph --allocators native,stash --reps 3 --steps 20 \
  --warmup 3 --timeout 120 --max-minutes 8 --scratch /tmp/e2e-scratch --wheels .devbuild/v1 \
  --out $L/e2e > $L/e2e.out 2>&1; echo "e2e rc=$? s=$((SECONDS-start))" >> $L/e2e.out
(cd $L && tar czf $OUT/logs.tgz .)
grep "^\[e2e" $L/e2e.out | tail -n 8; tail -n 1 $L/e2e.out; cat $L/e2e/summary.md | head -40
