#!/usr/bin/env bash
# GPU run T, the sixth session's last, at .devbuild/rev: every GPU suite and sanitizer, NCCL where two
# GPUs are visible, every smoke check (MemPool, torch.multiprocessing with stash.torch's default
# shareable:auto, torch.compile, CUDA graphs), CuPy, and the replay against PyTorch (stash, stash-block-shares:
# large blocks backed in eighths with moves, stash-lean: at most 1.05x the live peak) twice in alternating
# order. Carry: build/gpu (less its CMakeFiles) .devbuild/rev .whl .devbuild/new6/bench/stash-replay
# (buildT.sh)
L=/tmp/gt; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "rev $(cat .devbuild/rev)" >> $L/gpu.txt
STASH_GPU_DEADLINE=200 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
pack
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 40 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/stash*.whl > $L/pip.log 2>&1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
PYTHONPATH=/tmp/site timeout 240 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$?" >> $L/smoke_torch.log
pack
PYTHONPATH=/tmp/site timeout 50 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$?" >> $L/smoke_cupy.log
pack
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2; do
  [ $r = 1 ] && A=torch,stash,stash-block-shares,stash-lean || A=stash-lean,stash-block-shares,stash,torch
  LD_LIBRARY_PATH=$TORCH/lib timeout 150 .devbuild/new6/bench/stash-replay bench/traces --backend cuda \
    --allocators $A --json-file $L/replay$r.jsonl > $L/replay$r.txt 2>&1; echo "replay $r rc=$?" >> $L/replay$r.txt
  pack
done
cat $L/gpu.txt; tail -n 13 $L/summary.txt; tail -n 2 $L/nccl.log; grep -v "^    " $L/smoke_torch.log | tail -n 22; tail -n 2 $L/smoke_cupy.log
grep -h "rc=" $L/*.txt
