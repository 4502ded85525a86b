#!/usr/bin/env python3
"""Prints reserved/live (cold, settled) per trace for main and the three variants, from the jsonl files
here (stash-replay --backend simulated --allocators stash,stash-ordered,stash-lagged --warm 3 --json)."""
import json, pathlib
here = pathlib.Path(__file__).parent
runs = ["main", "mapped_fit", "mapped_fit_adopt", "slivers_in_small_pool"]
data = {}
for r in runs:
    for line in open(here / f"{r}.jsonl"):
        o = json.loads(line)
        if "trace" in o:
            data[(r, o["trace"], o["allocator"])] = o
traces = sorted({k[1] for k in data})
for alloc in ["stash", "stash-ordered", "stash-lagged"]:
    print(f"\n{alloc}: reserved/live cold / settled")
    print(f"{'trace':26s}" + "".join(f"{r:>24s}" for r in runs))
    for t in traces:
        cells = []
        for r in runs:
            o = data.get((r, t, alloc))
            cells.append(f"{o['reserved_over_live']:.4f} / {o['settled_reserved_over_live']:.4f}" if o else "-")
        print(f"{t:26s}" + "".join(f"{c:>24s}" for c in cells))
