#!/usr/bin/env bash
# GPU run D5 (fifteenth session): (1) the cold start of 020a379 (chunk_room_share 256, the room asked again only where it could bound a chunk or
# after 64 runs: run D3 had asked once per run, at 7-8 us a query, run D4) against 1575b99's library (run D1's binary, "old"),
# beside PyTorch, each allocator in a process of its own, one trace per process, one GPU visible, rounds with
# the order alternated; (2) the least memory each trace runs in with 020a379 (stash); (3) with SUITES=1, every GPU suite and
# sanitizer and the NCCL suite on 020a379.
# Binaries built here with -DSTASH_WITH_TORCH=ON, stripped: .devbuild/d1/stash-replay (old),
# .devbuild/d5/stash-replay (new), build/gpu at 020a379. Carry: .devbuild/d1, .devbuild/d5, build/gpu.
L=/tmp/gd5; rm -rf $L; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
start=$SECONDS
one() {  # $1 binary (old|new|torch), $2 trace, $3 round
  local tag=$(basename $2 .csv)-$1-r$3 bin=.devbuild/d5/stash-replay alloc=stash
  [ $1 = old ] && bin=.devbuild/d1/stash-replay
  [ $1 = torch ] && alloc=torch
  CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib timeout 40 $bin $2 --backend cuda --warm 0 --allocators $alloc \
    --json-file $L/j/$tag.jsonl > $L/j/$tag.txt 2>&1 || echo "$tag rc=$?" >> $L/failed.txt
}
for r in 1 2 3 4 5 6; do
  [ $((r % 2)) = 1 ] && order="torch old new" || order="new old torch"
  for t in bench/traces/*.csv; do
    [ $((SECONDS - start)) -gt ${COLD_S:-420} ] && { echo "stopped at round $r before $t" >> $L/failed.txt; break 2; }
    for a in $order; do one $a $t $r; done
  done
  pack
done
echo "cold: $((SECONDS - start)) s"; cat $L/failed.txt 2>/dev/null
CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib timeout 100 .devbuild/d5/stash-replay bench/traces --backend cuda --least-memory \
  --warm 2 --allocators stash --json-file $L/least.jsonl > $L/least.txt 2>&1; echo "rc=$? s=$((SECONDS-start))" >> $L/least.txt
pack
cat $L/least.txt
python3 - "$L/j" <<'P'
import json,glob,os,sys,collections,statistics
rows=collections.defaultdict(dict)
for f in glob.glob(sys.argv[1]+'/*.jsonl'):
    tag=os.path.basename(f)[:-6]; r=tag.split('-r')[-1]; a=tag[:-len('-r'+r)].split('-')[-1]
    for l in open(f):
        d=json.loads(l); rows[d['trace']][(a,r)]=(d['ns_per_op_cold'],d['backend_allocs'])
for t,v in sorted(rows.items()):
    rs=sorted({r for _,r in v})
    rat=lambda a,r: v[(a,r)][0]/v[('torch',r)][0] if (a,r) in v and ('torch',r) in v else float('nan')
    no=[v[('new',r)][0]/v[('old',r)][0] for r in rs if ('new',r) in v and ('old',r) in v]
    print(t[:22].ljust(22),'old/torch',' '.join(f"{rat('old',r):.2f}" for r in rs),' new/torch',' '.join(f"{rat('new',r):.2f}" for r in rs),
          f" new/old median {statistics.median(no):.3f}" if no else '', ' allocs old/new', v.get(('old','1'),(0,0))[1], v.get(('new','1'),(0,0))[1])
P
if [ "${SUITES:-0}" = 1 ]; then
  export NCCL_NVLS_ENABLE=0
  STASH_GPU_DEADLINE=200 OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
  pack
  timeout 50 build/gpu/tests/stash_nccl_tests > $L/nccl.txt 2>&1; echo "nccl rc=$?" >> $L/nccl.txt
  pack
  tail -n 12 $L/suites.txt; tail -n 3 $L/nccl.txt
fi
