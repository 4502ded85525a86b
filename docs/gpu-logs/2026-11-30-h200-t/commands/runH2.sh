#!/usr/bin/env bash
# GPU run H2 (eighteenth session): the thread-per-request case as changed after run H1 (a second wave
# of threads once the GPU has caught up), alone, under memcheck with leak check, under racecheck, and
# every [streams] case. Built here: build/gpu at the commit in build/gpu/rev. Carry: build/gpu.
export NCCL_NVLS_ENABLE=0
LD_LIBRARY_PATH=build/gpu/lib build/gpu/tests/stash_cuda_tests "*thread per request*" 2>&1 | tail -4
LD_LIBRARY_PATH=build/gpu/lib timeout 200 compute-sanitizer --tool memcheck --leak-check full --error-exitcode 1 build/gpu/tests/stash_cuda_tests "*thread per request*" 2>&1 | tail -4
LD_LIBRARY_PATH=build/gpu/lib timeout 200 compute-sanitizer --tool racecheck --error-exitcode 1 build/gpu/tests/stash_cuda_tests "*thread per request*" 2>&1 | tail -3
LD_LIBRARY_PATH=build/gpu/lib build/gpu/tests/stash_cuda_tests "[streams]" 2>&1 | tail -3
