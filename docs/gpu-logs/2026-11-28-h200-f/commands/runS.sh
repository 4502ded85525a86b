#!/usr/bin/env bash
# GPU run S on one H200 at .devbuild/rev: idle chunks moved whole, the fast-path cuts, IPC by text.
# page_costs (a chunk moved against given back and mapped anew; chunks made shareable or not), every GPU
# suite and sanitizer (chunk-move and IPC CUDA tests), the replay against PyTorch twice in alternating
# order, and the smoke checks of torch.multiprocessing through stash. Carry: build/gpu (less its
# CMakeFiles) .devbuild/rev .devbuild/new6/bench/stash-replay .whl (buildS.sh, then the wheel)
L=/tmp/gs; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "rev $(cat .devbuild/rev)" >> $L/gpu.txt
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 120 build/gpu/bench/page_costs > $L/page_costs.txt 2>&1; echo "page_costs rc=$?" >> $L/page_costs.txt
pack
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2; do
  [ $r = 1 ] && A=torch,stash || A=stash,torch
  LD_LIBRARY_PATH=$TORCH/lib timeout 100 .devbuild/new6/bench/stash-replay bench/traces --backend cuda \
    --allocators $A --json-file $L/replay$r.jsonl > $L/replay$r.txt 2>&1; echo "replay $r rc=$?" >> $L/replay$r.txt
  pack
done
STASH_GPU_DEADLINE=200 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
pack
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/stash*.whl > $L/pip.log 2>&1
PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1 timeout 200 python3 python/tests/gpu/smoke_torch.py \
  multiprocessing_shares_a_cuda_tensor_in_place sharing_without_the_shareable_option_says_what_to_set enable_and_compute \
  > $L/smoke_ipc.log 2>&1; echo "smoke_ipc rc=$?" >> $L/smoke_ipc.log
pack
cat $L/gpu.txt; grep -i "chunk\|move\|share\|export\|rc=" $L/page_costs.txt; tail -n 13 $L/summary.txt; grep -v "^    " $L/smoke_ipc.log | tail -n 8
grep -h "rc=" $L/*.txt
