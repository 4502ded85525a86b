"""GPU smoke test of stash.cupy (needs CuPy and a GPU; run by hand on the GPU machine).

    python3 python/tests/gpu/smoke_cupy.py        # 'N passed, M failed' at the end
"""

import sys
import traceback

import cupy
import numpy

import stash
import stash.cupy

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


@check
def device_memory_comes_from_stash():
    before = stash.get_stats(0)["allocations"]
    a = cupy.arange(1 << 20, dtype=cupy.float32)
    b = (a * 2).sum()
    assert float(b) == float(numpy.arange(1 << 20, dtype=numpy.float64).sum() * 2)
    s = stash.get_stats(0)
    assert s["allocations"] >= before + 2 and s["allocated_bytes"] >= 4 << 20, s
    del a
    assert stash.get_stats(0)["deallocations"] >= 1


@check
def allocations_follow_cupys_current_stream():
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        x = cupy.ones(1 << 18, dtype=cupy.float64)
        y = x + 1
    stream.synchronize()
    assert float(y.sum()) == 2.0 * (1 << 18)
    assert y.data.mem._owner.stream is stream  # UnownedMemory keeps its owner as _owner


@check
def blocks_outlive_the_stream_they_were_made_on():
    import gc, weakref
    def made_on_a_stream_of_its_own(i):
        stream = cupy.cuda.Stream(non_blocking=True)
        with stream:
            a = cupy.full(1 << 16, i, dtype=cupy.int32)
        stream.synchronize()
        return a, weakref.ref(stream)
    made = [made_on_a_stream_of_its_own(i) for i in range(300)]
    gc.collect()
    assert all(ref() is not None for _, ref in made)  # each stream lives while its block does
    arrays = [a for a, _ in made]
    refs = [ref for _, ref in made]
    del made
    for i in range(0, 300, 2):
        arrays[i] = None                    # freed on their own streams, which then go
    gc.collect()
    assert all(refs[i]() is None for i in range(0, 300, 2))
    churn = [cupy.ones(1 << 16, dtype=cupy.int32) for _ in range(2000)]  # reuse across streams
    del churn
    assert all(int(arrays[i][0]) == i for i in range(1, 300, 2))
    del arrays
    gc.collect()
    assert all(ref() is None for ref in refs)


@check
def memory_freed_on_a_destroyed_stream_goes_to_another_stream():
    # A stream per batch: the array made on it is its last holder, so the stream goes with the array's
    # free. That free flushes the stream (records the event its frees wait for), so once the GPU is
    # done another live stream gets the same memory, with no empty_cache and no new page. Without the
    # flush it stayed pending until empty_cache or out of memory, and the other stream mapped new pages.
    import gc
    stash.empty_cache()
    other = cupy.cuda.Stream(non_blocking=True)
    words = (37 << 20) // 4  # a size nothing else here uses
    side = cupy.cuda.Stream(non_blocking=True)
    with side:
        a = cupy.full(words, 3, dtype=cupy.int32)
    ptr = a.data.ptr
    del side  # the block holds the stream's last reference now
    del a     # freed on it, flushed, then the stream is destroyed
    gc.collect()
    cupy.cuda.Device().synchronize()  # the batch's work is done (the program waits here, not stash)
    before = stash.get_stats(0)
    with other:
        b = cupy.full(words, 5, dtype=cupy.int32)
    after = stash.get_stats(0)
    assert b.data.ptr == ptr, (hex(b.data.ptr), hex(ptr))
    assert after["reserved_bytes"] == before["reserved_bytes"], (before, after)
    other.synchronize()
    assert int(b[-1]) == 5


@check
def zero_bytes():
    e = cupy.empty(0, dtype=cupy.float32)
    assert e.size == 0
    assert float(cupy.concatenate([e, cupy.ones(3, dtype=cupy.float32)]).sum()) == 3.0


@check
def pinned_memory_comes_from_stash():
    before = stash.get_pinned_stats()["allocations"]
    host = cupy.cuda.alloc_pinned_memory(1 << 20)
    view = numpy.frombuffer(host, dtype=numpy.uint8, count=1 << 20)
    view[:] = 3
    d = cupy.empty(1 << 20, dtype=cupy.uint8)
    d.set(view)
    assert int(d.sum()) == 3 << 20
    assert stash.get_pinned_stats()["allocations"] == before + 1
    del view, host


@check
def out_of_memory_is_cupys_error():
    try:
        cupy.empty(1 << 50, dtype=cupy.uint8)
    except cupy.cuda.memory.OutOfMemoryError:
        pass
    else:
        raise AssertionError("no OutOfMemoryError")
    assert stash.get_stats(0)["num_ooms"] >= 1
    assert float(cupy.ones(10).sum()) == 10.0


def main():
    print("options:", stash.cupy.enable())
    passed = failed = 0
    for fn in CHECKS:
        try:
            fn()
            passed += 1
            print(f"PASS {fn.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL {fn.__name__}\n{traceback.format_exc()}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
