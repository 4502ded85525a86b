#!/usr/bin/env bash
# GPU run B2 (two H200s, thirteenth session): (1) the cold start of 137b1be's library (a block's new pages in
# chunks where a move is due and no page is idle) against afc9e77's, beside PyTorch, each allocator in a
# process of its own (as run B1), one trace per process, one GPU visible and both (peer_access all); two
# rounds, the order reversed in the second. (2) every GPU suite and sanitizer and the NCCL suite on 137b1be.
# Binaries built here, stripped: .devbuild/b2/replay-old (afc9e77, the B1 binary), replay-new (137b1be);
# build/gpu (scripts/gpu-test build at 137b1be). Carry: .devbuild/b2, build/gpu.
L=/tmp/gb2; rm -rf $L; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
export NCCL_NVLS_ENABLE=0
start=$SECONDS
one() {  # $1 visible devices, $2 binary (old|new|torch), $3 trace, $4 round
  local tag=$(basename $3 .csv)-$2-v${1/,/}-r$4 bin=.devbuild/b2/replay-$2 alloc=stash
  [ $2 = torch ] && bin=.devbuild/b2/replay-new alloc=torch
  CUDA_VISIBLE_DEVICES=$1 LD_LIBRARY_PATH=$TORCH/lib timeout 40 $bin $3 --backend cuda --warm 0 --allocators $alloc \
    --json-file $L/j/$tag.jsonl > $L/j/$tag.txt 2>&1 || echo "$tag rc=$?" >> $L/failed.txt
}
for r in 1 2; do
  [ $r = 1 ] && order="torch old new" || order="new old torch"
  for t in bench/traces/*.csv; do
    [ $((SECONDS - start)) -gt 200 ] && { echo "stopped at round $r before $t" >> $L/failed.txt; break 2; }
    for v in 0 0,1; do for a in $order; do one $v $a $t $r; done; done
  done
  pack
done
echo "cold part: $((SECONDS - start)) s"; cat $L/failed.txt 2>/dev/null
python3 - "$L/j" <<'P'
import json,glob,os,sys,collections
rows=collections.defaultdict(dict)
for f in glob.glob(sys.argv[1]+'/*.jsonl'):
    tag=os.path.basename(f)[:-6]; vis=tag.split('-v')[1].split('-r')[0]; r=tag[-1]; a=tag.split('-')[1]
    for l in open(f):
        d=json.loads(l); rows[(d['trace'],vis)][(a,r)]=(d['ns_per_op_cold'],d['backend_allocs'])
for (t,vis),v in sorted(rows.items()):
    print(t[:22].ljust(22),'gpus',len(vis),' '.join(f"{a}/{r}={x[0]:.0f}({x[1]})" for (a,r),x in sorted(v.items())))
P
STASH_GPU_DEADLINE=$((560 - (SECONDS - start) - 60)) OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$?" >> $L/suites.txt
pack
timeout 50 build/gpu/tests/stash_nccl_tests > $L/nccl.txt 2>&1; echo "nccl rc=$?" >> $L/nccl.txt
pack
tail -n 25 $L/suites.txt; tail -n 4 $L/nccl.txt; echo "total $((SECONDS - start)) s"
