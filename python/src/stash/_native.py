"""ctypes bindings of libstash_c (integrations/c/stash_c.h): no torch, no CuPy."""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Dict, Optional

_LIBRARY_NAME = "libstash_c.so"

# stash_status values (stash_c.h).
OK = 0
ERROR_INVALID_ARGUMENT = 1
ERROR_INVALID_POINTER = 2
ERROR_OUT_OF_MEMORY = 3
ERROR_CUDA = 4
ERROR_UNSUPPORTED = 5
ERROR_TOO_LATE = 6
ERROR_INTERNAL = 7
ERROR_IPC = 8

IPC_HANDLE_MAX = 32768  # STASH_IPC_HANDLE_MAX: bytes a handle's text needs at most, NUL included


class StashError(RuntimeError):
    """A stash call failed; `status` is the C layer's stash_status."""

    def __init__(self, message: str, status: int = ERROR_INTERNAL):
        super().__init__(message)
        self.status = status


class OptionError(StashError, ValueError):
    """A bad option (unknown name, bad value, or a feature stash does not have); the message names it."""


class TooLateError(StashError):
    """Options or the allocator were changed after memory was already allocated."""


class OutOfMemoryError(StashError, MemoryError):
    """A request the memory could not satisfy, after stash released its cache and retried."""


class IpcError(StashError):
    """Another process's block could not be opened: the kernel refused to let this process take the
    exporter's descriptors (no ptrace permission over it), the exporter has exited, or it freed the
    block. The message says which."""


class Stats(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "allocated_bytes",
            "requested_bytes",
            "cached_bytes",
            "reserved_bytes",
            "peak_allocated_bytes",
            "peak_requested_bytes",
            "peak_reserved_bytes",
            "allocations",
            "deallocations",
            "cache_hits",
            "backend_allocations",
            "backend_frees",
            "oom_retries",
            "num_ooms",
            "limit_bytes",
            "page_moves",
        )
    ]

    def as_dict(self) -> Dict[str, int]:
        return {name: int(getattr(self, name)) for name, _ in self._fields_}


def library_path() -> str:
    """The shared library exporting stash_alloc/stash_free with PyTorch's pluggable signatures.

    STASH_LIBRARY overrides it (a library built elsewhere, e.g. by CMake's stash_c target)."""
    override = os.environ.get("STASH_LIBRARY")
    if override:
        return os.path.abspath(override)
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), _LIBRARY_NAME)


_lib: Optional[ctypes.CDLL] = None
_lib_lock = threading.Lock()


# int (*)(void* context, stash_stream_t stream): which streams a graph pool takes (stash_graph_pool_begin).
stream_filter = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class PoolBlock(ctypes.Structure):
    """stash_pool_block: a block of a graph pool as a checkpoint records it."""

    _fields_ = [("ptr", ctypes.c_void_p), ("bytes", ctypes.c_uint64), ("stream", ctypes.c_void_p)]


region_visitor = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int)
block_visitor = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
                                 ctypes.c_uint64, ctypes.c_uint64)


