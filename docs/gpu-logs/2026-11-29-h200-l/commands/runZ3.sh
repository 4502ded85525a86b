#!/usr/bin/env bash
# GPU run Z3 (one H200): every PyTorch smoke check (python/tests/gpu/smoke_torch.py: stash.torch's defaults) and
# the CuPy ones with the wheel of the final library (.devbuild/z2/whl, rev in .devbuild/z2/rev), then the
# multistream workload end to end (a copy stream with record_stream beside the compute stream: the pattern of
# mlp_two_streams) under native and stash, two repetitions in alternating order. Carry: .devbuild/z2.
L=/tmp/gz3; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1; echo "rev $(cat .devbuild/z2/rev)" >> $L/gpu.txt
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/z2/whl/stash*.whl > $L/pip.log 2>&1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
PYTHONPATH=/tmp/site timeout 300 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$?" >> $L/smoke_torch.log
pack
PYTHONPATH=/tmp/site timeout 60 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$?" >> $L/smoke_cupy.log
pack
timeout 170 python3 scripts/e2e --reps 2 --steps 8 --warmup 2 --workloads multistream --allocators native,stash \
  --wheels .devbuild/z2/whl --max-minutes 2 --out $L/e2e > $L/e2e.out 2>&1; echo "e2e rc=$?" >> $L/e2e.out
pack
grep -v "^    " $L/smoke_torch.log | tail -n 22; tail -n 8 $L/smoke_cupy.log; grep "rep " $L/e2e.out | cut -c1-100
sed -n '/Peak reserved/,/^stash: options/p' $L/e2e/summary.md 2>/dev/null | head -24
