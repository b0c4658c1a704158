"""ops/demo.sh, the guided tour of README.md, runs green against a freshly started demo node."""

from __future__ import annotations

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vledger_blackbox as vb  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Demo(unittest.TestCase):
    def test_the_tour_runs_green_on_a_fresh_demo_node(self):
        node = vb.NodeProcess()
        node.start()
        try:
            env = dict(os.environ, VLEDGER_URL=node.url, VLEDGER_DATA=node.data_dir,
                       VLEDGER_BIN=node.binary)
            run = subprocess.run(["bash", os.path.join(ROOT, "ops", "demo.sh")], env=env,
                                 capture_output=True, text=True, timeout=180)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr + node.log_tail())
            out = run.stdout
            self.assertIn("Demo complete.", out)
            self.assertIn("claim status paid", out)
            self.assertIn("the escrow is now: released", out)
            # The voucher's share of the 30,000.00 order moved from outstanding to spent.
            self.assertIn("spent        15,000.00 yuan", out)
            # A second run on the same node works too: every id is fresh.
            again = subprocess.run(["bash", os.path.join(ROOT, "ops", "demo.sh")], env=env,
                                   capture_output=True, text=True, timeout=180)
            self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
        finally:
            node.stop()
            node.cleanup()


if __name__ == "__main__":
    unittest.main()
