"""GPU smoke test of stash.torch (needs torch with CUDA and a GPU; run by hand on the GPU machine).

    python3 python/tests/gpu/smoke_torch.py        # prints one line per check, then 'N passed, M failed'
    python3 python/tests/gpu/smoke_torch.py NAME   # only the named checks

Each check that needs a fresh process (enable must come before CUDA starts) runs in a child.
"""

import os
import subprocess
import sys
import textwrap

CHECKS = {}


def check(fn):
    CHECKS[fn.__name__] = textwrap.dedent(fn.__doc__)
    return fn


@check
def enable_and_compute():
    """
    import torch, stash, stash.torch
    opts = stash.torch.enable(page_slack=0.05)
    assert "page_slack:0.05" in opts, opts
    assert stash.torch.hooks_wired(), "hooks extension not in use"
    a = torch.randn(1000, 1000, device="cuda")
    b = a @ a.T
    ref = (a.cpu() @ a.cpu().T)
    assert torch.allclose(b.cpu(), ref, rtol=1e-3, atol=1e-3)
    e = torch.empty(0, device="cuda")                       # 0 bytes: null, no error
    assert e.numel() == 0 and torch.cat([e, a[0]]).shape == (1000,)
    s = stash.torch.memory_stats(0)
    assert s["allocated_bytes.all.current"] >= 2 * 4 * 10**6, s
    assert s["reserved_bytes.all.peak"] >= s["allocated_bytes.all.peak"] > 0, s
    print("backing", stash.backing(), "stream ordered", stash.stream_ordered())
    """


@check
def too_late_is_a_clear_error():
    """
    import torch, stash.torch
    x = torch.ones(4, device="cuda")
    try:
        stash.torch.enable()
    except stash.torch.TooLateError as e:
        assert "before any CUDA tensor" in str(e), str(e)
    else:
        raise AssertionError("enable() after a CUDA tensor was accepted")
    """


@check
def set_device_first_is_too_late():
    """
    import torch, stash.torch
    torch.cuda.set_device(0)
    try:
        stash.torch.enable()
    except stash.torch.TooLateError as e:
        assert "set_device" in str(e), str(e)
    else:
        raise AssertionError("enable() after set_device was accepted")
    """


@check
def bad_option_names_itself():
    """
    import stash, stash.torch
    try:
        stash.torch.enable(page_slak=0.1)
    except stash.OptionError as e:
        assert "page_slak" in str(e), str(e)
    else:
        raise AssertionError("accepted")
    try:
        stash.torch.enable(memory_fraction=2)
    except stash.OptionError as e:
        assert "memory_fraction" in str(e), str(e)
    else:
        raise AssertionError("accepted")
    """


@check
def out_of_memory_is_torch_oom_and_the_process_goes_on():
    """
    import torch, stash.torch
    stash.torch.enable()
    keep = torch.ones(256, 1024, 1024, device="cuda")      # 1 GiB live
    try:
        torch.empty(1 << 50, dtype=torch.uint8, device="cuda")
    except torch.cuda.OutOfMemoryError as e:
        assert "stash" in str(e), str(e)
    else:
        raise AssertionError("no OutOfMemoryError")
    s = stash.torch.memory_stats(0)
    assert s["num_ooms"] == 1, s
    assert keep.sum().item() == 256 * 1024 * 1024
    y = torch.ones(1024, device="cuda") * 2                  # still allocates
    assert y.sum().item() == 2048
    """


@check
def empty_cache_leaves_what_is_live():
    """
    import torch, stash.torch
    stash.torch.enable()
    live = torch.ones(64, 1024, 1024, device="cuda")         # 256 MiB
    for n in (1, 7, 33, 100):
        t = torch.empty(n, 1024, 1024, device="cuda"); del t
    torch.cuda.synchronize()
    torch.cuda.empty_cache()                                 # PyTorch's call reaches stash (reset hook)
    s = stash.torch.memory_stats(0)
    page = 2 << 20
    assert s["reserved_bytes.all.current"] - s["allocated_bytes.all.current"] < 2 * page, s
    stash.torch.reset_peak_memory_stats(0)
    assert stash.torch.max_memory_allocated(0) == stash.torch.memory_allocated(0)
    """


