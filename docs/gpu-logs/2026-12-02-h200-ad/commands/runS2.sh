#!/usr/bin/env bash
# GPU run S2 (twenty-ninth session, one H200): every GPU suite under every sanitizer (scripts/gpu-test
# run all) on the session's library (build/gpu, its rev in build/gpu/rev); then, on the same host, the
# host time of the default composition on the CUDA backend against the same allocator over the simulated
# device in stream order (stash-ordered, events complete when asked) and in host order (stash), 10 rounds
# over llama, vit and ddp, to see how much of the warm time is the CUDA backend's own.
# Carry: build/gpu/tests/{stash_tests,stash_cuda_tests,stash_thrust_tests}, build/gpu/lib, build/gpu/rev,
# .devbuild/ab.
L=/tmp/gs2; mkdir -p $L/j
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
echo "build rev $(cat build/gpu/rev 2>/dev/null)" >> $L/gpu.txt
STASH_GPU_DEADLINE=${SUITES_S:-300} OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$?" >> $L/suites.txt
TORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')
for r in $(seq 1 10); do
  for t in llama_train_ckpt_varlen vit_train_amp ddp_gpt2_rank0; do
    LD_LIBRARY_PATH=$TORCH/lib:$PWD/.devbuild/ab .devbuild/ab/stash-replay bench/traces/$t.csv --backend cuda --warm 10 \
      --allocators torch,stash --json >> $L/j/cuda.jsonl 2>>$L/j/err.txt
    LD_LIBRARY_PATH=$TORCH/lib:$PWD/.devbuild/ab .devbuild/ab/stash-replay bench/traces/$t.csv --backend simulated --warm 10 \
      --allocators stash,stash-ordered --json >> $L/j/sim.jsonl 2>>$L/j/err.txt
  done
done
python3 - $L/j <<'P' | tee $L/host.txt
import json, sys, collections, statistics as st
d = collections.defaultdict(list)
for f, tag in (('cuda.jsonl', 'cuda'), ('sim.jsonl', 'sim')):
    for l in open(sys.argv[1] + '/' + f):
        x = json.loads(l); d[(x['trace'], tag + ':' + x['allocator'])].append(x['ns_per_op_warm'])
print("median warm ns/op over 10 rounds (min-max)")
for k in sorted(d):
    v = d[k]; print(f"{k[0][:24]:24} {k[1]:20} {st.median(v):7.1f} ({min(v):.1f}-{max(v):.1f})")
P
(cd $L && tar czf $OUT/logs.tgz .)
tail -n 16 $L/suites.txt
