"""One process of scripts/e2e: one workload under one allocator. Writes one JSON record.

    python bench/e2e/worker.py --workload resnet50 --allocator stash --steps 20 --warmup 3 --out r.json

The allocator is chosen before CUDA is touched: PYTORCH_ALLOC_CONF for PyTorch's own variants (set by
scripts/e2e in this process's environment), a CUDAPluggableAllocator for RMM and stash. Step times are
host wall-clock times between device synchronizations; peak memory is both the allocator's own figure
and the driver's (cudaMemGetInfo, sampled by a thread, above what was in use before the workload).
`--fake` writes a record without torch (scripts/e2e --dry-run tests its plumbing with it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
import traceback

MiB = 1 << 20


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", required=True)
    p.add_argument("--allocator", required=True, choices=["native", "expandable", "async", "rmm", "stash"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rep", type=int, default=0)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--sample-ms", type=float, default=5.0, help="cudaMemGetInfo sampling period")
    p.add_argument("--out", required=True, help="JSON file to write (distributed: one per rank, .rankN)")
    p.add_argument("--fake", action="store_true", help="no torch: a synthetic record (plumbing tests)")
    p.add_argument("--memory-limit-mib", type=float, default=None,
                   help="torch.cuda.set_per_process_memory_fraction of this many MiB of the device, set once "
                        "CUDA is up (stash takes it through its hook); scripts/e2e --least-memory")
    p.add_argument("--memory-history", metavar="FILE",
                   help="native/expandable: record PyTorch's memory history and write its snapshot (a pickle, "
                        "tools/torch_snapshot_to_csv.py makes it a trace) to FILE (distributed: FILE.rankN)")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")
    return args


def fake_record(args):
    rng = random.Random(f"{args.workload}/{args.allocator}")
    # A fake workload needs what its fake allocator holds (100-200 MiB) and runs out of memory below it.
    needs = int(rng.uniform(100, 200) * MiB)
    if args.memory_limit_mib is not None and args.memory_limit_mib * MiB < needs:
        raise MemoryError(f"fake: {needs} bytes needed, limit {args.memory_limit_mib} MiB")
    rng = random.Random(f"{args.workload}/{args.allocator}/{args.rep}")
    base = 10.0 + len(args.workload)
    times = [base * (1 + 0.05 * rng.random()) for _ in range(args.steps)]
    results = [1.0 / (i + 1) for i in range(args.steps)]
    record = dict(ms_per_step=times, results=results, peak_reserved_allocator=needs,
                  peak_allocated_allocator=int(rng.uniform(80, 100) * MiB),
                  peak_driver=int(rng.uniform(150, 250) * MiB), after_empty_cache=None, live_after=None,
                  device="fake", torch=None, description=f"fake {args.workload}", config={})
    if args.allocator == "stash":
        record["stash"] = dict(options="fake", hooks_wired=True, stream_ordered=False)
    return record


class DriverSampler:
    """Samples cudaMemGetInfo on one device from a thread; peak bytes in use above the baseline."""

    def __init__(self, torch, device, period_s):
        self.torch, self.device, self.period = torch, device, period_s
        free, total = torch.cuda.mem_get_info(device)
        self.baseline = total - free
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.period):
            self.sample()

    def sample(self):
        free, total = self.torch.cuda.mem_get_info(self.device)
        self.peak = max(self.peak, total - free)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()


# The allocator figures a record keeps, in PyTorch's names (stash.torch.memory_stats uses them too).
FIGURES = ["allocated_bytes.all.current", "allocated_bytes.all.peak", "reserved_bytes.all.current",
           "reserved_bytes.all.peak"]
STASH_FIGURES = ["requested_bytes.all.peak", "inactive_split_bytes.all.current", "num_device_alloc", "num_device_free",
                 "stash.page_moves"]


def setup_allocator(name, device_index):
    """Switches PyTorch's CUDA allocator; must run before CUDA is initialized. Returns a function that
    gives the allocator's own figures for a device, a dict of PyTorch's key names (reserved_bytes.all.peak,
    allocated_bytes.all.peak, ...current); a figure the allocator does not have is absent."""
    import torch

    expected = {"native": None, "expandable": "expandable_segments:True", "async": "backend:cudaMallocAsync"}
    if name in expected:
        conf = os.environ.get("PYTORCH_ALLOC_CONF") or os.environ.get("PYTORCH_CUDA_ALLOC_CONF")
        if conf != expected[name]:
            raise SystemExit(f"worker: allocator {name} needs PYTORCH_ALLOC_CONF={expected[name]} (got {conf})")

        def figures(device):
            try:
                stats = torch.cuda.memory_stats(device)
            except RuntimeError:
                return {}
            return {k: int(stats[k]) for k in FIGURES if stats.get(k)}

        return figures

    if name == "stash":
        import stash.torch

        stash.torch.enable()

        def figures(device):
            stats = stash.torch.memory_stats(device)
            return {k: int(stats[k]) for k in FIGURES + STASH_FIGURES if k in stats}

        return figures

    if name == "rmm":
        # RMM's pool on this process's device, growing from 256 MiB, behind PyTorch's pluggable allocator.
        from cuda.bindings import runtime as cudart
        import rmm
        from rmm.allocators.torch import rmm_torch_allocator

        (err,) = cudart.cudaSetDevice(device_index)
        if int(err) != 0:
            raise RuntimeError(f"cudaSetDevice({device_index}) failed: {err}")
        pool = rmm.mr.PoolMemoryResource(rmm.mr.CudaMemoryResource(), initial_pool_size=256 * MiB)
        rmm.mr.set_per_device_resource(device_index, pool)
        torch.cuda.memory.change_current_allocator(rmm_torch_allocator)

        def figures(device):
            # The pool only grows: its size at the end is its peak.
            try:
                return {"reserved_bytes.all.peak": int(pool.pool_size())}
            except AttributeError:
                return {}

        return figures

    raise SystemExit(f"worker: unknown allocator {name}")


def run(args):
    distributed = "LOCAL_RANK" in os.environ
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    allocator_figures = setup_allocator(args.allocator, local_rank)  # before anything touches CUDA

    import torch

    import workloads

    if distributed:
        import torch.distributed as dist

        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
    device = torch.device("cuda", local_rank)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.cuda.init()
    torch.zeros(1, device=device)  # context and allocator up before the baseline
    if args.memory_limit_mib is not None:
        total = torch.cuda.mem_get_info(device)[1]
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.memory_limit_mib * MiB / total), device)

    # stash keeps PyTorch's memory history in its hooks extension (stash.torch; python/README.md).
    history = args.memory_history and args.allocator in ("native", "expandable", "stash")
    if history:
        torch.cuda.memory._record_memory_history(max_entries=2_000_000)
    sampler = DriverSampler(torch, device, args.sample_ms / 1000.0)
    times, results, step_figures = [], [], []
    with sampler:
        work = workloads.WORKLOADS[args.workload](device, args.seed)
        for i in range(args.warmup + args.steps):
            torch.cuda.synchronize(device)
            start = time.perf_counter()
            result = work.step(i)
            torch.cuda.synchronize(device)
            elapsed = (time.perf_counter() - start) * 1000.0
            if i >= args.warmup:
                times.append(elapsed)
            results.append(result)
            # Where memory stood after each step: live, held, and (stash) cached but free.
            step_figures.append(dict(allocator_figures(device), driver=sampler.peak - sampler.baseline))
    figures = allocator_figures(device)
    record = dict(
        ms_per_step=times,
        results=results,
        peak_reserved_allocator=figures.get("reserved_bytes.all.peak"),
        peak_allocated_allocator=figures.get("allocated_bytes.all.peak"),
        step_figures=step_figures,
        peak_driver=sampler.peak - sampler.baseline,
        device=torch.cuda.get_device_name(device),
        torch=torch.__version__,
        description=work.description,
        config=work.config,
    )
    if history:
        import pickle

        rank = os.environ.get("RANK")
        path = args.memory_history if rank is None else f"{args.memory_history}.rank{rank}"
        with open(path, "wb") as f:
            pickle.dump(torch.cuda.memory._snapshot(), f)
        torch.cuda.memory._record_memory_history(enabled=None)
    # What stays held once everything is freed and the cache emptied (leak check).
    del work
    import gc

    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info(device)
    record["after_empty_cache"] = (total - free) - sampler.baseline
    if args.allocator == "stash":
        import stash
        import stash.torch

        record["stash"] = dict(options=stash.current_options(), hooks_wired=stash.torch.hooks_wired(),
                               stream_ordered=stash.stream_ordered())
        stats = stash.torch.memory_stats(device)
        record["live_after"] = stats["allocated_bytes.all.current"]
        record["reserved_after_empty_cache"] = stats["reserved_bytes.all.current"]
    if distributed:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return record


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    rank = os.environ.get("RANK")
    out = args.out if rank is None else f"{args.out}.rank{rank}"
    started = time.time()
    record = dict(workload=args.workload, allocator=args.allocator, rep=args.rep, steps=args.steps,
                  warmup=args.warmup, seed=args.seed, rank=int(rank) if rank is not None else None,
                  host=platform.node(), ok=False, error=None, memory_limit_mib=args.memory_limit_mib)
    try:
        record.update(fake_record(args) if args.fake else run(args))
        record["ok"] = True
        if record["ms_per_step"]:
            record["median_ms"] = statistics.median(record["ms_per_step"])
    except BaseException as error:  # the record says what failed; the driver goes on with the others
        record["error"] = f"{type(error).__name__}: {error}"
        record["out_of_memory"] = isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
        record["traceback"] = traceback.format_exc()
        print(record["traceback"], file=sys.stderr)
    record["wall_s"] = time.time() - started
    with open(out, "w") as f:
        json.dump(record, f)
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
