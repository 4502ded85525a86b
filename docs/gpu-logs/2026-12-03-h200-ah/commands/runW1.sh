#!/usr/bin/env bash
# GPU run W1 (thirty-third session, one H200): graph pools record the events of blocks freed during a
# capture, for other streams, when the last routing ends (bba8f09).
#   1. the CUDA suite's graph cases, plain (graph_pools changed; the C cases are the same);
#   2. every suite under every sanitizer (scripts/gpu-test run all);
#   3. stash.torch's and stash.cupy's smoke checks (the new graph-capture check among them), then the new check
#      again under PyTorch's own allocator (SMOKE_NATIVE=1), for comparison.
# Carry: build/gpu/tests/{stash_tests,stash_cuda_tests,stash_thrust_tests}, build/gpu/lib, build/gpu/rev,
# .devbuild/w1 (pip wheel --no-deps ./python -w .devbuild/w1; rev in .devbuild/w1/rev).
L=/tmp/gw1; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
export LD_LIBRARY_PATH=$PWD/build/gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0
T=build/gpu/tests/stash_cuda_tests
{ nvidia-smi --query-gpu=name,driver_version --format=csv; echo "library rev $(cat build/gpu/rev)";
  echo "wheel rev $(cat .devbuild/w1/rev)"; python3 -c 'import torch; print("torch", torch.__version__)'; } > $L/gpu.txt 2>&1
start=$SECONDS
$T "[graph]" -d yes > $L/graph.txt 2>&1; echo "rc=$? s=$((SECONDS-start))" >> $L/graph.txt
STASH_GPU_DEADLINE=${SUITES_S:-300} OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
pack
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/w1/stash*.whl > $L/pip.log 2>&1
PYTHONPATH=/tmp/site timeout 280 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$? s=$((SECONDS-start))" >> $L/smoke_torch.log
pack
SMOKE_NATIVE=1 PYTHONPATH=/tmp/site timeout 60 python3 python/tests/gpu/smoke_torch.py graph_intermediate_used_on_a_side_stream_comes_back_after_the_capture_once_its_work_is_done > $L/smoke_native.log 2>&1; echo "native rc=$? s=$((SECONDS-start))" >> $L/smoke_native.log
PYTHONPATH=/tmp/site timeout 60 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$? s=$((SECONDS-start))" >> $L/smoke_cupy.log
pack
cat $L/gpu.txt; grep -aE "test cases|rc=" $L/graph.txt; tail -n 14 $L/suites.txt; grep -v "^    " $L/smoke_torch.log | tail -n 30
grep -v "^    " $L/smoke_native.log | tail -n 8; tail -n 4 $L/smoke_cupy.log
