#!/usr/bin/env bash
# GPU run Q2 (twenty-seventh session, one H200). 1. event_latency (bench/experiments/2026-12-02-requery):
# how long an idle GPU takes to complete an event just recorded. 2. Replays `--backend cuda --warm 10` over
# bench/traces of PyTorch's allocator, stash, stash-aliases and stash-lean-aliases, ROUNDS rounds, the
# allocators' order rotated, with the JSON's warm_page_work (page operations over the 10 warm replays).
# 3. PART=suites too: every GPU suite under every sanitizer (scripts/gpu-test run all, build/gpu).
# Carry: .devbuild/q2 (and build/gpu for the suites).
L=/tmp/gq2; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
echo "replay $(cat .devbuild/q2/rev), suites $(cat build/gpu/rev 2>/dev/null)" >> $L/gpu.txt
LD_LIBRARY_PATH=$PWD/.devbuild/q2 .devbuild/q2/event_latency > $L/event_latency.txt 2>&1; echo "rc=$?" >> $L/event_latency.txt
cat $L/event_latency.txt
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
a=(torch stash stash-aliases stash-lean-aliases)
for r in $(seq 1 ${ROUNDS:-4}); do
  k=$(( (r - 1) % 4 )); order=$(IFS=,; echo "${a[*]:$k},${a[*]:0:$k}" | sed 's/,$//; s/ /,/g')
  CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib:$PWD/.devbuild/q2 timeout 100 .devbuild/q2/stash-replay bench/traces --backend cuda \
    --warm 10 --allocators $order --json-file $L/j/r$r.jsonl > $L/j/r$r.txt 2>&1 || echo "r$r rc=$?" >> $L/failed.txt
done
python3 - "$L/j" <<'P' | tee $L/summary.txt
import json, glob, sys, collections, statistics as st
A = ['stash', 'stash-aliases', 'stash-lean-aliases']
ratio = collections.defaultdict(list); work = collections.defaultdict(list)
for f in glob.glob(sys.argv[1] + '/*.jsonl'):
    rows = collections.defaultdict(dict)
    for l in open(f):
        x = json.loads(l); rows[x['trace']][x['allocator']] = x
    for t, r in rows.items():
        for k in A:
            if k in r:
                work[(t, k)].append(r[k]['warm_page_work'])
                if 'torch' in r: ratio[(t, k)].append(r['torch']['ns_per_op_warm'] / r[k]['ns_per_op_warm'])
print("trace | per allocator (" + ", ".join(A) + "): warm PyTorch/x median; page operations over 10 warm replays, each round")
for t in sorted({t for t, _ in work}):
    print(f"{t[:24]:24} | " + " | ".join(f"{st.median(ratio[(t,k)]):.2f}; {work[(t,k)]}" for k in A if ratio[(t, k)]))
P
pack
case ${PART:-} in suites)
  STASH_GPU_DEADLINE=330 OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$?" >> $L/suites.txt
  pack; tail -n 16 $L/suites.txt;;
esac
cat $L/failed.txt 2>/dev/null
