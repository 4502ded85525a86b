#!/usr/bin/env bash
# GPU run S4 (twenty-ninth session, one H200): what the lock costs the default composition on this host.
# Three stash-replay builds alternated round by round beside PyTorch on llama, vit and bert: `base` (the
# session's library: spin_lock, one atomic exchange per call), `nolock` (device_caching_allocator with
# null_lock: the bound, not a thread-safe allocator) and `biased` (the twenty-third session's biased_lock,
# bench/experiments/2026-12-01-warm-path-and-rounding/biased_lock.hpp.txt: plain stores while one thread
# calls, revoked with membarrier(2)). Carry: .devbuild/ab, .devbuild/nolock, .devbuild/biased.
mkdir -p /tmp/t3 && cp bench/traces/llama_train_ckpt_varlen.csv bench/traces/vit_train_amp.csv \
  bench/traces/bert_infer_varlen.csv /tmp/t3/
OUT_DIR=$OUT
OUT=/tmp/s4 TRACES=/tmp/t3 ALLOCATORS=torch,stash TARGET=8 SECONDS_MAX=${SECONDS_MAX:-420} ROUNDS=1000 \
  scripts/gpu-replay-ab base=.devbuild/ab/stash-replay nolock=.devbuild/nolock/stash-replay \
  biased=.devbuild/biased/stash-replay > /tmp/s4-stdout.txt 2>&1
echo rc=$?
# membarrier(2) on this host (x86-64 syscall 324, MEMBARRIER_CMD_QUERY): the supported commands, or -1
python3 -c 'import ctypes; print("membarrier query:", ctypes.CDLL(None, use_errno=True).syscall(324, 0, 0, 0))' \
  >> /tmp/s4/gpu.txt 2>&1
uname -r >> /tmp/s4/gpu.txt
cp /tmp/s4/summary.txt /tmp/s4/gpu.txt $OUT_DIR/
cat /tmp/s4/failed.txt 2>/dev/null
(cd /tmp/s4 && rm -f j/*.txt && tar czf $OUT_DIR/s4.tgz .)
cat $OUT_DIR/summary.txt