@check
def memory_fraction_limits_what_stash_holds():
    """
    import torch, stash, stash.torch
    stash.torch.enable()
    total = torch.cuda.mem_get_info(0)[1]
    assert torch.cuda.get_per_process_memory_fraction(0) == 1.0  # no limit yet
    torch.cuda.set_per_process_memory_fraction(0.25, 0)       # reaches stash through the hook
    limit = stash.torch.memory_stats(0)["stash.limit_bytes"]
    assert abs(limit - total // 4) <= 1, (limit, total)
    assert torch.cuda.get_per_process_memory_fraction(0) == 0.25  # read back as set
    small = torch.empty(total // 8, dtype=torch.uint8, device="cuda")
    try:
        torch.empty(total // 5, dtype=torch.uint8, device="cuda")  # 1/8 + 1/5 of the device > 1/4
    except torch.cuda.OutOfMemoryError:
        pass
    else:
        raise AssertionError("the limit was not met")
    assert stash.torch.memory_reserved(0) <= limit
    del small
    bigger = torch.empty(total // 5, dtype=torch.uint8, device="cuda")  # fits once the first is freed
    stash.set_memory_limit(total // 2, 0)                    # stash's own limit: the fraction follows it
    assert abs(torch.cuda.get_per_process_memory_fraction(0) - 0.5) < 1e-9
    """


@check
def record_stream_keeps_memory_from_early_reuse():
    """
    import torch, stash, stash.torch
    stash.torch.enable()
    side = torch.cuda.Stream()
    for trial in range(20):
        x = torch.zeros(1 << 20, device="cuda")
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            torch.cuda._sleep(20_000_000)                    # the side stream writes x late
            x.fill_(7)
        x.record_stream(side)
        del x
        y = torch.zeros(1 << 20, device="cuda")              # must not get x's memory before side is done
        torch.cuda.synchronize()
        bad = int((y != 0).sum())
        if bad:
            raise AssertionError(f"trial {trial}: {bad} elements overwritten by the side stream")
    """


@check
def record_stream_onto_a_silent_stream_comes_back():
    """
    import torch, stash, stash.torch
    stash.torch.enable()                                     # free_records_used_streams:on by default
    side = torch.cuda.Stream()                               # never allocates: like NCCL's stream
    size = 16 << 20
    for trial in range(20):
        x = torch.empty(size, dtype=torch.uint8, device="cuda")
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            x.fill_(1)                                       # a kernel on side, no allocation there
        x.record_stream(side)
        del x
        torch.cuda.synchronize()                             # side's work is done: the block may come back
    peak = stash.torch.memory_stats(0)["reserved_bytes.all.peak"]
    # Without the free recording side's event, every trial's block would wait for empty_cache: 20 x 16 MiB.
    if peak > 4 * size:
        raise AssertionError(f"reserved peak {peak >> 20} MiB: blocks record_stream'ed onto a silent stream did not come back")
    """


@check
def peer_access_none_copies_between_two_gpus():
    """
    import torch, stash, stash.torch
    if torch.cuda.device_count() < 2:
        print("skipped: needs 2 GPUs")
        raise SystemExit(0)
    opts = stash.torch.enable(peer_access="none")            # pages mapped for their own GPU only
    assert ",peer_access:none" in opts, opts  # stash.torch adds its defaults too
    assert stash.torch.hooks_wired(), "hooks extension not in use"
    print("peers", torch.cuda.can_device_access_peer(0, 1), torch.cuda.can_device_access_peer(1, 0))
    n = 9 << 20                                              # 36 MiB of floats: many pages
    x = torch.arange(n, dtype=torch.float32, device="cuda:0")
    y = x.to("cuda:1")                                       # PyTorch enables peer access first: stash grants
    assert torch.equal(y.cpu(), x.cpu())
    y.mul_(2)
    z = torch.empty(n, dtype=torch.float32, device="cuda:0")
    z.copy_(y)                                               # and back, into a buffer mapped before
    assert torch.equal(z.cpu(), x.cpu() * 2)
    w = torch.empty(3 * n, dtype=torch.float32, device="cuda:1")   # pages mapped after the grant
    w[:n].copy_(z)
    assert torch.equal(w[:n].cpu(), x.cpu() * 2)
    torch.cuda.synchronize(0)
    torch.cuda.synchronize(1)
    """


