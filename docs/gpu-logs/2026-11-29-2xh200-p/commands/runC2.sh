#!/usr/bin/env bash
# GPU run C2 (two H200s, fourteenth session), after run C1 on the same machine: (1) six more rounds of C1's cold
# start on one GPU (rounds 3-8), then with both GPUs visible, four rounds with stash's C++ default
# (peer_access all: every page granted to the peer, PyTorch's memory for device 0 alone), and four with
# --peer-access (the peer enabled, so PyTorch's memory is mapped for it too, as stash's is). Binaries as C1.
# (2) inside PyTorch: the first training steps of gpt2_varlen and resnet50 with 828112b's library
# (.devbuild/c2/old: c89d27b's wheel, run B4's "new") and eaf6cb0's (.devbuild/c2/new: pip wheel of ./python),
# stash.torch's defaults, scripts/e2e --warmup 0 so the first (cold) step is timed; order old, new, new, old.
# Carry: .devbuild/b2, .devbuild/c1, .devbuild/c2.
L=/tmp/gc2; rm -rf $L; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
start=$SECONDS
one() {  # $1 binary (old|new|torch), $2 trace, $3 round, $4 set (g1 | g2 | g2p)
  local tag=$(basename $2 .csv)-$4-$1-r$3 bin=.devbuild/c1/replay-new alloc=stash vis=0 extra=
  [ $1 = old ] && bin=.devbuild/b2/replay-new
  [ $1 = torch ] && alloc=torch
  [ $4 != g1 ] && vis=0,1
  [ $4 = g2p ] && extra=--peer-access
  CUDA_VISIBLE_DEVICES=$vis LD_LIBRARY_PATH=$TORCH/lib timeout 40 $bin $2 --backend cuda --warm 0 --allocators $alloc $extra \
    --json-file $L/j/$tag.jsonl > $L/j/$tag.txt 2>&1 || echo "$tag rc=$?" >> $L/failed.txt
}
for set in g1 g2 g2p; do
  [ $set = g1 ] && rounds="3 4 5 6 7 8" || rounds="1 2 3 4"
  for r in $rounds; do
    [ $((r % 2)) = 1 ] && order="torch old new" || order="new old torch"
    for t in bench/traces/*.csv; do for a in $order; do one $a $t $r $set; done; done
  done
  pack
done
echo "cold part: $((SECONDS - start)) s"; cat $L/failed.txt 2>/dev/null
python3 - "$L/j" <<'P'
import json,glob,os,sys,collections,statistics
rows=collections.defaultdict(dict)
for f in glob.glob(sys.argv[1]+'/*.jsonl'):
    parts=os.path.basename(f)[:-6].split('-'); t,s,a,r=parts[0],parts[1],parts[2],parts[3][1:]
    for l in open(f):
        d=json.loads(l); rows[(s,t)][(a,r)]=d['ns_per_op_cold']
for (s,t),v in sorted(rows.items()):
    rs=sorted({r for _,r in v}, key=int)
    def rat(a): return [v[(a,r)]/v[('torch',r)] for r in rs if (a,r) in v and ('torch',r) in v]
    o,n=rat('old'),rat('new')
    print(s.ljust(4), t[:22].ljust(22), 'old/torch', ' '.join(f"{x:.2f}" for x in o), 'median', f"{statistics.median(o):.2f}",
          '| new/torch', ' '.join(f"{x:.2f}" for x in n), 'median', f"{statistics.median(n):.2f}")
P
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
i=0
for w in old new new old; do
  i=$((i+1)); A=stash; [ $i = 1 ] && A=native,stash
  [ $((SECONDS - start)) -gt 330 ] && { echo "e2e stopped before $i" >> $L/failed.txt; break; }
  CUDA_VISIBLE_DEVICES=0 timeout 140 python3 scripts/e2e --reps 1 --steps 3 --warmup 0 --workloads gpt2_varlen,resnet50 --allocators $A \
    --wheels .devbuild/c2/$w --max-minutes 2.2 --out $L/e2e-$i-$w > $L/e2e-$i-$w.out 2>&1; echo "e2e $i $w rc=$?" >> $L/e2e-$i-$w.out
  pack
done
cat $L/gpu.txt; grep -h "rc=\| rep " $L/*.out | cut -c1-110
python3 - $L <<'P'
import json,glob,os,sys
for f in sorted(glob.glob(sys.argv[1]+'/e2e-*/records/*.json')):
    d=json.load(open(f)); run=f.split('/')[-3]
    allocs=[s.get('num_device_alloc') for s in d.get('step_figures',[])]
    print(run, os.path.basename(f), 'ms/step', [round(x,1) for x in d['ms_per_step']], 'device allocs after each step', allocs,
          'peak reserved MiB', (d.get('peak_reserved_allocator') or 0)>>20)
P
echo "total $((SECONDS - start)) s"
