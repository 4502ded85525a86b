#!/usr/bin/env bash
# GPU run R1 (twenty-eighth session, one H200): main at the session's start (01d5982, "old") against
# 3df1c25 ("new": record_stream looks its stream up through tag_of; kept aliases move their mapped marks
# a word at a time), two stash-replay binaries built here with -DSTASH_WITH_TORCH=ON, alternated round
# by round over bench/traces, `--backend cuda --warm 10`, PyTorch's allocator in every round. Carry:
# .devbuild/ab (stash-replay-old, stash-replay-new, libcudart.so.13).
# (The run's failed.txt said "stopped before round 101": the script then counted its time limit as a
# failure and exited 1; it no longer does. No round failed.)
nvidia-smi --query-gpu=name,driver_version --format=csv
OUT_DIR=$OUT
OUT=/tmp/ab ALLOCATORS=torch,stash,stash-aliases,stash-lean-aliases TARGET=8 SECONDS_MAX=420 ROUNDS=300 \
  scripts/gpu-replay-ab old=.devbuild/ab/stash-replay-old new=.devbuild/ab/stash-replay-new > /tmp/ab-stdout.txt 2>&1
echo rc=$?
cp /tmp/ab/summary.txt /tmp/ab/gpu.txt /tmp/ab-stdout.txt $OUT_DIR/
tar czf $OUT_DIR/ab.tgz -C /tmp ab
