"""Tests of the installed stash package through its C entry points (no torch, no CuPy, no GPU needed).

Options are fixed for a process once its first pool exists, so each case runs in a fresh interpreter.
Without a GPU the pools serve host memory, which these tests read and write to check the addresses.
"""

import os
import subprocess
import sys
import textwrap
import unittest

PRELUDE = textwrap.dedent(
    """
    import ctypes, os, sys
    import stash
    from stash import _native as n
    L = n.lib()
    def stats(device=0):
        return stash.get_stats(device)
    def handle_text(pid, fd, st, size=2 << 20):
        return f"stash-ipc1 {pid} 0 0 {size} 1 {fd} {st.st_dev} {st.st_ino} 0 {size} {size}"
    """
)



# The parts of CuPy that stash.cupy.malloc uses, for tests without CuPy (host-backed stash serves them):
# a Stream that logs its destruction (CuPy destroys the CUDA stream there) in `events` and
# Stream.destroyed, and current[0] as the current stream.
STAND_IN_CUPY = textwrap.dedent(
    """
    import gc, types, weakref
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace()
    events = []
    class Stream:
        destroyed = []
        def __init__(self, ptr):
            self.ptr = ptr
        def __del__(self):
            Stream.destroyed.append(self.ptr)
            events.append(("destroy", self.ptr))
    current = [Stream(0x100)]
    class UnownedMemory:
        def __init__(self, ptr, size, owner, device):
            self.ptr, self.size, self._owner, self.device = ptr, size, owner, device
    class MemoryPointer:
        def __init__(self, mem, offset):
            self.mem, self.ptr = mem, mem.ptr + offset
    cupy.cuda.runtime = types.SimpleNamespace(getDevice=lambda: 0)
    cupy.cuda.get_current_stream = lambda: current[0]
    cupy.cuda.UnownedMemory, cupy.cuda.MemoryPointer = UnownedMemory, MemoryPointer
    sys.modules["cupy"] = cupy
    import stash.cupy
    """
)