@check
def default_grants_a_peer_when_pytorch_asks():
    """
    import torch, stash, stash.torch
    if torch.cuda.device_count() < 2:
        print("skipped: needs 2 GPUs")
        raise SystemExit(0)
    opts = stash.torch.enable()                              # stash.torch's defaults, hooks wired
    assert stash.torch.hooks_wired(), "hooks extension not in use"
    assert ",peer_access:none" in opts, opts
    x = torch.randn(4 << 20, device="cuda:0")
    y = x.to("cuda:1") * 3                                   # the copy's enablePeerAccess grants the peer
    assert torch.allclose(y.cpu(), x.cpu() * 3)
    # nn.DataParallel: broadcast of the weights, scatter, gather and the backward's reduce, two GPUs.
    net = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10)).cuda(0)
    ref = [p.detach().cpu().clone() for p in net.parameters()]
    inp = torch.randn(64, 512, device="cuda:0")
    out = torch.nn.DataParallel(net, device_ids=[0, 1])(inp)
    out.square().mean().backward()
    net_cpu = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 10))
    for p, r in zip(net_cpu.parameters(), ref):
        p.data.copy_(r)
    out_cpu = net_cpu(inp.cpu())
    out_cpu.square().mean().backward()
    assert torch.allclose(out.detach().cpu(), out_cpu.detach(), rtol=1e-3, atol=1e-4)
    for p, q in zip(net.parameters(), net_cpu.parameters()):
        assert torch.allclose(p.grad.cpu(), q.grad, rtol=1e-3, atol=1e-5), (p.grad.flatten()[:4], q.grad.flatten()[:4])
    torch.cuda.synchronize(0)
    torch.cuda.synchronize(1)
    """


@check
def cuda_graph_replays_and_keeps_its_memory():
    """
    import gc, torch, stash, stash.torch
    stash.torch.enable()
    w = torch.randn(1024, 1024, device="cuda")
    def step(x):
        h = torch.relu(x @ w)               # an intermediate, freed during the capture
        return (h @ w.T).sum(dim=1)
    static_in = torch.randn(512, 1024, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step(static_in)                 # warm-up, as torch.cuda.graph asks
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):               # empties the cache first: the capture maps new pages
        static_out = step(static_in)
    held = stash.torch.memory_stats(0)["allocated_bytes.all.current"]
    # Memory made after the capture must not be the graph's: replays would overwrite it.
    after = [torch.full((512, 1024), 7.0, device="cuda") for _ in range(32)]
    for _ in range(3):
        fresh = torch.randn(512, 1024, device="cuda")
        static_in.copy_(fresh)
        g.replay()
        torch.cuda.synchronize()
        assert torch.allclose(static_out, step(fresh), rtol=1e-3, atol=1e-2)
    for t in after:
        assert bool((t == 7.0).all()), "a replay wrote into memory made after the capture"
    del after, fresh
    gc.collect()
    before_release = stash.torch.memory_stats(0)["allocated_bytes.all.current"]
    del g, static_out
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()                # the released pool's freed blocks go back here
    released = stash.torch.memory_stats(0)["allocated_bytes.all.current"]
    assert released < before_release, (released, before_release)
    print("graph pool held", held, "bytes; released", before_release - released)
    """


@check
def torch_compile_matches_eager():
    """
    import torch, stash, stash.torch
    stash.torch.enable()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 64)).cuda().eval()
    compiled = torch.compile(model)   # Inductor's kernels; its buffers come from stash
    with torch.no_grad():
        for i in range(4):
            x = torch.randn(8 * (i + 1), 512, device="cuda")
            assert torch.allclose(compiled(x), model(x), rtol=1e-3, atol=1e-3), i
    print("compiled; allocated", stash.torch.memory_stats(0)["allocated_bytes.all.current"])
    """


@check
def torch_compile_reduce_overhead_matches_eager():
    """
    import torch, stash, stash.torch
    stash.torch.enable()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 64)).cuda().eval()
    compiled = torch.compile(model, mode="reduce-overhead")   # CUDA graph trees: graph pools and checkpoints
    keep = []
    with torch.no_grad():
        for i in range(8):
            x = torch.randn(32 * (1 + i % 2), 512, device="cuda")  # two shapes: two graphs in the tree
            out = compiled(x).clone()                                # a replay's output is overwritten by the next
            keep.append(torch.full((256, 1024), float(i), device="cuda"))
            assert torch.allclose(out, model(x), rtol=1e-3, atol=1e-3), i
    for i, t in enumerate(keep):
        assert bool((t == float(i)).all()), "a replay wrote into memory made after its capture"
    from torch._inductor import cudagraph_trees
    manager = cudagraph_trees.get_manager(0, create_if_none_exists=False)
    print("compiled with CUDA graphs and replayed; allocated", stash.torch.memory_stats(0)["allocated_bytes.all.current"],
          "checkpoints restored", manager.debug_checkpointing_counter if manager is not None else "unknown")
    """


