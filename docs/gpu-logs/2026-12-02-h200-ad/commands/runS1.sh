#!/usr/bin/env bash
# GPU run S1 (twenty-ninth session, one H200): issue 7's 8x target over every trace of bench/traces, with
# the session's library (.devbuild/ab/stash-replay, built with -DSTASH_WITH_TORCH=ON; libcudart.so.13
# beside it): PyTorch and stash alternated over as many rounds of `--warm 10` as fit in SECONDS_MAX.
# Decided before the run (docs/gpu-validation.md, twenty-ninth session): the target counts as met on a
# trace when the 95% lower confidence bound on the median PyTorch/stash warm ratio (tools/
# replay_ab_summary.py, TARGET=8) is at least 8. Carry: .devbuild/ab.
OUT_DIR=$OUT
OUT=/tmp/s1 ALLOCATORS=torch,stash TARGET=8 SECONDS_MAX=${SECONDS_MAX:-500} ROUNDS=1000 \
  scripts/gpu-replay-ab s1=.devbuild/ab/stash-replay > /tmp/s1-stdout.txt 2>&1
echo rc=$?
cp /tmp/s1/summary.txt /tmp/s1/gpu.txt $OUT_DIR/
cat /tmp/s1/failed.txt 2>/dev/null
tar czf $OUT_DIR/s1.tgz -C /tmp s1
cat $OUT_DIR/summary.txt
