#!/usr/bin/env bash
# GPU run E7 (sixteenth session): (1) ten more rounds of run E5's new binary (3cb680f) beside PyTorch,
# `stash-replay bench/traces --backend cuda --warm 10`, one process per round, the allocators' order
# alternated (run E5's six rounds of each binary left llama_train_ckpt_varlen and mlp_two_streams at the
# 8x line, the second a trace of 1,701 operations whose rounds spread 6.1-9.1x); (2) every PyTorch smoke
# check with 3cb680f's wheel (stash.torch's defaults). Carry: .devbuild/e5, .devbuild/e7.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
L=/tmp/ge7; rm -rf $L; mkdir -p $L/j
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
start=$SECONDS
for r in 7 8 9 10 11 12 13 14 15 16; do
  [ $((r % 2)) = 1 ] && allocs=torch,stash || allocs=stash,torch
  [ $((SECONDS - start)) -gt ${WARM_S:-150} ] && { echo "stopped before round $r" >> $L/failed.txt; break; }
  CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=$TORCH/lib timeout 60 .devbuild/e5/stash-replay bench/traces --backend cuda \
    --warm 10 --allocators $allocs --json-file $L/j/new-r$r.jsonl > $L/j/new-r$r.txt 2>&1 || echo "r$r rc=$?" >> $L/failed.txt
done
pack
echo "warm: $((SECONDS - start)) s"; cat $L/failed.txt 2>/dev/null
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/e7/stash*.whl > $L/pip.log 2>&1
PYTHONPATH=/tmp/site timeout 330 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$? s=$((SECONDS-start))" >> $L/smoke_torch.log
pack
grep -v "^    " $L/smoke_torch.log | tail -n 26
