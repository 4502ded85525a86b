#!/usr/bin/env bash
# GPU run K2 (twenty-first session): what the twentieth session's lead for issue 7 costs on the GPU, beside
# PyTorch. `stash-replay bench/traces --backend cuda --warm 10` with torch, stash (the default) and
# stash-fill-8k, where stash-fill-8k is the lead (bench/experiments/2026-11-30-tiny-gates/clean-tiny-fill.patch
# applied to main: small requests of more than 8 KiB fill mapped memory of the large region before their
# region maps a page, and those of at most 8 KiB too, never into its top block). One binary, six rounds,
# the order reversed every other round. Built here in a clone with the patch: .devbuild/k2/stash-replay
# (-DSTASH_WITH_TORCH=ON, the torch 2.11.0 wheel's headers here, the GPU machine's libraries there; rev in
# .devbuild/k2/rev). Carry: .devbuild/k2.
L=/tmp/gk2; rm -rf $L; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
lscpu | grep -E "Model name|^CPU\(s\)" >> $L/gpu.txt
echo "build rev $(cat .devbuild/k2/rev 2>/dev/null)" >> $L/gpu.txt
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
start=$SECONDS
for r in 1 2 3 4 5 6; do
  if [ $((r % 2)) = 1 ]; then allocs=torch,stash,stash-fill-8k; else allocs=stash-fill-8k,stash,torch; fi
  [ $((SECONDS - start)) -gt ${WARM_S:-240} ] && { echo "stopped at round $r" >> $L/failed.txt; break; }
  CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib timeout 150 .devbuild/k2/stash-replay bench/traces --backend cuda \
    --warm 10 --allocators $allocs --json-file $L/j/r$r.jsonl > $L/j/r$r.txt 2>&1 || echo "r$r rc=$?" >> $L/failed.txt
  pack
done
echo "replays: $((SECONDS - start)) s" >> $L/gpu.txt
python3 - "$L/j" <<'P' | tee $L/summary.txt
import json, glob, os, sys, collections, statistics
rows = collections.defaultdict(lambda: collections.defaultdict(list))  # trace -> allocator -> records
for f in sorted(glob.glob(sys.argv[1] + '/r*.jsonl')):
    for l in open(f):
        d = json.loads(l)
        rows[d['trace']][d['allocator']].append(d)
print('trace: allocator cold/settled reserved/live | cold ns/op median | warm ns/op median (min-max) | warm/stash per round, median')
for t in sorted(rows):
    base = {i: d['ns_per_op_warm'] for i, d in enumerate(rows[t].get('stash', []))}
    for a in ('stash-fill-8k', 'stash', 'torch'):
        ds = rows[t].get(a, [])
        if not ds: continue
        w = [d['ns_per_op_warm'] for d in ds]
        ratio = statistics.median([d['ns_per_op_warm'] / base[i] for i, d in enumerate(ds) if i in base]) if base else float('nan')
        print(f"{t[:24]:24} {a:17} {ds[0]['reserved_over_live']:.4f}/{ds[0]['settled_reserved_over_live']:.4f} | "
              f"{statistics.median(d['ns_per_op_cold'] for d in ds):8.1f} | {statistics.median(w):6.1f} ({min(w):.1f}-{max(w):.1f}) | {ratio:.3f}")
P
python3 - "$L/j" <<'P' | tee -a $L/summary.txt
import json, glob, collections, statistics
rows = collections.defaultdict(lambda: collections.defaultdict(dict))
for f in sorted(glob.glob(__import__('sys').argv[1] + '/r*.jsonl')):
    for l in open(f):
        d = json.loads(l); rows[d['trace']][f][d['allocator']] = d
print('trace: warm PyTorch/allocator per round, median (min-max) | cold allocator/PyTorch median')
for t in sorted(rows):
    out = []
    for a in ('stash-fill-8k', 'stash'):
        r = [v['torch']['ns_per_op_warm'] / v[a]['ns_per_op_warm'] for v in rows[t].values() if 'torch' in v and a in v]
        c = [v[a]['ns_per_op_cold'] / v['torch']['ns_per_op_cold'] for v in rows[t].values() if 'torch' in v and a in v]
        if r: out.append(f"{a} {statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f}) cold {statistics.median(c):.2f}")
    print(f"{t[:24]:24} " + " | ".join(out))
P
pack
cat $L/failed.txt 2>/dev/null
