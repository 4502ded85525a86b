#!/usr/bin/env bash
# GPU run G at the rev in .devbuild/rev: every GPU suite and sanitizer (scripts/gpu-test run all), the
# replay of bench/traces alternating 039b03f (before streams) and main, the cross-stream cost, and the
# Python smoke tests inside PyTorch and CuPy.
L=/tmp/gl; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "main at $(cat .devbuild/rev)" >> $L/gpu.txt
STASH_GPU_DEADLINE=240 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1
echo "gpu-test rc=$?" >> $L/gpu-test.out
cd $L && tar czf $OUT/logs.tgz . ; cd - >/dev/null
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
export LD_LIBRARY_PATH=$TORCH/lib:$PWD/build/gpu/lib
for i in 1 2 3; do
  timeout 60 .devbuild/baseline/stash-replay bench/traces --backend cuda --allocators stash,torch --json-file $L/base$i.jsonl > $L/base$i.txt 2>&1
  extra=""; [ $i = 3 ] && extra=",stash-lean"  # max_held_over_live 1.05, once
  timeout 120 .devbuild/new5/bench/stash-replay bench/traces --backend cuda --allocators stash,torch,cudaMallocAsync$extra --json-file $L/new$i.jsonl > $L/new$i.txt 2>&1
done
timeout 40 .devbuild/new5/bench/stash-replay --backend cuda --cross-stream 2000 --json-file $L/xs.jsonl > $L/xs.txt 2>&1
cd $L && tar czf $OUT/logs.tgz . ; cd - >/dev/null
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
timeout 150 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$?" >> $L/smoke_torch.log
timeout 60 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$?" >> $L/smoke_cupy.log
cd $L && tar czf $OUT/logs.tgz . ; cd - >/dev/null
cat $L/gpu.txt; tail -16 $L/summary.txt; grep -h "FAILED:\|failed:" $L/*.log | sort | uniq -c | head -20; cat $L/new3.txt; tail -n 3 $L/smoke_torch.log $L/smoke_cupy.log; tail -8 $L/xs.txt