def lib() -> ctypes.CDLL:
    """The loaded library, with every prototype declared."""
    global _lib
    if _lib is not None:
        return _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        path = library_path()
        if not os.path.exists(path):
            raise StashError(f"stash: native library not found at {path} (is the package installed with pip?)")
        handle = ctypes.CDLL(path)
        c = ctypes
        stream = c.c_void_p
        protos = {
            "stash_alloc": (c.c_void_p, [c.c_ssize_t, c.c_int, stream]),
            "stash_free": (None, [c.c_void_p, c.c_ssize_t, c.c_int, stream]),
            "stash_record_stream": (c.c_int, [c.c_void_p, stream]),
            "stash_flush_stream": (c.c_int, [stream]),
            "stash_stream_ordered": (c.c_int, []),
            "stash_alloc_pinned": (c.c_void_p, [c.c_size_t]),
            "stash_free_pinned": (c.c_int, [c.c_void_p]),
            "stash_empty_cache": (c.c_int, [c.c_int]),
            "stash_empty_pinned_cache": (c.c_int, []),
            "stash_get_stats": (c.c_int, [c.c_int, c.POINTER(Stats)]),
            "stash_get_pinned_stats": (c.c_int, [c.POINTER(Stats)]),
            "stash_reset_peak": (c.c_int, [c.c_int]),
            "stash_set_memory_fraction": (c.c_int, [c.c_double, c.c_int]),
            "stash_set_memory_limit": (c.c_int, [c.c_int, c.c_uint64]),
            "stash_grant_peer_access": (c.c_int, [c.c_int, c.c_int]),
            "stash_graph_pool_begin": (c.c_int, [c.c_int, c.c_uint64, c.c_uint64, stream_filter, c.c_void_p]),
            "stash_graph_pool_end": (c.c_int, [c.c_int, c.c_uint64, c.c_uint64]),
            "stash_graph_pool_release": (c.c_int, [c.c_int, c.c_uint64, c.c_uint64]),
            "stash_graph_pool_retain": (c.c_int, [c.c_int, c.c_uint64, c.c_uint64]),
            "stash_graph_pool_users": (c.c_int, [c.c_int, c.c_uint64, c.c_uint64, c.POINTER(c.c_size_t)]),
            "stash_graph_pool_live_blocks": (c.c_int, [c.c_int, c.c_uint64, c.c_uint64, c.POINTER(PoolBlock),
                                                       c.c_size_t, c.POINTER(c.c_size_t)]),
            "stash_graph_pool_set_live": (c.c_int, [c.c_int, c.c_uint64, c.c_uint64, c.POINTER(c.c_void_p), c.c_size_t]),
            "stash_ipc_export": (c.c_int, [c.c_void_p, c.c_char_p, c.c_size_t, c.POINTER(c.c_size_t),
                                           c.POINTER(c.c_uint64)]),
            "stash_ipc_open": (c.c_int, [c.c_char_p, c.POINTER(c.c_void_p), c.POINTER(c.c_uint64)]),
            "stash_ipc_close": (c.c_int, [c.c_void_p]),
            "stash_visit_memory": (c.c_int, [c.c_int, region_visitor, block_visitor, c.c_void_p]),
            "stash_configure": (c.c_int, [c.c_char_p]),
            "stash_check_options": (c.c_int, [c.c_char_p]),
            "stash_options": (c.c_char_p, []),
            "stash_option_help": (c.c_char_p, []),
            "stash_device_count": (c.c_int, []),
            "stash_backing": (c.c_char_p, []),
            "stash_last_error": (c.c_char_p, []),
            "stash_clear_error": (None, []),
        }
        for name, (restype, argtypes) in protos.items():
            fn = getattr(handle, name)
            fn.restype = restype
            fn.argtypes = argtypes
        _lib = handle
        return handle


def last_error() -> str:
    """The message of the last failure of a stash call on this thread ("" when none)."""
    return lib().stash_last_error().decode(errors="replace")


def check(status: int, context: str = "") -> None:
    """Raises the StashError subclass that matches a nonzero status, with the C layer's message."""
    if status == OK:
        return
    message = last_error() or f"stash: error {status}"
    if context:
        message = f"{context}: {message}"
    if status in (ERROR_INVALID_ARGUMENT, ERROR_UNSUPPORTED):
        raise OptionError(message, status)
    if status == ERROR_TOO_LATE:
        raise TooLateError(message, status)
    if status == ERROR_OUT_OF_MEMORY:
        raise OutOfMemoryError(message, status)
    if status == ERROR_IPC:
        raise IpcError(message, status)
    raise StashError(message, status)


def _format_value(key: str, value) -> str:
    text = ("on" if value else "off") if isinstance(value, bool) else str(value)  # small_region=False
    if any(ch in text for ch in ",:\0") or not text:
        raise OptionError(f"stash: option '{key}': {text!r} is not a valid value", ERROR_INVALID_ARGUMENT)
    return text


def _c_string(text: bytes, what: str) -> bytes:
    """text for a C entry point, which reads up to the first NUL: one inside would drop the rest unseen
    (reserve="1\0GiB" read as 1 byte), so it is refused instead."""
    if b"\0" in text:
        raise OptionError(f"stash: {what} {text!r} contains a NUL character", ERROR_INVALID_ARGUMENT)
    return text


def options_string(options: Dict[str, object]) -> str:
    """Keyword options as the "key:value,key:value" form that STASH_CONF and stash_configure take."""
    return ",".join(f"{key}:{_format_value(key, value)}" for key, value in options.items())


