"""benches/fsync_probe.py: one row per block size with both ways of writing, and a clear refusal
of a run that would write nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import unittest

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benches", "fsync_probe.py")


class FsyncProbe(unittest.TestCase):
    def test_reports_appends_and_overwrites_of_each_size_and_leaves_nothing(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            result = subprocess.run(
                [sys.executable, PROBE, directory, "--writes", "3"],
                capture_output=True,
                text=True,
                check=True,
            )
            self.assertEqual(os.listdir(directory), [])
        rows = re.findall(r"^\s*(\d+)\s+(\d+) µs\s+(\d+) µs$", result.stdout, re.MULTILINE)
        self.assertEqual([int(size) for size, _, _ in rows], [4096, 16384, 65536], result.stdout)
        for _, append, overwrite in rows:
            self.assertGreater(int(append) + int(overwrite), 0, result.stdout)

    def test_refuses_zero_writes(self) -> None:
        result = subprocess.run(
            [sys.executable, PROBE, "--writes", "0"], capture_output=True, text=True
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--writes must be at least 1", result.stderr)


if __name__ == "__main__":
    unittest.main()
