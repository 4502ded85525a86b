#!/usr/bin/env bash
# GPU run S3 (twenty-ninth session, one H200): the aliases' random walk in two walks (every free completed:
# must take aliases back; a free in four pending: data only), plain and three times under memcheck, then
# every suite under every sanitizer again (scripts/gpu-test run all). Carry: build/gpu/tests/{stash_tests,
# stash_cuda_tests,stash_thrust_tests}, build/gpu/lib, build/gpu/rev.
L=/tmp/gs3; mkdir -p $L
export LD_LIBRARY_PATH=$PWD/build/gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
T=build/gpu/tests/stash_cuda_tests
W="aliases (GPU): a random walk with kernels writing every block keeps each block's data"
$T "$W" -s 2>&1 | grep -E "alias_activations|passed|failed|test cases" > $L/walk-plain.txt; echo "rc=${PIPESTATUS[0]}" >> $L/walk-plain.txt
for i in 1 2 3; do
  compute-sanitizer --tool memcheck $T "$W" > $L/walk-memcheck-$i.txt 2>&1; echo "rc=$?" >> $L/walk-memcheck-$i.txt
done
STASH_GPU_DEADLINE=${SUITES_S:-300} OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$?" >> $L/suites.txt
(cd $L && tar czf $OUT/logs.tgz .)
cat $L/walk-plain.txt; for i in 1 2 3; do tail -n 4 $L/walk-memcheck-$i.txt; done; tail -n 16 $L/suites.txt
