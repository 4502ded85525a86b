#!/usr/bin/env bash
# GPU run J (one H200): what unrationed page moves and the held bound save end to end (the moves do
# not wait for the GPU: runI/vmm_blocking.txt). gpt2_varlen, one repetition per STASH_CONF setting.
# (A first attempt wrote folders named after the settings, with ':' in them, which the device tool does
# not bring back; only its summary lines survived.)
L=/tmp/runJ; rm -rf $L; mkdir -p $L
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
i=0
for conf in pages_between_moves:0 max_held_over_live:1.03 max_held_over_live:1.03,pages_between_moves:0; do
  i=$((i+1)); echo "conf$i = $conf" >> $L/confs.txt
  STASH_CONF=$conf timeout 60 python3 scripts/e2e --reps 1 --steps 10 --warmup 2 --workloads gpt2_varlen \
    --allocators stash --out $L/conf$i > $L/conf$i.out 2>&1
  rm -rf $L/conf$i/e2e.png $L/conf$i/runs.log
done
cat $L/confs.txt; grep -h "^| gpt2_varlen" $L/*.out
cd $L && tar czf $OUT/runJ.tgz . && cd $OUT && rm -rf $L
