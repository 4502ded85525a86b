#!/bin/sh
# Builds the drivers from the repository root's include/ and tests/ (failing_heap.cpp replaces operator new).
# ./build.sh            ASan+UBSan binaries (sharded_driver, sharded_mt, timeline_driver, stream_alloc_driver)
# ROOT=<tree> builds against another tree's include/ (e.g. the unfixed /work/main); OUT=<dir> puts them there.
# ./build.sh tsan       TSan binaries (*_tsan; not sharded_driver, whose failing heap TSan's operator new excludes)
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${ROOT:-$(cd "$HERE/../../.." && pwd)}
OUT=${OUT:-$HERE/build}
mkdir -p "$OUT"
CXX=${CXX:-clang++}
FLAGS="-std=c++20 -O1 -g -fno-omit-frame-pointer -I$ROOT/include -I$ROOT/tests -I/usr/local/cuda/include"
LIBS="-lpthread -L/usr/local/cuda/lib64 -lcudart -Wl,-rpath,/usr/local/cuda/lib64"
# TSan has its own operator new: the failing heap (which only sharded_driver uses) is left out there.
if [ "$1" = tsan ]; then SAN="-fsanitize=thread"; SUF=_tsan; HEAP=; DRIVERS=${DRIVERS:-sharded_mt timeline_driver stream_alloc_driver}; else SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"; SUF=; HEAP="$ROOT/tests/support/failing_heap.cpp"; fi
for d in ${DRIVERS:-sharded_driver sharded_mt timeline_driver stream_alloc_driver}; do
  [ -f "$HERE/$d.cpp" ] || continue
  $CXX $FLAGS $SAN "$HERE/$d.cpp" $HEAP -o "$OUT/$d$SUF" $LIBS &
  PIDS="$PIDS $!"
done
for p in $PIDS; do wait $p || exit 1; done
