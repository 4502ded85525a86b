#!/usr/bin/env bash
# GPU run D4 (fifteenth session): (1) what cudaMemGetInfo costs (.devbuild/d4/meminfo_cost: `nvcc -O2` of
# commands/meminfo_cost.cu here): run D3 measured e8e20b6's cold start 0.90-1.29x 1575b99's (median per trace),
# with one room query per run of pages mapped; (2) every PyTorch smoke check with e8e20b6's wheel (run D2's
# stopped at its 200 s limit after 15 of them). Carry: .devbuild/d2, .devbuild/d4.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
L=/tmp/gd4; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
start=$SECONDS
CUDA_VISIBLE_DEVICES=0 .devbuild/d4/meminfo_cost > $L/meminfo_cost.txt 2>&1; echo "rc=$?" >> $L/meminfo_cost.txt
.devbuild/d4/meminfo_cost > $L/meminfo_cost_2gpus.txt 2>&1; echo "rc=$?" >> $L/meminfo_cost_2gpus.txt
pack
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/d2/stash*.whl > $L/pip.log 2>&1
PYTHONPATH=/tmp/site timeout 400 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$? s=$((SECONDS-start))" >> $L/smoke_torch.log
pack
cat $L/gpu.txt $L/meminfo_cost.txt $L/meminfo_cost_2gpus.txt; grep -v "^    " $L/smoke_torch.log | tail -n 26
