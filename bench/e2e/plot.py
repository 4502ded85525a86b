"""Draws scripts/e2e's results.json: ms/step (median, min-max bars) and peak device memory (the
driver's figure), each relative to PyTorch's native allocator on the same workload (workloads differ
in scale by orders of magnitude), one group of bars per workload, one bar per allocator.

    python3 bench/e2e/plot.py bench/results/e2e-.../results.json e2e.png
"""

import json
import sys


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot: matplotlib is not installed; no picture drawn", file=sys.stderr)
        return 0
    with open(argv[1]) as f:
        data = json.load(f)
    workloads, allocators, summary = data["workloads"], data["allocators"], data["summary"]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(workloads)) * 2, 5))
    width = 0.8 / max(1, len(allocators))
    for ai, allocator in enumerate(allocators):
        xs = [wi + ai * width for wi in range(len(workloads))]
        # Time relative to native, so workloads of different scales share one axis.
        rel, low, high = [], [], []
        for w in workloads:
            e, native = summary[w].get(allocator, {}), summary[w].get("native", {})
            if e.get("median_ms") and native.get("median_ms"):
                base = native["median_ms"]
                rel.append(e["median_ms"] / base)
                low.append((e["median_ms"] - e["min_ms"]) / base)
                high.append((e["max_ms"] - e["median_ms"]) / base)
            else:
                rel.append(0)
                low.append(0)
                high.append(0)
        axes[0].bar(xs, rel, width, yerr=[low, high], label=allocator, capsize=2)
        mem = []
        for w in workloads:
            mine, native = summary[w].get(allocator, {}).get("peak_driver"), summary[w].get("native", {}).get("peak_driver")
            mem.append(mine / native if mine and native else 0)
        axes[1].bar(xs, mem, width, label=allocator)
    for ax, title in ((axes[0], "step time / native's (median, min-max over repetitions)"),
                      (axes[1], "peak device memory / native's (cudaMemGetInfo above the baseline)")):
        ax.set_xticks([wi + 0.4 - width / 2 for wi in range(len(workloads))])
        ax.set_xticklabels(workloads, rotation=20)
        ax.set_title(title)
        ax.legend()
    fig.suptitle(f"stash end to end, {data.get('device')}")
    fig.tight_layout()
    fig.savefig(argv[2], dpi=110)
    print(f"plot: wrote {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
