#!/usr/bin/env bash
# GPU run Z4 (one H200): the multistream workload end to end (copy stream with record_stream beside the compute
# stream) under stash with main's wheel before this session's stream change (.devbuild/y1/whl, 7c8e8ad) and the
# final one (.devbuild/z2/whl), three repetitions each, alternating. Carry: .devbuild/y1, .devbuild/z2.
L=/tmp/gz4; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
export PYTHONUNBUFFERED=1
for r in 1 2 3; do
  for v in main new; do [ $((r % 2)) = 0 ] && v=$([ $v = main ] && echo new || echo main)
    [ $v = main ] && W=.devbuild/y1/whl || W=.devbuild/z2/whl
    STASH_TORCH_EXTENSION_DIR=/tmp/ext-$v timeout 80 python3 scripts/e2e --reps 1 --steps 8 --warmup 2 --workloads multistream \
      --allocators stash --wheels $W --out $L/e2e-$v-$r > $L/e2e-$v-$r.out 2>&1; echo "e2e $v $r rc=$?" >> $L/e2e-$v-$r.out
  done
  pack
done
for f in $L/e2e-*/summary.md; do echo "$f: $(grep '^| multistream' $f | sed -n 2,3p | tr '\n' ' ')"; done
grep -h "rc=" $L/*.out | tr '\n' ' '