def run(code, conf=None, expect_ok=True, setup=""):
    """Runs code (indented as it may be) in a fresh interpreter after PRELUDE and setup (unindented)."""
    env = dict(os.environ)
    env.pop("STASH_CONF", None)
    if conf is not None:
        env["STASH_CONF"] = conf
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + setup + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if expect_ok and result.returncode != 0:
        raise AssertionError(f"child failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def first_allocation_error(conf):
    """What the first allocation reports (it fails) under STASH_CONF=conf."""
    return run(
        """
        assert L.stash_alloc(100, 0, None) is None
        print(n.last_error())
        """,
        conf=conf,
    ).stdout


# Setup for graph pool tests on host memory (any other backing: the child exits at once), with fake
# stream handles S and T, which a GPU's pools would order by: only_s routes S's requests alone (a test
# may make filters of its own).
ONLY_S_ROUTED = textwrap.dedent(
    """
    if stash.backing() != "host":
        sys.exit(0)  # fake stream handles: host pools do not order by streams
    S, T = 0x1000, 0x2000
    MiB = 1 << 20
    @n.stream_filter
    def only_s(context, stream):
        return 1 if stream == S else 0
    """
)


def freed_on_another_stream(during_the_capture, taken, conf=None):
    """A block of graph pool 6 allocated on stream S during a capture is freed on stream T, during that
    capture or after it; whether the pool's next capture takes it on S is `taken`. Then everything goes
    back, under STASH_CONF=conf."""
    run(
        """
        assert L.stash_graph_pool_begin(0, 6, 0, only_s, None) == 0, n.last_error()
        out = L.stash_alloc(MiB, 0, S)
        if DURING_THE_CAPTURE:
            L.stash_free(out, MiB, 0, T)  # an intermediate, dropped on another stream
        assert L.stash_graph_pool_end(0, 6, 0) == 0, n.last_error()
        if not DURING_THE_CAPTURE:
            L.stash_free(out, MiB, 0, T)  # the graph's output, dropped on another stream
        assert L.stash_graph_pool_begin(0, 6, 0, only_s, None) == 0, n.last_error()
        again = L.stash_alloc(MiB, 0, S)
        assert (again == out) == TAKEN, (out, again)
        L.stash_free(again, MiB, 0, S)
        assert L.stash_graph_pool_end(0, 6, 0) == 0, n.last_error()
        for _ in range(2):
            assert L.stash_graph_pool_release(0, 6, 0) == 0, n.last_error()
        assert L.stash_empty_cache(-1) == 0, n.last_error()
        assert stats()["allocated_bytes"] == 0, stats()
        assert n.last_error() == ""
        """,
        conf=conf,
        setup=ONLY_S_ROUTED + f"DURING_THE_CAPTURE, TAKEN = {during_the_capture}, {taken}\n",
    )


class Library(unittest.TestCase):
    def test_library_path_names_the_loaded_library_with_the_pluggable_symbols(self):
        import stash

        path = stash.library_path()
        self.assertTrue(os.path.isfile(path), path)
        self.assertTrue(path.endswith("libstash_c.so"))
        run(
            """
            for name in ("stash_alloc", "stash_free", "stash_record_stream", "stash_empty_cache",
                         "stash_get_stats", "stash_reset_peak", "stash_set_memory_fraction",
                         "stash_configure", "stash_last_error"):
                assert getattr(L, name) is not None, name
            print(stash.backing(), stash.device_count())
            """
        )

    def test_alloc_and_free_through_the_c_entry_points(self):
        run(
            """
            if stash.backing() != "host":
                sys.exit(0)  # the data check below reads the memory from the CPU
            p = L.stash_alloc(1000, 0, None)
            assert p and p % 256 == 0, p
            ctypes.memset(p, 0xAB, 1000)
            assert ctypes.string_at(p, 1000) == b"\\xab" * 1000
            q = L.stash_alloc(3000, -1, None)  # -1: the current device
            assert q and q != p and (q >= p + 1000 or q + 3000 <= p), (p, q)
            s = stats()
            assert s["allocations"] == 2 and s["requested_bytes"] == 4000, s
            assert s["allocated_bytes"] >= 4000 and s["reserved_bytes"] >= s["allocated_bytes"], s
            L.stash_free(p, 1000, 0, None)
            L.stash_free(q, 3000, 0, None)
            s = stats()
            assert s["deallocations"] == 2 and s["allocated_bytes"] == 0 and s["requested_bytes"] == 0, s
            assert n.last_error() == "", n.last_error()
            # The freed block comes back from the cache.
            r = L.stash_alloc(1000, 0, None)
            assert r == p, (r, p)
            assert stats()["cache_hits"] >= 1
            L.stash_free(r, 1000, 0, None)
            """
        )

    def test_graph_pools_keep_a_graphs_memory_until_released(self):
        run(
            """
            assert L.stash_graph_pool_begin(0, 7, 1, only_s, None) == 0, n.last_error()
            a = L.stash_alloc(MiB, 0, S)
            L.stash_free(a, MiB, 0, S)  # freed during the capture: the pool keeps it
            assert stats()["allocated_bytes"] >= MiB, stats()
            other = L.stash_alloc(MiB, 0, T)  # another stream: not routed, other memory
            assert other != a
            b = L.stash_alloc(MiB // 2, 0, S)  # the pool's next request on S takes it
            assert b == a, (a, b)
            L.stash_free(b, MiB // 2, 0, S)
            assert L.stash_graph_pool_end(0, 7, 1) == 0, n.last_error()
            after = [L.stash_alloc(MiB, 0, S) for _ in range(4)]  # after the capture: never the graph's
            assert a not in after, (a, after)
            for p in after + [other]:
                L.stash_free(p, MiB, 0, S)
            assert L.stash_graph_pool_release(0, 7, 1) == 0, n.last_error()
            assert stats()["allocated_bytes"] >= MiB  # freed blocks go back at the next empty_cache
            assert L.stash_empty_cache(-1) == 0, n.last_error()
            assert stats()["allocated_bytes"] == 0, stats()
            assert n.last_error() == ""

            # Bad calls: a status, a message, nothing changed.
            before = stats()
            assert L.stash_graph_pool_end(0, 7, 1) == 1 and "no allocation routed" in n.last_error(), n.last_error()
            assert L.stash_graph_pool_release(0, 7, 1) == 1 and "no user" in n.last_error(), n.last_error()
            assert L.stash_graph_pool_begin(0, 8, 0, n.stream_filter(), None) == 1 and "filter is null" in n.last_error()
            assert L.stash_graph_pool_begin(9, 8, 0, only_s, None) == 1, n.last_error()
            c = L.stash_alloc(MiB, 0, S)  # nothing routes it
            L.stash_free(c, MiB, 0, S)
            assert stats()["allocated_bytes"] == before["allocated_bytes"] == 0
            """,
            setup=ONLY_S_ROUTED,
        )

    def test_memory_map_names_the_graph_pool_of_each_block(self):
        run(
            """
            plain = L.stash_alloc(MiB, 0, S)
            assert L.stash_graph_pool_begin(0, 7, 1, only_s, None) == 0, n.last_error()
            kept = L.stash_alloc(2 * MiB, 0, S)
            assert L.stash_graph_pool_end(0, 7, 1) == 0, n.last_error()
            def pools():
                return {b["address"]: (b["pool"], b["requested"]) for r in stash.memory_map(0) for b in r["blocks"]}
            assert pools()[kept] == ((7, 1), 2 * MiB) and pools()[plain] == ((0, 0), MiB), pools()
            L.stash_free(kept, 2 * MiB, 0, S)  # freed to the pool, kept for it
            assert pools()[kept] == ((7, 1), 2 * MiB), pools()
            L.stash_free(plain, MiB, 0, S)
            assert all(pool == (0, 0) for address, (pool, _) in pools().items() if address != kept)
            assert L.stash_graph_pool_release(0, 7, 1) == 0, n.last_error()
            assert L.stash_empty_cache(-1) == 0, n.last_error()
            assert all(pool == (0, 0) and not requested for pool, requested in pools().values()), pools()
            """,
            setup=ONLY_S_ROUTED,
        )

    def test_empty_cache_lets_a_graph_pool_reuse_a_block_freed_on_another_stream(self):
        run(
            """
            @n.stream_filter
            def s_and_t(context, stream):
                return 1 if stream in (S, T) else 0
            assert L.stash_graph_pool_begin(0, 5, 0, s_and_t, None) == 0, n.last_error()
            a = L.stash_alloc(MiB, 0, S)
            L.stash_free(a, MiB, 0, T)  # work on S and on T may still use it: no request takes it
            b = L.stash_alloc(MiB, 0, S)
            assert b != a, (a, b)
            L.stash_free(b, MiB, 0, S)
            assert L.stash_empty_cache(-1) == 0, n.last_error()  # not during the capture: a still waits
            assert L.stash_graph_pool_end(0, 5, 0) == 0, n.last_error()
            assert L.stash_empty_cache(-1) == 0, n.last_error()  # the device synchronized: a is S's again
            # The next capture into the same pool (as CUDA graph trees make them) takes both on S.
            assert L.stash_graph_pool_begin(0, 5, 0, s_and_t, None) == 0, n.last_error()
            taken = [L.stash_alloc(MiB, 0, S) for _ in range(2)]
            assert sorted(taken) == sorted([a, b]), (a, b, taken)
            for p in taken:
                L.stash_free(p, MiB, 0, S)
            assert L.stash_graph_pool_end(0, 5, 0) == 0, n.last_error()
            assert L.stash_graph_pool_release(0, 5, 0) == 0, n.last_error()
            assert L.stash_graph_pool_release(0, 5, 0) == 0, n.last_error()
            assert L.stash_empty_cache(-1) == 0, n.last_error()
            assert stats()["allocated_bytes"] == 0, stats()
            assert n.last_error() == ""
            """,
            setup=ONLY_S_ROUTED,
        )

    def test_a_graph_pool_block_freed_on_another_stream_after_the_capture_serves_its_stream_again(self):
        # Freed with no capture underway, the block gets an event on the stream it was freed on; on host
        # memory every event has completed at once, so the next capture takes it without empty_cache.
        freed_on_another_stream(during_the_capture=False, taken=True)

    def test_a_graph_pool_block_freed_on_another_stream_during_the_capture_serves_its_stream_after_it(self):
        # Freed during a capture, no event may be recorded: under free_records_used_streams (stash.torch's
        # setting) its event is recorded when the routing ends, and on host memory it has completed at
        # once; without it, the block waits for empty_cache.
        for conf, taken in (("free_records_used_streams:on", True), ("free_records_used_streams:off", False)):
            freed_on_another_stream(during_the_capture=True, taken=taken, conf=conf)

    def test_num_ooms_counts_only_requests_that_fail(self):
        # Out of memory first gives released graph pools' blocks back and tries again: a request served
        # then did not fail, and one that fails after it failed once.
        run(
            """
            if stash.backing() != "host":
                sys.exit(0)  # a limit of 8 MiB on host memory
            MiB = 1 << 20
            @n.stream_filter
            def every_stream(context, stream):
                return 1
            assert L.stash_graph_pool_begin(0, 1, 1, every_stream, None) == 0, n.last_error()
            g = L.stash_alloc(4 * MiB, 0, None)  # the graph's
            assert L.stash_graph_pool_end(0, 1, 1) == 0, n.last_error()
            L.stash_free(g, 4 * MiB, 0, None)  # kept for the graph
            assert L.stash_graph_pool_release(0, 1, 1) == 0, n.last_error()
            p = L.stash_alloc(6 * MiB, 0, None)  # fits once the released graph's 4 MiB are given back
            assert p, n.last_error()
            assert stats()["num_ooms"] == 0, stats()
            assert L.stash_alloc(9 * MiB, 0, None) is None  # above the limit: fails, once
            assert "out of memory" in n.last_error(), n.last_error()
            assert stats()["num_ooms"] == 1, stats()
            L.stash_free(p, 6 * MiB, 0, None)
            assert stats()["allocated_bytes"] == 0, stats()
            """,
            conf="limit:8MiB",
        )

    def test_graph_pool_checkpoints_restore_the_live_blocks(self):
        run(
            """
            if stash.backing() != "host":
                sys.exit(0)
            S, MiB = 0x1000, 1 << 20
            @n.stream_filter
            def only_s(context, stream):
                return 1 if stream == S else 0
            def live():
                count = ctypes.c_size_t(0)
                assert L.stash_graph_pool_live_blocks(0, 3, 0, None, 0, ctypes.byref(count)) == 0, n.last_error()
                blocks = (n.PoolBlock * max(count.value, 1))()
                assert L.stash_graph_pool_live_blocks(0, 3, 0, blocks, count.value, ctypes.byref(count)) == 0
                return sorted((b.ptr, b.bytes, b.stream) for b in blocks[:count.value])
            assert L.stash_graph_pool_begin(0, 3, 0, only_s, None) == 0
            a = L.stash_alloc(MiB, 0, S)
            b = L.stash_alloc(2 * MiB, 0, S)
            checkpoint = live()
            assert checkpoint == sorted([(a, MiB, S), (b, 2 * MiB, S)]), checkpoint
            L.stash_free(b, 2 * MiB, 0, S)
            c = L.stash_alloc(3 * MiB, 0, S)
            assert live() == sorted([(a, MiB, S), (c, 3 * MiB, S)])
            ptrs = (ctypes.c_void_p * 2)(a, b)
            assert L.stash_graph_pool_set_live(0, 3, 0, ptrs, 2) == 0, n.last_error()
            assert live() == checkpoint
            assert L.stash_alloc(3 * MiB, 0, S) == c  # c was freed to the pool by the restore
            # Bad input: a status, a message, nothing changed.
            other = L.stash_alloc(MiB, 0, 0x2000)
            bad = (ctypes.c_void_p * 1)(other)
            assert L.stash_graph_pool_set_live(0, 3, 0, bad, 1) == 1 and "no block" in n.last_error(), n.last_error()
            assert L.stash_graph_pool_set_live(0, 3, 0, None, 1) == 1
            assert L.stash_graph_pool_live_blocks(0, 3, 0, None, 0, None) == 1
            assert len(live()) == 3
            # retain and users: a MemPool's count, without routing
            users = ctypes.c_size_t(7)
            assert L.stash_graph_pool_users(0, 4, 0, ctypes.byref(users)) == 0 and users.value == 0
            assert L.stash_graph_pool_retain(0, 4, 0) == 0
            assert L.stash_graph_pool_users(0, 4, 0, ctypes.byref(users)) == 0 and users.value == 1
            assert L.stash_graph_pool_release(0, 4, 0) == 0
            assert L.stash_graph_pool_users(0, 4, 0, ctypes.byref(users)) == 0 and users.value == 0
            assert L.stash_graph_pool_users(0, 4, 0, None) == 1
            """
        )

    def test_zero_bytes_is_null_and_no_error(self):
        run(
            """
            L.stash_clear_error()
            before = stats()
            assert L.stash_alloc(0, 0, None) is None
            assert n.last_error() == ""
            L.stash_free(None, 0, 0, None)  # freeing null is a no-op
            assert n.last_error() == ""
            assert stats() == before, (stats(), before)
            """
        )

    def test_out_of_memory_returns_null_counts_and_the_process_goes_on(self):
        run(
            """
            keep = L.stash_alloc(4096, 0, None)
            assert keep
            assert L.stash_alloc(1 << 61, 0, None) is None
            message = n.last_error()
            assert "out of memory" in message and str(1 << 61) in message, message
            s = stats()
            assert s["num_ooms"] == 1 and s["oom_retries"] >= 1, s
            assert s["allocated_bytes"] >= 4096 and s["allocations"] == 1, s
            # Above the core's largest size: null as well, reported as a bad size.
            assert L.stash_alloc((1 << 63) - 1, 0, None) is None
            assert "invalid size" in n.last_error(), n.last_error()
            again = L.stash_alloc(4096, 0, None)
            assert again and again != keep
            L.stash_free(again, 4096, 0, None)
            L.stash_free(keep, 4096, 0, None)
            assert stats()["allocated_bytes"] == 0
            """
        )

    def test_bad_arguments_return_null_with_a_message(self):
        run(
            """
            assert L.stash_alloc(-5, 0, None) is None
            assert "negative" in n.last_error(), n.last_error()
            count = stash.device_count()
            assert L.stash_alloc(64, count + 6, None) is None
            assert f"invalid device id {count + 6}" in n.last_error(), n.last_error()
            assert L.stash_alloc(64, -2, None) is None
            assert "invalid device id -2" in n.last_error(), n.last_error()
            assert stats()["allocations"] == 0
            """
        )

    def test_a_bad_free_is_reported_on_stderr_and_changes_nothing(self):
        result = run(
            """
            p = L.stash_alloc(512, 0, None)
            before = stats()
            L.stash_free(0x1234, 512, 0, None)
            assert "invalid pointer 0x1234" in n.last_error(), n.last_error()
            assert stats() == before
            L.stash_free(p, 512, 0, None)
            L.stash_free(p, 512, 0, None)
            assert "double free" in n.last_error(), n.last_error()
            print("still running")
            """
        )
        self.assertIn("still running", result.stdout)
        self.assertIn("invalid pointer 0x1234", result.stderr)
        self.assertIn("double free", result.stderr)
        self.assertIn("stash_free", result.stderr)

    def test_a_free_naming_the_wrong_device_finds_the_owner(self):
        run(
            """
            stash.configure(backing="host", host_devices=2)
            p = L.stash_alloc(2048, 1, None)
            assert p
            assert stats(1)["allocations"] == 1 and stats(0)["allocations"] == 0
            L.stash_clear_error()
            L.stash_free(p, 2048, 0, None)
            assert n.last_error() == "", n.last_error()
            assert stats(1)["deallocations"] == 1 and stats(1)["allocated_bytes"] == 0
            """
        )

    def test_empty_cache_gives_free_memory_back_and_reset_peak(self):
        run(
            """
            p = L.stash_alloc(64 << 20, 0, None)
            L.stash_free(p, 64 << 20, 0, None)
            s = stats()
            assert s["reserved_bytes"] >= 64 << 20 and s["cached_bytes"] == s["reserved_bytes"], s
            assert s["peak_allocated_bytes"] >= 64 << 20
            stash.empty_cache()
            s = stats()
            assert s["reserved_bytes"] == 0 and s["backend_frees"] >= 1, s
            stash.reset_peak(0)
            assert stats()["peak_allocated_bytes"] == 0 and stats()["peak_reserved_bytes"] == 0
            """
        )

    def test_memory_map_shows_each_region_tiled_by_its_blocks(self):
        run(
            """
            assert stash.memory_map(0) == [], "nothing is held before the first allocation"
            sizes = (1000, 3000, 5 << 20, 3 << 20, 64 << 20)
            ptrs = [L.stash_alloc(size, 0, None) for size in sizes]
            L.stash_free(ptrs[1], sizes[1], 0, None)
            L.stash_free(ptrs[3], sizes[3], 0, None)
            regions = stash.memory_map()  # -1: the current device, 0
            s = stats()
            assert sum(r["size"] for r in regions) == s["reserved_bytes"], (regions, s)
            live = {b["address"]: b for r in regions for b in r["blocks"] if b["requested"]}
            assert sum(b["size"] for b in live.values()) == s["allocated_bytes"], (live, s)
            assert {a: b["requested"] for a, b in live.items()} == {
                ptrs[0]: 1000, ptrs[2]: 5 << 20, ptrs[4]: 64 << 20}, live
            for r in regions:
                assert r["paged"] is False, r  # host memory: segments
                at = r["address"]
                for b in r["blocks"]:
                    assert b["address"] == at and b["size"] > 0, (r, b)
                    at += b["size"]
                assert at == r["address"] + r["size"], r
            assert [r["address"] for r in regions] == sorted(r["address"] for r in regions)
            # The freed blocks lie in free memory.
            for p in (ptrs[1], ptrs[3]):
                covering = [b for r in regions for b in r["blocks"] if b["address"] <= p < b["address"] + b["size"]]
                assert len(covering) == 1 and covering[0]["requested"] == 0, (p, covering)
            # Walking changes nothing, and a device with no pool has nothing.
            assert stats() == s
            assert stash.memory_map(1) == []
            try:
                stash.memory_map(7)
                raise AssertionError("a bad device was walked")
            except stash.OptionError as error:
                assert "7" in str(error), error
            # A callback may call stash (Python's garbage collection may free memory from a finalizer):
            # the walk is copied first, and no lock is held while callbacks run.
            seen = []
            def reentrant_block(_context, addr, size, requested, pool_first, pool_second):
                q = L.stash_alloc(4096, 0, None)
                L.stash_free(q, 4096, 0, None)
                seen.append(addr)
            assert L.stash_visit_memory(0, n.region_visitor(lambda *a: None), n.block_visitor(reentrant_block),
                                        None) == 0, n.last_error()
            assert len(seen) == sum(len(r["blocks"]) for r in regions), (seen, regions)
            assert L.stash_visit_memory(0, n.region_visitor(), n.block_visitor(), None) == n.ERROR_INVALID_ARGUMENT  # null
            assert "null" in n.last_error(), n.last_error()
            for p, size in zip(ptrs, sizes):
                if p not in (ptrs[1], ptrs[3]):
                    L.stash_free(p, size, 0, None)
            assert not any(b["requested"] for r in stash.memory_map(0) for b in r["blocks"])
            """,
            conf="host_devices:2",
        )

    def test_pinned_memory(self):
        run(
            """
            p = L.stash_alloc_pinned(10000)
            assert p and p % 256 == 0
            if stash.backing() == "host":
                ctypes.memset(p, 7, 10000)
                assert ctypes.string_at(p + 9999, 1) == b"\\x07"
            s = stash.get_pinned_stats()
            assert s["allocations"] == 1 and s["requested_bytes"] == 10000, s
            assert L.stash_free_pinned(p) == 0
            assert L.stash_free_pinned(p) == n.ERROR_INVALID_POINTER
            assert "double free" in n.last_error()
            assert L.stash_alloc_pinned(0) is None
            assert stash.get_pinned_stats()["allocated_bytes"] == 0
            """
        )

    def test_record_stream_takes_live_pointers_only(self):
        run(
            """
            assert stash.stream_ordered()
            assert L.stash_record_stream(0x40, None) == n.ERROR_INVALID_POINTER  # nothing allocated yet
            p = L.stash_alloc(256, 0, None)
            assert L.stash_record_stream(p, None) == 0, n.last_error()
            assert L.stash_record_stream(0x40, None) == n.ERROR_INVALID_POINTER
            assert "invalid pointer 0x40" in n.last_error(), n.last_error()
            L.stash_free(p, 256, 0, None)
            assert L.stash_record_stream(p, None) == n.ERROR_INVALID_POINTER    # freed: no longer live
            assert "double free" in n.last_error(), n.last_error()
            """
        )

    def test_a_limit_is_met_as_a_full_device(self):
        run(
            """
            stash.configure(limit="64MiB")
            assert stats()["limit_bytes"] == 64 << 20
            a = L.stash_alloc(40 << 20, 0, None)
            assert a
            assert L.stash_alloc(40 << 20, 0, None) is None        # 80 MiB would pass the limit
            assert "out of memory" in n.last_error(), n.last_error()
            s = stats()
            assert s["num_ooms"] == 1 and s["reserved_bytes"] <= 64 << 20, s
            assert s["page_moves"] == 0, s  # host backing holds segments: no page to move
            L.stash_free(a, 40 << 20, 0, None)
            b = L.stash_alloc(40 << 20, 0, None)                   # fits again
            assert b
            stash.set_memory_limit(1 << 20)                          # lowered while memory is held
            assert stats()["limit_bytes"] == 1 << 20
            L.stash_free(b, 40 << 20, 0, None)
            stash.empty_cache()
            assert L.stash_alloc(8 << 20, 0, None) is None
            stash.set_memory_limit(None)
            assert stats()["limit_bytes"] == (1 << 64) - 1
            c = L.stash_alloc(8 << 20, 0, None)
            assert c
            L.stash_free(c, 8 << 20, 0, None)
            """
        )

    def test_ids_and_limits_out_of_c_range_are_refused_not_wrapped(self):
        # ctypes wraps an int silently (2**32 + 1 passed as a C int is 1): refused before the call.
        run(
            """
            stash.set_memory_limit(64 << 20)
            before = stats()
            for call in (lambda: stash.get_stats(1 << 32), lambda: stash.get_stats((1 << 32) + 1),
                         lambda: stash.empty_cache(-(1 << 40)), lambda: stash.reset_peak(1 << 31),
                         lambda: stash.set_memory_limit(10, 1 << 32), lambda: stash.set_memory_limit(-1),
                         lambda: stash.set_memory_limit((1 << 64) + 5), lambda: stash.grant_peer_access(0, 1 << 32)):
                try:
                    call()
                except stash.OptionError as e:
                    assert "out of range" in str(e) or "not a number of bytes" in str(e), e
                else:
                    raise AssertionError("accepted")
            assert stats() == before, (stats(), before)
            assert stats()["limit_bytes"] == 64 << 20
            """
        )

    def test_memory_fraction(self):
        run(
            """
            assert L.stash_set_memory_fraction(1.5, 0) == n.ERROR_INVALID_ARGUMENT
            assert "not in [0, 1]" in n.last_error(), n.last_error()
            if stash.backing() == "host":
                try:
                    stash.set_memory_fraction(0.5, 0)
                except stash.OptionError as e:
                    assert "needs a GPU" in str(e), str(e)
                else:
                    raise AssertionError("a fraction of host memory was accepted")
            else:
                stash.set_memory_fraction(0.5, 0)
                assert 0 < stats()["limit_bytes"] < (1 << 64) - 1
            """
        )


class Options(unittest.TestCase):
    def test_a_bad_option_changes_nothing_when_stash_conf_is_set(self):
        run(
            """
            stash.configure(reserve="64GiB")
            before = n.current_options()
            assert "page_slack:0.5" in before and "reserve:68719476736" in before, before
            try:
                stash.configure(page_slack=-1)
            except stash.OptionError as e:
                assert "page_slack" in str(e), e
            else:
                raise AssertionError("accepted")
            assert n.current_options() == before, (n.current_options(), before)
            assert L.stash_check_options(b"page_slack:-1") == n.ERROR_INVALID_ARGUMENT
            assert "page_slack" in n.last_error(), n.last_error()
            assert L.stash_check_options(b"page_slack:0.3") == 0
            assert n.current_options() == before, (n.current_options(), before)
            """,
            conf="page_slack:0.5",
        )

    def test_each_bad_option_names_itself(self):
        run(
            """
            cases = [
                (dict(page_slack=-1), "option 'page_slack': '-1' is not a number >= 0"),
                (dict(page_slack="lots"), "option 'page_slack': 'lots'"),
                (dict(reserve="12XB"), "option 'reserve': '12XB' is not a byte count"),
                (dict(backend="magic"), "option 'backend': 'magic' is not one of vmm, segments"),
                (dict(host_devices=0), "option 'host_devices': '0'"),
                (dict(bogus=1), "unknown option 'bogus'"),
                (dict(limit="8 GiBs"), "option 'limit': '8 GiBs' is not a byte count"),
                (dict(memory_fraction=1.5), "option 'memory_fraction': '1.5' is not a number in (0, 1]"),
                (dict(page_slack=True), "option 'page_slack'"),
                (dict(reserve="1,2"), "option 'reserve'"),
                (dict(small_region="maybe"), "option 'small_region': 'maybe' is not one of off, on"),
                (dict(small_fill_mapped="some"), "option 'small_fill_mapped': 'some' is not one of off, on"),
                (dict(fill_mapped_above="lots"), "option 'fill_mapped_above': 'lots' is not a byte count"),
                (dict(free_records_used_streams=2), "option 'free_records_used_streams': '2' is not one of off, on"),
                (dict(peer_access="some"), "option 'peer_access': 'some' is not one of all, none"),
                (dict(peer_access=True), "option 'peer_access': 'on' is not one of all, none"),
                (dict(remap_pending_pages="often"), "option 'remap_pending_pages': 'often' is not one of off, on"),
                (dict(remap_min_pages=-1), "option 'remap_min_pages': '-1' is not an integer >= 0"),
                (dict(remap_min_age="old"), "option 'remap_min_age': 'old' is not an integer >= 0"),
                (dict(cross_stream_wait=3), "option 'cross_stream_wait': '3' is not one of off, on"),
                (dict(keep_page_aliases="always"), "option 'keep_page_aliases': 'always' is not one of off, on"),
                (dict(keep_page_aliases=True, remap_pending_pages=True),
                 "keep_page_aliases: cannot be combined with remap_pending_pages"),
                (dict(reserve=-1), "option 'reserve': '-1' is not a byte count"),  # the whole value quoted
                (dict(reserve=(1 << 64) - 1), "option 'reserve': '18446744073709551615' is not a byte count of at most 2^63"),
                (dict(max_held_over_live="nan"), "option 'max_held_over_live': 'nan'"),
            ]
            for kwargs, expected in cases:
                try:
                    stash.configure(**kwargs)
                except stash.OptionError as e:
                    assert expected in str(e), (kwargs, str(e))
                else:
                    raise AssertionError(f"{kwargs} was accepted")
            for conf, expected in [("page_slack", "option 'page_slack' has no value"),
                                   ("reserve:1GiB,,oops:2", "unknown option 'oops'")]:
                try:
                    stash.configure(conf)
                except stash.OptionError as e:
                    assert expected in str(e), (conf, str(e))
                else:
                    raise AssertionError(f"{conf} was accepted")
            # Nothing above changed the options.
            assert stash.current_options().startswith("backend:vmm,page_slack:0.02,reserve:0,"), stash.current_options()
            """
        )

    def test_options_parse_and_combine(self):
        run(
            """
            got = stash.configure("page_slack:0.5", reserve="3GiB", pages_between_moves=2, backend="segments")
            assert got == ("backend:segments,page_slack:0.5,reserve:3221225472,pages_between_moves:2,max_chunk_pages:32,"
                           "small_region:on,free_records_used_streams:off,backing:auto"), got
            got = stash.configure(small_region=False)
            assert ",small_region:off," in got, got
            got = stash.configure("small_region:on")
            assert ",small_region:on," in got, got
            got = stash.configure(chunks_per_block=0, moves_per_block="4")
            assert got.endswith(",backing:auto,chunks_per_block:0,moves_per_block:4"), got
            got = stash.configure(chunks_per_block=8, moves_per_block=8)  # the defaults: not named
            assert "_per_block" not in got, got
            got = stash.configure(chunk_room_share=0)
            assert got.endswith(",backing:auto,chunk_room_share:0"), got
            got = stash.configure(chunk_room_share=256)  # the default: not named
            assert "chunk_room_share" not in got, got
            got = stash.configure(peer_access="none")
            assert got.endswith(",backing:auto,peer_access:none"), got
            got = stash.configure("peer_access:all")  # the default: not named
            assert "peer_access" not in got, got
            got = stash.configure(remap_pending_pages=True, remap_min_pages=64, remap_min_age="2")
            assert got.endswith(",backing:auto,remap_pending_pages:on,remap_min_pages:64,remap_min_age:2"), got
            got = stash.configure(keep_page_aliases=True)
            assert got.endswith(",backing:auto,keep_page_aliases:on"), got
            got = stash.configure("cross_stream_wait:on", backend="segments")
            assert got.startswith("backend:segments,") and got.endswith(",backing:auto,cross_stream_wait:on"), got
            got = stash.configure(remap_min_pages=256, remap_min_age=1, cross_stream_wait=False)  # defaults: not named
            assert "remap" not in got and "cross_stream_wait" not in got, got
            got = stash.configure(edge_pages_in_chunks=False)
            assert got.endswith(",backing:auto,edge_pages_in_chunks:off"), got
            got = stash.configure("edge_pages_in_chunks:on")  # the default: not named
            assert "edge_pages_in_chunks" not in got, got
            got = stash.configure(small_fill_mapped=True)
            assert got.endswith(",backing:auto,small_fill_mapped:on"), got
            got = stash.configure("small_fill_mapped:off")  # the default: not named
            assert "small_fill_mapped" not in got, got
            got = stash.configure(fill_mapped_above="off")
            assert got.endswith(",backing:auto,fill_mapped_above:off"), got
            got = stash.configure(fill_mapped_above="4 KiB")
            assert got.endswith(",backing:auto,fill_mapped_above:4096"), got
            got = stash.configure(fill_mapped_above="8 KiB")  # the default: not named
            assert "fill_mapped_above" not in got, got
            got = stash.configure(max_held_over_live=1.05)
            assert got.endswith(",small_region:on,free_records_used_streams:off,backing:auto,max_held_over_live:1.05"), got
            got = stash.configure(defaults="free_records_used_streams:on")  # an integration's defaults
            assert ",free_records_used_streams:on," in got, got
            got = stash.configure("free_records_used_streams:off", defaults="free_records_used_streams:on")
            assert ",free_records_used_streams:off," in got, got
            got = stash.configure(reserve="2 MB", backing="host", host_devices=3)
            assert "reserve:2000000" in got and "host_devices:3" in got and "page_slack:0.02" in got, got
            assert stash.device_count() == 3 and stash.backing() == "host"
            """
        )

    def test_environment_first_then_keywords(self):
        run(
            """
            got = stash.configure(page_slack=0.25)
            assert "page_slack:0.25" in got and "pages_between_moves:5" in got, got
            """,
            conf="pages_between_moves:5,page_slack:0.1",
        )

    def test_peer_access_from_the_environment_and_enable_keywords(self):
        run(
            """
            assert stash.current_options().endswith(",peer_access:none"), stash.current_options()
            got = stash.configure(peer_access="all")  # keywords override the environment
            assert "peer_access" not in got, got
            """,
            conf="peer_access:none",
        )
        message = first_allocation_error("peer_access:some")
        self.assertIn("STASH_CONF", message)
        self.assertIn("option 'peer_access': 'some' is not one of all, none", message)

    def test_grant_peer_access_checks_the_ids_and_has_nothing_to_grant_on_host_memory(self):
        run(
            """
            stash.configure(peer_access="none", backing="host", host_devices=2)
            stash.grant_peer_access(0, 1)
            stash.grant_peer_access(1, 0)
            stash.grant_peer_access(-1, 1)  # the current device
            for device, peer in ((0, 2), (0, -1), (2, 0)):
                try:
                    stash.grant_peer_access(device, peer)
                except stash.OptionError as e:
                    assert "invalid device id" in str(e), str(e)
                else:
                    raise AssertionError(f"grant_peer_access({device}, {peer}) was accepted")
            assert stash.current_options().endswith(",peer_access:none"), stash.current_options()
            p = L.stash_alloc(1000, 1, None)
            assert p and stats(1)["allocations"] == 1
            L.stash_free(p, 1000, 1, None)
            """
        )

    def test_a_bad_environment_names_stash_conf_and_the_option(self):
        result = run(
            """
            try:
                stash.configure()
            except stash.OptionError as e:
                print(e)
            else:
                raise AssertionError("accepted")
            """,
            conf="page_slak:0.1",
        )
        self.assertIn("STASH_CONF", result.stdout)
        self.assertIn("unknown option 'page_slak'", result.stdout)

    def test_the_library_reads_stash_conf_itself_when_not_configured(self):
        run(
            """
            assert stash.device_count() == 2 and stash.backing() == "host"
            assert L.stash_alloc(100, 1, None)
            """,
            conf="backing:host,host_devices:2",
        )
        message = first_allocation_error("reserve:lots")
        self.assertIn("STASH_CONF", message)
        self.assertIn("option 'reserve'", message)

    def test_the_options_text_stays_valid_until_the_options_change(self):
        # stash_c.h: stash_options() is "valid until the next stash_configure"; read through the raw
        # pointer, which ctypes' c_char_p would copy at once.
        run(
            """
            raw = L["stash_options"]
            raw.restype = ctypes.c_void_p
            first = raw()
            text = ctypes.string_at(first)
            assert text.startswith(b"backend:"), text
            raw()  # asked again
            assert ctypes.string_at(first) == text, ctypes.string_at(first)
            p = L.stash_alloc(64, 0, None)  # the first allocation fixes the options
            assert p and ctypes.string_at(first) == text, ctypes.string_at(first)
            raw()
            assert ctypes.string_at(first) == text, ctypes.string_at(first)
            L.stash_free(p, 64, 0, None)
            """,
            conf="page_slack:0.25",
        )

    def test_options_after_the_first_allocation_are_too_late(self):
        run(
            """
            stash.configure(page_slack=0.1)
            p = L.stash_alloc(64, 0, None)
            stash.configure(page_slack=0.1)  # the same options again: fine
            try:
                stash.configure(page_slack=0.3)
            except stash.TooLateError as e:
                assert "before the first allocation" in str(e) and "page_slack:0.1" in str(e), str(e)
            else:
                raise AssertionError("accepted")
            assert "page_slack:0.1" in stash.current_options()
            L.stash_free(p, 64, 0, None)
            """
        )

    def test_the_options_in_force_name_each_number_exactly(self):
        run(
            """
            got = stash.configure(page_slack=0.1234567, max_held_over_live=1.0000001, backing="host")
            assert "page_slack:0.1234567," in got and ",max_held_over_live:1.0000001" in got, got
            assert stash.configure(got) == got  # the text in force sets the same options again
            p = L.stash_alloc(64, 0, None)
            try:  # another value after the first allocation, though it agrees in 6 digits
                stash.configure(page_slack=0.1234568, max_held_over_live=1.0000001, backing="host")
            except stash.TooLateError:
                pass
            else:
                raise AssertionError("a different page_slack was taken for the one in force")
            L.stash_free(p, 64, 0, None)
            """
        )

    def test_numbers_read_and_print_the_same_in_a_comma_locale(self):
        # Where no locale with a decimal comma is installed, one is built into a scratch folder when the
        # machine has localedef and the locale sources (LOCPATH points the child at it).
        import shutil, tempfile
        scratch = tempfile.mkdtemp()
        saved = os.environ.get("LOCPATH")
        if shutil.which("localedef") and os.path.isdir("/usr/share/i18n/locales"):
            made = subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", os.path.join(scratch, "de_DE.UTF-8")],
                                  capture_output=True)
            if made.returncode in (0, 1) and os.path.isdir(os.path.join(scratch, "de_DE.UTF-8")):
                os.environ["LOCPATH"] = scratch  # 1: made, with warnings
        try:
            result = self._in_a_comma_locale()
        finally:
            if saved is None:
                os.environ.pop("LOCPATH", None)
            else:
                os.environ["LOCPATH"] = saved
            shutil.rmtree(scratch, ignore_errors=True)
        if "no comma locale" in result.stdout:
            self.skipTest("no locale with a decimal comma is installed or could be built")

    def _in_a_comma_locale(self):
        return run(
            """
            import locale
            for name in ("de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "de_DE", "fr_FR"):
                try:
                    locale.setlocale(locale.LC_ALL, name)
                    break
                except locale.Error:
                    pass
            else:
                print("no comma locale")
                sys.exit(0)
            assert locale.localeconv()["decimal_point"] == ",", locale.localeconv()
            got = stash.configure(page_slack=0.5, max_held_over_live=1.5)
            assert ",page_slack:0.5," in got and ",max_held_over_live:1.5" in got, got
            assert stash.configure(got) == got
            got = stash.configure(page_slack=0.25)
            assert ",page_slack:0.25," in got, got
            """
        )

    def test_queries_before_the_first_allocation_leave_the_options_open(self):
        run(
            """
            assert stash.device_count() >= 1 and stash.backing() in ("host", "cuda")
            assert stash.get_stats(0)["allocations"] == 0 and stash.get_stats(0)["reserved_bytes"] == 0
            stash.empty_cache()
            stash.reset_peak(0)
            assert "pages_between_moves:3" in stash.current_options()  # from STASH_CONF, not fixed yet
            got = stash.configure(page_slack=0.3, use_env=False)
            assert "page_slack:0.3" in got and "pages_between_moves:8" in got, got
            p = L.stash_alloc(64, 0, None)
            assert p and stash.get_stats(0)["allocations"] == 1
            L.stash_free(p, 64, 0, None)
            """,
            conf="pages_between_moves:3",
        )

    def test_option_help_lists_every_option(self):
        import stash

        text = stash.option_help()
        for name in ("backend", "page_slack", "reserve", "pages_between_moves", "max_chunk_pages", "edge_pages_in_chunks",
                     "chunks_per_block", "moves_per_block", "chunk_room_share", "small_region", "small_fill_mapped", "fill_mapped_above", "peer_access", "shareable",
                     "free_records_used_streams", "remap_pending_pages", "remap_min_pages", "remap_min_age",
                     "cross_stream_wait",
                     "max_held_over_live", "backing", "host_devices", "limit"):
            self.assertIn(name + ":", text)


