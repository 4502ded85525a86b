#!/usr/bin/env bash
# GPU run P on one H200: a smoke check of torch.compile through stash (first run: mode="reduce-overhead",
# which stopped in PyTorch, logs in runP/; second run, P2: the default mode). Carry: .whl (buildO.sh).
L=/tmp/gp; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/stash*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" >> $L/gpu.txt 2>&1
timeout 400 python3 python/tests/gpu/smoke_torch.py torch_compile_matches_eager > $L/smoke_compile.log 2>&1
echo "smoke rc=$?" >> $L/smoke_compile.log
pack
cat $L/gpu.txt; tail -n 40 $L/smoke_compile.log
