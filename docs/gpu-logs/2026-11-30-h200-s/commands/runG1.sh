#!/usr/bin/env bash
# GPU run G1 (seventeenth session, main f9912d7: this session's three rounds of hardening): every GPU
# suite under every sanitizer (scripts/gpu-test run all), the NCCL suite, then stash.torch's and
# stash.cupy's smoke checks with the wheel built here.
# Built here: build/gpu at f9912d7, .devbuild/g1/stash_allocator-*.whl (rev in .devbuild/g1/rev).
# Carry: build/gpu, .devbuild/g1. PART=suites or PART=smoke runs one half (each fits one call).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
L=/tmp/gg1; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1; echo "rev $(cat .devbuild/g1/rev)" >> $L/gpu.txt
start=$SECONDS
if [ "${PART:-suites}" = suites ]; then
  STASH_GPU_DEADLINE=420 OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
  pack
  LD_LIBRARY_PATH=build/gpu/lib timeout 60 build/gpu/tests/stash_nccl_tests > $L/nccl.txt 2>&1; echo "nccl rc=$?" >> $L/nccl.txt
  pack
  tail -n 16 $L/suites.txt; tail -n 3 $L/nccl.txt
else
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/g1/stash*.whl > $L/pip.log 2>&1
  PYTHONPATH=/tmp/site timeout 330 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$? s=$((SECONDS-start))" >> $L/smoke_torch.log
  pack
  PYTHONPATH=/tmp/site timeout 90 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$?" >> $L/smoke_cupy.log
  pack
  grep -v "^    " $L/smoke_torch.log | tail -n 26; tail -n 8 $L/smoke_cupy.log
fi
