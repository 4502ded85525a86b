#!/usr/bin/env bash
# Builds what run U3 carries, in /work/wt-lag at main's head: build/gpu (scripts/gpu-test build), the
# wheel, stash-replay with PyTorch (build/u1, configured by buildU1.sh); then copies them into /work/main.
set -x
cd /work/wt-lag
R=$(git rev-parse --short HEAD)
time scripts/gpu-test build stash_nccl_tests page_costs > /tmp/sw/u3-gpu.log 2>&1; echo "gpu build rc=$?"
time cmake --build build/u1 -j2 --target stash-replay > /tmp/sw/u3-replay.log 2>&1; echo "replay rc=$?"
rm -rf /tmp/sw/whl3; time python3 scripts/e2e --fetch-wheels /tmp/sw/whl3 > /tmp/sw/u3-wheel.log 2>&1; echo "wheel rc=$?"
rm -rf /work/main/.devbuild/u3 && mkdir -p /work/main/.devbuild/u3/whl
cp /tmp/sw/whl3/stash*.whl /work/main/.devbuild/u3/whl/ && cp build/u1/bench/stash-replay /work/main/.devbuild/u3/ && echo $R > /work/main/.devbuild/u3/rev
rm -rf /work/main/build/gpu && mkdir -p /work/main/build/gpu && (cd build/gpu && tar cf - --exclude=CMakeFiles .) | (cd /work/main/build/gpu && tar xf -)
du -sh /work/main/build/gpu /work/main/.devbuild/u3
