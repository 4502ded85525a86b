#!/usr/bin/env bash
# GPU run X3 (one H200): main before the below-top change (a56f7cc's library + the new traces; .devbuild/x3/main)
# against after it (11f7621; .devbuild/x3/new), both built here with -DSTASH_WITH_TORCH=ON, over every trace of
# bench/traces (13, the three of run X1 included): three rounds alternating the builds and the allocators'
# order, 10 warm replays each; cudaMallocAsync in the first round. Then end to end, gpt2_varlen (GPT-2 training
# with random lengths, where the GPU runs behind the host) under stash (the wheel of 11f7621, stash.torch's
# defaults) and expandable segments, two alternating repetitions.
# Carry: .devbuild/x3 (main, new, rev, whl/).
L=/tmp/gx3; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1; echo "rev $(cat .devbuild/x3/rev)" >> $L/gpu.txt
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
run() {  # build allocators file
  LD_LIBRARY_PATH=$TORCH/lib timeout 170 .devbuild/x3/$1 bench/traces --backend cuda --warm 10 --allocators $2 \
    --json-file $L/$3.jsonl > $L/$3.txt 2>&1; echo "$3 rc=$?" >> $L/$3.txt
}
run new stash,stash-small-fill,torch,cudaMallocAsync new-1
run main torch,stash main-1
run main stash,torch main-2
run new torch,stash-small-fill,stash new-2
run new stash,torch new-3
run main torch,stash main-3
(cd $L && tar czf $OUT/logs.tgz .)
export PYTHONUNBUFFERED=1
timeout 250 python3 scripts/e2e --reps 2 --steps 8 --warmup 2 --workloads gpt2_varlen \
  --allocators stash,expandable --wheels .devbuild/x3/whl --max-minutes 4 --out $L/e2e > $L/e2e.out 2>&1
echo "e2e rc=$?" >> $L/e2e.out
(cd $L && tar czf $OUT/logs.tgz .)
grep -h "rc=" $L/*.txt $L/*.out | tr '\n' ' '; echo
sed -n '/stash against the others/,/^stash: options/p' $L/e2e/summary.md 2>/dev/null | head -12
