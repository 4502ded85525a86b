#!/bin/bash
# Like screen2.sh, with an allocator per binary: PAIRS="name:binary:allocator ..." (binary sr-NAME in this
# folder). Usage: screen3.sh ROUNDS OUTFILE; the first pair is the reference.
R=${1:-10}; OUT=${2:-/dev/stdout}
cd "$(dirname "$0")"
T=${TRACES:-"vit_train_amp resnet50_train bert_infer_varlen gpt_train_varlen gpt2_varlen_e2e ddp_gpt2_rank0 effnet_train_multiscale"}
P=($PAIRS); n=${#P[@]}
args=""; for t in $T; do args="$args ../../bench/traces/$t.csv"; done
for r in $(seq $R); do
  for i in $(seq 0 $((n-1))); do
    IFS=: read name bin alloc <<< "${P[$(( (i + r) % n ))]}"
    taskset -c ${CORE:-3} ./sr-$bin $args --backend simulated --warm 20 --allocators $alloc --json 2>/dev/null \
      | python3 -c "import sys,json
for l in sys.stdin:
  j=json.loads(l); print('$r', '$name', j['trace'], j['ns_per_op_warm'])"
  done
done > $OUT.raw
ref=${P[0]%%:*}
python3 - $OUT.raw $ref <<'PY' | tee $OUT
import sys,collections,statistics
d=collections.defaultdict(lambda: collections.defaultdict(dict))
for l in open(sys.argv[1]):
  r,v,t,x=l.split(); d[t][v][r]=float(x)
ref=sys.argv[2]
for t in d:
  m=d[t][ref]
  print(t)
  for v in d[t]:
    xs=d[t][v]; rs=[xs[r]/m[r] for r in xs if r in m]
    print(f"  {v:10} median {statistics.median(xs.values()):6.1f} min {min(xs.values()):6.1f}  ratio to {ref} (per round) median {statistics.median(rs):.3f} geomean {statistics.geometric_mean(rs):.3f} faster in {sum(1 for x in rs if x < 1)}/{len(rs)}")
PY
