#!/usr/bin/env bash
# GPU run W5 (thirty-third session, one H200): the final library (5e832ac: graph pools' unsettled blocks)
# and stash.torch's new hooks: stats (getDeviceStats, resetPeakStats, resetAccumulatedStats) and cuDNN
# benchmark mode's workspace answer (cacheInfo).
#   1. every smoke check of stash.torch, and CuPy's, with the final wheel (.devbuild/w3);
#   2. the two new checks with W1's wheel (.devbuild/w1, hooks without them), to see them fail before;
#   3. every suite under every sanitizer (scripts/gpu-test run all) on the final library's build/gpu.
# In that order, each step's logs packed as it ends: the device time left may not cover the last.
# Carry: .devbuild/w1, .devbuild/w3, build/gpu/tests/{stash_tests,stash_cuda_tests,stash_thrust_tests},
# build/gpu/lib, build/gpu/rev.
L=/tmp/gw5; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
export PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0
start=$SECONDS
{ nvidia-smi --query-gpu=name,driver_version --format=csv; echo "library rev $(cat build/gpu/rev)"; echo "wheel rev $(cat .devbuild/w3/rev)";
  python3 -c 'import torch; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version())'; } > $L/gpu.txt 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site3 .devbuild/w3/stash*.whl > $L/pip3.log 2>&1
STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext3 PYTHONPATH=/tmp/site3 timeout 300 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$? s=$((SECONDS-start))" >> $L/smoke_torch.log
PYTHONPATH=/tmp/site3 timeout 60 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$? s=$((SECONDS-start))" >> $L/smoke_cupy.log
pack
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site1 .devbuild/w1/stash*.whl > $L/pip1.log 2>&1
STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext1 PYTHONPATH=/tmp/site1 timeout 150 python3 python/tests/gpu/smoke_torch.py cudnn_benchmark_convolutions_match_the_default torch_memory_stats_report_stashs_figures > $L/smoke_w1_wheel.log 2>&1; echo "w1 wheel rc=$? s=$((SECONDS-start))" >> $L/smoke_w1_wheel.log
pack
export LD_LIBRARY_PATH=$PWD/build/gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
STASH_GPU_DEADLINE=${SUITES_S:-200} OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
pack
cat $L/gpu.txt; grep -v "^    " $L/smoke_w1_wheel.log | tail -n 6; grep -A6 "^FAIL" $L/smoke_w1_wheel.log | head -20
grep -v "^    " $L/smoke_torch.log | tail -n 30; grep -A12 "^FAIL" $L/smoke_torch.log | head -40; tail -n 3 $L/smoke_cupy.log
tail -n 14 $L/suites.txt
