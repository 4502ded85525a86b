#!/usr/bin/env bash
# GPU run Q3 (twenty-seventh session, one H200): kept aliases that alone back a block skip the reclaim, against the
# code before it (old: e90cff9, new: 4e7b69a). Replays `--backend cuda --warm 10` over bench/traces of PyTorch's allocator, stash,
# stash-aliases and stash-lean-aliases, with .devbuild/q3/stash-replay-old (before) and
# .devbuild/q3/stash-replay-new (after) alternated round by round, the allocators' order rotated every
# two rounds, until REPLAY_S seconds. PART=suites then runs every GPU suite under every sanitizer
# (scripts/gpu-test run all, build/gpu at d430411, whose library is 4e7b69a). Carry: .devbuild/q3, build/gpu.
L=/tmp/gq3; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
lscpu | grep -E "Model name|^CPU\(s\)" >> $L/gpu.txt
cat .devbuild/q3/rev >> $L/gpu.txt
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
a=(torch stash stash-aliases stash-lean-aliases)
r0=$SECONDS
for r in $(seq 1 ${ROUNDS:-80}); do
  [ $((SECONDS - r0)) -gt ${REPLAY_S:-240} ] && { echo "stopped before round $r" >> $L/failed.txt; break; }
  if [ $((r % 2)) = 1 ]; then bin=old; else bin=new; fi
  k=$(( ((r - 1) / 2) % 4 )); order=$(IFS=,; echo "${a[*]:$k},${a[*]:0:$k}" | sed 's/,$//; s/ /,/g')
  CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib:$PWD/.devbuild/q3 timeout 100 .devbuild/q3/stash-replay-$bin bench/traces --backend cuda \
    --warm 10 --allocators $order --json-file $L/j/r$r-$bin.jsonl > $L/j/r$r.txt 2>&1 || echo "r$r rc=$?" >> $L/failed.txt
done
echo "replays: $((SECONDS - r0)) s" >> $L/gpu.txt
python3 - "$L/j" <<'P' | tee $L/summary.txt
import json, glob, os, sys, collections, statistics as st
A = ['stash', 'stash-aliases', 'stash-lean-aliases']
ratio = collections.defaultdict(list); mem = {}
for f in glob.glob(sys.argv[1] + '/*.jsonl'):
    b = os.path.basename(f).split('-', 1)[1][:-6]
    rows = collections.defaultdict(dict)
    for l in open(f):
        x = json.loads(l); rows[x['trace']][x['allocator']] = x
    for t, r in rows.items():
        for k in A:
            if 'torch' in r and k in r:
                ratio[(t, k, b)].append(r['torch']['ns_per_op_warm'] / r[k]['ns_per_op_warm'])
                mem[(t, k, b)] = (r[k]['reserved_over_live'], r[k]['settled_reserved_over_live'])
traces = sorted({t for t, _, _ in ratio})
print("warm PyTorch/x median (rounds), old -> new; reserved/live cold, settled old -> new")
for k in A:
    print(f"== {k}")
    for t in traces:
        o, n = ratio[(t, k, 'old')], ratio[(t, k, 'new')]
        if o and n:
            print(f"{t[:24]:24} | {st.median(o):.2f} ({len(o)}) -> {st.median(n):.2f} ({len(n)}) x{st.median(n)/st.median(o):.3f} | "
                  f"{mem[(t,k,'old')][0]:.4f}, {mem[(t,k,'old')][1]:.4f} -> {mem[(t,k,'new')][0]:.4f}, {mem[(t,k,'new')][1]:.4f}")
P
pack
case ${PART:-} in suites)
  STASH_GPU_DEADLINE=${SUITES_S:-300} OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$?" >> $L/suites.txt
  pack; tail -n 16 $L/suites.txt;;
esac
cat $L/failed.txt 2>/dev/null
