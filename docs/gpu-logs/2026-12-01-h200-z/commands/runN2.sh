#!/usr/bin/env bash
# GPU run N2 (twenty-fourth session; 2 x H200): the two-GPU tests with kept page aliases and peers
# ([peers], [aliases], [multi_gpu] of stash_cuda_tests), the same under compute-sanitizer memcheck, and the
# NCCL suite. build/gpu (rev in build/gpu/rev). Carry: build/gpu.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
L=/tmp/gn2; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
nvidia-smi topo -m >> $L/gpu.txt 2>&1
echo "build rev $(cat build/gpu/rev 2>/dev/null)" >> $L/gpu.txt
export LD_LIBRARY_PATH=build/gpu/lib
timeout 120 build/gpu/tests/stash_cuda_tests "[peers],[aliases],[multi_gpu]" --durations yes > $L/tests.txt 2>&1; echo "tests rc=$?" >> $L/tests.txt
pack
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
timeout 200 $SAN --error-exitcode 1 --tool memcheck --leak-check full build/gpu/tests/stash_cuda_tests "[peers],[aliases]" > $L/memcheck.txt 2>&1; echo "memcheck rc=$?" >> $L/memcheck.txt
pack
timeout 90 build/gpu/tests/stash_nccl_tests > $L/nccl.txt 2>&1; echo "nccl rc=$?" >> $L/nccl.txt
pack
grep -E "test cases|rc=|ERROR SUMMARY|LEAK SUMMARY|skipped" $L/*.txt | tail -20
