#!/usr/bin/env python3
"""Tests of replay_ab_summary.py on hand-made rounds whose medians are known."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay_ab_summary  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "replay_ab_summary.py")


def row(trace, allocator, warm, cold_ratio=1.1, settled=1.2, events=3, work=0):
    return {"trace": trace, "allocator": allocator, "ns_per_op_warm": warm, "reserved_over_live": cold_ratio,
            "settled_reserved_over_live": settled, "warm_events": events, "warm_page_work": work, "device_syncs": 0}


class Summary(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, rows):
        with open(os.path.join(self.dir.name, name), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")

    def lines(self, **kwargs):
        return replay_ab_summary.summarise(replay_ab_summary.load(self.dir.name), **kwargs)

    def test_median_per_label_and_ratio_of_medians(self):
        # torch/stash per round: old 8, 10, 12 (median 10), new 9, 11, 13 (median 11)
        for r, (label, ratio) in enumerate([("old", 8), ("new", 9), ("old", 10), ("new", 11), ("old", 12),
                                            ("new", 13)], start=1):
            self.write(f"r{r}-{label}.jsonl", [row("llama", "torch", 400.0), row("llama", "stash", 400.0 / ratio)])
        out = self.lines(target=10)
        old = next(l for l in out if l.startswith("llama") and " old |" in l)
        new = next(l for l in out if l.startswith("llama") and " new |" in l and "over" not in l)
        self.assertIn("10.00 (3, 8.00-12.00, 67%)", old)  # 10 and 12 reach the target of 10
        self.assertIn("11.00 (3, 9.00-13.00, 67%)", new)
        over = next(l for l in out if "over old" in l)
        self.assertIn("x1.100", over)

    def test_round_without_baseline_is_not_counted(self):
        self.write("r1-a.jsonl", [row("bert", "torch", 100.0), row("bert", "stash", 10.0)])
        self.write("r2-a.jsonl", [row("bert", "stash", 1.0)])  # torch failed in this round
        line = next(l for l in self.lines() if l.startswith("bert"))
        self.assertIn("10.00 (1, 10.00-10.00)", line)

    def test_figures_that_differ_between_rounds_show_a_range(self):
        self.write("r1-a.jsonl", [row("vit", "torch", 90.0), row("vit", "stash", 10.0, cold_ratio=1.03, work=5)])
        self.write("r2-a.jsonl", [row("vit", "torch", 90.0), row("vit", "stash", 10.0, cold_ratio=1.04, work=5)])
        line = next(l for l in self.lines() if l.startswith("vit"))
        self.assertIn("1.0300-1.0400, 1.2000", line)
        self.assertIn("; 5; 0", line)  # page work the same in both rounds: one value

    def test_command_line_and_empty_directory(self):
        empty = subprocess.run([sys.executable, SCRIPT, self.dir.name], capture_output=True, text=True)
        self.assertEqual(empty.returncode, 1)
        self.assertIn("no r<ROUND>-<LABEL>.jsonl", empty.stderr)
        self.write("r1-x.jsonl", [row("t5", "torch", 50.0), row("t5", "stash", 5.0)])
        self.write("notes.jsonl", [row("t5", "torch", 1.0), row("t5", "stash", 1.0)])  # not a round: ignored
        done = subprocess.run([sys.executable, SCRIPT, self.dir.name, "--target", "8"], capture_output=True,
                              text=True)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("10.00 (1, 10.00-10.00, 100%)", done.stdout)


if __name__ == "__main__":
    unittest.main()
