#!/usr/bin/env bash
# GPU run U1 (thirty-first session, one H200): the CUDA suite's failing-heap test (its failing heap now
# replaces every form of operator new, 438e1c3), plain and under memcheck, then every suite under every
# sanitizer (scripts/gpu-test run all). The first call ran this script with the test's name unescaped:
# Catch2 reads its commas as three names, so the two targeted steps ran no test (the suites did run it).
# The second call ran those two steps again as written here; runU1/heap-*.txt are its. Carry: build/gpu/tests/{stash_tests,stash_cuda_tests,
# stash_thrust_tests}, build/gpu/lib, build/gpu/rev.
L=/tmp/gu1; mkdir -p $L
export LD_LIBRARY_PATH=$PWD/build/gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
T=build/gpu/tests/stash_cuda_tests
echo "library rev $(cat build/gpu/rev)" > $L/rev.txt
$T "manager: a free on another stream completes\\, or fails with nothing changed\\, whatever host allocation fails" -s 2>&1 | grep -aE "REQUIRE|CHECK|passed|failed|test cases|Filters" | tail -n 20 > $L/heap-plain.txt; echo "rc=${PIPESTATUS[0]}" >> $L/heap-plain.txt
$T "manager: a free on another stream completes\\, or fails with nothing changed\\, whatever host allocation fails" > $L/heap-summary.txt 2>&1; echo "rc=$?" >> $L/heap-summary.txt
compute-sanitizer --tool memcheck --leak-check full $T "manager: a free on another stream completes\\, or fails with nothing changed\\, whatever host allocation fails" > $L/heap-memcheck.txt 2>&1; echo "rc=$?" >> $L/heap-memcheck.txt
STASH_GPU_DEADLINE=${SUITES_S:-360} OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$?" >> $L/suites.txt
(cd $L && tar czf $OUT/logs.tgz .)
tail -n 3 $L/heap-summary.txt; tail -n 4 $L/heap-memcheck.txt; tail -n 16 $L/suites.txt