@check
def torch_compile_reduce_overhead_training_matches_eager():
    """
    import torch, stash, stash.torch
    stash.torch.enable()
    from torch._inductor import cudagraph_trees
    def make():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.GELU(), torch.nn.Linear(512, 1)).cuda()
    eager, model = make(), make()
    opt_e = torch.optim.SGD(eager.parameters(), lr=1e-2)
    opt_c = torch.optim.SGD(model.parameters(), lr=1e-2)
    loss_of = torch.compile(lambda x: model(x).square().mean(), mode="reduce-overhead")  # forward and backward graphs
    gen = torch.Generator(device="cuda").manual_seed(1)
    for i in range(8):
        torch.compiler.cudagraph_mark_step_begin()
        x = torch.randn(64, 256, device="cuda", generator=gen)
        le = eager(x).square().mean()
        opt_e.zero_grad()
        le.backward()
        opt_e.step()
        lc = loss_of(x)
        opt_c.zero_grad()
        lc.backward()
        opt_c.step()
        assert abs(le.item() - lc.item()) <= 1e-3 * max(1.0, abs(le.item())), (i, le.item(), lc.item())
    manager = cudagraph_trees.get_manager(0, create_if_none_exists=False)
    print("losses match eager over 8 steps; checkpoints restored",
          manager.debug_checkpointing_counter if manager is not None else "unknown")
    """


@check
def torch_compile_reduce_overhead_restores_checkpoints():
    """
    import torch, stash, stash.torch
    stash.torch.enable()
    from torch._inductor import cudagraph_trees
    torch.manual_seed(0)
    first = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.GELU()).cuda().eval()
    second = torch.nn.Sequential(torch.nn.Linear(256, 64), torch.nn.GELU()).cuda().eval()
    f = torch.compile(lambda x: first(x), mode="reduce-overhead")
    g = torch.compile(lambda h: second(h), mode="reduce-overhead", dynamic=False)
    keep = []
    with torch.no_grad():
        for i in range(10):
            torch.compiler.cudagraph_mark_step_begin()
            x = torch.randn(64, 256, device="cuda")
            h = f(x)                               # replayed from the third step on
            rows = 64 if i < 5 else 32 + 8 * (i - 5)
            out = g(h[:rows]).clone()              # a new shape while f's graph executes: a new
            keep.append(torch.full((128, 256), float(i), device="cuda"))  # recording from a checkpoint
            assert torch.allclose(out, second(first(x)[:rows]), rtol=1e-3, atol=1e-3), i
    for i, t in enumerate(keep):
        assert bool((t == float(i)).all()), "a replay wrote into memory made after its capture"
    manager = cudagraph_trees.get_manager(0, create_if_none_exists=False)
    restored = manager.debug_checkpointing_counter if manager is not None else None
    print("matches eager; checkpoints restored", restored)
    assert restored, "no checkpoint was restored: the check did not exercise setCheckpointPoolState"
    """


@check
def mem_pool_keeps_its_blocks():
    """
    import gc, torch, stash, stash.torch
    stash.torch.enable()
    pool = torch.cuda.MemPool()
    assert pool.use_count() == 1, pool.use_count()
    with torch.cuda.use_mem_pool(pool):
        a = torch.full((1 << 20,), 3.0, device="cuda")
    ptr = a.data_ptr()
    del a                                                  # freed into the pool: nobody else's
    outside = [torch.empty(1 << 20, device="cuda") for _ in range(8)]
    assert all(t.data_ptr() != ptr for t in outside)
    with torch.cuda.use_mem_pool(pool):
        b = torch.empty(1 << 20, device="cuda")          # the pool's own request takes it again
    assert b.data_ptr() == ptr, (b.data_ptr(), ptr)
    assert pool.use_count() == 1, pool.use_count()
    del b
    allocated = stash.torch.memory_stats(0)["allocated_bytes.all.current"]
    del pool
    gc.collect()
    torch.cuda.empty_cache()
    released = allocated - stash.torch.memory_stats(0)["allocated_bytes.all.current"]
    assert released >= 4 << 20, released
    print("MemPool kept its block and gave back", released, "bytes")
    """


@check
def mem_pool_block_used_on_a_side_stream_comes_back_once_its_work_is_done():
    """
    import os, torch
    if os.environ.get("SMOKE_NATIVE") != "1":                # SMOKE_NATIVE=1: PyTorch's own allocator, for comparison
        import stash, stash.torch
        stash.torch.enable()                                 # free_records_used_streams:on
    pool = torch.cuda.MemPool()
    side = torch.cuda.Stream()
    n = 4 << 20                                              # 16 MiB of float32
    with torch.cuda.use_mem_pool(pool):
        a = torch.zeros(n, device="cuda")
    ptr = a.data_ptr()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(200_000_000)                       # the side stream writes a late
        a.fill_(7)
    a.record_stream(side)
    del a                                                    # freed into the pool, side's work still queued
    with torch.cuda.use_mem_pool(pool):
        b = torch.zeros(n, device="cuda")
    running = not side.query()                               # still running after b's request: a's event had not completed
    if running:
        assert b.data_ptr() != ptr, "the pool handed out a block the side stream still writes"
    side.synchronize()                                       # the program waits; the allocator does not
    with torch.cuda.use_mem_pool(pool):
        c = torch.zeros(n, device="cuda")
    assert c.data_ptr() == ptr, "the block did not come back to its pool once the side stream's work was done"
    torch.cuda.synchronize()
    assert int((b != 0).sum()) == 0 and int((c != 0).sum()) == 0
    print("side stream running at the first request:", running, "| reused after it finished: True")
    """


