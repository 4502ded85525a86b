"""The end-to-end workloads of scripts/e2e: small but real models with random weights (no downloads).

Each builder takes (device, rng_seed, options) and returns a Workload whose step() runs one step and
returns a number that identifies its result (a loss, or a digest of generated tokens), which scripts/e2e
compares with PyTorch's own allocator. Every random choice comes from seeded generators, so a workload
does the same work in every process.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Callable, Dict, List

import torch


@dataclass
class Workload:
    step: Callable[[int], float]          # step(i) -> a result to compare across allocators
    description: str
    config: Dict[str, object] = field(default_factory=dict)
    streams: List[torch.cuda.Stream] = field(default_factory=list)


def _seed(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    random.seed(seed)
    return torch.Generator(device="cuda").manual_seed(seed)


def resnet50_train(device, seed: int, batch: int = 64, image: int = 224) -> Workload:
    import torchvision

    _seed(seed)
    model = torchvision.models.resnet50(weights=None).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator(device=device).manual_seed(seed)

    def step(i: int) -> float:
        x = torch.randn(batch, 3, image, image, device=device, generator=gen)
        y = torch.randint(0, 1000, (batch,), device=device, generator=gen)
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return Workload(step, f"ResNet-50 training, batch {batch}, {image}x{image}, fp32, SGD",
                    dict(batch=batch, image=image))


def gpt2_train_varlen(device, seed: int, batch: int = 8, layers: int = 12, min_len: int = 64,
                      max_len: int = 1024) -> Workload:
    from transformers import GPT2Config, GPT2LMHeadModel

    _seed(seed)
    config = GPT2Config(n_layer=layers, n_embd=768, n_head=12, n_positions=max_len, vocab_size=50257)
    model = GPT2LMHeadModel(config).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    lengths = random.Random(seed)
    gen = torch.Generator(device=device).manual_seed(seed)

    def step(i: int) -> float:
        length = lengths.randint(min_len, max_len)
        ids = torch.randint(0, config.vocab_size, (batch, length), device=device, generator=gen)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return Workload(step, f"GPT-2 ({layers} layers, 768 wide) training, batch {batch}, random length "
                          f"{min_len}-{max_len}, bf16 autocast, AdamW",
                    dict(batch=batch, layers=layers, min_len=min_len, max_len=max_len))


def _llama(device, layers: int, hidden: int, intermediate: int, heads: int, max_positions: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads, vocab_size=32000,
                         max_position_embeddings=max_positions, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0)
    model = LlamaForCausalLM(config).to(device=device, dtype=torch.bfloat16)
    model.eval()
    return model, config


def _digest(tokens: torch.Tensor) -> float:
    # A number that changes when any generated token does (compared exactly across allocators).
    data = tokens.to("cpu", torch.int64).numpy().tobytes()
    return float(int.from_bytes(hashlib.sha256(data).digest()[:6], "little"))


def llama_generate(device, seed: int, layers: int = 8, hidden: int = 1024, new_tokens: int = 32,
                   max_batch: int = 16, min_prompt: int = 16, max_prompt: int = 1024) -> Workload:
    _seed(seed)
    model, config = _llama(device, layers, hidden, 2816, 16, max_prompt + new_tokens)
    shapes = random.Random(seed)
    gen = torch.Generator(device=device).manual_seed(seed)

    @torch.inference_mode()
    def step(i: int) -> float:
        batch = shapes.randint(1, max_batch)
        prompt = shapes.randint(min_prompt, max_prompt)
        ids = torch.randint(3, config.vocab_size, (batch, prompt), device=device, generator=gen)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
        return _digest(out)

    return Workload(step, f"Llama-style ({layers} layers, {hidden} wide, bf16) greedy generation of "
                          f"{new_tokens} tokens, random batch 1-{max_batch}, prompt {min_prompt}-{max_prompt}",
                    dict(layers=layers, hidden=hidden, new_tokens=new_tokens, max_batch=max_batch,
                         min_prompt=min_prompt, max_prompt=max_prompt))


def small_tensors(device, seed: int, tensors: int = 500, max_elements: int = 1 << 16) -> Workload:
    """Launch-bound: hundreds of small tensors per step, each a few tiny kernels, so host time per
    allocation shows in the step time."""
    _seed(seed)
    sizes_rng = random.Random(seed)
    # Log-uniform sizes from 1 element to max_elements: most tensors are tiny, a few are not.
    sizes = [max(1, int(2 ** sizes_rng.uniform(0, max_elements.bit_length() - 1))) for _ in range(tensors)]
    gen = torch.Generator(device=device).manual_seed(seed)
    weights = torch.randn(max_elements, device=device, generator=gen)

    def step(i: int) -> float:
        acc = torch.zeros((), device=device)
        kept = []
        for j, n in enumerate(sizes):
            a = weights[:n] * (1.0 + 1e-3 * j)
            b = a.square().add_(1.0)
            acc = acc + b.mean()
            if j % 8 == 0:
                kept.append(b)  # some tensors live across the step: the cache fragments as in a real model
        acc = acc + sum(t.sum() for t in kept) * 1e-6
        return acc.item()

    return Workload(step, f"{tensors} small tensors per step (1-{max_elements} elements, log-uniform), "
                          f"about {4 * tensors} allocations and kernels per step",
                    dict(tensors=tensors, max_elements=max_elements))


def alloc_churn(device, seed: int, allocations: int = 20000, live: int = 64, max_elements: int = 1 << 18) -> Workload:
    """Allocation-bound: tensors made and dropped with no kernel between them (torch.empty, a rolling
    window of `live` kept), so a step's time is PyTorch's tensor bookkeeping plus the allocator's host
    time, through the allocator interface each one plugs into."""
    _seed(seed)
    sizes_rng = random.Random(seed)
    sizes = [max(1, int(2 ** sizes_rng.uniform(0, max_elements.bit_length() - 1))) for _ in range(allocations)]
    slots = [sizes_rng.randrange(live) for _ in range(allocations)]

    def step(i: int) -> float:
        kept = [None] * live
        total = 0
        for n, slot in zip(sizes, slots):
            kept[slot] = torch.empty(n, device=device)  # the block it replaces is freed here
            total += kept[slot].numel()
        return float(total)

    return Workload(step, f"{allocations} torch.empty per step (1-{max_elements} floats, log-uniform, "
                          f"{live} kept in a rolling window), no kernels",
                    dict(allocations=allocations, live=live, max_elements=max_elements))


def decode_batch1(device, seed: int, layers: int = 4, hidden: int = 512, tokens: int = 64) -> Workload:
    """Launch-bound: batch-1 greedy decoding with a KV cache, one token per forward pass."""
    _seed(seed)
    model, config = _llama(device, layers, hidden, 1408, 8, 64 + tokens)
    gen = torch.Generator(device=device).manual_seed(seed)

    @torch.inference_mode()
    def step(i: int) -> float:
        ids = torch.randint(3, config.vocab_size, (1, 16), device=device, generator=gen)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens,
                             min_new_tokens=tokens, do_sample=False, pad_token_id=0)
        return _digest(out)

    return Workload(step, f"batch-1 greedy decoding, Llama-style {layers} layers {hidden} wide, {tokens} tokens",
                    dict(layers=layers, hidden=hidden, tokens=tokens))


def multistream(device, seed: int, micro_batches: int = 4, batch: int = 512, width: int = 4096) -> Workload:
    """A copy stream brings each micro-batch to the GPU while the compute stream trains on the one
    before; every batch is allocated on the copy stream, used on the compute stream (record_stream),
    and freed while work that reads it may still be queued."""
    _seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(width, width), torch.nn.GELU(), torch.nn.Linear(width, width), torch.nn.GELU(),
        torch.nn.Linear(width, 16)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    cpu_gen = torch.Generator().manual_seed(seed)
    host = [torch.randn(batch, width, generator=cpu_gen).pin_memory() for _ in range(2 * micro_batches)]
    copy_stream = torch.cuda.Stream(device=device)
    compute = torch.cuda.current_stream(device)

    def step(i: int) -> float:
        total = torch.zeros((), device=device)
        for m in range(micro_batches):
            with torch.cuda.stream(copy_stream):
                x = host[(i * micro_batches + m) % len(host)].to(device, non_blocking=True)
                y = x[:, :16].roll(1, dims=0)  # the target: also made on the copy stream
            compute.wait_stream(copy_stream)
            x.record_stream(compute)
            y.record_stream(compute)
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total = total + loss.detach()
            del x, y  # freed while the compute stream may still read them
        return total.item()

    return Workload(step, f"copy stream + compute stream with record_stream: MLP {width} wide, "
                          f"{micro_batches} micro-batches of {batch} per step",
                    dict(micro_batches=micro_batches, batch=batch, width=width), [copy_stream])


def cuda_graph(device, seed: int, batch: int = 64, width: int = 2048, layers: int = 8, replays: int = 8) -> Workload:
    """Inference through a CUDA graph captured once (torch.cuda.graph: its memory in a graph pool),
    replayed between eager passes of the same model on batches of random sizes. A replay that wrote
    into memory made after the capture would change the eager results, which are compared with
    PyTorch's own allocator."""
    _seed(seed)
    model = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.GELU())
                                  for _ in range(layers)]).to(device).eval()
    gen = torch.Generator(device=device).manual_seed(seed)
    sizes = random.Random(seed)
    static_in = torch.zeros(batch, width, device=device)
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.no_grad(), torch.cuda.stream(side):
        for _ in range(3):  # warm-up on a side stream, as torch.cuda.graph asks
            model(static_in)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        static_out = model(static_in)

    @torch.no_grad()
    def step(i: int) -> float:
        total = torch.zeros((), dtype=torch.float64, device=device)
        for _ in range(replays):
            static_in.copy_(torch.randn(batch, width, device=device, generator=gen))
            graph.replay()
            eager = model(torch.randn(8 * sizes.randint(1, 64), width, device=device, generator=gen))
            total = total + static_out.double().sum() + eager.double().sum()
        return total.item()

    return Workload(step, f"CUDA graph of an MLP ({layers} x {width}, batch {batch}) replayed {replays} times a "
                          f"step between eager passes on random batch sizes",
                    dict(batch=batch, width=width, layers=layers, replays=replays))


