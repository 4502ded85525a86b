#!/usr/bin/env bash
# GPU run H1 (eighteenth session): every GPU suite under every sanitizer (scripts/gpu-test run all),
# with the new case "a thread per request on cudaStreamPerThread" (streams forgotten while running),
# then the NCCL suite. Built here: build/gpu at the commit in build/gpu/rev. Carry: build/gpu.
export NCCL_NVLS_ENABLE=0
L=/tmp/gh1; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1; echo "rev $(cat build/gpu/rev)" >> $L/gpu.txt
start=$SECONDS
LD_LIBRARY_PATH=build/gpu/lib build/gpu/tests/stash_cuda_tests "*thread per request*" > $L/new_case.txt 2>&1; echo "new case rc=$?" >> $L/new_case.txt
STASH_GPU_DEADLINE=430 OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
pack
LD_LIBRARY_PATH=build/gpu/lib timeout 60 build/gpu/tests/stash_nccl_tests > $L/nccl.txt 2>&1; echo "nccl rc=$?" >> $L/nccl.txt
pack
tail -n 4 $L/new_case.txt; tail -n 16 $L/suites.txt; tail -n 3 $L/nccl.txt
