#!/usr/bin/env bash
# GPU run X2 (thirty-fourth session, one H200): the session's final library and wheel.
#   1. every smoke check of stash.torch (the memory history's check as fixed after X1, MemPool.snapshot's
#      new check, the alloc hook restructured for the history) and CuPy's, with .devbuild/w5;
#   2. the CUDA C-interface cases (the walk names graph pools now), then every suite under every
#      sanitizer (scripts/gpu-test run all).
# Each step's logs packed as it ends. Carry: .devbuild/w5,
# build/gpu/tests/{stash_tests,stash_cuda_tests,stash_thrust_tests}, build/gpu/lib, build/gpu/rev.
L=/tmp/gx2; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
export PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0
start=$SECONDS
{ nvidia-smi --query-gpu=name,driver_version --format=csv; echo "library rev $(cat build/gpu/rev)"; echo "wheel rev $(cat .devbuild/w5/rev)";
  python3 -c 'import torch; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version())'; } > $L/gpu.txt 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site5 .devbuild/w5/stash*.whl > $L/pip5.log 2>&1
STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext5 PYTHONPATH=/tmp/site5 timeout 330 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$? s=$((SECONDS-start))" >> $L/smoke_torch.log
PYTHONPATH=/tmp/site5 timeout 60 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$? s=$((SECONDS-start))" >> $L/smoke_cupy.log
pack
export LD_LIBRARY_PATH=$PWD/build/gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
build/gpu/tests/stash_cuda_tests "[c_interface]" > $L/c_interface.txt 2>&1; echo "c_interface rc=$? s=$((SECONDS-start))" >> $L/c_interface.txt
STASH_GPU_DEADLINE=${SUITES_S:-200} OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
pack
cat $L/gpu.txt
grep -v "^    " $L/smoke_torch.log | tail -n 32; grep -A14 "^FAIL" $L/smoke_torch.log | head -40; tail -n 3 $L/smoke_cupy.log
tail -n 3 $L/c_interface.txt; grep -B3 -A12 "FAILED" $L/c_interface.txt | head -30; tail -n 14 $L/suites.txt
