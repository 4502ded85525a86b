"""CuPy allocates device and pinned memory through stash.

    import stash.cupy
    stash.cupy.enable()          # cupy.cuda.set_allocator + cupy.cuda.set_pinned_memory_allocator

Device memory is allocated on CuPy's current device and stream, and freed on the stream it was
allocated on, when the last CuPy array using it goes away. Pinned memory comes from stash's pinned pool.

A block keeps the CuPy Stream object it was allocated on alive until it is freed: CuPy destroys a
stream when its last reference goes (often at the end of a `with cupy.cuda.Stream():` block, while
arrays made there live on), and stash may record an event on the stream a free names, which must then
exist (a destroyed stream's handle is undefined behaviour in CUDA). The stream is destroyed once the
last block made on it has been freed; that free also records the event the stream's frees wait for
(stash.flush_stream), so that other streams get that memory back once the GPU is done with it, with no
empty_cache. A cupy.cuda.ExternalStream does not own its stream: whoever made
that stream must keep it alive until the arrays made on it are freed, as with any stream-ordered pool.
"""

from __future__ import annotations

import sys
from typing import Optional

import cupy

from . import _native
from ._native import OptionError, StashError

__all__ = ["enable", "disable", "malloc", "malloc_pinned", "OptionError", "StashError"]


class _DeviceBlock:
    """Owns one stash device allocation; CuPy keeps it alive as UnownedMemory's owner. It holds the
    CuPy Stream it was allocated on, so that the stream exists when the block is freed on it."""

    __slots__ = ("ptr", "size", "device", "stream", "__weakref__")

    def __init__(self, ptr: int, size: int, device: int, stream: "cupy.cuda.Stream"):
        self.ptr = ptr
        self.size = size
        self.device = device
        self.stream = stream

    def __del__(self):
        if self.ptr:
            try:
                lib = _native.lib()
                lib.stash_free(self.ptr, self.size, self.device, self.stream.ptr)
                if sys.getrefcount(self.stream) <= 2:  # this slot and the call's argument: the stream
                    lib.stash_flush_stream(self.stream.ptr)  # goes with this block; its frees get an event
            except Exception:  # interpreter shutdown: the module may be gone; the driver reclaims it
                pass
            self.ptr = 0


class _PinnedBlock:
    """One stash pinned allocation in the shape PinnedMemoryPointer expects (ptr and size)."""

    __slots__ = ("ptr", "size", "__weakref__")

    def __init__(self, ptr: int, size: int):
        self.ptr = ptr
        self.size = size

    def __int__(self):
        return self.ptr

    def __del__(self):
        if self.ptr:
            try:
                _native.lib().stash_free_pinned(self.ptr)
            except Exception:  # interpreter shutdown, as above
                pass
            self.ptr = 0


def _not_allocated(message: str, size: int) -> StashError:
    """The error of an allocation that failed other than for lack of memory: the C interface says why
    in its last error (an invalid size, say) and returns no status, so the message tells the kind."""
    if "invalid size" in message:
        return OptionError(message, _native.ERROR_INVALID_ARGUMENT)
    return StashError(message or f"stash: could not allocate {size} bytes", _native.ERROR_INTERNAL)


def malloc(size: int) -> "cupy.cuda.MemoryPointer":
    """CuPy allocator: `size` bytes of device memory on the current device, ordered on the current stream."""
    device = cupy.cuda.runtime.getDevice()
    stream = cupy.cuda.get_current_stream()
    ptr = 0
    if size > 0:
        ptr = _native.lib().stash_alloc(size, device, stream.ptr) or 0
        if not ptr:
            message = _native.last_error()
            if "out of memory" in message:
                free, total = cupy.cuda.runtime.memGetInfo()
                raise cupy.cuda.memory.OutOfMemoryError(size, total)
            raise _not_allocated(message, size)
    owner = _DeviceBlock(ptr, size, device, stream)
    memory = cupy.cuda.UnownedMemory(ptr, size, owner, device)
    return cupy.cuda.MemoryPointer(memory, 0)


def malloc_pinned(size: int) -> "cupy.cuda.PinnedMemoryPointer":
    """CuPy pinned memory allocator: `size` bytes of page-locked host memory."""
    ptr = 0
    if size > 0:
        ptr = _native.lib().stash_alloc_pinned(size) or 0
        if not ptr:
            message = _native.last_error()
            if "out of memory" in message:
                raise _native.OutOfMemoryError(message, _native.ERROR_OUT_OF_MEMORY)
            raise _not_allocated(message, size)
    return cupy.cuda.PinnedMemoryPointer(_PinnedBlock(ptr, size), 0)


def enable(conf: Optional[str] = None, **options) -> str:
    """Switches CuPy's device and pinned allocators to stash; returns the stash options in force.

    Options as for stash.configure (STASH_CONF, then `conf`, then keywords); without any, the options
    already in force stay (those of stash.torch.enable, say). Memory CuPy allocated before stays with
    CuPy's own pools."""
    if conf or options or not _native.configured():
        in_force = _native.configure(conf, **options)
    else:
        in_force = _native.current_options()  # set already in this process (by stash.torch.enable, say)
    cupy.cuda.set_allocator(malloc)
    cupy.cuda.set_pinned_memory_allocator(malloc_pinned)
    return in_force


def disable() -> None:
    """Gives CuPy its default pools back (memory already allocated through stash stays valid)."""
    cupy.cuda.set_allocator(cupy.get_default_memory_pool().malloc)
    cupy.cuda.set_pinned_memory_allocator(cupy.get_default_pinned_memory_pool().malloc)
