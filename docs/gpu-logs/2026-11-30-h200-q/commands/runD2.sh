#!/usr/bin/env bash
# GPU run D2 (fifteenth session): every GPU suite and sanitizer and the NCCL suite on e8e20b6
# (chunk_room_share: the room query, cudaMemGetInfo, runs on every run of pages mapped, graph captures
# included), then every PyTorch smoke check with e8e20b6's wheel. build/gpu: scripts/gpu-test's build at
# e8e20b6; wheel: pip wheel --no-deps ./python at e8e20b6 (.devbuild/d2). Carry: build/gpu, .devbuild/d2.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
L=/tmp/gd2; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
start=$SECONDS
STASH_GPU_DEADLINE=300 OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
pack
timeout 50 build/gpu/tests/stash_nccl_tests > $L/nccl.txt 2>&1; echo "nccl rc=$? s=$((SECONDS-start))" >> $L/nccl.txt
pack
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/d2/stash*.whl > $L/pip.log 2>&1
PYTHONPATH=/tmp/site timeout 200 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$? s=$((SECONDS-start))" >> $L/smoke_torch.log
pack
cat $L/gpu.txt; tail -n 14 $L/suites.txt; tail -n 4 $L/nccl.txt; grep -v "^    " $L/smoke_torch.log | tail -n 26
