"""PyTorch allocates CUDA memory through stash.

    import stash.torch
    stash.torch.enable(page_slack=0.02)    # before any CUDA tensor and before torch.cuda.set_device
    ...
    stash.torch.memory_stats(0)["reserved_bytes.all.peak"]

enable() builds a small C++ extension against the running torch on first use (cached; see
`extension_dir()`), which wires the hooks PyTorch exposes only in C++: record_stream, empty_cache,
set_per_process_memory_fraction (a limit on what stash holds), CUDA graph pools (torch.cuda.graph:
a graph's memory stays its own until the graph is gone), peer access, and out-of-memory as torch.cuda.OutOfMemoryError. When it cannot be
built (no compiler, no CUDA headers), enable() falls back to torch.cuda.memory.CUDAPluggableAllocator
with alloc and free alone and warns: then Tensor.record_stream and torch.cuda.empty_cache() do not
reach stash, CUDA graphs must not be captured, and an allocation that fails surfaces as a null
pointer.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from typing import Dict, Optional

import torch

from . import _native
from ._native import OptionError, StashError, TooLateError

__all__ = [
    "enable",
    "enabled",
    "hooks_wired",
    "memory_stats",
    "memory_allocated",
    "max_memory_allocated",
    "memory_reserved",
    "max_memory_reserved",
    "empty_cache",
    "reset_peak_memory_stats",
    "extension_dir",
    "build_extension",
    "OptionError",
    "StashError",
    "TooLateError",
]

_TOO_LATE = (
    "stash.torch.enable() must run before PyTorch initializes CUDA: before any CUDA tensor exists and "
    "before torch.cuda.set_device(), torch.cuda.init() or anything else that initializes CUDA. Call it "
    "first thing in the program (with torchrun, in every rank, before set_device)."
)

_state: Dict[str, object] = {"enabled": False, "options": None, "hooks": False}


def extension_dir() -> str:
    """Where the hooks extension is built and cached: STASH_TORCH_EXTENSION_DIR, else a folder per
    torch version and hooks source under ~/.cache/stash."""
    override = os.environ.get("STASH_TORCH_EXTENSION_DIR")
    if override:
        return override
    # Every file the build reads: a changed header must not reuse an extension built from the old one.
    sha = hashlib.sha256()
    for path in (_hooks_source(), _hooks_header()):
        with open(path, "rb") as f:
            sha.update(f.read())
    digest = sha.hexdigest()[:12]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "stash", f"torch-{torch.__version__}-{digest}")


def _hooks_source() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_torch_hooks.cpp")


def _hooks_header() -> str:
    """The memory history's header, which _torch_hooks.cpp includes."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_torch_history.h")


def build_extension(verbose: bool = False):
    """Builds (or loads from the cache) the hooks extension and returns the module. Raises on failure."""
    from torch.utils import cpp_extension

    directory = extension_dir()
    os.makedirs(directory, exist_ok=True)
    return cpp_extension.load(
        name="stash_torch_hooks",
        sources=[_hooks_source()],
        build_directory=directory,
        with_cuda=True,
        extra_cflags=["-O2"],
        verbose=verbose,
    )


def enabled() -> bool:
    """Whether enable() switched this process's PyTorch to stash."""
    return bool(_state["enabled"])


def hooks_wired() -> bool:
    """Whether record_stream, empty_cache, memory fraction, graph pools and OOM reach stash (the extension
    is in use)."""
    return bool(_state["hooks"])


# What PyTorch's contract lets stash do by default (STASH_CONF or keywords override it): a stream that
# Tensor.record_stream names stays alive until the tensor's memory is freed (PyTorch's own allocator
# records an event on it then), so the free records that stream's event itself and the memory comes
# back once its work is done, even when the stream never allocates (a communication or copy stream).
# PyTorch's own allocator shares any CUDA tensor with another process (torch.multiprocessing), so stash
# makes device memory shareable wherever the device can export it; creating it so cost nothing measurable
# on an H200 (bench/RESULTS.md). Small tensors fill the spare mapped pages of large ones before a page is
# mapped for them (fill_mapped_above:8192) by stash's own default since the twenty-second session; until
# then stash.torch turned on small_fill_mapped, the same fill without the rule for the large region's
# top block, which held as much or more on every trace for as much or more host time.
TORCH_DEFAULTS = "free_records_used_streams:on,shareable:auto"
# With the hooks extension in use, PyTorch asks the allocator to enable peer access before a copy between
# two GPUs (enablePeerAccess), and stash grants the peer then, as PyTorch's expandable segments do; so pages
# are mapped for their own GPU alone until then (peer_access:none). Granting every page to every peer up
# front (peer_access:all, stash's default for raw CUDA programs, which stash cannot see enable peer access)
# made a cold start with two GPUs visible cost 1.5-2.5x what it cost with the pages mapped for their own
# GPU only, on H200s (bench/RESULTS.md, thirteenth session, run B1), and torchrun shows every process all the
# host's GPUs. Without the extension nothing would ask, so the default stays all.
TORCH_DEFAULTS_WITH_HOOKS = TORCH_DEFAULTS + ",peer_access:none"


