#!/usr/bin/env bash
# Builds what run U1 carries, from /work/wt-lag (main at 75d0de2): stash-replay with PyTorch, and the wheel.
set -x
cd /work/wt-lag
git rev-parse --short HEAD > /tmp/sw/u1rev
cmake -S . -B build/u1 -DCMAKE_BUILD_TYPE=Release -DSTASH_BUILD_BENCH=ON -DSTASH_BUILD_C=ON -DSTASH_BUILD_TESTS=OFF \
  -DSTASH_BUILD_EXAMPLES=OFF -DSTASH_WITH_TORCH=ON -DSTASH_PYTHON3=/work/torchwheel/bin/python3 > /tmp/sw/u1-config.log 2>&1; echo "config rc=$?"
time cmake --build build/u1 -j2 --target stash-replay > /tmp/sw/u1-replay.log 2>&1; echo "replay rc=$?"
rm -rf /tmp/sw/whl; time python3 scripts/e2e --fetch-wheels /tmp/sw/whl > /tmp/sw/u1-wheel.log 2>&1; echo "wheel rc=$?"
ls -la /tmp/sw/whl
