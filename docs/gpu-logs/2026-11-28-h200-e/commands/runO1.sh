#!/usr/bin/env bash
# GPU run O1 on two H200s, at the rev in .devbuild/rev: every GPU suite and sanitizer (graph capture that
# maps pages, peer_access none and grant_peer included), NCCL on stash buffers, and the Python smoke tests
# (a CUDA graph through stash.torch's graph pools, a copy between GPUs under peer_access:none).
# Carry: build/gpu .devbuild/rev .whl (buildO.sh)
L=/tmp/go1; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "main at $(cat .devbuild/rev)" >> $L/gpu.txt
STASH_GPU_DEADLINE=250 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
pack
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 40 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
timeout 200 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$?" >> $L/smoke_torch.log
pack
timeout 50 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$?" >> $L/smoke_cupy.log
pack
cat $L/gpu.txt; tail -n 14 $L/summary.txt; tail -n 2 $L/nccl.log; tail -n 3 $L/smoke_torch.log; tail -n 3 $L/smoke_cupy.log
grep -h "^FAIL\|FAILED:\|failed:" $L/*.log | sort | uniq -c | head