def enable(conf: Optional[str] = None, **options) -> str:
    """Switches PyTorch's CUDA allocator to stash; returns the stash options in force.

    Options: keyword arguments (page_slack=0.05, reserve="64GiB", backend="segments", ...) and the
    STASH_CONF environment variable ("key:value,key:value"), keywords overriding the environment;
    `stash.option_help()` lists them. A bad option raises stash.OptionError naming it. Calling enable()
    again with the same options does nothing; different options raise TooLateError.

    Raises TooLateError when PyTorch has already initialized CUDA."""
    requested = (conf, tuple(sorted(options.items())), os.environ.get("STASH_CONF", ""))
    if _state["enabled"]:
        if requested == _state["options"]:
            return _native.current_options()
        raise TooLateError(
            "stash.torch.enable() was called already with other options (" + _native.current_options() + ")",
            _native.ERROR_TOO_LATE,
        )
    if torch.cuda.is_initialized():
        raise TooLateError(_TOO_LATE, _native.ERROR_TOO_LATE)

    in_force = _native.configure(conf, defaults=TORCH_DEFAULTS, **options)
    path = _native.library_path()

    hooks = None
    if os.environ.get("STASH_TORCH_HOOKS", "1") != "0":
        try:
            hooks = build_extension()
        except Exception as error:  # any failure to build: fall back, loudly
            warnings.warn(
                "stash: could not build the PyTorch hooks extension (" + f"{type(error).__name__}: {error}"[:500]
                + "); falling back to CUDAPluggableAllocator with alloc and free only: Tensor.record_stream "
                "and torch.cuda.empty_cache() do not reach stash, CUDA graphs must not be captured (nothing "
                "keeps a graph's memory for it), and out of memory is not reported as torch.cuda.OutOfMemoryError",
                RuntimeWarning,
                stacklevel=2,
            )
    if hooks is not None:  # options checked above already; the user's own still override these defaults
        in_force = _native.configure(conf, defaults=TORCH_DEFAULTS_WITH_HOOKS, **options)
    try:
        if hooks is not None:
            hooks.install(path)
        else:
            allocator = torch.cuda.memory.CUDAPluggableAllocator(path, "stash_alloc", "stash_free")
            torch.cuda.memory.change_current_allocator(allocator)
    except RuntimeError as error:
        if "already initialized" in str(error):
            raise TooLateError(_TOO_LATE + f" (PyTorch said: {error})", _native.ERROR_TOO_LATE) from error
        raise

    _state.update(enabled=True, options=requested, hooks=hooks is not None)
    return in_force


def _device_index(device) -> int:
    if device is None:
        return torch.cuda.current_device() if torch.cuda.is_initialized() else 0
    if isinstance(device, int):
        return device
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"stash: expected a CUDA device, got {device}")
    return device.index if device.index is not None else torch.cuda.current_device()


def memory_stats(device=None) -> Dict[str, int]:
    """stash's figures for a device under PyTorch's key names where the meaning is the same
    (torch.cuda.memory_stats does not work with a pluggable allocator), plus stash's own as "stash.*"."""
    s = _native.get_stats(_device_index(device))
    stats = {
        "allocated_bytes.all.current": s["allocated_bytes"],
        "allocated_bytes.all.peak": s["peak_allocated_bytes"],
        "requested_bytes.all.current": s["requested_bytes"],
        "requested_bytes.all.peak": s["peak_requested_bytes"],
        "reserved_bytes.all.current": s["reserved_bytes"],
        "reserved_bytes.all.peak": s["peak_reserved_bytes"],
        "inactive_split_bytes.all.current": s["cached_bytes"],
        "allocation.all.current": s["allocations"] - s["deallocations"],
        "allocation.all.allocated": s["allocations"],
        "allocation.all.freed": s["deallocations"],
        "num_alloc_retries": s["oom_retries"],
        "num_ooms": s["num_ooms"],
        "num_device_alloc": s["backend_allocations"],
        "num_device_free": s["backend_frees"],
    }
    stats.update({"stash." + key: value for key, value in s.items()})
    return stats


def memory_allocated(device=None) -> int:
    return memory_stats(device)["allocated_bytes.all.current"]


def max_memory_allocated(device=None) -> int:
    return memory_stats(device)["allocated_bytes.all.peak"]


def memory_reserved(device=None) -> int:
    return memory_stats(device)["reserved_bytes.all.current"]


def max_memory_reserved(device=None) -> int:
    return memory_stats(device)["reserved_bytes.all.peak"]


def empty_cache(device=None) -> None:
    """Gives stash's cached device memory back to the driver (every device when device is None)."""
    _native.empty_cache(-1 if device is None else _device_index(device))


def reset_peak_memory_stats(device=None) -> None:
    _native.reset_peak(_device_index(device))
