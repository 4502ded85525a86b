#!/usr/bin/env python3
"""Checks stash-replay --torch-snapshot against what PyTorch's memory viewers read (python3 stdlib, no torch).

usage: check_torch_snapshot.py STASH_REPLAY TRACE.csv OUT_DIR

Writes OUT_DIR/snapshot.pickle from TRACE on the simulated device and checks:
  - it unpickles, using only opcodes MemoryViz.js's unpickler implements;
  - the keys and types torch.cuda.memory._snapshot() has and torch/cuda/_memory_viz.py and
    torch/utils/viz/MemoryViz.js read (segments: device, address, total_size, allocated_size,
    active_size, requested_size, stream, segment_type, blocks with size, requested_size, state,
    frames; device_traces: action, addr, size, stream, frames);
  - blocks tile each segment exactly (MemoryViz.js derives block addresses by summing sizes) and
    _memory_viz.segsum's invariant: internal free + external free + allocated = reserved;
  - the trace and the state agree: the live blocks are exactly the allocations the trace leaves live,
    with their sizes, and their bytes are the trace's peak of live bytes (the snapshot is taken there).
"""
import csv
import os
import pickle
import pickletools
import subprocess
import sys

# The opcodes MemoryViz.js's unpickle() handles (torch/utils/viz/MemoryViz.js).
VIEWER_OPCODES = {
    "PROTO", "FRAME", "EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE", "MARK", "SETITEM", "SETITEMS", "APPEND",
    "APPENDS", "LIST", "DICT", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "SHORT_BINUNICODE", "BINUNICODE",
    "BININT", "BININT1", "BININT2", "LONG1", "NONE", "NEWTRUE", "NEWFALSE", "BINFLOAT", "BINGET",
    "LONG_BINGET", "BINPUT", "LONG_BINPUT", "MEMOIZE", "STOP",
}
SEGMENT_KEYS = {"device": int, "address": int, "total_size": int, "allocated_size": int, "active_size": int,
                "requested_size": int, "stream": int, "segment_type": str, "segment_pool_id": tuple,
                "is_expandable": bool, "frames": list, "blocks": list}
BLOCK_KEYS = {"address": int, "size": int, "requested_size": int, "state": str, "frames": list}
EVENT_KEYS = {"action": str, "addr": int, "size": int, "stream": int, "time_us": int, "frames": list}

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def has_keys(d, keys, where):
    for k, t in keys.items():
        check(k in d and isinstance(d[k], t), f"{where}: key {k!r} missing or not {t.__name__}: {d.get(k)!r}")


def trace_live_at_peak(trace_path):
    """Sizes of the allocations live when the trace's live bytes first peak, as stash-replay counts."""
    live, live_bytes, peak, at_peak = {}, 0, 0, {}
    with open(trace_path, newline="") as f:
        for row in csv.DictReader(f):
            addr, action = int(row["Pointer"], 16), row["Action"].strip()
            if action == "allocate":
                live[addr] = int(row["Size"])
                live_bytes += live[addr]
            elif action == "free" and addr in live:
                live_bytes -= live.pop(addr)
            if live_bytes > peak:
                peak, at_peak = live_bytes, dict(live)
    return peak, sorted(at_peak.values())


def main():
    replay, trace, out_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "snapshot.pickle")
    subprocess.run([replay, "--backend", "simulated", "--warm", "0", "--allocators", "stash",
                    "--torch-snapshot", path, trace], check=True, stdout=subprocess.DEVNULL)
    with open(path, "rb") as f:
        data = f.read()
    used = {op.name for op, _, _ in pickletools.genops(data)}
    check(used <= VIEWER_OPCODES, f"opcodes MemoryViz.js cannot read: {sorted(used - VIEWER_OPCODES)}")
    snap = pickle.loads(data)

    check(isinstance(snap, dict) and "segments" in snap and "device_traces" in snap, "top-level keys")
    segments, traces = snap["segments"], snap["device_traces"]
    check(len(segments) > 0, "no segments")
    check(isinstance(traces, list) and len(traces) >= 1 and isinstance(traces[0], list), "device_traces shape")

    reserved = allocated = free_external = free_internal = 0
    active_sizes = []
    for i, seg in enumerate(segments):
        has_keys(seg, SEGMENT_KEYS, f"segment {i}")
        check(seg["segment_pool_id"] == (0, 0), f"segment {i}: segment_pool_id")
        check(seg["device"] == 0, f"segment {i}: device")
        addr, seg_alloc, seg_req = seg["address"], 0, 0
        for j, b in enumerate(seg["blocks"]):
            has_keys(b, BLOCK_KEYS, f"segment {i} block {j}")
            check(b["address"] == addr, f"segment {i} block {j}: does not start where the previous ended")
            check(b["state"] in ("active_allocated", "inactive"), f"segment {i} block {j}: state {b['state']}")
            check(b["size"] > 0, f"segment {i} block {j}: empty")
            if b["state"] == "active_allocated":
                check(0 < b["requested_size"] <= b["size"], f"segment {i} block {j}: requested_size")
                seg_alloc += b["size"]
                seg_req += b["requested_size"]
                free_internal += b["size"] - b["requested_size"]
                active_sizes.append(b["requested_size"])
            else:
                free_external += b["size"]
            addr += b["size"]
        check(addr == seg["address"] + seg["total_size"], f"segment {i}: blocks do not cover it exactly")
        check(seg["allocated_size"] == seg_alloc == seg["active_size"], f"segment {i}: allocated_size")
        check(seg["requested_size"] == seg_req, f"segment {i}: requested_size")
        reserved += seg["total_size"]
        allocated += seg_req
    check(free_internal + free_external + allocated == reserved, "segsum invariant")
    ends = sorted((s["address"], s["address"] + s["total_size"]) for s in segments)
    check(all(a[1] <= b[0] for a, b in zip(ends, ends[1:])), "segments overlap")

    # The trace: every event well formed, frees of earlier allocations, and what it leaves live is
    # what the segments show live.
    live = {}
    for k, e in enumerate(traces[0]):
        has_keys(e, EVENT_KEYS, f"event {k}")
        if e["action"] == "alloc":
            check(e["addr"] not in live, f"event {k}: alloc of a live address")
            live[e["addr"]] = e["size"]
        elif e["action"] == "free_requested":
            check(live.get(e["addr"]) == e["size"], f"event {k}: free_requested of what was not allocated")
        elif e["action"] == "free_completed":
            check(live.pop(e["addr"], None) == e["size"], f"event {k}: free_completed without its allocation")
        else:
            check(False, f"event {k}: action {e['action']}")
    active = {b["address"]: b["requested_size"] for s in segments for b in s["blocks"]
              if b["state"] == "active_allocated"}
    check(live == active, f"live in the trace ({len(live)}) differs from the active blocks ({len(active)})")

    peak, sizes_at_peak = trace_live_at_peak(trace)
    check(allocated == peak, f"active bytes {allocated} != the trace's peak of live bytes {peak}")
    check(sorted(active_sizes) == sizes_at_peak, "active block sizes differ from the trace's at its peak")
    print(f"{path}: {len(segments)} segments, {reserved} bytes reserved, {allocated} requested live, "
          f"{len(traces[0])} events; {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
