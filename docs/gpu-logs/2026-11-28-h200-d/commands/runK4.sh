#!/usr/bin/env bash
# GPU run K4 (two H200s: does a second GPU, whose access every page is granted too, slow the cold start?): two more replays of bench/traces, cold and warm, stash against its chunks of
# before (stash-fixed-chunks) and PyTorch, for the spread run K2's single replay cannot give.
L=/tmp/gk4; rm -rf $L; mkdir -p $L
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
for i in 1 2; do
  LD_LIBRARY_PATH=$TORCH/lib timeout 110 .devbuild/new5/bench/stash-replay bench/traces --backend cuda \
    --allocators torch,stash-fixed-chunks,stash --json-file $L/replay$i.jsonl > $L/replay$i.txt 2>&1
  echo "replay $i rc=$?" >> $L/replay$i.txt
done
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/replay1.txt $L/replay2.txt | grep -v "^#"
