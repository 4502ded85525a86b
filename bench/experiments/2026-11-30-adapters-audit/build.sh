#!/bin/sh
# build.sh src out [include-root]
INC=${3:-.}  # the repository root
g++ -std=c++20 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
  -I$INC/include -I$INC/tests -I/usr/local/cuda/include -I/usr/local/cuda/include/cccl "$1" $INC/tests/support/failing_heap.cpp -o "$2" -lpthread -L/usr/local/cuda/lib64 -lcudart -Wl,-rpath,/usr/local/cuda/lib64
