#!/usr/bin/env bash
# Builds what run S carries: build/gpu (scripts/gpu-test build, with page_costs) and stash-replay with
# PyTorch, at main's head (the chunk moves).
set -x
cd /work/main
git rev-parse --short HEAD > .devbuild/rev
time scripts/gpu-test build stash_nccl_tests page_costs > .devbuild/buildS-gpu.log 2>&1; echo "gpu build rc=$?"
time cmake --build .devbuild/new6 -j2 --target stash-replay > .devbuild/buildS-replay.log 2>&1; echo "replay rc=$?"
du -sh build/gpu .devbuild/new6/bench/stash-replay
