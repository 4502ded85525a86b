#!/usr/bin/env bash
# GPU run Y4 (two H200s, twelfth session): (1) page_costs with the peer granted (the default) and with
# --no-peers: what one mapping costs per call and per page, to tell whether the peer grant's cost is per
# driver call or per byte; (2) stash-replay beside PyTorch with --peer-access (device 1 enables peer access to
# device 0 first, so cudaMalloc'd memory is mapped for device 1 too, as stash's pages are), two runs in
# alternating order, 3 warm replays. Binaries built here from the working tree (rev in .devbuild/y4/rev):
# build/u1 (-DSTASH_WITH_TORCH=ON) stash-replay stripped, and page_costs. Carry: .devbuild/y4.
L=/tmp/gy4; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
export LD_LIBRARY_PATH=$PWD/.devbuild/y4/lib:$TORCH/lib
for a in "" --no-peers "" --no-peers; do
  echo "== page_costs $a" >> $L/page_costs.txt
  timeout 60 .devbuild/y4/page_costs $a >> $L/page_costs.txt 2>&1; echo "page_costs $a rc=$?" >> $L/page_costs.txt
done
pack
for r in 1 2; do
  [ $r = 1 ] && A=torch,stash || A=stash,torch
  timeout 100 .devbuild/y4/stash-replay bench/traces --backend cuda --warm 3 --peer-access \
    --allocators $A --json-file $L/replay-$r.jsonl > $L/replay-$r.txt 2>&1; echo "replay $r rc=$?" >> $L/replay-$r.txt
  pack
done
grep -v "^page_costs" $L/page_costs.txt | head -60
head -3 $L/replay-1.txt; grep -h "rc=" $L/*.txt | tr '\n' ' '
