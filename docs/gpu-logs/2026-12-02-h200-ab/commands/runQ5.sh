#!/usr/bin/env bash
# GPU run Q5 (twenty-seventh session, one H200): events recorded (`warm_events`) and page operations
# (`warm_page_work`) over 10 warm replays of PyTorch's allocator, stash, stash-aliases and
# stash-lean-aliases, `--backend cuda --warm 10` over bench/traces, ROUNDS rounds with the order rotated
# (.devbuild/q5/stash-replay at eab36b0, library as 1f08eb7). Carry: .devbuild/q5.
L=/tmp/gq5; mkdir -p $L/j
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
cat .devbuild/q5/rev >> $L/gpu.txt
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
a=(torch stash stash-aliases stash-lean-aliases)
for r in $(seq 1 ${ROUNDS:-2}); do
  k=$(( (r - 1) % 4 )); order=$(IFS=,; echo "${a[*]:$k},${a[*]:0:$k}" | sed 's/,$//; s/ /,/g')
  CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib:$PWD/.devbuild/q5 timeout 100 .devbuild/q5/stash-replay bench/traces --backend cuda \
    --warm 10 --allocators $order --json-file $L/j/r$r.jsonl > $L/j/r$r.txt 2>&1 || echo "r$r rc=$?" >> $L/failed.txt
done
python3 - "$L/j" <<'P' | tee $L/summary.txt
import json, glob, sys, collections, statistics as st
A = ['stash', 'stash-aliases', 'stash-lean-aliases']
ratio = collections.defaultdict(list); ev = collections.defaultdict(list); work = collections.defaultdict(list)
for f in sorted(glob.glob(sys.argv[1] + '/*.jsonl')):
    rows = collections.defaultdict(dict)
    for l in open(f):
        x = json.loads(l); rows[x['trace']][x['allocator']] = x
    for t, r in rows.items():
        for k in A:
            if k in r:
                ev[(t, k)].append(r[k]['warm_events']); work[(t, k)].append(r[k]['warm_page_work'])
                if 'torch' in r: ratio[(t, k)].append(r['torch']['ns_per_op_warm'] / r[k]['ns_per_op_warm'])
print("trace | per allocator (" + ", ".join(A) + "): warm PyTorch/x median; events recorded over 10 warm replays; page operations, each round")
for t in sorted({t for t, _ in ev}):
    print(f"{t[:24]:24} | " + " | ".join(f"{st.median(ratio[(t,k)]):.2f}; {ev[(t,k)]}; {work[(t,k)]}" for k in A if ratio[(t, k)]))
P
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/failed.txt 2>/dev/null
