"""schemathesis against a running node's own /openapi.json with every check (`--checks all`) on
every operation: no 5xx, every response conforms to the document (status code, content type,
headers, body schema, each event of the event stream), every schema-valid request is accepted and
every schema-violating one refused. schemathesis.toml and schemathesis_hooks.py say how the signed
commands and the endless event stream are checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

import vledger_blackbox as vb  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "schemathesis.toml")
HOOKS = os.path.join(HERE, "schemathesis_hooks.py")
# Bounded for the test suite; benches/ or a manual run can raise it.
MAX_EXAMPLES = os.environ.get("VLEDGER_SCHEMATHESIS_EXAMPLES", "25")


class OpenApiConformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = vb.NodeProcess()
        cls.node.start()
        admin = cls.node.admin_key()
        client = cls.node.client()
        # A few records, so that reads find something besides 404s.
        for n, role in enumerate(("agency", "enterprise", "escrow")):
            key = vb.public_key_bytes(Ed25519PrivateKey.generate().public_key())
            payload = vb.register_party_payload(admin, "cq", f"openapi-{n}", key, role, f"Party {n}")
            envelope, _ = vb.seal(payload, admin)
            response = client.post_command(envelope)
            assert response.status_code == 201, response.text

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        cls.node.cleanup()

    def test_the_document_covers_every_operation(self):
        with urllib.request.urlopen(f"{self.node.url}/openapi.json", timeout=10) as r:
            doc = json.load(r)
        self.assertTrue(doc["openapi"].startswith("3.1"), doc["openapi"])
        paths = set(doc["paths"])
        for path in ("/v1/commands", "/v1/entries/{index}", "/v1/events", "/v1/vouchers",
                     "/v1/orders", "/v1/claims", "/v1/programs", "/v1/parties/{key}",
                     "/v1/catalog/listings", "/v1/catalog/search", "/v1/fraud-flags",
                     "/openapi.json"):
            self.assertIn(path, paths)
        schemas = doc["components"]["schemas"]
        for name in ("Problem", "Command", "Event", "DsseEnvelope", "CommandAccepted"):
            self.assertIn(name, schemas)

    def test_schemathesis_finds_no_server_error_and_no_nonconforming_response(self):
        # Next to this interpreter (where pip puts it), else on PATH.
        beside = os.path.join(os.path.dirname(sys.executable), "schemathesis")
        exe = beside if os.access(beside, os.X_OK) else shutil.which("schemathesis")
        self.assertIsNotNone(exe, "schemathesis is not installed: run ops/setup.sh --test")
        command = [
            exe, "--config-file", CONFIG, "run", f"{self.node.url}/openapi.json",
            "--checks", "all",
            "--max-examples", MAX_EXAMPLES,
            "--seed", "20261123",
            "--request-timeout", "20",
            "--workers", "1",
        ]
        env = dict(os.environ, SCHEMATHESIS_HOOKS=HOOKS)
        # schemathesis keeps a cache in its working directory: keep it out of the checkout.
        with tempfile.TemporaryDirectory() as scratch:
            run = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=scratch,
                                 env=env)
        report = run.stdout[-20000:] + run.stderr[-4000:]
        self.assertEqual(run.returncode, 0, report)


if __name__ == "__main__":
    unittest.main()
