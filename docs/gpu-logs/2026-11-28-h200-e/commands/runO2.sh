#!/usr/bin/env bash
# GPU run O2 on two H200s (right after O1): the replay against PyTorch with both GPUs visible, stash
# (pages granted to the peer) against stash-no-peers (peer_access none), twice in alternating order, and
# page_costs --no-peers, and the e2e workload cuda_graph (a CUDA graph through stash.torch's graph pools)
# against native and expandable segments. Carry: .devbuild/new5/bench/stash-replay build/gpu .devbuild/rev
# .whl (buildO.sh)
L=/tmp/go2; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2; do
  [ $r = 1 ] && A=torch,stash,stash-no-peers || A=stash-no-peers,stash,torch
  LD_LIBRARY_PATH=$TORCH/lib timeout 100 .devbuild/new5/bench/stash-replay bench/traces --backend cuda \
    --allocators $A --json-file $L/replay$r.jsonl > $L/replay$r.txt 2>&1; echo "replay $r rc=$?" >> $L/replay$r.txt
  pack
done
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 60 build/gpu/bench/page_costs --no-peers > $L/page_costs.txt 2>&1; echo "page_costs rc=$?" >> $L/page_costs.txt
pack
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
timeout 240 python3 scripts/e2e --reps 3 --steps 6 --warmup 2 --workloads cuda_graph --allocators native,expandable,stash \
  --max-minutes 3.5 --out $L/graph > $L/graph.out 2>&1; echo "e2e rc=$?" >> $L/graph.out
rm -rf $L/graph/records $L/graph/e2e.png
pack
tail -n 34 $L/replay2.txt; tail -n 12 $L/page_costs.txt; grep -h "^| cuda_graph\|rc=" $L/graph.out
