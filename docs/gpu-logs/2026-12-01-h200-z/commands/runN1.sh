#!/usr/bin/env bash
# GPU run N1 (twenty-fourth session: caching_options::keep_page_aliases). PART=suites: every GPU suite under
# every sanitizer (scripts/gpu-test run all; build/gpu, rev in build/gpu/rev), with the new [aliases] tests and
# the helper's [remap] tests. PART=replay: warm and cold ns/op and reserved/live of main's default (`stash`),
# kept aliases (`stash-aliases`), the 1.05 bound (`stash-lean`), both (`stash-lean-aliases`) and PyTorch's
# allocator (`torch`), `--backend cuda --warm 10` over bench/traces, rounds with the allocators' order rotated
# (.devbuild/n1/stash-replay, -DSTASH_WITH_TORCH=ON, rev in .devbuild/n1/rev), until REPLAY_S seconds.
# PART=all (default): both. Carry: build/gpu, .devbuild/n1.
L=/tmp/gn1; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
lscpu | grep -E "Model name|^CPU\(s\)" >> $L/gpu.txt
echo "build rev $(cat build/gpu/rev 2>/dev/null), replay rev $(cat .devbuild/n1/rev 2>/dev/null)" >> $L/gpu.txt
start=$SECONDS
if [ "${PART:-all}" != replay ]; then
  STASH_GPU_DEADLINE=300 OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
  pack
  tail -n 14 $L/suites.txt
fi
if [ "${PART:-all}" != suites ]; then
  TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
  a=(torch stash stash-aliases stash-lean stash-lean-aliases)
  r0=$SECONDS
  for r in $(seq 1 ${ROUNDS:-12}); do
    [ $((SECONDS - r0)) -gt ${REPLAY_S:-330} ] && { echo "stopped before round $r" >> $L/failed.txt; break; }
    k=$(( (r - 1) % 5 )); order=$(IFS=,; echo "${a[*]:$k},${a[*]:0:$k}" | sed 's/,$//; s/ /,/g')
    CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib timeout 150 .devbuild/n1/stash-replay bench/traces --backend cuda \
      --warm 10 --allocators $order --json-file $L/j/r$r.jsonl > $L/j/r$r.txt 2>&1 || echo "r$r rc=$?" >> $L/failed.txt
    pack
  done
  echo "replays: $((SECONDS - r0)) s" >> $L/gpu.txt
  python3 - "$L/j" <<'P' | tee $L/summary.txt
import json, glob, os, sys, collections, statistics
rounds = collections.defaultdict(dict)
for f in glob.glob(sys.argv[1] + '/*.jsonl'):
    r = int(os.path.basename(f)[1:-6])
    for l in open(f):
        x = json.loads(l); rounds[r].setdefault(x['allocator'], {})[x['trace']] = x
A = ['stash', 'stash-aliases', 'stash-lean', 'stash-lean-aliases']
traces = sorted({t for v in rounds.values() for a in v.values() for t in a})
def ratios(t, a, b, key):
    return [v[a][t][key] / v[b][t][key] for v in rounds.values() if a in v and b in v and t in v[a] and t in v[b]]
def med(xs): return f"{statistics.median(xs):.2f}" if xs else "-"
print(f"rounds: {len(rounds)}. Medians over rounds of per-round ratios.")
print("trace | warm PyTorch/x for " + ", ".join(A) + " | cold x/PyTorch | reserved/live cold, settled (first round)")
for t in traces:
    w = ", ".join(med(ratios(t, 'torch', a, 'ns_per_op_warm')) for a in A)
    c = ", ".join(med(ratios(t, a, 'torch', 'ns_per_op_cold')) for a in A)
    first = rounds[min(rounds)]
    m = ", ".join(f"{first[a][t]['reserved_over_live']:.4f}/{first[a][t]['settled_reserved_over_live']:.4f}" if a in first and t in first[a] else "-" for a in A + ['torch'])
    print(f"{t[:24]:24} | {w} | {c} | {m}")
P
  pack
fi
cat $L/failed.txt 2>/dev/null
