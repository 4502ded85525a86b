#!/usr/bin/env python3
"""Command-line tests of stash-replay: usage errors, strict JSON, empty inputs, bounded sizes.

Run: python3 bench/test_stash_replay.py PATH/TO/stash-replay   (ctest does, when bench and tests are built)
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

BINARY = None
HEADER = "Thread,Time,Action,Pointer,Size,Stream\n"


def run(*args):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=120)


def strict_json_lines(text):
    """Every line parsed as JSON that rejects NaN and Infinity (which Python's json accepts by default)."""

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return [json.loads(line, parse_constant=refuse) for line in text.splitlines() if line.strip()]


class StashReplayCli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def trace(self, name, body):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write(HEADER + body)
        return path

    def small_trace(self):
        return self.trace("small.csv", "0,1,allocate,0x1000,1000,0x0\n0,2,allocate,0x2000,5000,0x0\n"
                                       "0,3,free,0x1000,1000,0x0\n")

    def assert_usage_error(self, result, *words):
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertEqual(result.stdout, "")
        for word in words:
            self.assertIn(word, result.stderr)

    def test_negative_and_malformed_counts_are_usage_errors(self):
        trace = self.small_trace()
        for flag, value in [("--warm", "-1"), ("--threads", "-3"), ("--threads", "0"), ("--pairs", "0"),
                            ("--pairs", "-5"), ("--pinned-pairs", "0"), ("--warm", "1.5"), ("--warm", "abc"),
                            ("--warm", ""), ("--threads", "99999999999"), ("--warm", "+3"),
                            ("--cross-stream", "0"), ("--cross-stream", "-2")]:
            with self.subTest(flag=flag, value=value):
                self.assert_usage_error(run("--backend", "simulated", flag, value, trace), flag,
                                        "whole number")

    def test_cross_stream_needs_the_cuda_backend(self):
        self.assert_usage_error(run("--backend", "simulated", "--cross-stream", "10", self.small_trace()),
                                "--cross-stream", "cuda backend")
        if "CUDA devices here: 0" in run("--list").stdout:  # the default backend is then simulated
            self.assert_usage_error(run("--cross-stream", "10"), "--cross-stream", "cuda backend")

    def test_peer_access_needs_the_cuda_backend(self):
        self.assert_usage_error(run("--backend", "simulated", "--peer-access", self.small_trace()),
                                "--peer-access", "cuda backend")

    def test_a_folder_without_traces_is_an_error(self):
        empty = os.path.join(self.dir.name, "empty")
        os.mkdir(empty)
        self.assert_usage_error(run("--backend", "simulated", empty), empty, "no *.csv")

    def test_sizes_above_the_allocators_limit_are_a_trace_error(self):
        huge = self.trace("huge.csv", "0,1,allocate,0x1000,9223372036854775808,0x0\n"
                                      "0,2,allocate,0x2000,9223372036854775808,0x0\n")
        self.assert_usage_error(run("--backend", "simulated", huge), "huge.csv:2", "above the allocators' limit")

    def test_json_is_strict_for_a_trace_without_operations(self):
        empty = self.trace("no_ops.csv", "")
        result = run("--backend", "simulated", "--json", "--allocators", "stash,stash-pow2", empty)
        self.assertEqual(result.returncode, 0, result.stderr)
        rows = strict_json_lines(result.stdout)
        self.assertEqual([row["allocator"] for row in rows], ["stash", "stash-pow2"])
        for row in rows:
            self.assertEqual(row["trace"], "no_ops")
            self.assertEqual(row["ops"], 0)
            self.assertIsNone(row["ns_per_op_cold"])
            self.assertIsNone(row["ns_per_op_warm"])
            self.assertIsNone(row["reserved_over_live"])
            self.assertIsNone(row["settled_reserved_over_live"])

    def test_table_shows_a_dash_where_json_has_null(self):
        empty = self.trace("no_ops.csv", "")
        result = run("--backend", "simulated", "--allocators", "stash,stash-pow2", empty)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("inf", result.stdout)
        self.assertNotIn("nan", result.stdout)
        rows = [line for line in result.stdout.splitlines() if line.startswith("no_ops")]
        self.assertEqual(len(rows), 2)
        for line in rows:
            self.assertEqual(line.split()[5:9], ["-", "-", "-", "-"])  # res/live, settled, cold, warm

    def test_warm_zero_gives_a_null_warm_figure_and_real_others(self):
        result = run("--backend", "simulated", "--json", "--warm", "0", "--allocators", "stash", self.small_trace())
        self.assertEqual(result.returncode, 0, result.stderr)
        [row] = strict_json_lines(result.stdout)
        self.assertEqual(row["ops"], 3)
        self.assertEqual(row["peak_live_bytes"], 6000)
        self.assertIsNone(row["ns_per_op_warm"])
        self.assertIsNone(row["settled_reserved_over_live"])
        self.assertGreater(row["ns_per_op_cold"], 0)
        self.assertGreater(row["reserved_over_live"], 1)

    def test_the_settled_figure_covers_the_warm_replays(self):
        result = run("--backend", "simulated", "--json", "--warm", "2", "--allocators", "stash", self.small_trace())
        self.assertEqual(result.returncode, 0, result.stderr)
        [row] = strict_json_lines(result.stdout)
        self.assertGreaterEqual(row["settled_reserved_over_live"], row["reserved_over_live"])
        self.assertGreater(row["ns_per_op_warm"], 0)
        self.assertEqual(row["warm_page_work"], 0)  # the small trace's warm replays come from the cache

    def test_warm_page_work_is_null_for_allocators_that_do_not_tell(self):
        result = run("--backend", "simulated", "--json", "--warm", "1", "--allocators", "stash-pow2",
                     self.small_trace())
        self.assertEqual(result.returncode, 0, result.stderr)
        [row] = strict_json_lines(result.stdout)
        self.assertIsNone(row["warm_page_work"])

    def test_host_waits_are_counted_per_replay(self):
        # Two streams, a block freed on one and asked for on the other: the stream-ordered compositions
        # record and query events, and still wait for nothing on the host.
        trace = self.trace("two.csv", "0,1,allocate,0x1000,4096,0x0\n0,2,free,0x1000,4096,0x0\n"
                                      "0,3,allocate,0x2000,4096,0x7\n0,4,free,0x2000,4096,0x7\n")
        result = run("--backend", "simulated", "--json", "--warm", "2", "--allocators",
                     "stash,stash-ordered,stash-lagged", trace)
        self.assertEqual(result.returncode, 0, result.stderr)
        rows = strict_json_lines(result.stdout)
        self.assertEqual([row["allocator"] for row in rows], ["stash", "stash-ordered", "stash-lagged"])
        for row in rows:
            self.assertEqual(row["device_syncs"], 0, row)
            self.assertEqual(row["host_waits"], 0, row)

    def test_json_file_is_left_as_it_was_when_a_trace_is_bad(self):
        results = os.path.join(self.dir.name, "results.jsonl")
        with open(results, "w") as f:
            f.write('{"kept": true}\n')
        bad = self.trace("bad.csv", "0,1,allocate,0x10,-5,0x0\n")
        result = run("--backend", "simulated", "--json-file", results, bad)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("bad.csv:2", result.stderr)
        with open(results) as f:
            self.assertEqual(f.read(), '{"kept": true}\n')

    def test_json_and_json_file_write_both(self):
        results = os.path.join(self.dir.name, "both.jsonl")
        result = run("--backend", "simulated", "--json", "--json-file", results, "--warm", "1", "--allocators", "stash",
                     self.small_trace())
        self.assertEqual(result.returncode, 0, result.stderr)
        with open(results) as f:
            self.assertEqual(strict_json_lines(result.stdout), strict_json_lines(f.read()))
        self.assertEqual(len(strict_json_lines(result.stdout)), 1)

    def test_skipped_frees_name_no_stream_and_are_reported_with_json(self):
        # 300 frees of addresses never allocated, each on a stream of its own (a log that starts late).
        body = "".join(f"0,{i},free,0x{0x1000 + i:x},64,0x{0x100 + i:x}\n" for i in range(300))
        trace = self.trace("late.csv", body + "0,400,allocate,0x10,4096,0x0\n0,401,free,0x10,4096,0x0\n")
        result = run("--backend", "simulated", "--json", "--warm", "0", "--allocators", "stash", trace)
        self.assertEqual(result.returncode, 0, result.stderr)
        [row] = strict_json_lines(result.stdout)
        self.assertEqual(row["streams"], 1)
        self.assertIn("skipped 300 frees", result.stderr)

    def test_a_free_with_a_size_that_is_not_a_number_is_an_error(self):
        trace = self.trace("free.csv", "0,1,allocate,0x10,4096,0x0\n0,2,free,0x10,garbage,0x0\n")
        result = run("--backend", "simulated", trace)
        self.assert_usage_error(result, "free.csv:3", "bad size 'garbage'")

    def test_a_pinned_allocator_without_pinned_is_a_usage_error(self):
        result = run("--backend", "simulated", "--allocators", "stash-pinned", self.small_trace())
        self.assert_usage_error(result, "stash-pinned", "--pinned")

    def test_json_stays_utf8_for_a_file_name_that_is_not(self):
        path = os.path.join(self.dir.name.encode(), b"caf\xe9.csv")
        with open(path, "wb") as f:
            f.write((HEADER + "0,1,allocate,0x10,4096,0x0\n").encode())
        result = subprocess.run([BINARY, "--backend", "simulated", "--json", "--warm", "0", "--allocators", "stash",
                                 path], capture_output=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        [row] = [json.loads(line) for line in result.stdout.decode("utf-8").splitlines() if line.strip()]
        self.assertEqual(row["trace"], "caf\ufffd")

    def test_plot_results_escapes_names_into_well_formed_svg(self):
        import xml.etree.ElementTree as ElementTree
        results = os.path.join(self.dir.name, "r.jsonl")
        trace = self.trace("fwd&bwd<1>.csv", "0,1,allocate,0x10,4096,0x0\n0,2,free,0x10,4096,0x0\n")
        result = run("--backend", "simulated", "--json-file", results, "--warm", "1", "--allocators", "stash", trace)
        self.assertEqual(result.returncode, 0, result.stderr)
        svg = os.path.join(self.dir.name, "r.svg")
        plot = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plot_results.py")
        done = subprocess.run([sys.executable, plot, results, "-o", svg, "--title", "a & <b>"], capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        text = "".join(ElementTree.parse(svg).getroot().itertext())
        self.assertIn("fwd&bwd<1>", text)
        self.assertIn("a & <b>", text)

    def moved_pages_trace(self):
        # A and B take 4 MiB each (pages 0-3 of 2 MiB); A is freed; C (6 MiB) does not fit A's hole and
        # goes above B (pages 4-6). With no limit the cache keeps A's pages (14 MiB held for 10 live);
        # under a limit of 10 MiB they move to C.
        mib = 1 << 20
        return self.trace("moved.csv", f"0,1,allocate,0xa,{4 * mib},0x0\n0,2,allocate,0xb,{4 * mib},0x0\n"
                                       f"0,3,free,0xa,{4 * mib},0x0\n0,4,allocate,0xc,{6 * mib},0x0\n")

    def test_least_memory_moves_idle_pages_under_a_limit(self):
        result = run("--backend", "simulated", "--json", "--least-memory", "--warm", "2", "--allocators",
                     "stash,stash-per-page,stash-ordered", self.moved_pages_trace())
        self.assertEqual(result.returncode, 0, result.stderr)
        rows = strict_json_lines(result.stdout)
        self.assertEqual([r["allocator"] for r in rows], ["stash", "stash-per-page", "stash-ordered"])
        for row in rows:
            self.assertEqual(row["benchmark"], "least_memory")
            self.assertEqual(row["peak_live_bytes"], 10 << 20)
            self.assertEqual(row["unlimited_bytes"], 14 << 20)
            self.assertEqual(row["least_bytes"], 10 << 20)
            self.assertEqual(row["least_over_live"], 1.0)
            self.assertGreaterEqual(row["probes"], 2)

    def test_least_memory_leaves_out_an_allocator_that_takes_no_limit(self):
        result = run("--backend", "simulated", "--json", "--least-memory", "--allocators", "stash-sharded",
                     self.moved_pages_trace())
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, "")
        self.assertIn("--least-memory leaves out stash-sharded (it takes no limit)", result.stderr)

    def test_threads_json_is_strict(self):
        result = run("--backend", "simulated", "--json", "--threads", "2", "--pairs", "1", "--allocators", "stash")
        self.assertEqual(result.returncode, 0, result.stderr)
        [row] = strict_json_lines(result.stdout)
        self.assertEqual(row["bench"], "threads")
        self.assertEqual(row["threads"], 2)
        self.assertEqual(row["pairs"], 2)
        self.assertGreater(row["ns_per_pair"], 0)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: test_stash_replay.py PATH/TO/stash-replay")
    BINARY = sys.argv.pop(1)
    unittest.main()
