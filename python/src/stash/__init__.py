"""stash: caching allocators for CUDA device memory and pinned host memory.

    import stash.torch
    stash.torch.enable()        # first thing, before any CUDA tensor: PyTorch allocates through stash

    import stash.cupy
    stash.cupy.enable()         # CuPy's device and pinned memory through stash

The native library is plain C (stash_c.h); `stash.library_path()` names it, for PyTorch's
CUDAPluggableAllocator or any other loader. Options: `stash.configure(...)` or STASH_CONF.
"""

from ._native import (
    IpcError,
    OptionError,
    OutOfMemoryError,
    StashError,
    TooLateError,
    backing,
    configure,
    current_options,
    device_count,
    empty_cache,
    empty_pinned_cache,
    flush_stream,
    get_pinned_stats,
    get_stats,
    grant_peer_access,
    ipc_close,
    ipc_export,
    ipc_open,
    last_error,
    library_path,
    memory_map,
    option_help,
    reset_peak,
    set_memory_fraction,
    set_memory_limit,
    stream_ordered,
)

__version__ = "0.1.0"

__all__ = [
    "IpcError",
    "OptionError",
    "OutOfMemoryError",
    "StashError",
    "TooLateError",
    "backing",
    "configure",
    "current_options",
    "device_count",
    "empty_cache",
    "empty_pinned_cache",
    "flush_stream",
    "get_pinned_stats",
    "get_stats",
    "grant_peer_access",
    "ipc_close",
    "ipc_export",
    "ipc_open",
    "last_error",
    "library_path",
    "memory_map",
    "option_help",
    "reset_peak",
    "set_memory_fraction",
    "set_memory_limit",
    "stream_ordered",
]
