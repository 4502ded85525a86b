#!/usr/bin/env bash
# Builds what run T carries, at main's head: build/gpu (scripts/gpu-test build), the wheel, stash-replay
# with PyTorch.
set -x
cd /work/main
git rev-parse --short HEAD > .devbuild/rev
time scripts/gpu-test build stash_nccl_tests page_costs > .devbuild/buildT-gpu.log 2>&1; echo "gpu build rc=$?"
rm -f .whl/stash_allocator*.whl
time python3 scripts/e2e --fetch-wheels .whl > .devbuild/buildT-wheel.log 2>&1; echo "wheel rc=$?"
time cmake --build .devbuild/new6 -j2 --target stash-replay > .devbuild/buildT-replay.log 2>&1; echo "replay rc=$?"
du -sh build/gpu .devbuild/new6/bench/stash-replay .whl