def handle_text(pid, fd, st, size=2 << 20):
    """A handle's text (stash/ipc_pidfd.hpp) of one piece: descriptor fd of process pid, of file st."""
    return f"stash-ipc1 {pid} 0 0 {size} 1 {fd} {st.st_dev} {st.st_ino} 0 {size} {size}"


class Ipc(unittest.TestCase):
    """stash_ipc_export/open/close on host memory: every refusal has its status and message (the
    mapping itself needs a GPU: python/tests/gpu/smoke_torch.py and tests/cuda/test_ipc.cpp)."""

    def test_export_refuses_what_cannot_be_shared_and_changes_nothing(self):
        run(
            """
            p = L.stash_alloc(4096, 0, None)
            before = stats()
            try:
                stash.ipc_export(p)
            except stash.OptionError as e:
                assert e.status == n.ERROR_UNSUPPORTED and "shareable:on" in str(e), str(e)
            else:
                raise AssertionError("host memory was exported")
            for bad in (0, 12345678):
                try:
                    stash.ipc_export(bad)
                except stash.StashError as e:
                    assert e.status == n.ERROR_INVALID_POINTER, (bad, str(e))
                else:
                    raise AssertionError(f"{bad} was exported")
            try:
                stash.ipc_export(p + 256)  # inside the block: the block it lies in, not shareable
            except stash.OptionError as e:
                assert e.status == n.ERROR_UNSUPPORTED, str(e)
            else:
                raise AssertionError("host memory was exported")
            length = ctypes.c_size_t(7)
            assert L.stash_ipc_export(p, None, 0, None, None) == n.ERROR_INVALID_ARGUMENT
            assert "length is null" in n.last_error(), n.last_error()
            assert L.stash_ipc_export(p, None, 10, ctypes.byref(length), None) == n.ERROR_INVALID_ARGUMENT
            assert length.value == 7
            assert stats() == before
            L.stash_free(p, 4096, 0, None)
            """
        )

    def test_open_refuses_text_that_is_not_a_handle(self):
        run(
            """
            for text in (b"", b"e\x01\x02", b"stash-ipc1 1 0 0 100", b"stash-ipc1 1 0 0 100 1 5 1 2 0 4096 2048",
                         b"stash-ipc2 1 0 0 100 1 5 1 2 0 4096 4096"):
                ptr = ctypes.c_void_p(1)
                assert L.stash_ipc_open(text, ctypes.byref(ptr), None) == n.ERROR_INVALID_ARGUMENT, text
                assert "not a stash ipc handle" in n.last_error(), n.last_error()
                assert ptr.value is None, text  # null on failure
            assert L.stash_ipc_open(None, ctypes.byref(ctypes.c_void_p()), None) == n.ERROR_INVALID_ARGUMENT
            try:
                stash.ipc_open("nonsense")
            except stash.OptionError as e:
                assert e.status == n.ERROR_INVALID_ARGUMENT
            else:
                raise AssertionError("accepted")
            """
        )

    def test_text_a_c_string_cannot_carry_is_refused_not_cut(self):
        run(
            """
            before = stash.current_options()
            for kwargs in (dict(conf="page_slack:0.5\\0,bogus:1"), dict(reserve="1\\0GiB")):
                try:
                    stash.configure(**kwargs)
                except stash.OptionError as e:
                    assert e.status == n.ERROR_INVALID_ARGUMENT and ("NUL" in str(e) or "not a valid value" in str(e)), str(e)
                else:
                    raise AssertionError(f"{kwargs} was accepted: {stash.current_options()}")
            assert stash.current_options() == before, (stash.current_options(), before)
            st = os.fstat(0)
            good = handle_text(os.getpid(), 0, st)
            for text in (good + "\\0 trailing", (good + "\\0").encode(), "stash-ipc1 \\u00e9", bytes(3)):
                try:
                    stash.ipc_open(text)
                except stash.OptionError as e:
                    assert e.status == n.ERROR_INVALID_ARGUMENT, (text, e)
                else:
                    raise AssertionError(f"{text!r} was accepted")
            """
        )

    def test_open_says_why_the_exporters_descriptors_cannot_be_taken(self):
        run(
            """
            import subprocess
            fd = os.memfd_create("stash-test")
            os.ftruncate(fd, 2 << 20)
            st = os.fstat(fd)
            def refusal(text):
                try:
                    stash.ipc_open(text)
                except stash.IpcError as e:
                    assert e.status == n.ERROR_IPC
                    return str(e)
                raise AssertionError("opened")
            # An exporter that has exited.
            child = subprocess.Popen([sys.executable, "-c", "pass"]); child.wait()
            assert "has exited" in refusal(handle_text(child.pid, fd, st))
            # A descriptor it closed: the block was freed.
            assert "freed" in refusal(handle_text(os.getpid(), 1000, st))
            # A descriptor number now naming another file.
            other = os.memfd_create("other")
            assert "no longer names" in refusal(handle_text(os.getpid(), other, st))
            # Descriptors this process may take (its own), but no GPU to map them on.
            try:
                stash.ipc_open(handle_text(os.getpid(), fd, st))
            except stash.OptionError as e:
                assert e.status == n.ERROR_UNSUPPORTED and "needs a GPU" in str(e), str(e)
            else:
                raise AssertionError("mapped without a GPU")
            assert L.stash_ipc_close(ctypes.c_void_p(4096)) == n.ERROR_INVALID_POINTER
            """
        )

    def test_open_without_ptrace_permission_over_the_exporter_says_so(self):
        # Another user may never take this process's descriptors (without CAP_SYS_PTRACE): as root
        # the importer runs as nobody; otherwise it asks for pid 1's, another user's.
        fd = os.memfd_create("stash-test")
        try:
            st = os.fstat(fd)
            root = os.geteuid() == 0
            if not root and os.stat("/proc/1").st_uid == os.geteuid():
                self.skipTest("not root, and pid 1 is this user's")
            text = handle_text(os.getpid(), fd, st) if root else handle_text(1, 0, st)
            result = run(
                f"""
                if {root}:  # the library is loaded: drop to nobody
                    os.setgid(65534)
                    os.setuid(65534)
                try:
                    stash.ipc_open({text!r})
                except stash.IpcError as e:
                    print(e)
                """
            )
            self.assertIn("not permitted", result.stdout)
            self.assertIn("ptrace", result.stdout)
        finally:
            os.close(fd)

    def test_shareable_is_an_option(self):
        run(
            """
            assert "shareable" not in stash.configure()
            assert stash.configure(shareable="on").endswith(",shareable:on")
            assert "shareable" not in stash.configure("shareable:off")
            assert stash.configure(shareable="auto").endswith(",shareable:auto")
            try:
                stash.configure(shareable="yes")
            except stash.OptionError as e:
                assert "option 'shareable': 'yes' is not one of off, on, auto" in str(e), str(e)
            else:
                raise AssertionError("accepted")
            """
        )


