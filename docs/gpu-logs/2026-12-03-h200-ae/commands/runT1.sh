#!/usr/bin/env bash
# GPU run T1 (thirtieth session, one H200): the Python package of main as it is (sessions 24-29 changed the
# core under it: kept aliases, epochs of 8192 frees, record_stream's stream lookup, page marks a word at a
# time) inside PyTorch 2.11 and CuPy, where it last ran at 11f7c26 (run M1).
# PART=smoke: stash.torch's and stash.cupy's smoke checks. PART=e2e: scripts/e2e, the single-GPU workloads
# in $WORKLOADS under PyTorch's native allocator and stash.torch, $REPS repetitions (2 by default) in alternating order.
# Wheel: pip wheel --no-deps ./python -w .devbuild/t1 (rev in .devbuild/t1/rev). Carry: .devbuild/t1.
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0
L=/tmp/gt1; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs-${PART}.tgz .); }
{ nvidia-smi --query-gpu=name,driver_version --format=csv; lscpu | grep -E "Model name|^CPU\(s\)";
  echo "wheel rev $(cat .devbuild/t1/rev)"; python3 -c 'import torch; print("torch", torch.__version__)';
  python3 -c 'import cupy; print("cupy", cupy.__version__)'; } > $L/gpu.txt 2>&1
start=$SECONDS
case $PART in
smoke)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/t1/stash*.whl > $L/pip.log 2>&1
  PYTHONPATH=/tmp/site timeout 330 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$? s=$((SECONDS-start))" >> $L/smoke_torch.log
  pack
  PYTHONPATH=/tmp/site timeout 90 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$? s=$((SECONDS-start))" >> $L/smoke_cupy.log
  pack
  grep -v "^    " $L/smoke_torch.log | tail -n 24; tail -n 9 $L/smoke_cupy.log;;
e2e)
  timeout ${LIMIT:-560} python3 scripts/e2e --workloads $WORKLOADS --allocators native,stash --reps ${REPS:-2} --steps ${STEPS:-10} \
    --warmup 3 --timeout 120 --max-minutes ${MINUTES:-7} --scratch /tmp/e2e-scratch --wheels .devbuild/t1 \
    --out $L/e2e-$NAME > $L/e2e-$NAME.out 2>&1; echo "e2e rc=$? s=$((SECONDS-start))" >> $L/e2e-$NAME.out
  pack
  grep "^\[e2e" $L/e2e-$NAME.out | tail -n 20; cat $L/e2e-$NAME/summary.md | head -60;;
esac
