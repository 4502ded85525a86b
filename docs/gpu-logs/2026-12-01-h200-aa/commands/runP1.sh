#!/usr/bin/env bash
# GPU run P1 (twenty-fifth session). Issue 7's llama gap: what the stream layer's epoch closes cost.
# 1. event_costs: host ns of the runtime calls one epoch close and its retire make (idle GPU).
# 2. Replays `--backend cuda --warm 10` over bench/traces of PyTorch's allocator and stash, with the
#    epoch closed every 1024 frees (main: .devbuild/p1/stash-replay) and every 8192 (the same source
#    with stream_layer::frees_per_epoch = 8192: stash-replay-e8k), the two binaries alternated round by
#    round, each round running torch and stash in rotated order, until REPLAY_S seconds.
# Carry: .devbuild/p1.
L=/tmp/gp1; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
lscpu | grep -E "Model name|^CPU\(s\)" >> $L/gpu.txt
echo "rev $(cat .devbuild/p1/rev)" >> $L/gpu.txt
.devbuild/p1/event_costs > $L/event_costs.txt 2>&1; echo "rc=$?" >> $L/event_costs.txt
cat $L/event_costs.txt
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
r0=$SECONDS
for r in $(seq 1 ${ROUNDS:-40}); do
  [ $((SECONDS - r0)) -gt ${REPLAY_S:-300} ] && { echo "stopped before round $r" >> $L/failed.txt; break; }
  if [ $((r % 2)) = 1 ]; then bin=stash-replay; else bin=stash-replay-e8k; fi
  if [ $(( (r / 2) % 2)) = 0 ]; then order=torch,stash; else order=stash,torch; fi
  CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib timeout 150 .devbuild/p1/$bin bench/traces --backend cuda \
    --warm 10 --allocators $order --json-file $L/j/r$r-$bin.jsonl > $L/j/r$r.txt 2>&1 || echo "r$r rc=$?" >> $L/failed.txt
done
echo "replays: $((SECONDS - r0)) s" >> $L/gpu.txt
python3 - "$L/j" <<'P' | tee $L/summary.txt
import json, glob, os, sys, collections, statistics
ratio = collections.defaultdict(lambda: collections.defaultdict(list))  # trace -> binary -> per-round torch/stash
for f in glob.glob(sys.argv[1] + '/*.jsonl'):
    b = os.path.basename(f).split('-', 1)[1][:-6]
    rows = {}
    for l in open(f):
        x = json.loads(l); rows.setdefault(x['trace'], {})[x['allocator']] = x
    for t, a in rows.items():
        if 'torch' in a and 'stash' in a: ratio[t][b].append(a['torch']['ns_per_op_warm'] / a['stash']['ns_per_op_warm'])
print("trace | warm PyTorch/stash median (rounds): epoch 1024 | epoch 8192 | 8192 over 1024")
for t in sorted(ratio):
    a, b = ratio[t]['stash-replay'], ratio[t]['stash-replay-e8k']
    if a and b: print(f"{t[:24]:24} | {statistics.median(a):.2f} ({len(a)}) | {statistics.median(b):.2f} ({len(b)}) | {statistics.median(b)/statistics.median(a):.3f}")
P
pack
cat $L/failed.txt 2>/dev/null
