#!/usr/bin/env bash
# GPU run D1 (one H200, fifteenth session): the least memory each trace runs in (stash-replay --least-memory,
# built here with -DSTASH_WITH_TORCH=ON from the fifteenth session's tree: .devbuild/d1/stash-replay):
# stash (limited_backend<cuda_vmm_backend>, the memory manager's pools), stash-per-page and PyTorch's allocator
# (its memory fraction), cold and 2 warm replays per probe; then PyTorch with expandable segments.
# Carry: .devbuild/d1.
L=/tmp/gd1; rm -rf $L; mkdir -p $L
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
start=$SECONDS
LD_LIBRARY_PATH=$TORCH/lib timeout 300 .devbuild/d1/stash-replay bench/traces --backend cuda --least-memory --warm 2 \
  --allocators stash,stash-per-page,torch --json-file $L/least.jsonl > $L/least.txt 2>&1; echo "rc=$? s=$((SECONDS-start))" >> $L/least.txt
pack
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True LD_LIBRARY_PATH=$TORCH/lib timeout 200 .devbuild/d1/stash-replay bench/traces \
  --backend cuda --least-memory --warm 2 --allocators torch --json-file $L/least-expandable.jsonl > $L/least-expandable.txt 2>&1
echo "rc=$? s=$((SECONDS-start))" >> $L/least-expandable.txt
pack
cat $L/gpu.txt $L/least.txt $L/least-expandable.txt
