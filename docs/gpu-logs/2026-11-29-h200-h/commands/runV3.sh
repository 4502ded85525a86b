#!/usr/bin/env bash
# GPU run V3 (one H200), at the rev in .devbuild/v3/rev (the session's library: the paged arena's chunk
# bookkeeping folded into one helper, memory_manager::owns, the C interface's export table using it):
# every GPU suite and sanitizer, the NCCL suite, and the smoke checks that share memory between
# processes (IPC), keep a MemPool's blocks and switch PyTorch to stash.
# Carry: build/gpu (less its CMakeFiles), .devbuild/v3 (whl/, rev; buildV3.sh made them).
L=/tmp/gv3; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "rev $(cat .devbuild/v3/rev)" >> $L/gpu.txt
STASH_GPU_DEADLINE=300 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
pack
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 40 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/v3/whl/stash*.whl > $L/pip.log 2>&1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
PYTHONPATH=/tmp/site timeout 150 python3 python/tests/gpu/smoke_torch.py multiprocessing_shares_a_cuda_tensor_in_place \
  sharing_without_the_shareable_option_says_what_to_set mem_pool_keeps_its_blocks enable_and_compute > $L/smoke_torch.log 2>&1
echo "smoke_torch rc=$?" >> $L/smoke_torch.log
pack
cat $L/gpu.txt; tail -n 13 $L/summary.txt; tail -n 2 $L/nccl.log; grep -v "^    " $L/smoke_torch.log | tail -n 8
grep -h "rc=" $L/*.txt $L/*.log $L/*.out
