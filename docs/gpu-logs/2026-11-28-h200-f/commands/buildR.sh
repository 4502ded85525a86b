#!/usr/bin/env bash
# Builds what runs R carry: build/gpu (scripts/gpu-test build, with the NCCL test), the wheel, and
# stash-replay with PyTorch.
set -x
cd /work/main
git rev-parse --short HEAD > .devbuild/rev
time scripts/gpu-test build stash_nccl_tests page_costs > .devbuild/buildR-gpu.log 2>&1; echo "gpu build rc=$?"
rm -f .whl/stash_allocator*.whl
time python3 scripts/e2e --fetch-wheels .whl > .devbuild/buildR-wheel.log 2>&1; echo "wheel rc=$?"
PATH=/work/torchwheel/bin:$PATH cmake -S . -B .devbuild/new6 -DCMAKE_BUILD_TYPE=Release -DSTASH_BUILD_TESTS=OFF -DSTASH_BUILD_EXAMPLES=OFF -DSTASH_BUILD_BENCH=ON -DSTASH_WITH_TORCH=ON -DSTASH_INSTALL=OFF > .devbuild/buildR-replay.log 2>&1
time cmake --build .devbuild/new6 -j2 --target stash-replay >> .devbuild/buildR-replay.log 2>&1; echo "replay rc=$?"
du -sh build/gpu .devbuild/new6/bench/stash-replay .whl