class Frameworks(unittest.TestCase):
    def test_cupy_pinned_allocator_tells_a_bad_size_from_out_of_memory(self):
        run(
            """
            import types
            sys.modules["cupy"] = types.ModuleType("cupy")  # a stand-in: the failure path calls nothing of it
            import stash.cupy
            try:
                stash.cupy.malloc_pinned(1 << 63)
            except stash.OptionError as e:
                assert "invalid size" in str(e) and e.status == n.ERROR_INVALID_ARGUMENT, (e, e.status)
            else:
                raise AssertionError("accepted")
            """
        )

    def test_cupy_blocks_keep_their_stream_alive_until_freed(self):
        run(
            STAND_IN_CUPY
            + textwrap.dedent(
                """
            before = stash.get_stats(0)
            block = stash.cupy.malloc(1 << 20)
            stream = weakref.ref(current[0])
            current[0] = Stream(0x200)          # the program drops the stream the block was made on
            gc.collect()
            assert stream() is not None and Stream.destroyed == [], Stream.destroyed
            assert block.mem._owner.stream is stream()
            del block
            gc.collect()
            assert Stream.destroyed == [0x100], Stream.destroyed   # freed on it, then it goes
            after = stash.get_stats(0)
            assert after["deallocations"] == before["deallocations"] + 1, (before, after)
            assert after["allocated_bytes"] == before["allocated_bytes"], (before, after)
            """
            )
        )

    def test_cupy_flushes_a_stream_when_its_last_block_is_freed(self):
        # The block holding a CuPy stream's last reference flushes it before the stream goes: the
        # frees made on it get their event while the handle still names a live stream. Earlier frees
        # on a stream that lives on do not flush.
        run(
            STAND_IN_CUPY
            + textwrap.dedent(
                """
            real = L.stash_flush_stream
            def flush(handle):
                events.append(("flush", handle))
                return real(handle)
            L.stash_flush_stream = flush
            first, second = stash.cupy.malloc(1 << 20), stash.cupy.malloc(1 << 10)
            del first
            gc.collect()
            assert events == [], events                    # the stream is current and has a block left
            current[0] = Stream(0x200)
            del second
            gc.collect()
            assert events == [("flush", 0x100), ("destroy", 0x100)], events
            assert stash.get_stats(0)["allocated_bytes"] == 0
            """
            )
        )

    def test_flush_stream_takes_handles_and_stream_objects(self):
        run(
            """
            import types
            assert stash.flush_stream(0) is None                  # never seen: nothing to do
            assert stash.flush_stream(types.SimpleNamespace(ptr=0x300)) is None
            assert stash.flush_stream(types.SimpleNamespace(cuda_stream=0x400)) is None
            p = L.stash_alloc(256, 0, 0x500)
            L.stash_free(p, 256, 0, 0x500)
            stash.flush_stream(0x500)
            for bad in (-1, 1 << 64, "0x500", 1.5, True):
                try:
                    stash.flush_stream(bad)
                except stash.OptionError as e:
                    assert "not a CUDA stream handle" in str(e), e
                else:
                    raise AssertionError(bad)
            """
        )

    def test_framework_modules_need_their_framework(self):
        # stash.torch and stash.cupy import torch and cupy; without them the import error says so.
        for module, framework in (("stash.torch", "torch"), ("stash.cupy", "cupy")):
            result = run(
                f"""
                import importlib.util
                if importlib.util.find_spec("{framework}") is not None:
                    sys.exit(0)
                try:
                    import {module}
                except ImportError as e:
                    assert "{framework}" in str(e), str(e)
                else:
                    raise AssertionError("imported")
                """
            )
            self.assertEqual(result.returncode, 0)


if __name__ == "__main__":
    unittest.main()
