#!/usr/bin/env bash
# GPU run P5 (twenty-fifth session, one H200): the session's final library.
# PART=suites: every GPU suite under every sanitizer (scripts/gpu-test run all; build/gpu, rev in
# build/gpu/rev). PART=replay: PyTorch's allocator, stash and stash-lean-aliases (the 1.05 bound with kept
# aliases), `--backend cuda --warm 10` over bench/traces, the allocators' order rotated each round, until
# REPLAY_S seconds (.devbuild/p5/stash-replay, build/l2 with -DSTASH_WITH_TORCH=ON). PART=e2e: PyTorch
# 2.11 training (scripts/e2e: gpt2_varlen, resnet50; 2 repetitions of 20 steps after 3) under native and
# stash, then stash with STASH_CONF=keep_page_aliases:on,max_held_over_live:1.05, which reaches the
# memory manager's pools since limited_backend passes aliases on (wheel in .devbuild/p5).
# PART=all: suites and replay. Carry: build/gpu, .devbuild/p5.
L=/tmp/gp5; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
lscpu | grep -E "Model name|^CPU\(s\)" >> $L/gpu.txt
echo "build rev $(cat build/gpu/rev 2>/dev/null), replay and wheel rev $(cat .devbuild/p5/rev 2>/dev/null)" >> $L/gpu.txt
start=$SECONDS
case ${PART:-all} in all|suites)
  STASH_GPU_DEADLINE=300 OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
  pack; tail -n 16 $L/suites.txt;;
esac
case ${PART:-all} in all|replay)
  TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
  a=(torch stash stash-lean-aliases)
  r0=$SECONDS
  for r in $(seq 1 ${ROUNDS:-40}); do
    [ $((SECONDS - r0)) -gt ${REPLAY_S:-150} ] && { echo "stopped before round $r" >> $L/failed.txt; break; }
    k=$(( (r - 1) % 3 )); order=$(IFS=,; echo "${a[*]:$k},${a[*]:0:$k}" | sed 's/,$//; s/ /,/g')
    CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib timeout 100 .devbuild/p5/stash-replay bench/traces --backend cuda \
      --warm 10 --allocators $order --json-file $L/j/r$r.jsonl > $L/j/r$r.txt 2>&1 || echo "r$r rc=$?" >> $L/failed.txt
  done
  echo "replays: $((SECONDS - r0)) s" >> $L/gpu.txt
  python3 - "$L/j" <<'P' | tee $L/summary.txt
import json, glob, sys, collections, statistics as st
A = ['stash', 'stash-lean-aliases']
ratio = collections.defaultdict(lambda: collections.defaultdict(list)); cold = collections.defaultdict(lambda: collections.defaultdict(list)); mem = {}
for f in glob.glob(sys.argv[1] + '/*.jsonl'):
    rows = collections.defaultdict(dict)
    for l in open(f):
        x = json.loads(l); rows[x['trace']][x['allocator']] = x
    for t, a in rows.items():
        for k in A:
            if 'torch' in a and k in a:
                ratio[t][k].append(a['torch']['ns_per_op_warm'] / a[k]['ns_per_op_warm'])
                cold[t][k].append(a[k]['ns_per_op_cold'] / a['torch']['ns_per_op_cold'])
                mem[(t, k)] = (a[k]['reserved_over_live'], a[k]['settled_reserved_over_live'], a[k]['device_syncs'])
print("trace | warm PyTorch/x median (min-max, rounds) for " + ", ".join(A) + " | cold x/PyTorch | reserved/live cold, settled | device syncs")
for t in sorted(ratio):
    w = "; ".join(f"{st.median(ratio[t][k]):.2f} ({min(ratio[t][k]):.2f}-{max(ratio[t][k]):.2f}, {len(ratio[t][k])})" for k in A if ratio[t][k])
    c = ", ".join(f"{st.median(cold[t][k]):.2f}" for k in A if cold[t][k])
    m = "; ".join(f"{mem[(t, k)][0]:.4f}, {mem[(t, k)][1]:.4f}" for k in A if (t, k) in mem)
    d = ", ".join(str(mem[(t, k)][2]) for k in A if (t, k) in mem)
    print(f"{t[:24]:24} | {w} | {c} | {m} | {d}")
P
  pack;;
esac
case ${PART:-all} in e2e)
  export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0
  W=${WORKLOADS:-gpt2_varlen,resnet50}
  timeout 260 python3 scripts/e2e --workloads $W --allocators native,stash --reps 2 --steps 20 --warmup 3 \
    --timeout 150 --wheels .devbuild/p5 --out $L/e2e_default > $L/e2e_default.out 2>&1; echo "rc=$?" >> $L/e2e_default.out; pack
  STASH_CONF=keep_page_aliases:on,max_held_over_live:1.05 timeout 150 python3 scripts/e2e --workloads $W --allocators stash --reps 2 \
    --steps 20 --warmup 3 --timeout 150 --wheels .devbuild/p5 --out $L/e2e_lean_aliases > $L/e2e_lean_aliases.out 2>&1
  echo "rc=$?" >> $L/e2e_lean_aliases.out; pack
  for n in e2e_default e2e_lean_aliases; do echo "== $n"; tail -n 2 $L/$n.out; sed -n '/Peak live MiB/,/^$/p;/stash: options/p' $L/$n/summary.md 2>/dev/null | head -12; done;;
esac
cat $L/failed.txt 2>/dev/null
