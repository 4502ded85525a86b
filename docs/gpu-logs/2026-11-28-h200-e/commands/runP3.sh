#!/usr/bin/env bash
# GPU run P3 on one H200: the torch.compile and CUDA graph smoke checks with graph pool checkpoints
# (reduce-overhead: CUDA graph trees). Carry: .whl (the stash wheel built at .devbuild/rev).
L=/tmp/gp3; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
echo "main at $(cat .devbuild/rev)" >> $L/gpu.txt
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/stash*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
timeout 500 python3 python/tests/gpu/smoke_torch.py ${CHECKS:-torch_compile_reduce_overhead_matches_eager torch_compile_matches_eager \
  cuda_graph_replays_and_keeps_its_memory} > $L/smoke.log 2>&1
echo "smoke rc=$?" >> $L/smoke.log
pack
cat $L/gpu.txt; grep -v "^    " $L/smoke.log | tail -n 8; grep -h "Error\|error" $L/smoke.log | tail -n 5
