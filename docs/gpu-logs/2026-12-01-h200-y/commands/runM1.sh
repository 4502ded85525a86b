#!/usr/bin/env bash
# GPU run M1 (twenty-third session: remapped chunks given back while their alias waits stay counted until the alias goes): every GPU suite under every sanitizer
# (scripts/gpu-test run all) and the NCCL suite (PART=suites), and (PART=all, the default, both) stash.torch's and stash.cupy's smoke
# checks with the wheel built here (PART=smoke). Built here: build/gpu (rev in build/gpu/rev),
# .devbuild/m1/stash_allocator-*.whl (rev in .devbuild/m1/rev). Carry: build/gpu, .devbuild/m1.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
L=/tmp/gm1; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
echo "build rev $(cat build/gpu/rev 2>/dev/null), wheel rev $(cat .devbuild/m1/rev 2>/dev/null)" >> $L/gpu.txt
start=$SECONDS
if [ "${PART:-all}" != smoke ]; then
  STASH_GPU_DEADLINE=420 OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
  pack
  LD_LIBRARY_PATH=build/gpu/lib timeout 60 build/gpu/tests/stash_nccl_tests > $L/nccl.txt 2>&1; echo "nccl rc=$?" >> $L/nccl.txt
  pack
  tail -n 16 $L/suites.txt; tail -n 3 $L/nccl.txt
fi
if [ "${PART:-all}" != suites ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/m1/stash*.whl > $L/pip.log 2>&1
  PYTHONPATH=/tmp/site timeout 330 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$? s=$((SECONDS-start))" >> $L/smoke_torch.log
  pack
  PYTHONPATH=/tmp/site timeout 90 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$?" >> $L/smoke_cupy.log
  pack
  grep -v "^    " $L/smoke_torch.log | tail -n 26; tail -n 8 $L/smoke_cupy.log
fi
