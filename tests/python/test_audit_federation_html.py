"""The federation's audit report rendered by a real browser: two real node processes (Chongqing
`cq`, Sichuan `sc`) that mirror and adopt each other. A Sichuan lab lists two tests in `sc`'s
log; a Chongqing enterprise buys both with a voucher of a `cq` program whose cross-region
payouts the agency's region advances. The first payout is netted by a statement that `cq`'s
admin proposes, both regions' admins sign on `cq`'s node and `cq`'s admin records as paid; the
second is left open. Both logs are exported and audited together, and headless Chromium's
rendered DOM of the HTML report must show the cross-region orders and the advanced payouts, the
open position, the statement with both regions' signatures and its payment, and the charts,
with the same figures as the JSON report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from html.parser import HTMLParser

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vledger_blackbox as vb  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
DAY_MS = 86_400_000
# The DOM elements the test reads: rows by their class, and the bars of the two charts.
ROW_CLASSES = {"program", "cross-order", "cross-payout", "position", "statement", "balance"}


def now_ms() -> int:
    return int(time.time() * 1000)


class Dom(HTMLParser):
    """The rows and chart bars of the rendered report: each row as its data attributes and the
    text of its classed cells, with the signatures and payment it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[dict]] = {c: [] for c in ROW_CLASSES}
        self.bars: dict[str, list[dict[str, str]]] = {}
        self.net_check: dict[str, str] = {}
        self._row: dict | None = None
        self._cell: str | None = None
        self._chart: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "tr" and classes and classes[0] in ROW_CLASSES:
            self._row = {"attrs": a, "cells": {}, "signatures": [], "payments": []}
            self.rows[classes[0]].append(self._row)
        elif tag == "td" and self._row is not None and classes:
            self._cell = classes[0]
            self._row["cells"][self._cell] = ""
        elif tag == "div" and self._row is not None and "signature" in classes:
            self._row["signatures"].append(a)
        elif tag == "div" and self._row is not None and "payment" in classes:
            self._row["payments"].append(a)
        elif tag == "svg" and classes:
            self._chart = classes[0]
            self.bars[self._chart] = []
        elif tag == "rect" and self._chart is not None and "bar" in classes:
            self.bars[self._chart].append(a)
        elif tag == "p" and a.get("id") == "net-check":
            self.net_check = a

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        elif tag == "tr":
            self._row = None
        elif tag == "svg":
            self._chart = None

    def handle_data(self, data):
        if self._row is not None and self._cell is not None:
            self._row["cells"][self._cell] += data


