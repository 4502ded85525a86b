#!/usr/bin/env python3
"""Draws bench/results.svg from stash-replay's JSON lines: for each trace, warm ns/op (log scale) and
reserved/live per allocator, side by side. Plain SVG, no plotting library needed.

    python3 bench/plot_results.py bench/results/h200.jsonl -o bench/results.svg --title "NVIDIA H200"
"""
import argparse
import html
import json
import math
import sys
from collections import OrderedDict

COLORS = {
    "stash": "#1b9e77", "stash-sharded": "#66a61e", "stash-pow2": "#7570b3", "torch": "#d95f02",
    "cudaMallocAsync": "#e7298a", "cub": "#a6761d", "cudaMalloc": "#666666",
    "stash-pinned": "#1b9e77", "stash-pinned-segment": "#7fc97f", "cudaMallocHost": "#666666",
}


def load(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    row = json.loads(line)
                    if "trace" in row and "ns_per_op_warm" in row:
                        rows.append(row)
    return rows


def bar_panel(out, x0, y0, width, height, traces, allocators, value, log, label, fmt):
    """One panel: groups of bars (one group per trace, one bar per allocator)."""
    values = [value(r) for rows in traces.values() for r in rows.values() if value(r) is not None]
    if not values:
        return
    top = max(values)
    lo = min(v for v in values if v > 0) if log else 0.0
    if log:
        lo_e, hi_e = math.floor(math.log10(lo)), math.ceil(math.log10(top))
        scale = lambda v: (math.log10(max(v, 10 ** lo_e)) - lo_e) / max(hi_e - lo_e, 1)
    else:
        hi = top * 1.1
        scale = lambda v: v / hi
    out.append(f'<text x="{x0}" y="{y0 - 8}" font-size="14" font-weight="bold">{html.escape(label)}</text>')
    out.append(f'<line x1="{x0}" y1="{y0 + height}" x2="{x0 + width}" y2="{y0 + height}" stroke="#000"/>')
    group_w = width / max(len(traces), 1)
    widest = max(len(rows) for rows in traces.values())
    bar_w = group_w * 0.8 / max(widest, 1)
    for gi, (trace, rows) in enumerate(traces.items()):
        gx = x0 + gi * group_w + group_w * 0.1
        out.append(f'<text x="{gx + group_w * 0.4}" y="{y0 + height + 16}" font-size="12" '
                   f'text-anchor="middle">{html.escape(trace)}</text>')
        present = [name for name in allocators if name in rows]
        for ai, name in enumerate(present):
            r = rows.get(name)
            v = value(r) if r else None
            if v is None:
                continue
            h = max(scale(v), 0.0) * height
            bx = gx + ai * bar_w
            out.append(f'<rect x="{bx:.1f}" y="{y0 + height - h:.1f}" width="{bar_w * 0.9:.1f}" '
                       f'height="{h:.1f}" fill="{COLORS.get(name, "#999")}"/>')
            out.append(f'<text x="{bx + bar_w * 0.45:.1f}" y="{y0 + height - h - 3:.1f}" font-size="9" '
                       f'text-anchor="middle">{fmt(v)}</text>')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("-o", "--output", default="bench/results.svg")
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    rows = load(args.inputs)
    if not rows:
        sys.exit("no replay rows in the input")
    traces = OrderedDict()
    allocators = []
    for r in rows:
        traces.setdefault(r["trace"], OrderedDict())[r["allocator"]] = r
        if r["allocator"] not in allocators:
            allocators.append(r["allocator"])
    width, panel_h = 900, 260
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{2 * panel_h + 170}" '
           f'font-family="sans-serif"><rect width="100%" height="100%" fill="#fff"/>',
           f'<text x="20" y="24" font-size="16" font-weight="bold">stash-replay {html.escape(args.title)}</text>']
    for i, name in enumerate(allocators):
        x, y = 20 + (i % 6) * 145, 36 + (i // 6) * 18
        out.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{COLORS.get(name, "#999")}"/>'
                   f'<text x="{x + 16}" y="{y + 11}" font-size="12">{html.escape(name)}</text>')
    bar_panel(out, 60, 110, width - 100, panel_h - 60, traces, allocators, lambda r: r["ns_per_op_warm"], True,
              "warm host time per operation, ns (log scale, lower is better)", lambda v: f"{v:.0f}")
    bar_panel(out, 60, 110 + panel_h, width - 100, panel_h - 60, traces, allocators,
              lambda r: r.get("reserved_over_live"), False,
              "peak reserved / peak live (lower is better)", lambda v: f"{v:.3f}")
    out.append("</svg>")
    with open(args.output, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {args.output}: {len(traces)} traces, {len(allocators)} allocators")


if __name__ == "__main__":
    main()
