#!/usr/bin/env bash
# GPU run X1 (one H200): three new allocation traces for issue 11's "on ones you have not seen", captured
# with PyTorch 2.11's memory history (tools/capture_model_traces.py): Llama training with activation
# checkpointing, T5 training, DeepLabV3 segmentation at several resolutions. Models from their configs.
L=/tmp/gx1; rm -rf $L; mkdir -p $L/traces
nvidia-smi --query-gpu=name,driver_version --format=csv > $L/gpu.txt 2>&1
python3 -c 'import torch, torchvision, transformers; print(torch.__version__, torchvision.__version__, transformers.__version__)' >> $L/gpu.txt 2>&1
for w in llama_train_ckpt_varlen t5_train_varlen seg_train_multiscale; do
  timeout 170 python3 tools/capture_model_traces.py --out $L/traces $w > $L/$w.out 2>&1; echo "$w rc=$?" >> $L/$w.out
done
cp -r $L $OUT/
cat $L/gpu.txt; tail -n 3 $L/*.out; ls -la $L/traces
