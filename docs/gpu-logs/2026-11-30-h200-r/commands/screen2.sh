#!/bin/bash
# Screening on the device host's CPU: stash-ordered warm ns/op (simulated device: the GPU composition's
# host path), each variant binary in turn, order rotated per round. Usage: screen.sh ROUNDS OUTFILE
R=${1:-10}; OUT=${2:-/dev/stdout}
cd "$(dirname "$0")"
T=${TRACES:-"vit_train_amp resnet50_train bert_infer_varlen gpt_train_varlen gpt2_varlen_e2e ddp_gpt2_rank0 effnet_train_multiscale"}
V=(${VARIANTS:-main b1 b2 b3})
n=${#V[@]}
args=""; for t in $T; do args="$args ../../bench/traces/$t.csv"; done
for r in $(seq $R); do
  for i in $(seq 0 $((n-1))); do
    v=${V[$(( (i + r) % n ))]}
    taskset -c ${CORE:-3} ./sr-$v $args --backend simulated --warm 20 --allocators stash-ordered --json 2>/dev/null \
      | python3 -c "import sys,json
for l in sys.stdin:
  j=json.loads(l); print('$r', '$v', j['trace'], j['ns_per_op_warm'])"
  done
  taskset -c ${CORE:-3} ./sr-main $args --backend simulated --warm 20 --allocators stash --json 2>/dev/null \
      | python3 -c "import sys,json
for l in sys.stdin:
  j=json.loads(l); print('$r', 'host-order', j['trace'], j['ns_per_op_warm'])"
done > $OUT.raw
python3 - $OUT.raw <<'PY' | tee $OUT
import sys,collections,statistics
d=collections.defaultdict(lambda: collections.defaultdict(dict))
for l in open(sys.argv[1]):
  r,v,t,x=l.split(); d[t][v][r]=float(x)
for t in d:
  m=d[t]['main']
  print(t)
  for v in d[t]:
    xs=d[t][v]; rs=[xs[r]/m[r] for r in xs if r in m]
    print(f"  {v:10} median {statistics.median(xs.values()):6.1f} min {min(xs.values()):6.1f}  ratio to main (per round) median {statistics.median(rs):.3f} range {min(rs):.3f}-{max(rs):.3f}")
PY