def configure(conf: Optional[str] = None, *, use_env: bool = True, defaults: str = "", **options) -> str:
    """Sets the options of every pool; must come before the first allocation. Returns the options in force.

    `defaults` (an integration's own, "key:value,...") come first, then the environment variable
    STASH_CONF ("key:value,key:value", like PYTORCH_ALLOC_CONF, when use_env), then `conf`, then keyword
    arguments, each overriding the one before. A bad option raises OptionError naming it, and changes
    nothing."""
    parts = [defaults] if defaults else []
    env = os.environ.get("STASH_CONF", "") if use_env else ""
    if env:
        parts.append(env)
    if conf:
        parts.append(conf)
    if options:
        parts.append(options_string(options))
    if env:  # checked alone first (nothing changes), so that an error in the environment says so
        check(lib().stash_check_options(env.encode()), "STASH_CONF")
    text = _c_string(",".join(parts).encode(), "options")
    check(lib().stash_configure(text))  # a failure changes nothing
    global _configured
    _configured = True
    return current_options()


_configured = False


def configured() -> bool:
    """Whether configure() succeeded in this process."""
    return _configured


def current_options() -> str:
    return lib().stash_options().decode()


def option_help() -> str:
    return lib().stash_option_help().decode()


def device_count() -> int:
    return int(lib().stash_device_count())


def backing() -> str:
    """'cuda' when the pools hold GPU memory, 'host' when they fall back to host memory (no GPU)."""
    return lib().stash_backing().decode()


def stream_ordered() -> bool:
    """Whether freed memory is reused on another stream only after the work queued before the free."""
    return bool(lib().stash_stream_ordered())


def _c_int(value, what: str) -> int:
    """value as a C int, or OptionError: ctypes would wrap a larger one silently (2**32 + 1 is 1)."""
    number = int(value)
    if not -(1 << 31) <= number < (1 << 31):
        raise OptionError(f"stash: {what} {number} is out of range", ERROR_INVALID_ARGUMENT)
    return number


def _device(device) -> int:
    return _c_int(device, "device id")


def get_stats(device: int = -1) -> Dict[str, int]:
    """Figures of one device's pool (-1: the current device), stash's names (stash_c.h)."""
    out = Stats()
    check(lib().stash_get_stats(_device(device), ctypes.byref(out)))
    return out.as_dict()


def get_pinned_stats() -> Dict[str, int]:
    out = Stats()
    check(lib().stash_get_pinned_stats(ctypes.byref(out)))
    return out.as_dict()


def memory_map(device: int = -1) -> "list[dict]":
    """What a device's pool (-1: the current device) holds from the driver, in address order: one dict
    per region (a cudaMalloc segment, or a run of mapped pages: `paged` True) with `address`, `size`,
    `paged` and `blocks`, the blocks covering it in address order, each with `address`, `size`,
    `requested` (the size asked for of a live block; 0 for free memory) and `pool` (the CUDA graph pool
    it belongs to, live or freed and kept for the pool; (0, 0) for none). [] before the device's first
    allocation. The layout of PyTorch's memory snapshots, which stash.torch builds from it."""
    regions: "list[dict]" = []

    # The callbacks run after the pool's lock is released (stash_c.h): a finalizer that Python's garbage
    # collection runs meanwhile may free memory through stash.
    def on_region(_context, begin, size, paged):
        regions.append({"address": begin or 0, "size": int(size), "paged": bool(paged), "blocks": []})

    def on_block(_context, addr, size, requested, pool_first, pool_second):
        regions[-1]["blocks"].append({"address": addr or 0, "size": int(size), "requested": int(requested),
                                      "pool": (int(pool_first), int(pool_second))})

    check(lib().stash_visit_memory(_device(device), region_visitor(on_region), block_visitor(on_block), None))
    return regions


def empty_cache(device: int = -1) -> None:
    """Gives cached memory back to the driver: one device, or (-1) every device with a pool."""
    check(lib().stash_empty_cache(_device(device)))


def empty_pinned_cache() -> None:
    check(lib().stash_empty_pinned_cache())


def reset_peak(device: int = -1) -> None:
    check(lib().stash_reset_peak(_device(device)))


NO_LIMIT = (1 << 64) - 1


