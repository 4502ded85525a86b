#!/usr/bin/env bash
# GPU run Q4 (twenty-seventh session, one H200): every GPU suite under every sanitizer
# (scripts/gpu-test run all) on the session's final library (build/gpu; its rev in build/gpu/rev).
# Carry: build/gpu/tests/stash_tests, build/gpu/tests/stash_cuda_tests, build/gpu/tests/stash_thrust_tests,
# build/gpu/lib, build/gpu/rev.
L=/tmp/gq4; mkdir -p $L
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
echo "build rev $(cat build/gpu/rev 2>/dev/null)" >> $L/gpu.txt
STASH_GPU_DEADLINE=${SUITES_S:-300} OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$?" >> $L/suites.txt
(cd $L && tar czf $OUT/logs.tgz .)
tail -n 16 $L/suites.txt
