#!/usr/bin/env bash
# GPU run Z6 (one H200): the session's final library (rev in .devbuild/z6/rev: the small region files blocks apart
# below its top only while one stream allocates): every GPU suite and sanitizer and the NCCL suite (build/gpu, as
# in Z2), then the multistream workload under stash with the previous wheel (.devbuild/z2/whl, 4ae9294) and the
# final one (.devbuild/z6/whl), two repetitions each, alternating. Carry: build/gpu, .devbuild/z2, .devbuild/z6.
L=/tmp/gz6; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
{ nvidia-smi --query-gpu=name,driver_version --format=csv; echo "rev $(cat .devbuild/z6/rev)"; } > $L/gpu.txt 2>&1
STASH_GPU_DEADLINE=200 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 40 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
pack
export PYTHONUNBUFFERED=1
for r in 1 2; do
  for v in z6 z2; do [ $r = 2 ] && v=$([ $v = z6 ] && echo z2 || echo z6)
    STASH_TORCH_EXTENSION_DIR=/tmp/ext-$v timeout 70 python3 scripts/e2e --reps 1 --steps 8 --warmup 2 --workloads multistream \
      --allocators stash --wheels .devbuild/$v/whl --out $L/e2e-$v-$r > $L/e2e-$v-$r.out 2>&1; echo "e2e $v $r rc=$?" >> $L/e2e-$v-$r.out
  done
  pack
done
tail -n 12 $L/summary.txt; tail -n 1 $L/nccl.log
for f in $L/e2e-*/summary.md; do echo "$f: $(grep '^| multistream' $f | sed -n 2,3p | tr '\n' ' ')"; done
grep -h "rc=" $L/*.log $L/*.out | tr '\n' ' '
