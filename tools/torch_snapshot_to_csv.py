#!/usr/bin/env python3
"""Turn a PyTorch CUDA memory snapshot into an allocation trace that stash-replay reads.

The output is the CSV of RMM's logging_resource_adaptor: ``Thread,Time,Action,Pointer,Size,Stream``
with Action ``allocate`` or ``free``, pointers in hex.

Input: the pickle written by ``torch.cuda.memory._dump_snapshot(path)`` (or ``pickle.dump`` of
``torch.cuda.memory._snapshot()``) after recording with
``torch.cuda.memory._record_memory_history(max_entries=N)``. The events are
``snapshot['device_traces'][device]``, one dict per event with ``action``, ``addr``, ``size``,
``stream`` and, in recent PyTorch, ``time_us``.

Which events are taken:
  alloc           -> allocate  (a tensor asked PyTorch's allocator for a block)
  free_completed  -> free      (the block is back in PyTorch's cache and can be reused; with
                                record_stream this can be later than free_requested)
Left out: free_requested (the same free, possibly before the block may be reused: replaying it
would let an allocator reuse memory PyTorch could not), segment_alloc / segment_free /
segment_map / segment_unmap (PyTorch's own calls to the driver: the allocator under test makes its
own), snapshot and oom (markers).

The history is a ring buffer of max_entries events, so a trace of a long run starts with frees of
blocks allocated before its first event; stash-replay skips such frees and counts them.

Capture mode (needs torch and a GPU): ``--capture mlp|cnn|transformer|gpt`` runs a model for a
few training steps in this process with history recording on, and converts what it recorded.

Examples:
  torch_snapshot_to_csv.py snapshot.pickle -o trace.csv
  torch_snapshot_to_csv.py --capture transformer --steps 20 -o transformer_train.csv
"""

from __future__ import annotations

import argparse
import io
import pickle
import sys
from typing import IO, Any, Iterable, Iterator, Mapping, Sequence

HEADER = "Thread,Time,Action,Pointer,Size,Stream"
ACTIONS = {"alloc": "allocate", "free_completed": "free"}
MODELS = ("mlp", "cnn", "transformer", "gpt")


def format_time(microseconds: int) -> str:
    """HH:MM:SS.ffffff, as RMM writes it."""
    seconds, micros = divmod(int(microseconds), 1_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{micros:06d}"


def device_events(snapshot: Mapping[str, Any], device: int) -> Sequence[Mapping[str, Any]]:
    traces = snapshot.get("device_traces")
    if traces is None:
        raise ValueError("not a memory snapshot: no 'device_traces' (was history recorded with "
                         "torch.cuda.memory._record_memory_history?)")
    if not 0 <= device < len(traces):
        raise ValueError(f"device {device} not in the snapshot (it has traces for {len(traces)} devices)")
    return traces[device]


def trace_rows(events: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, ...]]:
    """The CSV rows (without header) of the alloc and free_completed events, in order.

    Time is microseconds since the first event kept when the events carry ``time_us``; otherwise the
    event's index, one microsecond apart, so the column stays ordered.
    """
    first_time = None
    for index, event in enumerate(e for e in events if e.get("action") in ACTIONS):
        if "time_us" in event:
            if first_time is None:
                first_time = event["time_us"]
            elapsed = event["time_us"] - first_time
        else:
            elapsed = index + 1
        yield ("0", format_time(elapsed), ACTIONS[event["action"]], hex(int(event["addr"])),
               str(int(event["size"])), hex(int(event.get("stream", 0) or 0)))


def write_trace(snapshot: Mapping[str, Any], out: IO[str], device: int = 0) -> dict[str, int]:
    """Writes the CSV of one device's events; returns how many events of each action were seen."""
    counts: dict[str, int] = {}
    events = device_events(snapshot, device)
    for event in events:
        counts[event.get("action", "?")] = counts.get(event.get("action", "?"), 0) + 1
    out.write(HEADER + "\n")
    for row in trace_rows(events):
        out.write(",".join(row) + "\n")
    return counts


