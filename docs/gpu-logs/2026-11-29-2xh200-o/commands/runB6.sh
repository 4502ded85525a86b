#!/usr/bin/env bash
# GPU run B6 (two H200s, thirteenth session): the final library's cold start (137b1be's stash-replay) beside
# PyTorch with both GPUs visible and peer access enabled first (`--peer-access`: device 1 enables access to
# device 0, as a program sharing buffers between GPUs does, so cudaMalloc'd memory is mapped for the peer as
# stash's pages are by default), each allocator in a process of its own, one trace per process, four rounds
# with the order alternated. Carry: .devbuild/b2.
L=/tmp/gb6; rm -rf $L; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
start=$SECONDS
for r in 1 2 3 4; do
  [ $((r % 2)) = 1 ] && order="torch stash" || order="stash torch"
  for t in bench/traces/*.csv; do
    [ $((SECONDS - start)) -gt 400 ] && { echo "stopped at round $r before $t" >> $L/failed.txt; break 2; }
    for a in $order; do
      tag=$(basename $t .csv)-$a-r$r
      LD_LIBRARY_PATH=$TORCH/lib timeout 40 .devbuild/b2/replay-new $t --backend cuda --warm 0 --allocators $a \
        --peer-access --json-file $L/j/$tag.jsonl > $L/j/$tag.txt 2>&1 || echo "$tag rc=$?" >> $L/failed.txt
    done
  done
  pack
done
echo "elapsed $((SECONDS - start)) s"; cat $L/gpu.txt; cat $L/failed.txt 2>/dev/null; head -3 $L/j/cnn_train-stash-r1.txt
python3 - "$L/j" <<'P'
import json,glob,os,sys,collections,statistics
rows=collections.defaultdict(dict)
for f in glob.glob(sys.argv[1]+'/*.jsonl'):
    tag=os.path.basename(f)[:-6]; a=tag.split('-')[1]; r=tag[-1]
    for l in open(f):
        d=json.loads(l); rows[d['trace']][(a,r)]=d['ns_per_op_cold']
for t,v in sorted(rows.items()):
    rs=sorted({r for _,r in v}); ratios=[v[('stash',r)]/v[('torch',r)] for r in rs if ('stash',r) in v and ('torch',r) in v]
    print(t[:24].ljust(24),'stash/torch', ' '.join(f"{x:.2f}" for x in ratios), 'median', f"{statistics.median(ratios):.2f}",
          'torch ns/op', ' '.join(f"{v[('torch',r)]:.0f}" for r in rs if ('torch',r) in v))
P
