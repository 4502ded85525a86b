#!/usr/bin/env bash
# GPU run U3 (one H200), at the rev in .devbuild/u3/rev (the session's final library): every GPU suite
# and sanitizer, the NCCL suite, the smoke checks run U2's time limit cut (torch.multiprocessing, and
# sharing without the shareable option) and MemPool, and the replay against PyTorch with the final
# library and with run U1's (75d0de2: 80-byte block records), alternating, twice each.
# Carry: build/gpu (less its CMakeFiles), .devbuild/u3 (stash-replay, whl/, rev; buildU3.sh), .devbuild/u1.
L=/tmp/gu3; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "rev $(cat .devbuild/u3/rev)" >> $L/gpu.txt
STASH_GPU_DEADLINE=300 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
pack
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 40 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/u3/whl/stash*.whl > $L/pip.log 2>&1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
PYTHONPATH=/tmp/site timeout 150 python3 python/tests/gpu/smoke_torch.py multiprocessing_shares_a_cuda_tensor_in_place \
  sharing_without_the_shareable_option_says_what_to_set mem_pool_keeps_its_blocks enable_and_compute > $L/smoke_torch.log 2>&1
echo "smoke_torch rc=$?" >> $L/smoke_torch.log
pack
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2; do
  for v in u1 u3; do
    [ $r = 1 ] && A=torch,stash || A=stash,torch
    LD_LIBRARY_PATH=$TORCH/lib timeout 60 .devbuild/$v/stash-replay bench/traces --backend cuda --warm 5 \
      --allocators $A --json-file $L/replay-$v-$r.jsonl > $L/replay-$v-$r.txt 2>&1; echo "replay $v $r rc=$?" >> $L/replay-$v-$r.txt
  done
  pack
done
cat $L/gpu.txt; tail -n 13 $L/summary.txt; tail -n 2 $L/nccl.log; grep -v "^    " $L/smoke_torch.log | tail -n 8
grep -h "rc=" $L/*.txt $L/*.log $L/*.out
