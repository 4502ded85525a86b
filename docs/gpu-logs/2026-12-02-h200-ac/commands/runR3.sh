#!/usr/bin/env bash
# GPU run R3 (twenty-eighth session, one H200): issue 7's 8x target on its two closest traces, llama and
# vit, with the session's library (.devbuild/ab/stash-replay-new, 3df1c25's library): PyTorch and stash
# alternated over as many rounds as fit in SECONDS_MAX, `--warm 10`. Carry: .devbuild/ab.
mkdir -p /tmp/t2 && cp bench/traces/llama_train_ckpt_varlen.csv bench/traces/vit_train_amp.csv /tmp/t2/
OUT_DIR=$OUT
OUT=/tmp/r3 TRACES=/tmp/t2 ALLOCATORS=torch,stash TARGET=8 SECONDS_MAX=${SECONDS_MAX:-300} ROUNDS=1000 \
  scripts/gpu-replay-ab new=.devbuild/ab/stash-replay-new > /tmp/r3-stdout.txt 2>&1
echo rc=$?
cp /tmp/r3/summary.txt /tmp/r3/gpu.txt $OUT_DIR/
cat /tmp/r3/failed.txt 2>/dev/null
tar czf $OUT_DIR/r3.tgz -C /tmp r3
