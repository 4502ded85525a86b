#!/usr/bin/env bash
# GPU run L2 (twenty-second session): issue 7's time targets measured directly, in one run: warm ns/op of
# 039b03f's stash (the code before streams: its `stash-replay`, Release, built here from that commit,
# .devbuild/l2/base/stash-replay) against main's default (`stash`), main with fill_mapped_above at 8 KiB
# (`stash-fill-8k`) and PyTorch's allocator (`torch`), `--backend cuda --warm 10` over bench/traces. Main's
# binary is .devbuild/l2/stash-replay (-DSTASH_WITH_TORCH=ON, the torch 2.11.0 wheel's headers here, the GPU
# machine's libraries there; rev in .devbuild/l2/rev). ROUNDS rounds (default 16); each round runs both
# binaries, which goes first alternating, and main's allocators in an order rotated every round.
# Carry: .devbuild/l2.
L=/tmp/gl2; rm -rf $L; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
lscpu | grep -E "Model name|^CPU\(s\)" >> $L/gpu.txt
echo "main rev $(cat .devbuild/l2/rev 2>/dev/null), base rev $(cat .devbuild/l2/base/rev 2>/dev/null)" >> $L/gpu.txt
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
orders=(torch,stash,stash-fill-8k stash,stash-fill-8k,torch stash-fill-8k,torch,stash stash-fill-8k,stash,torch stash,torch,stash-fill-8k torch,stash-fill-8k,stash)
start=$SECONDS
base() { CUDA_VISIBLE_DEVICES=0 timeout 120 .devbuild/l2/base/stash-replay bench/traces --backend cuda --warm 10 \
  --allocators stash --json-file $L/j/b$1.jsonl > $L/j/b$1.txt 2>&1 || echo "b$1 rc=$?" >> $L/failed.txt; }
main() { CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib timeout 150 .devbuild/l2/stash-replay bench/traces --backend cuda \
  --warm 10 --allocators ${orders[$(( ($1 - 1) % 6 ))]} --json-file $L/j/m$1.jsonl > $L/j/m$1.txt 2>&1 || echo "m$1 rc=$?" >> $L/failed.txt; }
for r in $(seq 1 ${ROUNDS:-16}); do
  [ $((SECONDS - start)) -gt ${WARM_S:-300} ] && { echo "stopped at round $r" >> $L/failed.txt; break; }
  if [ $((r % 2)) = 1 ]; then base $r; main $r; else main $r; base $r; fi
  pack
done
echo "replays: $((SECONDS - start)) s" >> $L/gpu.txt
python3 - "$L/j" <<'P' | tee $L/summary.txt
import json, glob, os, sys, collections, statistics
d = sys.argv[1]
rounds = collections.defaultdict(dict)  # round -> allocator -> record ('base' for 039b03f)
for f in glob.glob(d + '/*.jsonl'):
    r = int(os.path.basename(f)[1:-6])
    for l in open(f):
        x = json.loads(l)
        a = 'base' if os.path.basename(f)[0] == 'b' else x['allocator']
        rounds[r].setdefault(a, {})[x['trace']] = x
traces = sorted({t for v in rounds.values() for a in v.values() for t in a})
def med(xs): return f"{statistics.median(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})" if xs else "-"
print(f"rounds: {len(rounds)}; per-round ratios, median (min-max); warm ns/op medians")
print("trace | stash/039b03f | stash-fill-8k/039b03f | PyTorch/stash | PyTorch/stash-fill-8k | PyTorch/039b03f | warm ns/op 039b03f, stash, fill-8k, torch | reserved/live cold 039b03f, stash, fill-8k")
for t in traces:
    def ratio(a, b, inv=False):
        out = []
        for v in rounds.values():
            if a in v and b in v and t in v[a] and t in v[b]:
                out.append(v[a][t]['ns_per_op_warm'] / v[b][t]['ns_per_op_warm'])
        return out
    def warm(a): 
        xs = [v[a][t]['ns_per_op_warm'] for v in rounds.values() if a in v and t in v[a]]
        return f"{statistics.median(xs):.1f}" if xs else "-"
    def rol(a):
        xs = [v[a][t]['reserved_over_live'] for v in rounds.values() if a in v and t in v[a]]
        return f"{xs[0]:.4f}" if xs else "-"
    print(f"{t[:24]:24} | {med(ratio('stash','base'))} | {med(ratio('stash-fill-8k','base'))} | {med(ratio('torch','stash'))} | "
          f"{med(ratio('torch','stash-fill-8k'))} | {med(ratio('torch','base'))} | {warm('base')}, {warm('stash')}, {warm('stash-fill-8k')}, {warm('torch')} | "
          f"{rol('base')}, {rol('stash')}, {rol('stash-fill-8k')}")
P
pack
cat $L/failed.txt 2>/dev/null