@check
def graph_intermediate_used_on_a_side_stream_comes_back_after_the_capture_once_its_work_is_done():
    """
    # Freed during the capture, tmp gets its event on the side stream when the capture ends, and the
    # pool's next request on its stream takes it once that work is done, with no empty_cache. That
    # request comes from torch.cuda.use_mem_pool: torch.cuda.graph synchronizes the device and empties
    # the cache when a capture begins. On the H200 the side stream had finished by the end of the
    # capture in every run so far (run W3), so the first branch below may not be taken.
    import os, torch
    if os.environ.get("SMOKE_NATIVE") != "1":                # SMOKE_NATIVE=1: PyTorch's own allocator, for comparison
        import stash, stash.torch
        stash.torch.enable()                                 # free_records_used_streams:on
    pool = torch.cuda.MemPool()
    capture, side = torch.cuda.Stream(), torch.cuda.Stream()
    n = 4 << 20                                              # 16 MiB of float32
    static = torch.ones(n, device="cuda")
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, pool=pool.id, stream=capture, capture_error_mode="relaxed"):
        tmp = static * 2                                     # an intermediate in the graph's pool
        ptr = tmp.data_ptr()
        with torch.cuda.stream(side):                        # eager work, not captured: a late write
            torch.cuda._sleep(200_000_000)
            tmp.fill_(7)
        tmp.record_stream(side)
        out = tmp + 1
        del tmp                                              # freed during the capture, side's work still queued
    with torch.cuda.stream(capture), torch.cuda.use_mem_pool(pool):
        b = torch.empty(n, device="cuda")                    # the pool's next request on its stream
    running = not side.query()                               # still running after b's request: tmp's event had not completed
    if running:
        assert b.data_ptr() != ptr, "the pool handed out a block the side stream still writes"
        side.synchronize()                                   # the program waits; the allocator does not
        with torch.cuda.stream(capture), torch.cuda.use_mem_pool(pool):
            b = torch.empty(n, device="cuda")
    assert b.data_ptr() == ptr, "the block did not come back to its pool once the side stream's work was done"
    g.replay()
    torch.cuda.synchronize()
    assert int((out != 3).sum()) == 0
    print("side stream running at the first request:", running, "| reused after it finished: True")
    """


@check
def torch_memory_stats_report_stashs_figures():
    """
    # torch.cuda.memory_stats and what reads it (memory_allocated, max_memory_reserved, memory_summary,
    # reset_peak_memory_stats, reset_accumulated_memory_stats) answer with stash's figures: PyTorch's
    # CUDAPluggableAllocator raises there, stash's subclass answers.
    import torch, stash, stash.torch
    stash.torch.enable()
    x = torch.empty(64 << 20, dtype=torch.uint8, device="cuda")
    y = torch.empty(3 << 20, dtype=torch.uint8, device="cuda")
    ours, theirs = stash.torch.memory_stats(0), torch.cuda.memory_stats(0)
    for key in ("allocated_bytes.all.current", "allocated_bytes.all.peak", "reserved_bytes.all.current",
                "reserved_bytes.all.peak", "requested_bytes.all.current", "allocation.all.current", "num_ooms"):
        assert theirs[key] == ours[key], (key, theirs[key], ours[key])
    assert torch.cuda.memory_allocated() >= (67 << 20), torch.cuda.memory_allocated()
    assert torch.cuda.memory_reserved() >= torch.cuda.memory_allocated()
    del x
    peak = torch.cuda.max_memory_allocated()
    assert peak >= (67 << 20) > torch.cuda.memory_allocated(), (peak, torch.cuda.memory_allocated())
    torch.cuda.reset_peak_memory_stats()
    assert torch.cuda.max_memory_allocated() == torch.cuda.memory_allocated() < peak
    torch.cuda.reset_accumulated_memory_stats()
    assert torch.cuda.memory_stats()["allocation.all.allocated"] == 0
    z = torch.empty(1 << 20, device="cuda")
    assert torch.cuda.memory_stats()["allocation.all.allocated"] == 1
    summary = torch.cuda.memory_summary()
    assert "Allocated memory" in summary, summary[:400]
    print("allocated", torch.cuda.memory_allocated(), "reserved", torch.cuda.memory_reserved(),
          "peak before the reset", peak)
    """


