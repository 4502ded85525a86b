#!/usr/bin/env bash
# GPU run T2 on two H200s right after T: peer_access_none_copies_between_two_gpus again, its options check
# mended (run T's stopped at `endswith(",peer_access:none")`: stash.torch's default shareable:auto now
# follows it), same wheel. Carry: .whl .devbuild/rev
L=/tmp/gt2; rm -rf $L; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1; echo "rev $(cat .devbuild/rev)" >> $L/gpu.txt
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/stash*.whl > $L/pip.log 2>&1
PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1 timeout 200 python3 python/tests/gpu/smoke_torch.py \
  peer_access_none_copies_between_two_gpus multiprocessing_shares_a_cuda_tensor_in_place > $L/smoke.log 2>&1; echo "smoke rc=$?" >> $L/smoke.log
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/gpu.txt $L/smoke.log
