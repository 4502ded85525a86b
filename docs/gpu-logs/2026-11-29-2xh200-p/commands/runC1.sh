#!/usr/bin/env bash
# GPU run C1 (two H200s, fourteenth session): (1) the cold start of eaf6cb0's library (a block's edge pages
# join its chunk: caching_options::edge_pages_in_chunks) against 828112b's (137b1be's replay binary: the
# library's behaviour is the same), beside PyTorch, each allocator in a process of its own, one trace per
# process, one GPU visible; rounds with the order alternated (rounds $ROUNDS). (2) with SUITES=1: every GPU
# suite and sanitizer and the NCCL suite on eaf6cb0.
# Binaries built here with -DSTASH_WITH_TORCH=ON, stripped: .devbuild/b2/replay-new (137b1be, "old"),
# .devbuild/c1/replay-new ("new"); build/gpu (scripts/gpu-test build at eaf6cb0). Carry: .devbuild/b2,
# .devbuild/c1, build/gpu.
L=/tmp/gc1; rm -rf $L; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
export NCCL_NVLS_ENABLE=0
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
start=$SECONDS
one() {  # $1 binary (old|new|torch), $2 trace, $3 round
  local tag=$(basename $2 .csv)-$1-r$3 bin=.devbuild/c1/replay-new alloc=stash
  [ $1 = old ] && bin=.devbuild/b2/replay-new
  [ $1 = torch ] && alloc=torch
  CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib timeout 40 $bin $2 --backend cuda --warm 0 --allocators $alloc \
    --json-file $L/j/$tag.jsonl > $L/j/$tag.txt 2>&1 || echo "$tag rc=$?" >> $L/failed.txt
}
for r in $ROUNDS; do
  [ $((r % 2)) = 1 ] && order="torch old new" || order="new old torch"
  for t in bench/traces/*.csv; do
    [ $((SECONDS - start)) -gt ${COLD_S:-300} ] && { echo "stopped at round $r before $t" >> $L/failed.txt; break 2; }
    for a in $order; do one $a $t $r; done
  done
  pack
done
echo "cold part: $((SECONDS - start)) s"; cat $L/failed.txt 2>/dev/null
python3 - "$L/j" <<'P'
import json,glob,os,sys,collections
rows=collections.defaultdict(dict)
for f in glob.glob(sys.argv[1]+'/*.jsonl'):
    tag=os.path.basename(f)[:-6]; r=tag.split('-r')[-1]; a=tag[:-len('-r'+r)].split('-')[-1]
    for l in open(f):
        d=json.loads(l); rows[d['trace']][(a,r)]=(d['ns_per_op_cold'],d['backend_allocs'])
for t,v in sorted(rows.items()):
    rs=sorted({r for _,r in v})
    rat=lambda a,r: v[(a,r)][0]/v[('torch',r)][0] if (a,r) in v and ('torch',r) in v else float('nan')
    print(t[:22].ljust(22),'old/torch',' '.join(f"{rat('old',r):.2f}" for r in rs),' new/torch',' '.join(f"{rat('new',r):.2f}" for r in rs),
          ' ns/op', ' '.join(f"{a}{r}={x[0]:.0f}({x[1]})" for (a,r),x in sorted(v.items())))
P
if [ "${SUITES:-0}" = 1 ]; then
  STASH_GPU_DEADLINE=$((560 - (SECONDS - start) - 60)) OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$?" >> $L/suites.txt
  pack
  timeout 50 build/gpu/tests/stash_nccl_tests > $L/nccl.txt 2>&1; echo "nccl rc=$?" >> $L/nccl.txt
  pack
  tail -n 14 $L/suites.txt; tail -n 4 $L/nccl.txt
fi
echo "total $((SECONDS - start)) s"
