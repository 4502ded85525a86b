#!/usr/bin/env bash
# GPU run Q on two H200s, the session's last, at the rev in .devbuild/rev: every GPU suite and sanitizer,
# NCCL on stash buffers, and the Python smoke tests but torch.compile's (CUDA graphs, peers, streams).
# Carry: build/gpu (less its CMakeFiles: the carry limit) .devbuild/rev .whl (buildQ.sh)
L=/tmp/gq; rm -rf $L; mkdir -p $L
pack() { (cd $L && tar czf $OUT/logs.tgz .); }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > $L/gpu.txt 2>&1
echo "main at $(cat .devbuild/rev)" >> $L/gpu.txt
STASH_GPU_DEADLINE=200 OUT=$L scripts/gpu-test run all > $L/gpu-test.out 2>&1; echo "gpu-test rc=$?" >> $L/gpu-test.out
pack
LD_LIBRARY_PATH=$PWD/build/gpu/lib timeout 40 build/gpu/tests/stash_nccl_tests > $L/nccl.log 2>&1; echo "nccl rc=$?" >> $L/nccl.log
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl > $L/pip.log 2>&1
export PYTHONPATH=/tmp/site STASH_TORCH_EXTENSION_DIR=/tmp/stash-ext PYTHONUNBUFFERED=1
# The torch.compile checks ran in run P3 on the same library and hooks (nothing under include/,
# integrations/ or python/src changed since a9ff95d but their docs); the rest run here.
timeout 300 python3 python/tests/gpu/smoke_torch.py enable_and_compute too_late_is_a_clear_error set_device_first_is_too_late \
  bad_option_names_itself out_of_memory_is_torch_oom_and_the_process_goes_on empty_cache_leaves_what_is_live \
  memory_fraction_limits_what_stash_holds record_stream_keeps_memory_from_early_reuse \
  record_stream_onto_a_silent_stream_comes_back peer_access_none_copies_between_two_gpus \
  cuda_graph_replays_and_keeps_its_memory > $L/smoke_torch.log 2>&1; echo "smoke_torch rc=$?" >> $L/smoke_torch.log
pack
timeout 50 python3 python/tests/gpu/smoke_cupy.py > $L/smoke_cupy.log 2>&1; echo "smoke_cupy rc=$?" >> $L/smoke_cupy.log
pack
cat $L/gpu.txt; tail -n 14 $L/summary.txt; tail -n 2 $L/nccl.log; tail -n 3 $L/smoke_torch.log; tail -n 3 $L/smoke_cupy.log
grep -h "^FAIL\|FAILED:\|failed:" $L/*.log | sort | uniq -c | head
