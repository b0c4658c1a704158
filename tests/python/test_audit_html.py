"""The audit report rendered by a real browser: a demo node runs the whole voucher flow of
ops/demo.sh (program, voucher, escrow order, delivery, claim, payment), its log is exported and
audited, and headless Chromium's rendered DOM of the HTML report must show the program, the
same budget figures as the JSON report, the SVG budget chart and the summary its script writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from html.parser import HTMLParser

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vledger_blackbox as vb  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = "/usr/bin/chromium"


class Dom(HTMLParser):
    """The parts of the rendered report the test looks at."""

    def __init__(self) -> None:
        super().__init__()
        self.programs: dict[str, dict[str, str]] = {}
        self.charts: dict[str, list[dict[str, str]]] = {}
        self.summary = ""
        self._row: str | None = None
        self._cell: str | None = None
        self._chart: str | None = None
        self._in_summary = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "tr" and "program" in classes:
            self._row = a["data-program"]
            self.programs[self._row] = {}
        elif tag == "td" and self._row is not None and classes:
            self._cell = classes[0]
            self.programs[self._row][self._cell] = ""
        elif tag == "svg" and "budget-chart" in classes:
            self._chart = a["data-program"]
            self.charts[self._chart] = []
        elif tag == "rect" and self._chart is not None and "bucket" in classes:
            self.charts[self._chart].append(a)
        elif tag == "p" and a.get("id") == "summary":
            self._in_summary = True

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "svg":
            self._chart = None
        elif tag == "p":
            self._in_summary = False

    def handle_data(self, data):
        if self._row is not None and self._cell is not None:
            self.programs[self._row][self._cell] += data
        if self._in_summary:
            self.summary += data


@unittest.skipUnless(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: ops/setup.sh installs it")
class AuditHtml(unittest.TestCase):
    def test_the_rendered_report_shows_the_replayed_figures(self):
        node = vb.NodeProcess()
        node.start()
        work = tempfile.mkdtemp(prefix="vledger-audit-")
        try:
            env = dict(os.environ, VLEDGER_URL=node.url, VLEDGER_DATA=node.data_dir,
                       VLEDGER_BIN=node.binary)
            demo = subprocess.run(["bash", os.path.join(ROOT, "ops", "demo.sh")], env=env,
                                  capture_output=True, text=True, timeout=180)
            self.assertEqual(demo.returncode, 0, demo.stdout + demo.stderr + node.log_tail())

            archive = os.path.join(work, "archive.jsonl")
            report_json = os.path.join(work, "audit.json")
            report_html = os.path.join(work, "audit.html")
            export = subprocess.run([node.binary, "export", "--data", node.data_dir, "--out", archive],
                                    capture_output=True, text=True, timeout=60)
            self.assertEqual(export.returncode, 0, export.stderr)
            audit = subprocess.run([node.binary, "audit", archive, "--json", report_json,
                                    "--html", report_html], capture_output=True, text=True, timeout=60)
            self.assertEqual(audit.returncode, 0, audit.stderr)
            with open(report_json, encoding="utf-8") as f:
                report = json.load(f)

            dom_text = subprocess.run(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={os.path.join(work, 'chromium')}",
                 "--dump-dom", f"file://{report_html}"],
                capture_output=True, text=True, timeout=60)
            self.assertEqual(dom_text.returncode, 0, dom_text.stderr)
            dom = Dom()
            dom.feed(dom_text.stdout)

            programs = [p for r in report["regions"] for p in r["programs"]]
            self.assertEqual(len(programs), 1, "the demo creates one program")
            program = programs[0]
            pid = program["program_id"]
            self.assertTrue(pid.startswith("demo-"), pid)
            self.assertIn(pid, dom.programs, f"the rendered report has no row for {pid}: {dom.programs}")
            row = dom.programs[pid]
            expected = {
                "budget": program["budget_minor"],
                "spent": program["spent_minor"],
                "outstanding": program["outstanding_liability_minor"],
                "claims-paid": program["claims_paid"],
                "claims-paid-minor": program["claims_paid_minor"],
                "flags": program["fraud_flag_count"],
            }
            for cell, value in expected.items():
                self.assertEqual(row.get(cell, "").strip(), str(value),
                                 f"the rendered `{cell}` cell differs from the JSON report")
            # The demo's figures: a budget of 1,000,000.00 yuan, a 50,000.00 voucher of which
            # the paid claim spent 15,000.00.
            self.assertEqual(program["budget_minor"], 100_000_000)
            self.assertEqual(program["spent_minor"], 1_500_000)
            self.assertEqual(program["outstanding_liability_minor"], 3_500_000)
            self.assertEqual(program["claims_paid"], 1)
            self.assertEqual(program["claims_paid_minor"], 1_500_000)

            rects = dom.charts.get(pid)
            self.assertIsNotNone(rects, "no SVG budget chart for the program")
            buckets = {r["data-bucket"]: int(r["data-value"]) for r in rects}
            self.assertEqual(buckets, {
                "spent": program["spent_minor"],
                "outstanding": program["outstanding_liability_minor"],
                "expired": program["expired_minor"],
                "revoked": program["revoked_minor"],
                "unissued": program["unissued_minor"],
            })
            self.assertEqual(sum(buckets.values()), program["budget_minor"], "value is conserved")
            widths = {r["data-bucket"]: float(r["width"]) for r in rects}
            self.assertAlmostEqual(widths["spent"], 600 * 1_500_000 / 100_000_000, places=1)
            # The page's script ran in the browser.
            self.assertEqual(dom.summary, "programs: 1, fraud flags: 0")
        finally:
            node.stop()
            node.cleanup()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
