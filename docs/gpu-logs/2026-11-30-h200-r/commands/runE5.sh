#!/usr/bin/env bash
# GPU run E5 (sixteenth session): 3cb680f (free lists without branches, "new") against 020a379's library
# (run D5's binary, "old": the warm path of e5f1822, the code before 3cb680f), each beside PyTorch:
# `stash-replay bench/traces --backend cuda --warm 10`, one process per binary and round, six rounds, the
# binaries' order and the allocators' order (torch,stash / stash,torch) alternated; then with SUITES=1
# every GPU suite and sanitizer and the NCCL suite at 3cb680f.
# Binaries built here with -DSTASH_WITH_TORCH=ON, stripped: .devbuild/d5/stash-replay (old),
# .devbuild/e5/stash-replay (new), build/gpu at 3cb680f. Carry: .devbuild/d5, .devbuild/e5, build/gpu.
L=/tmp/ge5; rm -rf $L; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
lscpu | grep -E "Model name|^CPU\(s\)" >> $L/gpu.txt
start=$SECONDS
for r in 1 2 3 4 5 6; do
  if [ $((r % 2)) = 1 ]; then order="old new"; allocs=torch,stash; else order="new old"; allocs=stash,torch; fi
  for b in $order; do
    [ $((SECONDS - start)) -gt ${WARM_S:-300} ] && { echo "stopped at round $r" >> $L/failed.txt; break 2; }
    CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib timeout 120 .devbuild/$([ $b = old ] && echo d5 || echo e5)/stash-replay \
      bench/traces --backend cuda --warm 10 --allocators $allocs --json-file $L/j/$b-r$r.jsonl > $L/j/$b-r$r.txt 2>&1 \
      || echo "$b r$r rc=$?" >> $L/failed.txt
  done
  pack
done
echo "warm: $((SECONDS - start)) s"; cat $L/failed.txt 2>/dev/null
python3 - "$L/j" <<'P' | tee $L/summary.txt
import json, glob, os, sys, collections, statistics
rows = collections.defaultdict(dict)  # trace -> (binary, round, allocator) -> record
for f in glob.glob(sys.argv[1] + '/*.jsonl'):
    b, r = os.path.basename(f)[:-6].split('-r')
    for l in open(f):
        d = json.loads(l)
        rows[d['trace']][(b, int(r), d['allocator'])] = d
print('warm PyTorch/stash per round (rounds 1-6), its median; stash new/old warm ns/op, median of rounds; cold stash/PyTorch median; reserved/live old, new')
for t, v in sorted(rows.items()):
    rounds = sorted({k[1] for k in v})
    def ratio(b, r):
        s, p = v.get((b, r, 'stash')), v.get((b, r, 'torch'))
        return p['ns_per_op_warm'] / s['ns_per_op_warm'] if s and p else float('nan')
    def cold(b, r):
        s, p = v.get((b, r, 'stash')), v.get((b, r, 'torch'))
        return s['ns_per_op_cold'] / p['ns_per_op_cold'] if s and p else float('nan')
    old = [ratio('old', r) for r in rounds]; new = [ratio('new', r) for r in rounds]
    no = [v[('new', r, 'stash')]['ns_per_op_warm'] / v[('old', r, 'stash')]['ns_per_op_warm']
          for r in rounds if ('new', r, 'stash') in v and ('old', r, 'stash') in v]
    ro = v.get(('old', rounds[0], 'stash'), {}).get('reserved_over_live'); rn = v.get(('new', rounds[0], 'stash'), {}).get('reserved_over_live')
    print(f"{t[:24]:24} old {' '.join(f'{x:5.1f}' for x in old)} | {statistics.median(old):5.2f}   new {' '.join(f'{x:5.1f}' for x in new)} | "
          f"{statistics.median(new):5.2f}   new/old {statistics.median(no):.3f}   cold new {statistics.median([cold('new', r) for r in rounds]):.2f}   {ro} {rn}")
P
pack
if [ "${SUITES:-0}" = 1 ]; then
  export NCCL_NVLS_ENABLE=0
  STASH_GPU_DEADLINE=200 OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
  pack
  timeout 50 build/gpu/tests/stash_nccl_tests > $L/nccl.txt 2>&1; echo "nccl rc=$?" >> $L/nccl.txt
  pack
  tail -n 12 $L/suites.txt; tail -n 3 $L/nccl.txt
fi
