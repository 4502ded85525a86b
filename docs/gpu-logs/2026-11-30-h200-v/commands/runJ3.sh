#!/usr/bin/env bash
# GPU run J3 (twentieth session): beside PyTorch, what fill_mapped_above (small requests of more than 8 KiB fill mapped
# memory of the large region, on by default since 598f37c) costs on the GPU. `stash-replay bench/traces
# --backend cuda --warm 10` with stash (the rule), stash-no-fill (fill_mapped_above off: the default
# before) and stash-small-fill (small_fill_mapped: every small request fills; stash.torch's), one binary,
# six rounds, the allocators' order reversed every other round. Reserved/live (cold and settled), cold
# and warm ns/op, backend calls per replay. Built here: build/gpu (rev in build/gpu/rev; stash-replay in
# build/gpu/bench). Carry: build/gpu.
# J3: .devbuild/j3/stash-replay built here with -DSTASH_WITH_TORCH=ON (rev in .devbuild/j3/rev), torch, stash and
# stash-no-fill side by side; the summary adds PyTorch's warm time over each allocator's, per round. Carry: .devbuild/j3.
L=/tmp/gj3; rm -rf $L; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
lscpu | grep -E "Model name|^CPU\(s\)" >> $L/gpu.txt
echo "build rev $(cat build/gpu/rev 2>/dev/null)" >> $L/gpu.txt
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
start=$SECONDS
for r in 1 2 3 4 5 6; do
  if [ $((r % 2)) = 1 ]; then allocs=torch,stash,stash-no-fill; else allocs=stash-no-fill,stash,torch; fi
  [ $((SECONDS - start)) -gt ${WARM_S:-240} ] && { echo "stopped at round $r" >> $L/failed.txt; break; }
  CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib timeout 150 .devbuild/j3/stash-replay bench/traces --backend cuda \
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
print('trace: allocator cold/settled reserved/live | cold ns/op median | warm ns/op median (min-max) | warm/stash-no-fill per round, median')
for t in sorted(rows):
    base = {i: d['ns_per_op_warm'] for i, d in enumerate(rows[t].get('stash-no-fill', []))}
    for a in ('stash', 'stash-no-fill', 'torch'):
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
    for a in ('stash', 'stash-no-fill'):
        r = [v['torch']['ns_per_op_warm'] / v[a]['ns_per_op_warm'] for v in rows[t].values() if 'torch' in v and a in v]
        c = [v[a]['ns_per_op_cold'] / v['torch']['ns_per_op_cold'] for v in rows[t].values() if 'torch' in v and a in v]
        if r: out.append(f"{a} {statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f}) cold {statistics.median(c):.2f}")
    print(f"{t[:24]:24} " + " | ".join(out))
P
pack
cat $L/failed.txt 2>/dev/null
