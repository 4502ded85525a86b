#!/usr/bin/env bash
# GPU run V8 (one H200): bench/experiments/2026-11-29-driver-gap/probe.py once per allocator (native,
# expandable segments, cudaMallocAsync, stash from the wheel in .devbuild/v3), twice in turn.
L=/tmp/gv8; rm -rf $L; mkdir -p $L
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .devbuild/v3/whl/stash*.whl > $L/pip.log 2>&1
export STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
P=bench/experiments/2026-11-29-driver-gap/probe.py
for r in 1 2; do
  timeout 60 python3 $P native > $L/native-$r.txt 2>&1
  PYTORCH_ALLOC_CONF=expandable_segments:True timeout 60 python3 $P expandable > $L/expandable-$r.txt 2>&1
  PYTORCH_ALLOC_CONF=backend:cudaMallocAsync timeout 60 python3 $P async > $L/async-$r.txt 2>&1
  PYTHONPATH=/tmp/site timeout 120 python3 $P stash > $L/stash-$r.txt 2>&1
done
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/*-1.txt | grep -v Warning
