#!/usr/bin/env bash
# GPU run X6 (one H200, tenth session): every PyTorch smoke check (python/tests/gpu/smoke_torch.py: stash.torch's
# defaults) and the CuPy smoke checks, with the wheel of the final library (5377b92: blocks below the top filed apart while one stream allocates).
# Carry: .devbuild/x6 (whl/, rev).
L=/tmp/gx6; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1; echo "rev $(cat .devbuild/x6/rev)" >> $L/gpu.txt
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/x6/whl/stash*.whl > $L/pip.log 2>&1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
PYTHONPATH=/tmp/site timeout 330 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1
echo "smoke_torch rc=$?" >> $L/smoke_torch.log
pack
PYTHONPATH=/tmp/site timeout 90 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1
echo "smoke_cupy rc=$?" >> $L/smoke_cupy.log
pack
grep -v "^    " $L/smoke_torch.log | tail -n 22; tail -n 8 $L/smoke_cupy.log
