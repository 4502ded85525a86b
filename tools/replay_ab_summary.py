#!/usr/bin/env python3
"""Summarise the rounds of an A/B replay run (scripts/gpu-replay-ab): stash-replay's JSON lines, one
file per round and binary, named r<ROUND>-<LABEL>.jsonl.

For each allocator, trace and binary label it prints the median over rounds of the baseline's warm
ns/op over the allocator's (the baseline, PyTorch's allocator by default, runs in the same round, so
the machine's drift cancels), the rounds counted, min-max, the share of rounds at or above --target and
a 95% lower confidence bound on the median ratio (distribution-free: an order statistic of the rounds,
median_lower_bound), reserved/live cold and settled, and the medians of warm_events and warm_page_work. With two labels or
more, each later label's median over the first's follows. Rounds where the baseline or the allocator
is missing (a replay that failed) are not counted; a figure that differs between rounds is shown as a
range, never one round's value alone.

  python3 tools/replay_ab_summary.py DIR [--baseline torch] [--target 8]
"""

import argparse
import collections
import math
import glob
import json
import os
import re
import statistics
import sys

FILE_NAME = re.compile(r"^r(\d+)-(.+)\.jsonl$")


def load(directory):
    """{(label, round): {trace: {allocator: row}}} from every r<ROUND>-<LABEL>.jsonl in directory."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.jsonl"))):
        match = FILE_NAME.match(os.path.basename(path))
        if not match:
            continue
        rows = collections.defaultdict(dict)
        with open(path) as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    rows[row["trace"]][row["allocator"]] = row
        runs[(match.group(2), int(match.group(1)))] = rows
    return runs


def span(values, fmt):
    """One value, or min-max where the rounds differ."""
    values = [v for v in values if v is not None]
    if not values:
        return "null"
    low, high = min(values), max(values)
    return fmt.format(low) if low == high else (fmt + "-" + fmt).format(low, high)


def median_lower_bound(values, confidence=0.95):
    """A one-sided lower confidence bound on the median of the distribution the values were drawn from
    (independent rounds): the k-th smallest value, k the largest with P(Binomial(n, 1/2) >= k) >= confidence,
    since the k-th smallest lies below the median unless fewer than k values do. None when n is too small
    (fewer than 5 values at 95%)."""
    xs = sorted(values)
    n = len(xs)
    below, k = 0.0, 0  # below: P(Binomial(n, 1/2) <= k - 1)
    while k < n:
        p = below + math.comb(n, k) / 2**n
        if p > 1 - confidence:
            break
        below, k = p, k + 1
    return xs[k - 1] if k > 0 else None


def summarise(runs, baseline="torch", target=None):
    """Lines of text: per allocator, per trace, per label."""
    labels = sorted({label for label, _ in runs}, key=lambda l: min(r for lab, r in runs if lab == l))
    per = collections.defaultdict(lambda: collections.defaultdict(list))  # (alloc, trace, label) -> field -> values
    for (label, _), rows in sorted(runs.items(), key=lambda kv: kv[0][1]):
        for trace, by_alloc in rows.items():
            base = by_alloc.get(baseline)
            for alloc, row in by_alloc.items():
                if alloc == baseline:
                    continue
                cell = per[(alloc, trace, label)]
                if base and row.get("ns_per_op_warm"):
                    cell["ratio"].append(base["ns_per_op_warm"] / row["ns_per_op_warm"])
                for field in ("reserved_over_live", "settled_reserved_over_live", "warm_events", "warm_page_work",
                              "device_syncs"):
                    cell[field].append(row.get(field))
    out = []
    allocators = sorted({a for a, _, _ in per})
    traces = sorted({t for _, t, _ in per})
    head = f"warm {baseline}/x: median over rounds (rounds, min-max"
    head += f", share of rounds >= {target:g}, lower 95% bound on the median)" if target is not None else ")"
    out.append(head + "; reserved/live cold, settled; warm events; warm page work; device syncs")
    for alloc in allocators:
        out.append(f"== {alloc}")
        for trace in traces:
            medians = {}
            for label in labels:
                cell = per.get((alloc, trace, label))
                if not cell:
                    continue
                ratios = cell["ratio"]
                if ratios:
                    medians[label] = statistics.median(ratios)
                    text = f"{medians[label]:.2f} ({len(ratios)}, {min(ratios):.2f}-{max(ratios):.2f}"
                    if target is not None:
                        text += f", {sum(r >= target for r in ratios) / len(ratios):.0%}"
                        low = median_lower_bound(ratios)
                        text += f", median >= {low:.2f} at 95%" if low is not None else ", too few rounds for a bound"
                    text += ")"
                else:
                    text = "no baseline"
                text += (f"; {span(cell['reserved_over_live'], '{:.4f}')}, {span(cell['settled_reserved_over_live'], '{:.4f}')}"
                         f"; {span(cell['warm_events'], '{}')}; {span(cell['warm_page_work'], '{}')}"
                         f"; {span(cell['device_syncs'], '{}')}")
                out.append(f"{trace[:24]:24} {label:>8} | {text}")
            first = labels[0] if labels and labels[0] in medians else None
            for label in labels[1:]:
                if first and label in medians:
                    out.append(f"{trace[:24]:24} {label:>8} | over {first}: x{medians[label] / medians[first]:.3f}")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--baseline", default="torch")
    parser.add_argument("--target", type=float, default=None)
    args = parser.parse_args(argv)
    runs = load(args.directory)
    if not runs:
        print(f"replay_ab_summary: no r<ROUND>-<LABEL>.jsonl in {args.directory}", file=sys.stderr)
        return 1
    print("\n".join(summarise(runs, args.baseline, args.target)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
