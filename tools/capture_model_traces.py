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


WORKLOADS: dict[str, tuple[Callable, int]] = {
    "vit_train_amp": (vit_train_amp, 6),
    "effnet_train_multiscale": (effnet_train_multiscale, 10),
    "gpt2_generate_varlen": (gpt2_generate_varlen, 8),
    "mlp_two_streams": (mlp_two_streams, 6),
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
