#!/usr/bin/env bash
# GPU run G2 (seventeenth session, main 6df9f08): two H200s. The host and CUDA suites with their peer and
# multi-GPU cases (scripts/gpu-test run tests), the NCCL suite with its two-GPU cases, and the peer and
# manager cases under compute-sanitizer memcheck. Carry: build/gpu (built at 6df9f08).
export NCCL_NVLS_ENABLE=0
L=/tmp/gg2; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
start=$SECONDS
STASH_GPU_DEADLINE=300 OUT=$L/suites scripts/gpu-test run tests > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
pack
LD_LIBRARY_PATH=build/gpu/lib timeout 90 build/gpu/tests/stash_nccl_tests > $L/nccl.txt 2>&1; echo "nccl rc=$?" >> $L/nccl.txt
pack
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
LD_LIBRARY_PATH=build/gpu/lib timeout 200 $CS --tool memcheck --leak-check full --error-exitcode 9 \
  build/gpu/tests/stash_cuda_tests "[peers],[multi-gpu],[manager]" > $L/memcheck.txt 2>&1; echo "memcheck rc=$?" >> $L/memcheck.txt
pack
tail -n 8 $L/suites.txt; tail -n 4 $L/nccl.txt; tail -n 4 $L/memcheck.txt
grep -h "test cases" $L/suites/*cuda* 2>/dev/null
