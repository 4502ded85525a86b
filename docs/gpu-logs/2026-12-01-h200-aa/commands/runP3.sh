#!/usr/bin/env bash
# GPU run P3 (twenty-fifth session, one H200): is llama's warm time TLB-bound? The same stash-replay
# (.devbuild/p2, main 5736a79) with and without GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (glibc's malloc
# asks for transparent huge pages with madvise, for stash's and PyTorch's host metadata alike),
# alternated round by round (torch and stash in rotated order), llama, resnet50 and bert,
# `--backend cuda --warm 10`, until REPLAY_S seconds. Carry: .devbuild/p2.
L=/tmp/gp3; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
{ nvidia-smi --query-gpu=name,driver_version --format=csv; lscpu | grep -E "Model name|^CPU\(s\)|L1d|L2|L3"; ldd --version | head -1
  echo "THP enabled: $(cat /sys/kernel/mm/transparent_hugepage/enabled) defrag: $(cat /sys/kernel/mm/transparent_hugepage/defrag)"; } > $L/gpu.txt 2>&1
cat $L/gpu.txt
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
T="bench/traces/llama_train_ckpt_varlen.csv bench/traces/resnet50_train.csv bench/traces/bert_infer_varlen.csv"
r0=$SECONDS
for r in $(seq 1 ${ROUNDS:-60}); do
  [ $((SECONDS - r0)) -gt ${REPLAY_S:-150} ] && break
  if [ $((r % 2)) = 1 ]; then tun=; tag=plain; else tun=glibc.malloc.hugetlb=1; tag=thp; fi
  if [ $(( (r / 2) % 2)) = 0 ]; then order=torch,stash; else order=stash,torch; fi
  GLIBC_TUNABLES=$tun CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib timeout 60 .devbuild/p2/stash-replay $T --backend cuda \
    --warm 10 --allocators $order --json-file $L/j/r$r-$tag.jsonl > $L/j/r$r.txt 2>&1 || echo "r$r rc=$?" >> $L/failed.txt
done
echo "replays: $((SECONDS - r0)) s" >> $L/gpu.txt
python3 - "$L/j" <<'P' | tee $L/summary.txt
import json, glob, os, sys, collections, statistics as st
v = collections.defaultdict(lambda: collections.defaultdict(list))
for f in glob.glob(sys.argv[1] + '/*.jsonl'):
    tag = os.path.basename(f).split('-')[1][:-6]; rows = collections.defaultdict(dict)
    for l in open(f):
        x = json.loads(l); rows[x['trace']][x['allocator']] = x
    for t, a in rows.items(): v[t][tag].append((a['torch']['ns_per_op_warm'], a['stash']['ns_per_op_warm']))
print("trace | plain: PyTorch/stash median, stash ns median, torch ns median (rounds) | hugetlb=1: the same")
for t in sorted(v):
    out = []
    for tag in ('plain', 'thp'):
        xs = v[t][tag]
        out.append(f"{st.median(a/b for a,b in xs):.2f}, {st.median(b for a,b in xs):.1f}, {st.median(a for a,b in xs):.1f} ({len(xs)})")
    print(f"{t[:24]:24} | " + " | ".join(out))
P
pack
