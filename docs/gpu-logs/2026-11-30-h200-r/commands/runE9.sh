#!/usr/bin/env bash
# GPU run E9 (sixteenth session): 3cb680f on two H200s (run E5 had one GPU, so the CUDA suite's peer cases and
# the NCCL suite's two-GPU cases were skipped there): the host and CUDA suites (no sanitizers) and the NCCL
# suite. Carry: build/gpu (built here at 3cb680f).
export NCCL_NVLS_ENABLE=0
L=/tmp/ge9; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
nvidia-smi topo -m >> $L/gpu.txt 2>&1
STASH_GPU_DEADLINE=240 OUT=$L/suites scripts/gpu-test run tests > $L/suites.txt 2>&1; echo "suites rc=$?" >> $L/suites.txt
timeout 90 build/gpu/tests/stash_nccl_tests > $L/nccl.txt 2>&1; echo "nccl rc=$?" >> $L/nccl.txt
build/gpu/tests/stash_cuda_tests "[peers]" > $L/peers.txt 2>&1; echo "peers rc=$?" >> $L/peers.txt
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/gpu.txt | head -3; tail -n 8 $L/suites.txt; tail -n 4 $L/nccl.txt; tail -n 4 $L/peers.txt
