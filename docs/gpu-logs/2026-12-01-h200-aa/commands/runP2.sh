#!/usr/bin/env bash
# GPU run P2 (twenty-fifth session, one H200): the library as committed, epochs of 8192 frees.
# PART=suites: every GPU suite under every sanitizer (scripts/gpu-test run all; build/gpu, rev in
# build/gpu/rev). PART=replay: warm and cold ns/op and reserved/live of stash and PyTorch's allocator,
# `--backend cuda --warm 10` over bench/traces, rounds in alternating order until REPLAY_S seconds
# (.devbuild/p2/stash-replay, build/l2 with -DSTASH_WITH_TORCH=ON). PART=e2e: PyTorch 2.11 training
# (scripts/e2e, gpt2_varlen and resnet50, 2 repetitions of 20 steps after 3) under the native allocator
# and stash.torch (the wheel in .devbuild/p2). PART=all: suites and replay. Carry: build/gpu, .devbuild/p2.
L=/tmp/gp2; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
lscpu | grep -E "Model name|^CPU\(s\)" >> $L/gpu.txt
echo "build rev $(cat build/gpu/rev 2>/dev/null), replay and wheel rev $(cat .devbuild/p2/rev 2>/dev/null)" >> $L/gpu.txt
start=$SECONDS
case ${PART:-all} in all|suites)
  STASH_GPU_DEADLINE=300 OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
  pack; tail -n 16 $L/suites.txt;;
esac
case ${PART:-all} in all|replay)
  TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
  r0=$SECONDS
  for r in $(seq 1 ${ROUNDS:-40}); do
    [ $((SECONDS - r0)) -gt ${REPLAY_S:-150} ] && { echo "stopped before round $r" >> $L/failed.txt; break; }
    if [ $((r % 2)) = 1 ]; then order=torch,stash; else order=stash,torch; fi
    CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib timeout 100 .devbuild/p2/stash-replay bench/traces --backend cuda \
      --warm 10 --allocators $order --json-file $L/j/r$r.jsonl > $L/j/r$r.txt 2>&1 || echo "r$r rc=$?" >> $L/failed.txt
  done
  echo "replays: $((SECONDS - r0)) s" >> $L/gpu.txt
  python3 - "$L/j" <<'P' | tee $L/summary.txt
import json, glob, sys, collections, statistics
ratio = collections.defaultdict(list); cold = collections.defaultdict(list); mem = {}
for f in glob.glob(sys.argv[1] + '/*.jsonl'):
    rows = collections.defaultdict(dict)
    for l in open(f):
        x = json.loads(l); rows[x['trace']][x['allocator']] = x
    for t, a in rows.items():
        if 'torch' in a and 'stash' in a:
            ratio[t].append(a['torch']['ns_per_op_warm'] / a['stash']['ns_per_op_warm'])
            cold[t].append(a['stash']['ns_per_op_cold'] / a['torch']['ns_per_op_cold'])
            mem[t] = (a['stash']['reserved_over_live'], a['stash']['settled_reserved_over_live'], a['torch']['reserved_over_live'], a['stash']['device_syncs'])
print("trace | warm PyTorch/stash: median (min-max, rounds) | cold stash/PyTorch median | reserved/live stash cold, settled; PyTorch | device syncs")
for t in sorted(ratio):
    r = ratio[t]
    print(f"{t[:24]:24} | {statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f}, {len(r)}) | {statistics.median(cold[t]):.2f} | {mem[t][0]:.4f}, {mem[t][1]:.4f}; {mem[t][2]:.4f} | {mem[t][3]}")
P
  pack;;
esac
case ${PART:-all} in e2e)
  export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0
  timeout 330 python3 scripts/e2e --workloads ${WORKLOADS:-gpt2_varlen,resnet50} --allocators native,stash --reps 2 --steps 20 \
    --warmup 3 --timeout 150 --wheels .devbuild/p2 --out $L/e2e > $L/e2e.out 2>&1; echo "e2e rc=$?" >> $L/e2e.out
  pack; tail -n 3 $L/e2e.out; cat $L/e2e/summary.md 2>/dev/null | head -40;;
esac
cat $L/failed.txt 2>/dev/null