def capture(model_name: str, steps: int, max_entries: int, batch: int) -> dict:
    """Runs a tiny model on the GPU with memory history on; returns the snapshot."""
    import torch  # only this mode needs torch
    from torch import nn

    if not torch.cuda.is_available():
        raise RuntimeError("--capture needs a CUDA device")
    device = torch.device("cuda")
    generator = torch.Generator().manual_seed(0)

    if model_name == "mlp":
        model = nn.Sequential(nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 10))

        def batch_of_inputs():
            return torch.randn(batch, 1024, generator=generator), torch.randint(0, 10, (batch,), generator=generator)
    elif model_name == "cnn":
        model = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(128, 10))

        def batch_of_inputs():
            return (torch.randn(batch, 3, 64, 64, generator=generator),
                    torch.randint(0, 10, (batch,), generator=generator))
    elif model_name == "transformer":
        # Variable sequence lengths: dynamic shapes, the hard case for fragmentation.
        layer = nn.TransformerEncoderLayer(d_model=256, nhead=4, dim_feedforward=1024, batch_first=True)
        model = nn.Sequential(nn.TransformerEncoder(layer, num_layers=2), nn.Flatten(0, 1), nn.Linear(256, 10))

        def batch_of_inputs():
            length = int(torch.randint(8, 257, (1,), generator=generator))
            return (torch.randn(batch, length, 256, generator=generator),
                    torch.randint(0, 10, (batch * length,), generator=generator))
    elif model_name == "gpt":
        # A decoder-only language model (8 pre-norm layers of width 1024, 32k vocabulary, about 170M
        # parameters) trained on batches of random length 64-1024: large, dynamically shaped
        # activations and a 1 GiB logits tensor, the shape of LLM fine-tuning.
        vocab, width = 32000, 1024

        class DecoderLM(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(vocab, width)
                layer = nn.TransformerEncoderLayer(d_model=width, nhead=16, dim_feedforward=4 * width,
                                                   batch_first=True, norm_first=True)
                self.blocks = nn.TransformerEncoder(layer, num_layers=8, enable_nested_tensor=False)
                self.head = nn.Linear(width, vocab)

            def forward(self, tokens):
                mask = nn.Transformer.generate_square_subsequent_mask(tokens.shape[1], device=tokens.device)
                return self.head(self.blocks(self.embed(tokens), mask=mask, is_causal=True)).flatten(0, 1)

        model = DecoderLM()

        def batch_of_inputs():
            length = int(torch.randint(64, 1025, (1,), generator=generator))
            return (torch.randint(0, vocab, (batch, length), generator=generator),
                    torch.randint(0, vocab, (batch * length,), generator=generator))
    else:
        raise ValueError(f"unknown model {model_name!r} (choose from {', '.join(MODELS)})")

    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    torch.cuda.synchronize()
    torch.cuda.memory._record_memory_history(max_entries=max_entries)
    try:
        for _ in range(steps):
            inputs, targets = batch_of_inputs()
            inputs, targets = inputs.to(device), targets.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
        torch.cuda.synchronize()
        return torch.cuda.memory._snapshot()
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="See the module docstring for which events are taken.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("snapshot", nargs="?", help="pickled snapshot ('-' for stdin)")
    source.add_argument("--capture", choices=MODELS, help="record a tiny model in this process (torch + GPU)")
    parser.add_argument("-o", "--output", default="-", help="CSV to write ('-' for stdout, the default)")
    parser.add_argument("--device", type=int, default=0, help="device whose trace to convert (default 0)")
    parser.add_argument("--steps", type=int, default=10, help="--capture: training steps (default 10)")
    parser.add_argument("--batch", type=int, default=32, help="--capture: batch size (default 32)")
    parser.add_argument("--max-entries", type=int, default=1_000_000,
                        help="--capture: history ring buffer size (default 1000000)")
    parser.add_argument("--save-snapshot", help="--capture: also pickle the snapshot here")
    args = parser.parse_args(argv)

    if args.capture:
        try:
            snapshot = capture(args.capture, args.steps, args.max_entries, args.batch)
        except (ImportError, RuntimeError) as e:
            print(f"torch_snapshot_to_csv: --capture needs torch and a CUDA device: {e}", file=sys.stderr)
            return 2
        if args.save_snapshot:
            with open(args.save_snapshot, "wb") as f:
                pickle.dump(snapshot, f)
    elif args.snapshot == "-":
        snapshot = pickle.load(sys.stdin.buffer)
    else:
        with open(args.snapshot, "rb") as f:
            snapshot = pickle.load(f)

    try:
        if args.output == "-":
            counts = write_trace(snapshot, sys.stdout, args.device)
        else:
            # Written whole into memory first: a snapshot refused (no such device) leaves the file as it was.
            text = io.StringIO()
            counts = write_trace(snapshot, text, args.device)
            with open(args.output, "w", newline="") as out:
                out.write(text.getvalue())
    except ValueError as e:
        print(f"torch_snapshot_to_csv: {e}", file=sys.stderr)
        return 2
    summary = ", ".join(f"{action} {n}" for action, n in sorted(counts.items()))
    print(f"torch_snapshot_to_csv: device {args.device}: {summary or 'no events'}; "
          f"kept alloc and free_completed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
