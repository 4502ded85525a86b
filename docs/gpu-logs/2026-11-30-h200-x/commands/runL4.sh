#!/usr/bin/env bash
# GPU run L4 (twenty-second session, 2 x H200): issue 11's cold start with both GPUs visible and stash's C++
# default peer grant (peer_access all: every page mapped for the peer too; PyTorch's memory for device 0
# alone, no peer access enabled), with the fill at 8 KiB (now the default; `stash-fill-8k` in this binary)
# and off (`stash`, the default when the binary was built). One process per trace and allocator, so each
# pays the driver's one-time peer setup as a program does; `--warm 0`; ROUNDS rounds (default 3), the
# order reversed every other round. Binary: .devbuild/l2/stash-replay (f62509d, with PyTorch), as run L2.
# Carry: .devbuild/l2.
L=/tmp/gl4; rm -rf $L; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
nvidia-smi topo -m >> $L/gpu.txt 2>&1
start=$SECONDS
for r in $(seq 1 ${ROUNDS:-3}); do
  [ $((r % 2)) = 1 ] && order="torch stash stash-fill-8k" || order="stash-fill-8k stash torch"
  [ $((SECONDS - start)) -gt ${COLD_S:-300} ] && { echo "stopped at round $r" >> $L/failed.txt; break; }
  for t in bench/traces/*.csv; do
    for a in $order; do
      tag=$(basename $t .csv)-$a-r$r
      CUDA_VISIBLE_DEVICES=0,1 LD_LIBRARY_PATH=$TORCH/lib timeout 60 .devbuild/l2/stash-replay $t --backend cuda --warm 0 \
        --allocators $a --json-file $L/j/$tag.jsonl > $L/j/$tag.txt 2>&1 || echo "$tag rc=$?" >> $L/failed.txt
    done
  done
  pack
done
echo "cold part: $((SECONDS - start)) s" >> $L/gpu.txt
python3 - "$L/j" <<'P' | tee $L/summary.txt
import json, glob, os, sys, collections, statistics
cold = collections.defaultdict(lambda: collections.defaultdict(dict))  # trace -> round -> allocator -> ns/op
for f in glob.glob(sys.argv[1] + '/*.jsonl'):
    for l in open(f):
        d = json.loads(l)
        r = os.path.basename(f)[:-6].rsplit('-r', 1)[1]
        cold[d['trace']][r][d['allocator']] = d['ns_per_op_cold']
print('trace | cold ns/op over PyTorch, median (min-max): fill 8 KiB | fill off | PyTorch cold ns/op median')
for t in sorted(cold):
    out = []
    for a in ('stash-fill-8k', 'stash'):
        xs = [v[a] / v['torch'] for v in cold[t].values() if a in v and 'torch' in v]
        out.append(f"{statistics.median(xs):.2f} ({min(xs):.2f}-{max(xs):.2f})" if xs else '-')
    tv = [v['torch'] for v in cold[t].values() if 'torch' in v]
    print(f"{t[:24]:24} | {out[0]} | {out[1]} | {statistics.median(tv):.0f}")
P
pack
cat $L/failed.txt 2>/dev/null
