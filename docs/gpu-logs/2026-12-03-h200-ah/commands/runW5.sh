#!/usr/bin/env bash
# GPU run W5 (thirty-third session, one H200): stash.torch's stats hooks (getDeviceStats, resetPeakStats,
# resetAccumulatedStats) and cuDNN benchmark mode's workspace answer (cacheInfo), in the wheel of 0537424
# (.devbuild/w2). 1. the new cuDNN check with W1's wheel (.devbuild/w1, hooks without cacheInfo), to see
# it fail before; 2. every smoke check of stash.torch with the new wheel; 3. the CuPy checks.
# Carry: .devbuild/w1, .devbuild/w2.
L=/tmp/gw5; mkdir -p $L
export PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0
start=$SECONDS
{ nvidia-smi --query-gpu=name,driver_version --format=csv; echo "wheel rev $(cat .devbuild/w2/rev)";
  python3 -c 'import torch; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version())'; } > $L/gpu.txt 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site1 .devbuild/w1/stash*.whl > $L/pip1.log 2>&1
STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext1 PYTHONPATH=/tmp/site1 timeout 150 python3 python/tests/gpu/smoke_torch.py cudnn_benchmark_convolutions_match_the_default torch_memory_stats_report_stashs_figures > $L/smoke_w1_wheel.log 2>&1; echo "w1 wheel rc=$? s=$((SECONDS-start))" >> $L/smoke_w1_wheel.log
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site2 .devbuild/w2/stash*.whl > $L/pip2.log 2>&1
STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext2 PYTHONPATH=/tmp/site2 timeout 330 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$? s=$((SECONDS-start))" >> $L/smoke_torch.log
STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext2 PYTHONPATH=/tmp/site2 timeout 60 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$? s=$((SECONDS-start))" >> $L/smoke_cupy.log
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/gpu.txt; grep -v "^    " $L/smoke_w1_wheel.log | tail -n 6; grep -A8 "^FAIL" $L/smoke_w1_wheel.log | head -20
grep -v "^    " $L/smoke_torch.log | tail -n 30; grep -A12 "^FAIL" $L/smoke_torch.log | head -40; tail -n 3 $L/smoke_cupy.log