@check
def memory_history_and_snapshot_show_stashs_memory():
    """
    # torch.cuda.memory._record_memory_history, _snapshot and _dump_snapshot (what pytorch.org/memory_viz
    # and torch.cuda._memory_viz read) work under stash: PyTorch's CUDAPluggableAllocator raises in
    # recordHistory and snapshot; stash's subclass keeps the trace at its hooks and walks its memory.
    import os, pickle, tempfile, torch, stash, stash.torch
    from torch.cuda import _memory_viz
    native = os.environ.get("SMOKE_NATIVE") == "1"         # PyTorch's own allocator, for comparison
    if not native:
        stash.torch.enable()
    torch.cuda.memory._record_memory_history(max_entries=100000)
    assert torch._C._cuda_isHistoryEnabled()
    def make(n):
        return torch.empty(n, dtype=torch.uint8, device="cuda")
    x = make(5 << 20)
    y = make(3000)
    y_at = y.data_ptr()
    del y
    snap = torch.cuda.memory._snapshot()
    trace = snap["device_traces"][0]
    allocs = [e for e in trace if e["action"] == "alloc" and e["addr"] == x.data_ptr()]
    assert len(allocs) == 1 and allocs[0]["size"] == 5 << 20, allocs
    assert any(f["name"] == "make" for f in allocs[0]["frames"]), allocs[0]["frames"][:8]
    frees = [e["action"] for e in trace if e["addr"] == y_at and e["action"].startswith("free")]
    assert frees == ["free_requested", "free_completed"], frees
    assert all(e["time_us"] > 1.6e15 for e in trace), trace[:2]  # microseconds since the epoch
    blocks = {}
    for seg in snap["segments"]:
        assert seg["is_expandable"] is not native, seg  # runs of mapped pages (backend:vmm)
        at = seg["address"]
        for b in seg["blocks"]:
            assert b["address"] == at, (seg["address"], b)
            at += b["size"]
            blocks[b["address"]] = b
        assert at == seg["address"] + seg["total_size"], seg
    reserved = sum(seg["total_size"] for seg in snap["segments"])
    assert reserved == torch.cuda.memory_reserved(), reserved
    assert native or reserved == stash.get_stats(0)["reserved_bytes"], reserved
    live = blocks[x.data_ptr()]
    assert live["state"] == "active_allocated" and live["requested_size"] == 5 << 20, live
    assert any(f["name"] == "make" for f in live["frames"]), live["frames"][:8]
    assert sum(b["size"] for b in blocks.values() if b["state"] == "active_allocated") == torch.cuda.memory_allocated()
    freed = [b for b in blocks.values() if b["address"] <= y_at < b["address"] + b["size"]]
    assert len(freed) == 1 and freed[0]["state"] == "inactive", freed
    assert torch.cuda.memory_snapshot() == snap["segments"]  # nothing allocated or freed since
    again = torch.cuda.memory._snapshot()["device_traces"][0]
    marks = [e for e in again if e["action"] == "snapshot"]     # each earlier snapshot, as PyTorch marks it
    assert marks and marks[-1]["size"] == torch.cuda.memory_allocated(), marks[-1:]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "snapshot.pickle")
        torch.cuda.memory._dump_snapshot(path)
        with open(path, "rb") as f:
            dumped = pickle.load(f)
    summary = _memory_viz.segsum(dumped)            # PyTorch's readers parse it (and check their sums)
    dumped_reserved = sum(seg["total_size"] for seg in dumped["segments"])
    assert dumped_reserved == torch.cuda.memory_reserved(), dumped_reserved
    assert f"segments: {len(dumped['segments'])}\n" in summary, summary[-600:]
    assert f"total_reserved: {_memory_viz.Bytes(dumped_reserved)}\n" in summary, summary[-600:]
    listing = _memory_viz.trace(dumped)              # "N entries", then "a = seg_0[...]", "del a", ...
    assert f"{len(dumped['device_traces'][0])} entries" in listing and "free completed" in listing, listing[:300]
    assert "<html" in _memory_viz.trace_plot(dumped).lower()
    recorded = len(torch.cuda.memory._snapshot()["device_traces"][0])
    torch.cuda.memory._record_memory_history(enabled=None)
    assert not torch._C._cuda_isHistoryEnabled()
    entries = len(torch.cuda.memory._snapshot()["device_traces"][0])
    assert recorded > 0 and entries == 0, (entries, recorded)  # stopping empties it, as PyTorch's allocator does
    z = make(1000)
    del z
    assert len(torch.cuda.memory._snapshot()["device_traces"][0]) == entries  # recording stopped
    print("entries", entries, "segments", len(snap["segments"]), "reserved", reserved)
    """


