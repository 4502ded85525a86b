#!/usr/bin/env bash
# GPU run X4 (thirty-fourth session, one H200): run X3b's checks with the session's final wheel
# (.devbuild/w9: stash_visit_memory calls its callbacks after the pool's lock is released).
# Carry: .devbuild/w9.
L=/tmp/gx4; mkdir -p $L
export PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0
{ nvidia-smi --query-gpu=name,driver_version --format=csv; echo "wheel rev $(cat .devbuild/w9/rev)"; } > $L/gpu.txt 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site9 .devbuild/w9/stash*.whl > $L/pip6.log 2>&1
STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext9 PYTHONPATH=/tmp/site9 timeout 200 python3 python/tests/gpu/smoke_torch.py memory_history_and_snapshot_show_stashs_memory mem_pool_snapshot_shows_the_pools_blocks out_of_memory_reaches_the_observers_and_the_trace memory_fraction_limits_what_stash_holds > $L/smoke_stash.log 2>&1; echo "stash rc=$?" >> $L/smoke_stash.log
SMOKE_NATIVE=1 PYTHONPATH=/tmp/site9 timeout 100 python3 python/tests/gpu/smoke_torch.py memory_history_and_snapshot_show_stashs_memory > $L/smoke_native.log 2>&1; echo "native rc=$?" >> $L/smoke_native.log
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/gpu.txt $L/smoke_stash.log $L/smoke_native.log
