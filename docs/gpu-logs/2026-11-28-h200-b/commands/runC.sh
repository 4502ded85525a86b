#!/usr/bin/env bash
# GPU run C on two GPUs: peer access and NCCL on stash buffers, plain and under compute-sanitizer memcheck.
L=/tmp/gl; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
nvidia-smi topo -m >> $L/gpu.txt 2>&1
NCCL_LIB=$(dirname "$(find /opt /usr -name "libnccl.so.2" 2>/dev/null | head -1)"); echo "nccl from $NCCL_LIB" >> $L/gpu.txt
export LD_LIBRARY_PATH=$PWD/build/gpu/lib:$NCCL_LIB STASH_REQUIRE_GPU=1
timeout 120 build/gpu/tests/stash_cuda_tests "[peers],[multi-gpu]" > $L/peers.log 2>&1; echo "peers rc=$?" >> $L/peers.log
timeout 120 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
timeout 200 compute-sanitizer --error-exitcode 1 --tool memcheck --leak-check full build/gpu/tests/stash_cuda_tests "[peers],[multi-gpu]" > $L/peers-memcheck.log 2>&1; echo "peers memcheck rc=$?" >> $L/peers-memcheck.log
timeout 150 compute-sanitizer --error-exitcode 1 --tool memcheck build/gpu/tests/stash_nccl_tests > $L/nccl-memcheck.log 2>&1; echo "nccl memcheck rc=$?" >> $L/nccl-memcheck.log
cd $L && tar czf $OUT/logs.tgz . ; cd - >/dev/null
head -3 $L/gpu.txt; for f in peers nccl peers-memcheck nccl-memcheck; do echo "== $f"; grep -E "passed|failed|FAILED|skipped|ERROR SUMMARY|rc=" $L/$f.log | tail -6; done
