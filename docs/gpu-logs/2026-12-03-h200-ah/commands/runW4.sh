#!/usr/bin/env bash
# GPU run W4 (thirty-third session, one H200): smoke_torch's graph_intermediate check as diagW3.py's
# figures led to (run W3: the side stream had finished by the end of the capture, so the pool's next
# request takes the intermediate at once: W2's check wrongly wanted it for a later request). Three times
# under stash, with the MemPool check beside it, then under PyTorch's own allocator. W1's wheel (a666e08).
# Carry: .devbuild/w1.
L=/tmp/gw4; mkdir -p $L
export PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0 STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext
C=graph_intermediate_used_on_a_side_stream_comes_back_after_the_capture_once_its_work_is_done
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/w1/stash*.whl > $L/pip.log 2>&1
for i in 1 2 3; do
  PYTHONPATH=/tmp/site timeout 60 python3 python/tests/gpu/smoke_torch.py $C mem_pool_block_used_on_a_side_stream_comes_back_once_its_work_is_done > $L/smoke_torch_$i.log 2>&1; echo "smoke_torch rc=$?" >> $L/smoke_torch_$i.log
done
SMOKE_NATIVE=1 PYTHONPATH=/tmp/site timeout 60 python3 python/tests/gpu/smoke_torch.py $C > $L/smoke_native.log 2>&1; echo "native rc=$?" >> $L/smoke_native.log
(cd $L && tar czf $OUT/logs.tgz .)
for f in $L/smoke_torch_*.log $L/smoke_native.log; do echo "== $f"; cat $f; done
