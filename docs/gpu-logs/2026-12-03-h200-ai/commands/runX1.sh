#!/usr/bin/env bash
# GPU run X1 (thirty-fourth session, one H200): stash.torch's memory history and snapshots
# (recordHistory, snapshot, isHistoryEnabled, attachOutOfMemoryObserver) and stash_visit_memory.
#   1. every smoke check of stash.torch, and CuPy's, with the session's wheel (.devbuild/w4);
#   2. the two new checks with the last session's wheel (.devbuild/w3), to see them fail before;
#   3. scripts/e2e on resnet50 under native and stash with --memory-history, each pickle turned into a
#      trace by tools/torch_snapshot_to_csv.py, and the two request sequences compared;
#   4. the CUDA C-interface cases, then every suite under every sanitizer (scripts/gpu-test run all).
# Each step's logs packed as it ends. Carry: .devbuild/w3, .devbuild/w4,
# build/gpu/tests/{stash_tests,stash_cuda_tests,stash_thrust_tests}, build/gpu/lib, build/gpu/rev.
L=/tmp/gx1; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz --exclude='*.pickle' .); }
export PYTHONUNBUFFERED=1 CUDA_VISIBLE_DEVICES=0
start=$SECONDS
{ nvidia-smi --query-gpu=name,driver_version --format=csv; echo "library rev $(cat build/gpu/rev)"; echo "wheel rev $(cat .devbuild/w4/rev)";
  python3 -c 'import torch; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version())'; } > $L/gpu.txt 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site4 .devbuild/w4/stash*.whl > $L/pip4.log 2>&1
STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext4 PYTHONPATH=/tmp/site4 timeout 300 python3 python/tests/gpu/smoke_torch.py > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$? s=$((SECONDS-start))" >> $L/smoke_torch.log
PYTHONPATH=/tmp/site4 timeout 60 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$? s=$((SECONDS-start))" >> $L/smoke_cupy.log
pack
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site3 .devbuild/w3/stash*.whl > $L/pip3.log 2>&1
STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext3 PYTHONPATH=/tmp/site3 timeout 150 python3 python/tests/gpu/smoke_torch.py memory_history_and_snapshot_show_stashs_memory out_of_memory_reaches_the_observers_and_the_trace > $L/smoke_w3_wheel.log 2>&1; echo "w3 wheel rc=$? s=$((SECONDS-start))" >> $L/smoke_w3_wheel.log
pack
mkdir -p $L/e2e-wheel && cp .devbuild/w4/*.whl $L/e2e-wheel/
timeout 200 python3 scripts/e2e --wheels $L/e2e-wheel --scratch /tmp/e2e-scratch --reps 1 --steps 5 --warmup 1 --workloads resnet50 \
  --allocators native,stash --memory-history $L/hist --out $L/e2e > $L/e2e.log 2>&1; echo "e2e rc=$? s=$((SECONDS-start))" >> $L/e2e.log
for a in native stash; do python3 tools/torch_snapshot_to_csv.py $L/hist/resnet50-$a-0.pickle -o $L/resnet50-$a.csv >> $L/e2e.log 2>&1; done
python3 - $L >> $L/e2e.log 2>&1 <<'PY'
import csv, sys
L = sys.argv[1]
seq = {}
for a in ("native", "stash"):
    with open(f"{L}/resnet50-{a}.csv") as f:
        rows = list(csv.reader(f))[1:]
    seq[a] = [(r[2], int(r[4])) for r in rows]
    print(a, "events", len(seq[a]), "allocs", sum(1 for x in seq[a] if x[0] == "allocate"),
          "bytes asked", sum(s for x, s in seq[a] if x == "allocate"))
same = sum(1 for x, y in zip(seq["native"], seq["stash"]) if x == y)
print("same (action, size) at the same position:", same, "of", max(len(v) for v in seq.values()))
PY
pack
export LD_LIBRARY_PATH=$PWD/build/gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
build/gpu/tests/stash_cuda_tests "[c_interface]" > $L/c_interface.txt 2>&1; echo "c_interface rc=$? s=$((SECONDS-start))" >> $L/c_interface.txt
STASH_GPU_DEADLINE=${SUITES_S:-200} OUT=$L/suites scripts/gpu-test run all > $L/suites.txt 2>&1; echo "suites rc=$? s=$((SECONDS-start))" >> $L/suites.txt
pack
cat $L/gpu.txt; grep -v "^    " $L/smoke_w3_wheel.log | tail -n 4; grep -A4 "^FAIL" $L/smoke_w3_wheel.log | head -14
grep -v "^    " $L/smoke_torch.log | tail -n 30; grep -A12 "^FAIL" $L/smoke_torch.log | head -40; tail -n 3 $L/smoke_cupy.log
tail -n 8 $L/e2e.log; tail -n 3 $L/c_interface.txt; tail -n 14 $L/suites.txt
