#!/usr/bin/env bash
# GPU run Z5 (one H200): the multistream workload (scripts/e2e) under native with PyTorch's memory history, to
# replay here (tools/torch_snapshot_to_csv.py): run Z4 showed this session's stream change raising stash's peak
# on it (378 -> 386 MiB) where the mlp_two_streams trace fell. Also 16 steps, to see a longer run.
L=/tmp/gz5; rm -rf $L; mkdir -p $L
export PYTHONUNBUFFERED=1
timeout 60 python3 scripts/e2e --reps 1 --steps 8 --warmup 2 --workloads multistream --allocators native \
  --memory-history $L/hist --out $L/e2e > $L/e2e.out 2>&1; echo "e2e rc=$?" >> $L/e2e.out
timeout 60 python3 scripts/e2e --reps 1 --steps 24 --warmup 2 --workloads multistream --allocators native \
  --memory-history $L/hist24 --out $L/e2e24 > $L/e2e24.out 2>&1; echo "e2e24 rc=$?" >> $L/e2e24.out
cp -r $L/hist $L/hist24 $OUT/ 2>/dev/null; (cd $L && tar czf $OUT/logs.tgz e2e.out e2e24.out e2e e2e24)
ls -la $L/hist $L/hist24; tail -n 2 $L/e2e.out $L/e2e24.out
