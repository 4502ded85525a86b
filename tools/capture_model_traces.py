#!/usr/bin/env python3
"""Record allocation traces of real models for stash-replay (needs torch, torchvision, transformers, a GPU).

Each workload runs in this process with PyTorch's memory history on from before the model is moved to
the GPU, so the trace holds every allocation the program made (weights included), and is converted with
torch_snapshot_to_csv.write_trace. The models are built from their configurations (random weights): the
GPU machine reaches no network, and allocation patterns do not depend on the weights.

Workloads (chosen to differ from bench/traces: other architectures, mixed precision, shapes that change,
inference with a growing cache, a second stream):
  vit_train_amp            torchvision ViT-B/16 training, batch 48, bf16 autocast
  effnet_train_multiscale  torchvision EfficientNet-B0 training, batch 64, resolution drawn per step
                           from 128-288 (multi-scale training: activation shapes change every step)
  gpt2_generate_varlen     transformers GPT-2 (124M) generation, fp16, KV cache, batch 1-16 and prompt
                           16-512 tokens drawn per request, 12 new tokens (a server's changing shapes)
  mlp_two_streams          a copy stream prefetches each batch (record_stream) while the default stream
                           trains a 4096-wide MLP: blocks freed on one stream and allocated on the other
  llama_train_ckpt_varlen  transformers Llama (12 layers, 1024 wide, grouped-query attention) training,
                           bf16 autocast, AdamW, activation checkpointing (recomputed in the backward
                           pass), batch 4-16 and 128-1024 tokens drawn per step
  t5_train_varlen          transformers T5 (6+6 layers, 512 wide) training, encoder 64-512 and decoder
                           16-128 tokens drawn per step, batch 32 (an encoder-decoder: two sequence
                           lengths at once)
  seg_train_multiscale     torchvision DeepLabV3-ResNet50 segmentation training, batch 8, square inputs
                           of 256-512 pixels drawn per step (dilated convolutions: large activations)

Example: capture_model_traces.py --out bench/traces vit_train_amp gpt2_generate_varlen
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_snapshot_to_csv import write_trace  # noqa: E402


def vit_train_amp(torch, steps):
    import torchvision
    model = torchvision.models.vit_b_16(weights=None).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randn(48, 3, 224, 224, generator=gen).cuda()
        y = torch.randint(0, 1000, (48,), generator=gen).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def effnet_train_multiscale(torch, steps):
    import torchvision
    model = torchvision.models.efficientnet_b0(weights=None).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        side = 32 * int(torch.randint(4, 10, (1,), generator=gen))  # 128..288
        x = torch.randn(64, 3, side, side, generator=gen).cuda()
        y = torch.randint(0, 1000, (64,), generator=gen).cuda()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def gpt2_generate_varlen(torch, steps):
    from transformers import GPT2Config, GPT2LMHeadModel
    model = GPT2LMHeadModel(GPT2Config()).to(device="cuda", dtype=torch.float16).eval()
    gen = torch.Generator().manual_seed(2)
    with torch.inference_mode():
        for _ in range(steps):
            batch = int(torch.randint(1, 17, (1,), generator=gen))
            prompt = int(torch.randint(16, 513, (1,), generator=gen))
            ids = torch.randint(0, 50257, (batch, prompt), generator=gen).cuda()
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, min_new_tokens=12,
                           do_sample=False, pad_token_id=0)


def mlp_two_streams(torch, steps):
    nn = torch.nn
    model = nn.Sequential(nn.Linear(2048, 4096), nn.GELU(), nn.Linear(4096, 4096), nn.GELU(),
                          nn.Linear(4096, 1000)).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    copy = torch.cuda.Stream()
    gen = torch.Generator().manual_seed(3)
    host = [(torch.randn(1024, 2048, generator=gen).pin_memory(),
             torch.randint(0, 1000, (1024,), generator=gen).pin_memory()) for _ in range(4)]

    def prefetch(i):
        with torch.cuda.stream(copy):
            x, y = host[i % len(host)]
            return x.cuda(non_blocking=True), y.cuda(non_blocking=True)

    nxt = prefetch(0)
    for i in range(steps * 4):
        torch.cuda.current_stream().wait_stream(copy)
        x, y = nxt
        x.record_stream(torch.cuda.current_stream())
        y.record_stream(torch.cuda.current_stream())
        nxt = prefetch(i + 1)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        del x, y


def llama_train_ckpt_varlen(torch, steps):
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=12,
                         num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=1024)
    model = LlamaForCausalLM(config).cuda()
    model.gradient_checkpointing_enable()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(4)
    for _ in range(steps):
        batch = 4 * int(torch.randint(1, 5, (1,), generator=gen))  # 4..16
        tokens = 128 * int(torch.randint(1, 9, (1,), generator=gen))  # 128..1024
        ids = torch.randint(0, 32000, (batch, tokens), generator=gen).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def t5_train_varlen(torch, steps):
    from transformers import T5Config, T5ForConditionalGeneration
    config = T5Config(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6,
                      num_heads=8, decoder_start_token_id=0, pad_token_id=0)
    model = T5ForConditionalGeneration(config).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(5)
    for _ in range(steps):
        source = int(torch.randint(64, 513, (1,), generator=gen))
        target = int(torch.randint(16, 129, (1,), generator=gen))
        ids = torch.randint(1, 32128, (32, source), generator=gen).cuda()
        labels = torch.randint(1, 32128, (32, target), generator=gen).cuda()
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def seg_train_multiscale(torch, steps):
    import torchvision
    model = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None,
                                                               num_classes=21, aux_loss=False).cuda().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(6)
    for _ in range(steps):
        side = 32 * int(torch.randint(8, 17, (1,), generator=gen))  # 256..512
        x = torch.randn(8, 3, side, side, generator=gen).cuda()
        y = torch.randint(0, 21, (8, side, side), generator=gen).cuda()
        loss = torch.nn.functional.cross_entropy(model(x)["out"], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


WORKLOADS: dict[str, tuple[Callable, int]] = {
    "vit_train_amp": (vit_train_amp, 6),
    "effnet_train_multiscale": (effnet_train_multiscale, 10),
    "gpt2_generate_varlen": (gpt2_generate_varlen, 8),
    "mlp_two_streams": (mlp_two_streams, 6),
    "llama_train_ckpt_varlen": (llama_train_ckpt_varlen, 8),
    "t5_train_varlen": (t5_train_varlen, 10),
    "seg_train_multiscale": (seg_train_multiscale, 8),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workloads", nargs="*", default=list(WORKLOADS), help="default: all")
    parser.add_argument("--out", default=".", help="folder for <workload>.csv")
    parser.add_argument("--max-entries", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    import torch
    if not torch.cuda.is_available():
        print("capture_model_traces: needs a CUDA device", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    for name in args.workloads:
        run, steps = WORKLOADS[name]
        torch.cuda.empty_cache()
        torch.cuda.memory._record_memory_history(max_entries=args.max_entries)
        try:
            run(torch, steps)
            torch.cuda.synchronize()
            snapshot = torch.cuda.memory._snapshot()
        finally:
            torch.cuda.memory._record_memory_history(enabled=None)
        path = os.path.join(args.out, f"{name}.csv")
        with open(path, "w", newline="") as out:
            counts = write_trace(snapshot, out, torch.cuda.current_device())
        print(f"{name}: {path}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), flush=True)
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
