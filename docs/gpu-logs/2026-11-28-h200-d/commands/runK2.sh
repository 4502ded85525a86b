#!/usr/bin/env bash
# GPU run K2 on two H200s (right after K1): the replay against PyTorch (cold and warm, with the chunks
# of before, stash-fixed-chunks), the allocation-bound e2e workload, and gpt2_varlen under
# CUDA_LAUNCH_BLOCKING. Carry: .devbuild/new5/bench/stash-replay .whl .devbuild/rev (buildK.sh)
L=/tmp/gk2; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
LD_LIBRARY_PATH=$TORCH/lib timeout 110 .devbuild/new5/bench/stash-replay bench/traces --backend cuda \
  --allocators stash,stash-fixed-chunks,torch --json-file $L/replay.jsonl > $L/replay.txt 2>&1; echo "replay rc=$?" >> $L/replay.txt
pack
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
timeout 120 python3 scripts/e2e --reps 3 --steps 10 --warmup 2 --workloads alloc_churn --allocators native,expandable,stash \
  --max-minutes 1.6 --out $L/churn > $L/churn.out 2>&1
rm -rf $L/churn/records $L/churn/e2e.png
pack
# Does the host running ahead of the GPU make gpt2_varlen's peak (pending pages cannot move)? With
# CUDA_LAUNCH_BLOCKING=1 every free's work is done before the next call.
CUDA_LAUNCH_BLOCKING=1 timeout 80 python3 scripts/e2e --reps 1 --steps 6 --warmup 2 --workloads gpt2_varlen \
  --allocators stash --out $L/blocking > $L/blocking.out 2>&1
rm -rf $L/blocking/e2e.png
pack
grep -h "^| alloc_churn" $L/churn.out; grep -h "^| gpt2_varlen" $L/blocking.out; tail -14 $L/replay.txt
