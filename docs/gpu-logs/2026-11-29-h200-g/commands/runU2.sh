#!/usr/bin/env bash
# GPU run U2 (one H200), at the rev in .devbuild/u2/rev (the session's final library: 64-byte block
# records, remap_pending_pages off by default, large blocks in eighths): every GPU suite (no sanitizer: run U3 has them, on the final head),
# the PyTorch and CuPy smoke checks, the replay against PyTorch twice in alternating order (five warm
# replays, as in the sixth session's runs), and mlp_two_streams alone with 1, 2, 3, 5 and 8 warm replays
# (which warm replays are slow).
# Carry: build/gpu (less its CMakeFiles), .devbuild/u2 (stash-replay, whl/, rev); buildU2.sh.
L=/tmp/gu2; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "rev $(cat .devbuild/u2/rev)" >> $L/gpu.txt
STASH_GPU_SANITIZE=0 STASH_GPU_DEADLINE=120 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
pack
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/u2/whl/stash*.whl > $L/pip.log 2>&1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
PYTHONPATH=/tmp/site timeout 200 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$?" >> $L/smoke_torch.log
pack
PYTHONPATH=/tmp/site timeout 40 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$?" >> $L/smoke_cupy.log
pack
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in 1 2; do
  [ $r = 1 ] && A=torch,stash || A=stash,torch
  LD_LIBRARY_PATH=$TORCH/lib timeout 80 .devbuild/u2/stash-replay bench/traces --backend cuda --warm 5 \
    --allocators $A --json-file $L/replay$r.jsonl > $L/replay$r.txt 2>&1; echo "replay $r rc=$?" >> $L/replay$r.txt
  pack
done
for w in 1 2 3 5 8; do
  LD_LIBRARY_PATH=$TORCH/lib timeout 20 .devbuild/u2/stash-replay bench/traces/mlp_two_streams.csv --backend cuda --warm $w \
    --allocators stash,torch >> $L/mlp_warm.txt 2>&1; echo "mlp warm $w rc=$?" >> $L/mlp_warm.txt
done
pack
cat $L/gpu.txt; tail -n 13 $L/summary.txt; grep -v "^    " $L/smoke_torch.log | tail -n 22; tail -n 2 $L/smoke_cupy.log
grep -h "rc=" $L/*.txt $L/*.log $L/*.out; grep -h "stash \|torch " $L/mlp_warm.txt