def set_memory_limit(limit_bytes: Optional[int], device: int = -1) -> None:
    """The most a device's pool may hold from the driver from now on (None: no limit). A request past it
    is met as on a full device: the cache is released and the request retried, then out of memory."""
    limit = NO_LIMIT if limit_bytes is None else int(limit_bytes)
    if not 0 <= limit <= NO_LIMIT:
        raise OptionError(f"stash: memory limit {limit} is not a number of bytes", ERROR_INVALID_ARGUMENT)
    check(lib().stash_set_memory_limit(_device(device), limit))


def set_memory_fraction(fraction: float, device: int = -1) -> None:
    """set_memory_limit as a fraction in [0, 1] of the device's total memory (needs a GPU)."""
    check(lib().stash_set_memory_fraction(float(fraction), _device(device)))


def flush_stream(stream) -> None:
    """The program is done with `stream` (a CUDA stream handle as an int, a cupy.cuda.Stream or a
    torch.cuda.Stream) and may destroy it next: the frees made on it get their event now, so that other
    streams reuse that memory once the work queued before them is done. Without it, frees on a
    destroyed stream stay cached until empty_cache() or an out-of-memory retry. stash.cupy calls it
    itself when a block holding a stream's last reference is freed. A stream stash never saw: nothing."""
    for attribute in ("ptr", "cuda_stream"):  # CuPy, PyTorch
        if hasattr(stream, attribute):
            stream = getattr(stream, attribute)
            break
    check(lib().stash_flush_stream(_c_stream(stream)))


def _c_stream(handle) -> int:
    if isinstance(handle, bool) or not isinstance(handle, int) or not 0 <= handle < (1 << 64):
        raise OptionError(f"stash: {handle!r} is not a CUDA stream handle", ERROR_INVALID_ARGUMENT)
    return handle


def grant_peer_access(device: int, peer: int) -> None:
    """Lets kernels and copies on GPU `peer` read and write the memory of `device`'s pool (-1: the
    current device): every page mapped now and every page mapped later. Needed only with the option
    peer_access="none" (by default every GPU that can reach a device is granted already); does nothing
    where there is nothing to grant (backend "segments", host memory). Raises OptionError for a bad
    device or peer id, or a peer that cannot reach the device."""
    check(lib().stash_grant_peer_access(_device(device), _c_int(peer, "peer device id")))


def ipc_export(ptr: int) -> "tuple[str, int]":
    """The live device block that ptr lies in, whole, as text another process opens with ipc_open
    (needs shareable memory: the option shareable="on", or "auto" where the device can export), and
    where ptr lies in it: (text, offset). This process keeps the block's descriptors open until the
    block is freed: keep it allocated until every importer has opened it and stopped using it. Raises StashError (status ERROR_INVALID_POINTER) for a pointer in
    no live block, OptionError for memory that cannot be shared."""
    buffer = ctypes.create_string_buffer(IPC_HANDLE_MAX)
    length = ctypes.c_size_t(0)
    offset = ctypes.c_uint64(0)
    check(lib().stash_ipc_export(ctypes.c_void_p(ptr), buffer, IPC_HANDLE_MAX, ctypes.byref(length),
                                 ctypes.byref(offset)))
    return buffer.value.decode("ascii"), int(offset.value)


def ipc_open(handle) -> "tuple[int, int]":
    """Maps the block another process exported as `handle` (str or bytes); returns (pointer, size in
    bytes). Raises IpcError when its descriptors cannot be taken, OptionError for text that is not a
    handle or without a GPU."""
    try:
        text = handle.encode("ascii") if isinstance(handle, str) else bytes(handle)
    except UnicodeEncodeError:
        raise OptionError(f"stash: not a stash ipc handle: {handle!r} is not ASCII", ERROR_INVALID_ARGUMENT) from None
    text = _c_string(text, "not a stash ipc handle: the text")
    ptr = ctypes.c_void_p(0)
    size = ctypes.c_uint64(0)
    check(lib().stash_ipc_open(text, ctypes.byref(ptr), ctypes.byref(size)))
    return int(ptr.value or 0), int(size.value)


def ipc_close(ptr: int) -> None:
    """Unmaps a block ipc_open mapped (synchronize its work first)."""
    check(lib().stash_ipc_close(ctypes.c_void_p(ptr)))