class RegionNode:
    """One region's node process, its node key written beforehand so that the other pins it."""

    def __init__(self, base: str, region: str):
        self.region = region
        self.data = os.path.join(base, region)
        self.port = vb.free_port()
        self.proc: subprocess.Popen | None = None
        key = Ed25519PrivateKey.generate()
        os.makedirs(os.path.join(self.data, "keys"))
        path = os.path.join(self.data, "keys", "node.pem")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        public = vb.public_key_bytes(key.public_key())
        name = f"vledger.local/{region}"
        self.verifier_key = f"{name}+{vb.note_key_id(name, public).hex()}+{vb.b64e(bytes([1]) + public)}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, peer: "RegionNode") -> None:
        log = open(os.path.join(self.data, "node.log"), "ab")
        try:
            self.proc = subprocess.Popen(
                [vb.binary_path(), "serve", "--demo", "--region", self.region, "--listen",
                 f"127.0.0.1:{self.port}", "--data", self.data,
                 "--peer", f"{peer.region}={peer.verifier_key}@{peer.url}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                env=dict(os.environ, RUST_LOG="warn"))
        finally:
            log.close()
        wait_for(f"{self.region} is healthy", lambda: self._healthy())

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"node {self.region} exited: {self.log_tail()}")
        try:
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def admin(self) -> Ed25519PrivateKey:
        return vb.load_private_key_pem(os.path.join(self.data, "keys", "admin.pem"))

    def submit(self, signer: Ed25519PrivateKey, command_type: str, body: dict) -> dict:
        """Submits a command to this node; returns its receipt once recorded."""
        nonce = f"{command_type}-{os.urandom(8).hex()}"
        envelope, _ = vb.seal(vb.command_payload(command_type, self.region, signer, nonce, body), signer)
        r = requests.post(self.url + "/v1/commands", data=envelope,
                          headers={"Content-Type": "application/json"}, timeout=30)
        if r.status_code // 100 != 2:
            raise AssertionError(f"{command_type} on {self.region}: {r.status_code} {r.text}")
        return r.json()["receipt"]

    def get(self, path: str) -> dict:
        r = requests.get(self.url + path, timeout=10)
        if r.status_code != 200:
            raise AssertionError(f"GET {path} on {self.region}: {r.status_code} {r.text}")
        return r.json()

    def adopted_size(self, region: str) -> int:
        for peer in self.get("/v1/federation")["peers"]:
            if peer["region"] == region and peer.get("adopted"):
                return peer["adopted"]["size"]
        return 0

    def stop(self) -> None:
        """SIGTERM by the child's own handle, and wait for it to shut down."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)

    def export(self, out: str) -> None:
        done = subprocess.run([vb.binary_path(), "export", "--data", self.data, "--out", out],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"export of {self.region}: {done.stderr}")

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.data, "node.log"), "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"


def wait_for(what: str, done, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def key_b64(key: Ed25519PrivateKey) -> str:
    return vb.b64e(vb.public_key_bytes(key.public_key()))


@unittest.skipUnless(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: ops/setup.sh installs it")
class AuditFederationHtml(unittest.TestCase):
    def test_the_rendered_federation_report_shows_the_cross_region_figures(self):
        work = tempfile.mkdtemp(prefix="vledger-audit-federation-")
        cq, sc = RegionNode(work, "cq"), RegionNode(work, "sc")
        try:
            cq.start(sc)
            sc.start(cq)
            cq_admin, sc_admin = cq.admin(), sc.admin()
            agency, enterprise = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
            now = now_ms()

            # In `sc`: the lab, accredited, lists two tests in its home log.
            sc.submit(sc_admin, "party.register", {"key": key_b64(agency), "role": "agency",
                                                   "home_region": "sc", "name": "成都检测中心"})
            sc.submit(sc_admin, "agency.accredit", {"agency": key_b64(agency),
                                                    "expires_at_ms": now + 300 * DAY_MS})
            for listing_id, price in [("emc", 200_000), ("salt", 100_000)]:
                last = sc.submit(agency, "catalog.list", {
                    "listing_id": listing_id, "pool": "instruments_equipment", "category": "testing",
                    "title": f"{listing_id} <测试>", "description": "testing", "price_minor": price,
                    "currency": "CNY"})
            wait_for("cq adopted sc's listings", lambda: cq.adopted_size("sc") > last["index"])

            # In `cq`: the program, the enterprise and its voucher.
            cq.submit(cq_admin, "party.register", {"key": key_b64(enterprise), "role": "enterprise",
                                                   "home_region": "cq", "name": "重庆企业"})
            cq.submit(cq_admin, "program.create", {
                "program_id": "p", "name": "vouchers & <more>", "kind": "resource_sharing",
                "currency": "CNY", "budget_minor": 10_000_000, "subsidy_ratio_bps": 5000,
                "caps": {"per_voucher_minor": 300_000, "per_order_minor": 200_000,
                         "per_enterprise_year_minor": 500_000, "per_group_year_minor": 1_000_000},
                "eligible_categories": ["testing"], "valid_from_ms": now - DAY_MS,
                "valid_until_ms": now + 365 * DAY_MS, "claim_deadline_ms": now + 400 * DAY_MS,
                "spend_regions": ["cq", "sc"], "cross_region_payer": "agency_region",
                "use_mode": "multi", "review_levels": 1, "notice_period_ms": 0})
            cq.submit(cq_admin, "enterprise.qualify", {"program_id": "p", "enterprise": key_b64(enterprise),
                                                       "expires_at_ms": now + 300 * DAY_MS})
            cq.submit(cq_admin, "voucher.issue", {"voucher_id": "v", "program_id": "p",
                                                  "holder": key_b64(enterprise), "face_value_minor": 300_000})

            def buy_and_pay(order_id: str, listing_id: str, price: int) -> dict:
                """An order of a `sc` listing on `cq`, delivered, confirmed, claimed and paid."""
                cq.submit(enterprise, "order.place", {
                    "order_id": order_id, "listing_id": listing_id, "listing_region": "sc",
                    "voucher_id": "v", "price_minor": price, "payment": {"mode": "direct"},
                    "auto_confirm_after_ms": DAY_MS})
                cq.submit(agency, "payment.acknowledge", {"order_id": order_id, "installment": 0,
                                                          "reference": f"BANK-{order_id}"})
                cq.submit(agency, "order.deliver", {"order_id": order_id,
                                                    "evidence": [{"kind": "report", "sha256": "c" * 64}]})
                cq.submit(enterprise, "order.confirm", {"order_id": order_id})
                cq.submit(agency, "claim.submit", {"order_id": order_id})
                cq.submit(cq_admin, "claim.review", {"order_id": order_id, "level": 1, "decision": "approve"})
                # The program has `sc` advance the payout: `sc`'s admin signs it on `cq`.
                return cq.submit(sc_admin, "claim.pay", {"order_id": order_id,
                                                         "reference": f"TREASURY-{order_id}"})

            paid = buy_and_pay("o1", "emc", 200_000)
            time.sleep(0.01)
            until = now_ms()
            draft = cq.get(f"/v1/settlement/draft?creditor=sc&from_ms={now - DAY_MS}&until_ms={until}")
            lines = [{"region": "cq", "log_index": p["log_index"], "leaf_hash": paid["leaf_hash"],
                      "order_id": p["order_id"], "amount_minor": p["amount_minor"],
                      "direction": "debtor_to_creditor"} for p in draft["payouts"]]
            self.assertEqual([line["amount_minor"] for line in lines], [100_000])
            cq.submit(cq_admin, "settlement.propose", {
                "statement_id": "cq-sc-1", "creditor": "sc", "from_ms": now - DAY_MS, "until_ms": until,
                "lines": lines, "gross_debtor_to_creditor_minor": 100_000,
                "gross_creditor_to_debtor_minor": 0, "net_minor": 100_000})
            cq_signed = cq.submit(cq_admin, "settlement.sign", {"statement_id": "cq-sc-1"})
            # `sc`'s admin, known to `cq` through the adoption of `sc`'s genesis, signs on `cq`.
            sc_signed = cq.submit(sc_admin, "settlement.sign", {"statement_id": "cq-sc-1"})
            payment = cq.submit(cq_admin, "settlement.record_payment", {
                "statement_id": "cq-sc-1", "amount_minor": 100_000, "reference": "PBOC-001"})
            # A second payout, after the statement: left open.
            buy_and_pay("o2", "salt", 100_000)
            wait_for("sc adopted cq", lambda: sc.adopted_size("cq") > payment["index"])

            cq.stop()
            sc.stop()
            cq_archive, sc_archive = os.path.join(work, "cq.archive"), os.path.join(work, "sc.archive")
            cq.export(cq_archive)
            sc.export(sc_archive)
            report_json, report_html = os.path.join(work, "audit.json"), os.path.join(work, "audit.html")
            audit = subprocess.run([vb.binary_path(), "audit", cq_archive, sc_archive, "--json", report_json,
                                    "--html", report_html], capture_output=True, text=True, timeout=60)
            self.assertEqual(audit.returncode, 0, audit.stderr)
            with open(report_json, encoding="utf-8") as f:
                report = json.load(f)

            # The JSON report: the figures of the flow above.
            self.assertEqual([log["region"] for log in report["logs"]], ["cq", "sc"])
            self.assertGreater(report["logs"][0]["tree_size"], payment["index"])
            regions = {r["region"]: r for r in report["regions"]}
            self.assertEqual(sorted(regions), ["cq", "sc"])
            (program,) = regions["cq"]["programs"]
            self.assertEqual(program["cross_region_orders"], [{
                "agency_region": "sc", "orders": 2, "price_minor": 300_000, "voucher_share_minor": 150_000}])
            self.assertEqual(program["cross_region_payouts"], [{
                "agency_region": "sc", "paid_by": "agency_region", "claims": 2, "amount_minor": 150_000}])
            self.assertEqual(regions["cq"]["positions"], [{
                "debtor": "cq", "creditor": "sc", "amount_minor": 50_000, "recorded_by": "cq",
                "unsettled_payouts_minor": 50_000, "reconciled": True}])
            self.assertEqual(regions["sc"]["positions"], [])
            (statement,) = regions["cq"]["statements"]
            self.assertEqual((statement["status"], statement["line_count"], statement["net_minor"]),
                             ("paid", 1, 100_000))
            self.assertEqual(statement["signatures"], [
                {"region": "cq", "signer": key_b64(cq_admin), "at_ms": statement["signatures"][0]["at_ms"],
                 "index": cq_signed["index"]},
                {"region": "sc", "signer": key_b64(sc_admin), "at_ms": statement["signatures"][1]["at_ms"],
                 "index": sc_signed["index"]}])
            self.assertEqual((statement["payment"]["reference"], statement["payment"]["index"]),
                             ("PBOC-001", payment["index"]))
            federation = report["federation"]
            self.assertEqual(federation["balances"], [
                {"region": "cq", "owed_to_minor": 0, "owing_minor": 50_000, "net_minor": -50_000},
                {"region": "sc", "owed_to_minor": 50_000, "owing_minor": 0, "net_minor": 50_000}])
            self.assertEqual((federation["positions_net_minor"], federation["positions_net_to_zero"],
                              federation["positions_reconciled"]), (0, True, True))

            dom_text = subprocess.run(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={os.path.join(work, 'chromium')}",
                 "--dump-dom", f"file://{report_html}"],
                capture_output=True, text=True, timeout=60)
            self.assertEqual(dom_text.returncode, 0, dom_text.stderr)
            dom = Dom()
            dom.feed(dom_text.stdout)

            # The rendered rows show the JSON's figures.
            (order_row,) = dom.rows["cross-order"]
            self.assertEqual(order_row["attrs"]["data-agency-region"], "sc")
            order = program["cross_region_orders"][0]
            self.assertEqual({k: order_row["cells"][k] for k in ("orders", "price", "voucher-share")},
                             {"orders": str(order["orders"]), "price": str(order["price_minor"]),
                              "voucher-share": str(order["voucher_share_minor"])})
            (payout_row,) = dom.rows["cross-payout"]
            self.assertEqual(payout_row["attrs"]["data-paid-by"], "agency_region")
            self.assertEqual(payout_row["cells"]["paid-by"], "advanced by the agency's region")
            self.assertEqual((payout_row["cells"]["claims"], payout_row["cells"]["amount"]), ("2", "150000"))
            (position_row,) = dom.rows["position"]
            self.assertEqual((position_row["attrs"]["data-debtor"], position_row["attrs"]["data-creditor"],
                              position_row["cells"]["amount"], position_row["cells"]["reconciled"]),
                             ("cq", "sc", "50000", "yes"))
            (statement_row,) = dom.rows["statement"]
            self.assertEqual(statement_row["attrs"]["data-statement"], "cq-sc-1")
            self.assertEqual({k: statement_row["cells"][k] for k in ("status", "net", "lines", "gross-owed")},
                             {"status": "paid", "net": "100000", "lines": "1", "gross-owed": "100000"})
            self.assertEqual(
                [(s["data-region"], s["data-signer"], s["data-index"]) for s in statement_row["signatures"]],
                [(s["region"], s["signer"], str(s["index"])) for s in statement["signatures"]])
            (payment_row,) = statement_row["payments"]
            self.assertEqual((payment_row["data-amount"], payment_row["data-reference"], payment_row["data-index"]),
                             ("100000", "PBOC-001", str(payment["index"])))
            balances = {b["attrs"]["data-region"]: b["cells"] for b in dom.rows["balance"]}
            self.assertEqual({r: (c["owed-to"], c["owing"], c["net"]) for r, c in balances.items()},
                             {"cq": ("0", "50000", "-50000"), "sc": ("50000", "0", "50000")})
            self.assertEqual((dom.net_check.get("data-net"), dom.net_check.get("data-reconciled")), ("0", "yes"))

            # The charts: a bar per region and direction, and per pair of regions and payer.
            bars = {(b["data-region"], b["data-kind"]): int(b["data-value"]) for b in dom.bars["balance-chart"]}
            self.assertEqual(bars, {("cq", "owed-to"): 0, ("cq", "owing"): 50_000,
                                    ("sc", "owed-to"): 50_000, ("sc", "owing"): 0})
            (payout_bar,) = dom.bars["payout-chart"]
            self.assertEqual((payout_bar["data-funding-region"], payout_bar["data-agency-region"],
                              payout_bar["data-paid-by"], int(payout_bar["data-value"])),
                             ("cq", "sc", "agency_region", 150_000))
            self.assertGreater(float(payout_bar["width"]), 0)
            widths = {b["data-kind"] + b["data-region"]: float(b["width"]) for b in dom.bars["balance-chart"]}
            self.assertEqual(widths["owed-tocq"], 0)
            self.assertAlmostEqual(widths["owingcq"], widths["owed-tosc"])
            # Text from the logs is escaped: the program's name shows as written.
            (program_row,) = dom.rows["program"]
            self.assertEqual(program_row["cells"]["name"], "vouchers & <more> (p)")
        finally:
            cq.stop()
            sc.stop()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
