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
    assert y.data.mem._owner.stream == stream.ptr  # UnownedMemory keeps its owner as _owner


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
