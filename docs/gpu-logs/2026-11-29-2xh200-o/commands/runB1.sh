#!/usr/bin/env bash
# GPU run B1 (two H200s, thirteenth session): the cold start measured with each allocator in a process of
# its own (a fresh CUDA context: the driver state a program starts with), one trace per process, where
# earlier runs replayed every allocator in one process one after the other (so the second found memory the
# first had just given back: mlp_two_streams' cold ratio moved with the order, twelfth session).
# stash-replay built here from afc9e77 with -DSTASH_WITH_TORCH=ON, stripped (.devbuild/b1/stash-replay).
# Sets: both GPUs visible (torch, stash = peer_access all, stash-no-peers) and one GPU visible (torch, stash);
# two rounds, the allocators' order reversed in the second. Carry: .devbuild/b1.
L=/tmp/gb1; rm -rf $L; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
export LD_LIBRARY_PATH=$TORCH/lib NCCL_NVLS_ENABLE=0
nvidia-smi -L > $L/gpus.txt; nvidia-smi topo -m >> $L/gpus.txt 2>&1
start=$SECONDS
one() {  # $1 visible devices, $2 allocator, $3 trace, $4 round
  local tag=$(basename $3 .csv)-$2-v${1/,/}-r$4
  CUDA_VISIBLE_DEVICES=$1 timeout 40 .devbuild/b1/stash-replay $3 --backend cuda --warm 0 --allocators $2 \
    --json-file $L/j/$tag.jsonl > $L/j/$tag.txt 2>&1 || echo "$tag rc=$?" >> $L/failed.txt
}
for r in 1 2; do
  for t in bench/traces/*.csv; do
    [ $((SECONDS - start)) -gt 500 ] && { echo "stopped at round $r before $t" >> $L/failed.txt; break 2; }
    if [ $r = 1 ]; then two="torch stash stash-no-peers"; one_gpu="torch stash"; else two="stash-no-peers stash torch"; one_gpu="stash torch"; fi
    for a in $two; do one 0,1 $a $t $r; done
    for a in $one_gpu; do one 0 $a $t $r; done
  done
  pack
done
pack
echo "elapsed $((SECONDS - start)) s"; cat $L/failed.txt 2>/dev/null
python3 - "$L/j" <<'P'
import json,glob,os,sys,collections
rows=collections.defaultdict(dict)
for f in glob.glob(sys.argv[1]+'/*.jsonl'):
    tag=os.path.basename(f)[:-6]; tr,rest=tag.split('-',1)
    for l in open(f):
        d=json.loads(l); vis=tag.split('-v')[1].split('-r')[0]; r=tag[-1]
        rows[(d['trace'],vis)][(d['allocator'],r)]=d['ns_per_op_cold']
for (t,vis),v in sorted(rows.items()):
    print(t[:22].ljust(22),'gpus',len(vis),' '.join(f"{a}/{r}={x:.0f}" for (a,r),x in sorted(v.items())))
P
