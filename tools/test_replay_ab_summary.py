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
        self.assertIn("10.00 (3, 8.00-12.00, 67%, too few rounds for a bound)", old)  # 10 and 12 reach 10
        self.assertIn("11.00 (3, 9.00-13.00, 67%, too few rounds for a bound)", new)
        over = next(l for l in out if "over old" in l)
        self.assertIn("x1.100", over)

    def test_median_lower_bound_is_the_binomial_order_statistic(self):
        # Binomial(10, 1/2): P(<= 1) = 11/1024 <= 0.05 < P(<= 2) = 56/1024, so the 2nd smallest of 10.
        self.assertEqual(replay_ab_summary.median_lower_bound(list(range(10, 0, -1))), 2)
        # n = 5: P(0) = 1/32 <= 0.05 < P(<= 1) = 6/32: the smallest; n = 4: P(0) = 1/16 > 0.05: none.
        self.assertEqual(replay_ab_summary.median_lower_bound([5, 3, 4, 7, 6]), 3)
        self.assertIsNone(replay_ab_summary.median_lower_bound([1, 2, 3, 4]))
        # n = 100: the 42nd smallest (P(<= 40) = 0.028, P(<= 41) = 0.044, P(<= 42) = 0.067).
        self.assertEqual(replay_ab_summary.median_lower_bound(list(range(1, 101))), 42)
        # Drawn from a distribution whose median is 10, the bound lies under it in about 95% of samples.
        import random
        rng = random.Random(7)
        under = sum(replay_ab_summary.median_lower_bound([rng.uniform(5, 15) for _ in range(60)]) <= 10
                    for _ in range(2000))
        self.assertGreater(under / 2000, 0.93)
        self.assertLess(under / 2000, 0.995)

    def test_target_line_shows_the_bound(self):
        for r, ratio in enumerate([7, 8, 9, 10, 11, 12], start=1):
            self.write(f"r{r}-a.jsonl", [row("t5", "torch", 600.0), row("t5", "stash", 600.0 / ratio)])
        line = next(l for l in self.lines(target=8) if l.startswith("t5"))
        # n = 6: P(0) = 1/64 <= 0.05 < P(<= 1) = 7/64: the smallest round, 7.
        self.assertIn("9.50 (6, 7.00-12.00, 83%, median >= 7.00 at 95%)", line)

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
        self.assertIn("10.00 (1, 10.00-10.00, 100%, too few rounds for a bound)", done.stdout)


if __name__ == "__main__":
    unittest.main()
