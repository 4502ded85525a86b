#!/usr/bin/env bash
# Builds what run V3 carries, in /work/wt-lag at main's head: build/gpu (scripts/gpu-test build) and the
# wheel; then copies them into /work/main (.devbuild/v3: whl/, rev; build/gpu less its CMakeFiles).
set -x
cd /work/wt-lag
R=$(git rev-parse --short HEAD)
time scripts/gpu-test build stash_nccl_tests page_costs > /tmp/sw/v3-gpu.log 2>&1; echo "gpu build rc=$?"
rm -rf /tmp/sw/whlv3; time python3 scripts/e2e --fetch-wheels /tmp/sw/whlv3 > /tmp/sw/v3-wheel.log 2>&1; echo "wheel rc=$?"
rm -rf /work/main/.devbuild/v3 && mkdir -p /work/main/.devbuild/v3/whl
cp /tmp/sw/whlv3/stash*.whl /work/main/.devbuild/v3/whl/ && echo $R > /work/main/.devbuild/v3/rev
rm -rf /work/main/build/gpu && mkdir -p /work/main/build/gpu && (cd build/gpu && tar cf - --exclude=CMakeFiles .) | (cd /work/main/build/gpu && tar xf -)
du -sh /work/main/build/gpu /work/main/.devbuild/v3
