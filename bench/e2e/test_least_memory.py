#!/usr/bin/env python3
"""scripts/e2e --least-memory with fake workers (no torch, no GPU): each fake pair runs out of memory below
what its fake allocator holds, so the least limit the search finds is that figure rounded up to the step.

Run: python3 bench/e2e/test_least_memory.py   (ctest does)
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MiB = 1 << 20


class LeastMemory(unittest.TestCase):
    def test_the_search_finds_the_least_limit_that_completes(self):
        with tempfile.TemporaryDirectory() as out:
            step = 2.0
            run = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "e2e"), "--dry-run", "--least-memory",
                                  "--steps", "2", "--warmup", "1", "--workloads", "resnet50,gpt2_varlen",
                                  "--allocators", "native,stash", "--least-step-mib", str(step), "--out", out],
                                 capture_output=True, text=True, timeout=300)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            with open(os.path.join(out, "least.json")) as f:
                rows = json.load(f)["rows"]
            self.assertEqual([(r["workload"], r["allocator"]) for r in rows],
                             [("resnet50", "native"), ("resnet50", "stash"), ("gpt2_varlen", "native"),
                              ("gpt2_varlen", "stash")])
            for r in rows:
                needs = r["peak_reserved"]  # what the fake run needs (and holds)
                self.assertIsNone(r["error"])
                self.assertGreaterEqual(r["least_mib"] * MiB, needs)
                self.assertLess((r["least_mib"] - step) * MiB, needs)
                # Every probe under the answer ran out of memory, every one at or above it completed.
                for p in r["probes"]:
                    self.assertEqual(p["ok"], p["limit_mib"] >= r["least_mib"], p)
            with open(os.path.join(out, "least.md")) as f:
                self.assertIn("| resnet50 | stash |", f.read())

    def test_a_step_below_a_mib_is_a_usage_error(self):
        for bad in ("0", "-8", "nan", "0.5", "inf"):
            run = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "e2e"), "--dry-run", "--least-memory",
                                  "--least-step-mib", bad], capture_output=True, text=True, timeout=60)
            self.assertEqual(run.returncode, 2, bad)
            self.assertIn("--least-step-mib must be a finite number >= 1", run.stderr)


if __name__ == "__main__":
    unittest.main()
