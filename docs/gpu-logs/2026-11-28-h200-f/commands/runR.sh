#!/usr/bin/env bash
# GPU run R on two H200s, the sixth session's first: every GPU suite and sanitizer at the rev in
# .devbuild/rev (main ad8221f with the MemPool wiring put back: 9466156 + 235090c), NCCL on stash
# buffers, every smoke check (torch.compile and MemPool included), CuPy, and the replay against PyTorch
# twice in alternating order. Carry: build/gpu (less its CMakeFiles: the carry limit) .devbuild/rev .whl
# .devbuild/new6/bench/stash-replay (buildR.sh)
L=/tmp/gr; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "rev $(cat .devbuild/rev)" >> $L/gpu.txt
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/stash*.whl > $L/pip.log 2>&1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
# MemPool first, alone: the check the last session could not run.
PYTHONPATH=/tmp/site timeout 120 python3 python/tests/gpu/smoke_torch.py mem_pool_keeps_its_blocks > $L/mempool.log 2>&1; echo "mempool rc=$?" >> $L/mempool.log
pack
STASH_GPU_DEADLINE=200 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
pack
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 40 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
PYTHONPATH=/tmp/site timeout 200 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$?" >> $L/smoke_torch.log
pack
PYTHONPATH=/tmp/site timeout 50 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$?" >> $L/smoke_cupy.log
pack
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2; do
  [ $r = 1 ] && A=torch,stash,stash-no-peers || A=stash-no-peers,stash,torch
  LD_LIBRARY_PATH=$TORCH/lib timeout 100 .devbuild/new6/bench/stash-replay bench/traces --backend cuda \
    --allocators $A --json-file $L/replay$r.jsonl > $L/replay$r.txt 2>&1; echo "replay $r rc=$?" >> $L/replay$r.txt
  pack
done
cat $L/gpu.txt; tail -n 4 $L/mempool.log; tail -n 14 $L/summary.txt; tail -n 2 $L/nccl.log; grep -v "^    " $L/smoke_torch.log | tail -n 22; tail -n 3 $L/smoke_cupy.log
grep -h "rc=" $L/*.txt