@check
def mem_pool_snapshot_shows_the_pools_blocks():
    """
    # MemPool.snapshot() and memory_snapshot(pool id): the segments of one pool (segment_pool_id), as
    # CUDA graph trees' pool checks read them (torch/_inductor/cudagraph_trees.py, get_block_addrs).
    import torch, stash.torch
    stash.torch.enable()
    outside = torch.empty(3 << 20, dtype=torch.uint8, device="cuda")
    pool = torch.cuda.MemPool()
    with torch.cuda.use_mem_pool(pool):
        kept = torch.empty(5 << 20, dtype=torch.uint8, device="cuda")
        dropped = torch.empty(1 << 20, dtype=torch.uint8, device="cuda")
    dropped_at = dropped.data_ptr()
    del dropped                                        # freed to the pool, kept for it
    segments = pool.snapshot()
    assert segments and all(tuple(s["segment_pool_id"]) == tuple(pool.id) for s in segments), segments
    states = {}
    for s in segments:
        at = s["address"]
        for b in s["blocks"]:
            states[at] = (b["state"], b["size"])
            at += b["size"]
    assert states[kept.data_ptr()][0] == "active_allocated", states
    assert states[dropped_at][0] == "inactive", states
    assert outside.data_ptr() not in states
    everything = torch.cuda.memory_snapshot()
    assert len(everything) > len(segments)
    assert any(tuple(s["segment_pool_id"]) == (0, 0) for s in everything)
    from torch._inductor.cudagraph_trees import get_block_addrs
    assert get_block_addrs(pool.id) == [kept.data_ptr()], get_block_addrs(pool.id)
    print("pool segments", len(segments), "all segments", len(everything))
    """


@check
def out_of_memory_reaches_the_observers_and_the_trace():
    """
    # torch._C._cuda_attach_out_of_memory_observer (scripts dump a snapshot there) and the trace's oom
    # entry, as PyTorch's own allocator gives them; under a memory fraction the observer's total is the
    # fraction's bytes, as PyTorch passes them.
    import torch, stash, stash.torch
    stash.torch.enable()
    torch.cuda.memory._record_memory_history(max_entries=1000)
    seen = []
    torch._C._cuda_attach_out_of_memory_observer(lambda *args: seen.append(args))
    try:
        torch.empty(1 << 50, dtype=torch.uint8, device="cuda")
    except torch.cuda.OutOfMemoryError:
        pass
    else:
        raise AssertionError("no OutOfMemoryError")
    assert len(seen) == 1, seen
    device, asked, total, free = seen[0]
    assert device == 0 and asked >= 1 << 50 and total > free > 0, seen
    ooms = [e for e in torch.cuda.memory._snapshot()["device_traces"][0] if e["action"] == "oom"]
    assert len(ooms) == 1 and ooms[0]["size"] == asked and ooms[0]["device_free"] == free, ooms
    y = torch.ones(1024, device="cuda") * 2           # still allocates
    assert y.sum().item() == 2048
    torch.cuda.set_per_process_memory_fraction(0.25)
    limit = stash.get_stats(0)["limit_bytes"]
    assert 0 < limit < total, limit
    try:
        torch.empty(limit + (64 << 20), dtype=torch.uint8, device="cuda")  # free on the device, over the limit
    except torch.cuda.OutOfMemoryError:
        pass
    else:
        raise AssertionError("no OutOfMemoryError over the fraction")
    assert len(seen) == 2 and seen[1][2] == limit and seen[1][3] > limit, seen
    torch.cuda.set_per_process_memory_fraction(1.0)
    print("observer saw", seen)
    """


@check
def cudnn_benchmark_convolutions_match_the_default():
    """
    # torch.backends.cudnn.benchmark asks the allocator for the largest workspace it may try (cacheInfo)
    # when it searches for a shape it has no plan for yet, which PyTorch's CUDAPluggableAllocator refuses:
    # under stash's subclass the search runs. Benchmark mode runs first, on shapes no earlier run planned
    # (a plan the default mode found is reused without a search), and is checked against the CPU.
    import copy, torch, stash, stash.torch
    stash.torch.enable()
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(32, 16, 5, padding=2))
    reference = copy.deepcopy(net)
    x = torch.randn(8, 3, 64, 64, requires_grad=True)
    expected = reference(x)
    expected.sum().backward()
    expected_grad = x.grad.clone()
    xg = x.detach().cuda().requires_grad_()
    got = net.cuda()(xg)
    got.sum().backward()
    torch.cuda.synchronize()
    difference = float((got.cpu() - expected).abs().max())
    assert torch.allclose(got.cpu(), expected, rtol=1e-3, atol=1e-3), difference
    assert torch.allclose(xg.grad.cpu(), expected_grad, rtol=1e-3, atol=1e-3), float((xg.grad.cpu() - expected_grad).abs().max())
    print("benchmark mode searched and ran; largest difference from the CPU", difference)
    """


