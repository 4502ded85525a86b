#!/usr/bin/env bash
# GPU run V2 (thirty-second session, one H200): the CUDA and thrust suites of 677370d (the C interface's
# graph cases sharing one filter, 45ad9c5; every line wrapped at 110 columns, 677370d), plain and under
# every sanitizer (scripts/gpu-test run all). build/gpu/tests/stash_tests is V1's (707805f: the same code
# before the wrapping). Carry: build/gpu/tests/{stash_tests,stash_cuda_tests,stash_thrust_tests},
# build/gpu/lib, build/gpu/rev.
L=/tmp/gv2; mkdir -p $L
export LD_LIBRARY_PATH=$PWD/build/gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "rev $(cat build/gpu/rev)" > $L/rev.txt
build/gpu/tests/stash_cuda_tests "[graph]" -d yes > $L/graph.txt 2>&1; echo "rc=$?" >> $L/graph.txt
STASH_GPU_DEADLINE=${SUITES_S:-330} OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$?" >> $L/suites.txt
(cd $L && tar czf $OUT/logs.tgz .)
grep -aE "test cases|rc=|s: C interface" $L/graph.txt; tail -n 14 $L/suites.txt
