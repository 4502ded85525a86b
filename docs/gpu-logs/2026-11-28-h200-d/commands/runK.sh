#!/usr/bin/env bash
# GPU run K on two H200s, at the rev in .devbuild/rev: every GPU suite and sanitizer with two devices
# (peers, multi-GPU, IPC across processes included), NCCL on stash buffers (and under memcheck), the
# replay against PyTorch, the allocation-bound e2e workload, and gpt2_varlen with CUDA_LAUNCH_BLOCKING.
# Carry: build/gpu .devbuild/new5/bench/stash-replay .whl .devbuild/rev
L=/tmp/gk; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "main at $(cat .devbuild/rev)" >> $L/gpu.txt
STASH_GPU_DEADLINE=230 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
export LD_LIBRARY_PATH=$PWD/build/gpu/lib
timeout 60 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
timeout 90 compute-sanitizer --tool memcheck --leak-check full build/gpu/tests/stash_nccl_tests > $L/nccl-memcheck.log 2>&1
echo "nccl memcheck rc=$?" >> $L/nccl-memcheck.log
pack
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for i in 1; do
  LD_LIBRARY_PATH=$TORCH/lib:$LD_LIBRARY_PATH timeout 80 .devbuild/new5/bench/stash-replay bench/traces --backend cuda \
    --allocators stash,torch --json-file $L/new$i.jsonl > $L/new$i.txt 2>&1
done
pack
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
timeout 120 python3 scripts/e2e --reps 3 --steps 10 --warmup 2 --workloads alloc_churn --allocators native,expandable,stash \
  --max-minutes 1.6 --out $L/churn > $L/churn.out 2>&1
rm -rf $L/churn/records $L/churn/e2e.png
# Does the host running ahead of the GPU make gpt2_varlen's peak (pending pages cannot move)? With
# CUDA_LAUNCH_BLOCKING=1 every free's work is done before the next call.
CUDA_LAUNCH_BLOCKING=1 timeout 80 python3 scripts/e2e --reps 1 --steps 6 --warmup 2 --workloads gpt2_varlen \
  --allocators stash --out $L/blocking > $L/blocking.out 2>&1
rm -rf $L/blocking/e2e.png
pack
cat $L/gpu.txt; tail -14 $L/summary.txt; tail -3 $L/nccl.log $L/nccl-memcheck.log; grep -h "FAILED:\|failed:" $L/*.log | sort | uniq -c | head
grep -h "^| alloc_churn" $L/churn.out; grep -h "^| gpt2_varlen" $L/blocking.out; tail -12 $L/new1.txt