@check
def multiprocessing_shares_a_cuda_tensor_in_place():
    """
    # torch.multiprocessing sends a CUDA tensor to a spawned child (stash enabled in both); the child
    # reads it and changes it in place, and the parent sees the change in its own tensor.
    import ctypes, os, sys, tempfile
    import torch, torch.multiprocessing as mp, stash, stash.torch
    stash.torch.enable()  # shareable:auto, stash.torch's default
    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, "stash_ipc_child.py"), "w") as f:
        f.write(CHILD)
    sys.path.insert(0, folder)
    import stash_ipc_child
    n = (6 << 20) + 12345                # over several pages, not a whole number of them
    x = torch.arange(n, device="cuda", dtype=torch.float32)
    held = stash.torch.memory_stats(0)["allocated_bytes.all.current"]
    ctx = mp.get_context("spawn")
    inbox, outbox = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=stash_ipc_child.child, args=(inbox, outbox))
    p.start()
    # Under Yama ptrace_scope 1 a child may take its parent's descriptors only when the parent names
    # it (README: sharing a block with another process); without Yama the call fails and is not needed.
    ulong = ctypes.c_ulong
    ctypes.CDLL(None).prctl(0x59616D61, ulong(p.pid), ulong(0), ulong(0), ulong(0))  # PR_SET_PTRACER
    torch.cuda.synchronize()
    inbox.put(x)
    got = outbox.get(timeout=180)
    assert got == ("read", True, 0, n), got
    assert outbox.get(timeout=180) == ("written",)
    expected = torch.arange(n, device="cuda", dtype=torch.float32) * 2 + 1
    assert torch.equal(x, expected), "the parent does not see the child's writes"
    inbox.put("done")
    p.join(timeout=300)
    assert p.exitcode == 0, p.exitcode
    assert stash.torch.memory_stats(0)["allocated_bytes.all.current"] >= held
    print("child read and rewrote", n, "floats in place")
    """


# The child of multiprocessing_shares_a_cuda_tensor_in_place, as a module: spawn imports its target.
CHILD_MODULE = """
import torch, stash.torch
def child(inbox, outbox):
    stash.torch.enable()                 # before the tensor arrives (unpickling it starts CUDA); the importer needs no option
    t = inbox.get()                      # the parent's block, mapped here
    expected = torch.arange(t.numel(), device=t.device, dtype=t.dtype)
    outbox.put(("read", bool(torch.equal(t, expected)), t.device.index, t.numel()))
    t.mul_(2).add_(1)                    # in place, in the parent's memory
    torch.cuda.synchronize()
    outbox.put(("written",))
    inbox.get()                          # until the parent has looked
"""
CHECKS["multiprocessing_shares_a_cuda_tensor_in_place"] = (
    "CHILD = " + repr(CHILD_MODULE) + "\n" + CHECKS["multiprocessing_shares_a_cuda_tensor_in_place"]
)


@check
def sharing_without_the_shareable_option_says_what_to_set():
    """
    import torch, stash.torch
    from torch.multiprocessing.reductions import reduce_tensor
    stash.torch.enable(shareable="off")
    x = torch.ones(1 << 20, device="cuda")
    try:
        reduce_tensor(x)
    except RuntimeError as e:
        assert "shareable:on" in str(e), str(e)
    else:
        raise AssertionError("a block of memory that cannot be shared was sent")
    assert x.sum().item() == 1 << 20  # nothing changed
    """


def main(names):
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        print("unknown checks:", ", ".join(unknown), "(known:", ", ".join(CHECKS), ")")
        return 2
    passed = failed = 0
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # a crash prints where it happened
    for name, code in CHECKS.items():
        if names and name not in names:
            continue
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        ok = proc.returncode == 0
        passed += ok
        failed += not ok
        note = proc.stdout.strip().replace("\n", " | ")
        print(f"{'PASS' if ok else 'FAIL'} {name}" + (f"  [{note}]" if note else ""))
        if not ok:
            print(f"    exit status {proc.returncode}")
            print(textwrap.indent(proc.stdout + proc.stderr, "    "))
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
