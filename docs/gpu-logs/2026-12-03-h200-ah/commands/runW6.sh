#!/usr/bin/env bash
# GPU run W6 (thirty-third session, one H200): run W5's cuDNN check passed with W1's wheel too: the default
# mode's run came first and left plans that benchmark mode reused, with no search. The check now runs
# benchmark mode first, on shapes nothing planned, against the CPU. With the final wheel (.devbuild/w3):
# without stash.torch's extension (STASH_TORCH_HOOKS=0: PyTorch's plain CUDAPluggableAllocator), then with it.
# Carry: .devbuild/w3.
L=/tmp/gw6; mkdir -p $L
export PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0 STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext3
C=cudnn_benchmark_convolutions_match_the_default
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site3 .devbuild/w3/stash*.whl > $L/pip.log 2>&1
STASH_TORCH_HOOKS=0 PYTHONPATH=/tmp/site3 timeout 60 python3 python/tests/gpu/smoke_torch.py $C > $L/without_extension.log 2>&1; echo "rc=$?" >> $L/without_extension.log
PYTHONPATH=/tmp/site3 timeout 100 python3 python/tests/gpu/smoke_torch.py $C > $L/with_extension.log 2>&1; echo "rc=$?" >> $L/with_extension.log
(cd $L && tar czf $OUT/logs.tgz .)
for f in $L/without_extension.log $L/with_extension.log; do echo "== $f"; tail -n 12 $f; done
