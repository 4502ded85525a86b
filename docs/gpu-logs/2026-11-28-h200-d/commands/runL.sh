#!/usr/bin/env bash
# GPU run L (one H200): a trace of gpt2_varlen (GPT-2 training, random lengths) under PyTorch's own
# allocator, from its memory history, for bench/traces: the workload whose peak stash holds at 1.118
# of live end to end.
L=/tmp/gl; rm -rf $L; mkdir -p $L
unset PYTORCH_ALLOC_CONF PYTORCH_CUDA_ALLOC_CONF
CUBLAS_WORKSPACE_CONFIG=:4096:8 timeout 150 python3 bench/e2e/worker.py --workload gpt2_varlen --allocator native \
  --steps 6 --warmup 2 --out $L/record.json --memory-history $L/history.pickle > $L/worker.log 2>&1
echo "worker rc=$?" >> $L/worker.log
timeout 120 python3 tools/torch_snapshot_to_csv.py $L/history.pickle -o $L/gpt2_varlen_train.csv > $L/convert.log 2>&1
echo "convert rc=$?" >> $L/convert.log
ls -la $L; gzip -9 -c $L/gpt2_varlen_train.csv > $OUT/gpt2_varlen_train.csv.gz
cp $L/worker.log $L/convert.log $L/record.json $OUT/
tail -3 $L/worker.log $L/convert.log
