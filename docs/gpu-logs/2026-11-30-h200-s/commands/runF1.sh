#!/usr/bin/env bash
# GPU run F1 (seventeenth session, main 0153ccf): host waits counted per trace on the GPU, and the suites
# after this session's hardening fixes.
# 1. `stash-replay bench/traces --backend cuda --warm 3` with stash (the default composition, stream order
#    with CUDA events), stash-lean (max_held_over_live 1.05: page moves in every warm replay) and
#    cudaMallocAsync; the JSON's device_syncs and host_waits (new) count the host waits stash's ordering
#    policy made over the cold and warm replays. Two rounds, the allocators' order reversed in the second.
# 2. scripts/gpu-test run tests: the host suite and the CUDA suite (its new case: the manager's free on
#    another stream under every host-heap failure), then the manager's cases under memcheck.
# Binaries built here: .devbuild/f1/stash-replay (Release, with libcudart.so.13 beside it), build/gpu at
# 0153ccf. Carry: .devbuild/f1, build/gpu.
L=/tmp/gf1; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
start=$SECONDS
for r in 1 2; do
  allocs=$([ $r = 1 ] && echo stash,stash-lean,cudaMallocAsync || echo cudaMallocAsync,stash-lean,stash)
  CUDA_VISIBLE_DEVICES=0 LD_LIBRARY_PATH=.devbuild/f1 timeout 200 .devbuild/f1/stash-replay bench/traces --backend cuda \
    --warm 3 --allocators $allocs --json-file $L/f1-r$r.jsonl > $L/f1-r$r.txt 2>&1 || echo "r$r rc=$?" >> $L/failed.txt
  pack
done
echo "replays: $((SECONDS - start)) s" >> $L/gpu.txt
python3 - $L <<'P' | tee $L/summary.txt
import json, glob, sys
print('trace, allocator, round: device_syncs host_waits | reserved/live cold, settled | warm ns/op')
for f in sorted(glob.glob(sys.argv[1] + '/f1-r*.jsonl')):
    for l in open(f):
        d = json.loads(l)
        print(f"{d['trace'][:24]:24} {d['allocator']:16} {f[-7:-6]}: {d['device_syncs']} {d['host_waits']} | "
              f"{d['reserved_over_live']} {d['settled_reserved_over_live']} | {d['ns_per_op_warm']}")
P
pack
STASH_GPU_DEADLINE=200 OUT=$L/suites scripts/gpu-test run tests > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
pack
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
LD_LIBRARY_PATH=build/gpu/lib timeout 120 $CS --tool memcheck --leak-check full --error-exitcode 9 \
  build/gpu/tests/stash_cuda_tests "[manager]" > $L/memcheck-manager.txt 2>&1; echo "memcheck rc=$?" >> $L/memcheck-manager.txt
pack
tail -n 8 $L/suites.txt; tail -n 4 $L/memcheck-manager.txt; cat $L/failed.txt 2>/dev/null
