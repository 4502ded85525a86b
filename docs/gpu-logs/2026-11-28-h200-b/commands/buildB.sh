#!/usr/bin/env bash
set -x
cd /work/main
time scripts/gpu-test build > .devbuild/buildB-gpu.log 2>&1; echo "gpu build rc=$?"
rm -f .whl/stash_allocator*.whl
time python3 scripts/e2e --fetch-wheels .whl > .devbuild/buildB-wheel.log 2>&1; echo "wheel rc=$?"
PATH=/work/torchwheel/bin:$PATH cmake -S . -B .devbuild/new4 -DCMAKE_BUILD_TYPE=Release -DSTASH_BUILD_TESTS=OFF -DSTASH_BUILD_EXAMPLES=OFF -DSTASH_BUILD_BENCH=ON -DSTASH_WITH_TORCH=ON -DSTASH_INSTALL=OFF > .devbuild/buildB-replay.log 2>&1
time cmake --build .devbuild/new4 -j2 --target stash-replay >> .devbuild/buildB-replay.log 2>&1; echo "replay rc=$?"