def ddp_train(device, seed: int, batch: int = 32, layers: int = 6) -> Workload:
    """DDP over NCCL (one process per GPU, started by torch.distributed.run): GPT-2 with 6 layers on a
    fixed length, so every rank does the same work; the result is the loss averaged over ranks."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from transformers import GPT2Config, GPT2LMHeadModel

    _seed(seed)
    config = GPT2Config(n_layer=layers, n_embd=768, n_head=12, n_positions=512, vocab_size=50257)
    model = DistributedDataParallel(GPT2LMHeadModel(config).to(device), device_ids=[device.index])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator(device=device).manual_seed(seed + dist.get_rank())

    def step(i: int) -> float:
        ids = torch.randint(0, config.vocab_size, (batch, 512), device=device, generator=gen)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        reduced = loss.detach().clone()
        dist.all_reduce(reduced)
        return reduced.item() / dist.get_world_size()

    return Workload(step, f"DDP over NCCL, GPT-2 ({layers} layers) training, batch {batch} x 512 per rank, bf16",
                    dict(batch=batch, layers=layers))


WORKLOADS = {
    "resnet50": resnet50_train,
    "gpt2_varlen": gpt2_train_varlen,
    "llama_generate": llama_generate,
    "small_tensors": small_tensors,
    "alloc_churn": alloc_churn,
    "decode_b1": decode_batch1,
    "multistream": multistream,
    "cuda_graph": cuda_graph,
    "ddp": ddp_train,
}

# Workloads that need torch.distributed.run with this many processes (one GPU each).
DISTRIBUTED = {"ddp": 2}
