#!/usr/bin/env python3
"""Tests of torch_snapshot_to_csv on hand-made snapshots: plain Python, no torch needed.

Run: python3 tools/test_torch_snapshot_to_csv.py
"""

import contextlib
import io
import os
import pickle
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_snapshot_to_csv as conv  # noqa: E402


def event(action, addr, size, stream=0, **extra):
    return {"action": action, "addr": addr, "size": size, "stream": stream, "frames": [], **extra}


# What torch.cuda.memory._snapshot() returns, reduced to what matters: device 0 saw a segment being
# made, two tensors, a delayed free (record_stream), and markers; device 1 saw one allocation.
SNAPSHOT = {
    "segments": [],
    "device_traces": [
        [
            event("segment_alloc", 0x7F0000000000, 2097152),
            event("alloc", 0x7F0000000000, 512, time_us=1_000_000),
            event("alloc", 0x7F0000000200, 1024, stream=0x5555, time_us=1_000_010),
            event("free_requested", 0x7F0000000000, 512, time_us=1_000_020),
            event("free_completed", 0x7F0000000000, 512, time_us=1_000_020),
            event("snapshot", 0, 0),
            event("free_requested", 0x7F0000000200, 1024, stream=0x5555, time_us=1_000_030),
            event("free_completed", 0x7F0000000200, 1024, stream=0x5555, time_us=3_661_000_040),
            event("alloc", 0x7F0000000000, 256, time_us=3_661_000_050),  # address reused
            event("oom", 123456, 1 << 40),
            event("segment_free", 0x7F0000000000, 2097152),
        ],
        [event("alloc", 0x7E0000000000, 4096)],
    ],
}

EXPECTED_DEVICE_0 = """Thread,Time,Action,Pointer,Size,Stream
0,00:00:00.000000,allocate,0x7f0000000000,512,0x0
0,00:00:00.000010,allocate,0x7f0000000200,1024,0x5555
0,00:00:00.000020,free,0x7f0000000000,512,0x0
0,01:01:00.000040,free,0x7f0000000200,1024,0x5555
0,01:01:00.000050,allocate,0x7f0000000000,256,0x0
"""


def convert(snapshot, device=0):
    out = io.StringIO()
    counts = conv.write_trace(snapshot, out, device)
    return out.getvalue(), counts


class ConverterTest(unittest.TestCase):
    def test_takes_alloc_and_free_completed_only(self):
        text, counts = convert(SNAPSHOT)
        self.assertEqual(text, EXPECTED_DEVICE_0)
        self.assertEqual(counts["alloc"], 3)
        self.assertEqual(counts["free_requested"], 2)
        self.assertEqual(counts["segment_alloc"], 1)

    def test_other_device(self):
        text, _ = convert(SNAPSHOT, device=1)
        self.assertEqual(text.splitlines()[1], "0,00:00:00.000001,allocate,0x7e0000000000,4096,0x0")

    def test_without_time_us_the_time_is_the_event_index(self):
        snapshot = {"device_traces": [[event("alloc", 0x1000, 256), event("segment_alloc", 0, 0),
                                       event("free_completed", 0x1000, 256)]]}
        text, _ = convert(snapshot)
        self.assertEqual(text.splitlines()[1:], ["0,00:00:00.000001,allocate,0x1000,256,0x0",
                                                 "0,00:00:00.000002,free,0x1000,256,0x0"])

    def test_missing_device_or_history_is_an_error(self):
        with self.assertRaisesRegex(ValueError, "device 2 not in the snapshot"):
            convert(SNAPSHOT, device=2)
        with self.assertRaisesRegex(ValueError, "_record_memory_history"):
            convert({"segments": []})

    def test_format_time(self):
        self.assertEqual(conv.format_time(0), "00:00:00.000000")
        self.assertEqual(conv.format_time(3_723_000_007), "01:02:03.000007")

    def test_main_reads_a_pickle_and_writes_the_csv(self):
        with tempfile.TemporaryDirectory() as tmp:
            pickle_path = os.path.join(tmp, "snapshot.pickle")
            csv_path = os.path.join(tmp, "trace.csv")
            with open(pickle_path, "wb") as f:
                pickle.dump(SNAPSHOT, f)
            with contextlib.redirect_stderr(io.StringIO()) as err:
                self.assertEqual(conv.main([pickle_path, "-o", csv_path]), 0)
            with open(csv_path) as f:
                self.assertEqual(f.read(), EXPECTED_DEVICE_0)
            self.assertIn("free_completed 2", err.getvalue())
            with contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(conv.main([pickle_path, "-o", csv_path, "--device", "5"]), 2)
            with open(csv_path) as f:  # a refused snapshot leaves the file as it was
                self.assertEqual(f.read(), EXPECTED_DEVICE_0)


if __name__ == "__main__":
    unittest.main()
