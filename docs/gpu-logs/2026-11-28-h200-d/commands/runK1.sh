#!/usr/bin/env bash
# GPU run K1 on two H200s, at the rev in .devbuild/rev: every GPU suite and sanitizer with two devices
# (peers, multi-GPU, chunks under one access grant, IPC across processes included), NCCL on stash
# buffers (and under memcheck), and page_costs (what a 3 GiB block costs mapped each way).
# Carry: build/gpu .devbuild/rev (buildK.sh)
L=/tmp/gk1; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "main at $(cat .devbuild/rev)" >> $L/gpu.txt
STASH_GPU_DEADLINE=260 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
pack
export LD_LIBRARY_PATH=$PWD/build/gpu/lib
timeout 60 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
timeout 90 compute-sanitizer --tool memcheck --leak-check full build/gpu/tests/stash_nccl_tests > $L/nccl-memcheck.log 2>&1
echo "nccl memcheck rc=$?" >> $L/nccl-memcheck.log
timeout 60 build/gpu/bench/page_costs > $L/page_costs.txt 2>&1; echo "page_costs rc=$?" >> $L/page_costs.txt
pack
cat $L/gpu.txt; tail -14 $L/summary.txt; tail -3 $L/nccl.log $L/nccl-memcheck.log; grep -h "FAILED:\|failed:" $L/*.log | sort | uniq -c | head
grep -h "3 GiB" $L/page_costs.txt
