"""Crash test: real clients load a real node while it is killed with SIGKILL and restarted, again
and again; afterwards every answered receipt must be in the log and the whole log must verify."""

from __future__ import annotations

import hashlib
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import requests  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

import vledger_blackbox as vb  # noqa: E402

REGION = "cq"
CLIENTS = 4
ROLES = ("agency", "enterprise", "escrow", "regulator")
# A command must be answered within this long once the node is up again at the end.
FINAL_ANSWER_SECONDS = 60.0


class Shared:
    """What the clients saw, under one lock."""

    def __init__(self, verifier: vb.VerifierKey, origin: str):
        self.verifier = verifier
        self.origin = origin
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.final_deadline = None  # set when the kills are over
        self.answered = []  # dicts: nonce, envelope, payload_bytes, status, body, attempts, unanswered
        self.checkpoints = {}  # signed checkpoint text shown to any client -> its verified Checkpoint
        self.errors = []
        self.max_answered_index = -1
        self.retried_commands = 0
        self.replayed = 0

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def saw_checkpoint(self, text: str) -> None:
        """Records a checkpoint shown to a client; the caller holds the lock."""
        if text not in self.checkpoints:
            try:
                self.checkpoints[text] = vb.Checkpoint.parse_verified(text, self.verifier, self.origin)
            except vb.VerificationError as e:
                self.errors.append(f"a client was shown a checkpoint that does not verify: {e}: {text!r}")


class Submitter(threading.Thread):
    def __init__(self, number: int, node: vb.NodeProcess, admin: Ed25519PrivateKey, shared: Shared):
        super().__init__(name=f"submitter-{number}", daemon=True)
        self.number = number
        self.node = node
        self.admin = admin
        self.shared = shared
        self.session = requests.Session()
        self.rng = random.Random(number)

    def run(self) -> None:
        seq = 0
        try:
            while not self.shared.stop.is_set():
                seq += 1
                party = Ed25519PrivateKey.generate()
                nonce = f"crash-{self.number}-{seq}"
                payload = vb.register_party_payload(
                    self.admin, REGION, nonce, vb.public_key_bytes(party.public_key()),
                    ROLES[seq % len(ROLES)], f"Crash party {self.number}/{seq}",
                )
                envelope, payload_bytes = vb.seal(payload, self.admin)
                self.submit_until_answered(nonce, envelope, payload_bytes)
                if seq % 7 == 0:
                    self.look_at_checkpoint()
        except Exception as e:  # noqa: BLE001
            self.shared.error(f"{self.name} crashed: {type(e).__name__}: {e}")

    def look_at_checkpoint(self) -> None:
        try:
            r = self.session.get(self.node.url + "/v1/checkpoint", timeout=(1, 5))
        except requests.RequestException:
            return
        if r.status_code == 200:
            with self.shared.lock:
                self.shared.saw_checkpoint(r.content.decode("utf-8"))

    def submit_until_answered(self, nonce: str, envelope: bytes, payload_bytes: bytes) -> None:
        attempts = 0
        unanswered = 0
        while True:
            deadline = self.shared.final_deadline
            if deadline is not None and time.monotonic() > deadline:
                self.shared.error(f"{nonce}: no answer after {attempts} attempts, even after the last restart")
                return
            attempts += 1
            try:
                r = self.session.post(self.node.url + "/v1/commands", data=envelope,
                                      headers={"Content-Type": "application/json"}, timeout=(1, 10))
            except requests.RequestException:
                unanswered += 1
                time.sleep(0.02 + self.rng.random() * 0.05)
                continue
            if r.status_code == 503:
                unanswered += 1
                time.sleep(0.05)
                continue
            if r.status_code not in (200, 201):
                self.shared.error(
                    f"{nonce}: attempt {attempts} (after {unanswered} unanswered) got {r.status_code} "
                    f"{vb.problem_code(r)!r}: {r.text}; expected 201, or 200 for a retry of a committed command"
                )
                return
            try:
                body = r.json()
            except ValueError:
                self.shared.error(f"{nonce}: {r.status_code} with a body that is not JSON: {r.text!r}")
                return
            if body.get("replayed") is not (r.status_code == 200):
                self.shared.error(f"{nonce}: status {r.status_code} with replayed={body.get('replayed')!r}")
            if r.status_code == 200 and unanswered == 0:
                self.shared.error(f"{nonce}: a first submission was answered as a replay: {body}")
            record = {"nonce": nonce, "envelope": envelope, "payload_bytes": payload_bytes,
                      "status": r.status_code, "body": body, "attempts": attempts, "unanswered": unanswered}
            with self.shared.lock:
                self.shared.answered.append(record)
                self.shared.saw_checkpoint(body["checkpoint"])
                index = body["receipt"]["index"]
                if index > self.shared.max_answered_index:
                    self.shared.max_answered_index = index
                if unanswered:
                    self.shared.retried_commands += 1
                if r.status_code == 200:
                    self.shared.replayed += 1
            return


class CrashTest(unittest.TestCase):
    def setUp(self):
        vb.binary_path()
        self.node = vb.NodeProcess(region=REGION)

    def tearDown(self):
        self.node.cleanup()

    def test_sigkill_under_load_loses_nothing_answered(self):
        try:
            self._run()
        except BaseException:
            print(self.node.log_tail(), file=sys.stderr)
            raise

    def _run(self):
        cycles = int(os.environ.get("VLEDGER_CRASH_CYCLES", "20"))
        started = time.monotonic()
        node = self.node
        node.start()
        admin = node.admin_key()
        info = node.client().node_info()
        verifier = vb.VerifierKey.parse(info["verifier_key"])
        origin = info["origin"]
        shared = Shared(verifier, origin)
        rng = random.Random(int(os.environ.get("VLEDGER_CRASH_SEED", str(int(time.time())))))
        submitters = [Submitter(i, node, admin, shared) for i in range(CLIENTS)]
        for s in submitters:
            s.start()

        largest_seen_before_kill = 0
        failed = True
        try:
            for cycle in range(cycles):
                time.sleep(rng.uniform(0.2, 1.5))
                node.kill()
                with shared.lock:
                    answered_index = shared.max_answered_index
                    seen_sizes = [cp.size for cp in shared.checkpoints.values()]
                largest_seen_before_kill = max(seen_sizes + [largest_seen_before_kill])
                node.start()
                health = node.client().get_json("/healthz")
                self.assertGreater(
                    health["tree_size"], answered_index,
                    f"cycle {cycle}: after restart the tree has {health['tree_size']} entries, but entry "
                    f"{answered_index} had been answered before the kill",
                )
                cp = self._checkpoint(node.client().checkpoint_text(), verifier, origin)
                self.assertGreaterEqual(
                    cp.size, largest_seen_before_kill,
                    f"cycle {cycle}: after restart the checkpoint is of size {cp.size}, but a client had been "
                    f"shown a checkpoint of size {largest_seen_before_kill}",
                )
            failed = False
        finally:
            shared.final_deadline = time.monotonic() + (1.0 if failed else FINAL_ANSWER_SECONDS)
            shared.stop.set()
            for s in submitters:
                s.join(timeout=FINAL_ANSWER_SECONDS + 15)
        self.assertFalse([s.name for s in submitters if s.is_alive()], "submitters did not finish")
        load_seconds = time.monotonic() - started
        self.assertEqual(shared.errors, [], "clients saw wrong answers:\n" + "\n".join(shared.errors[:50]))

        audit = vb.audit_node(node.client(timeout=30), REGION)
        log, tree = audit.log, audit.log.tree
        final_size = audit.checkpoint.size

        # Every answered receipt is in the log, at its index, with its leaf and command hash.
        for rec in shared.answered:
            receipt = rec["body"]["receipt"]
            note = vb.verify_receipt(receipt, verifier, origin)
            where = f"{rec['nonce']} (status {rec['status']}, receipt index {note.index})"
            self.assertLess(note.index, final_size, f"{where}: receipt points past the end of the log")
            self.assertEqual(note.command_hash, hashlib.sha256(rec["payload_bytes"]).digest(), where)
            self.assertEqual(log.leaves[note.index], note.leaf_hash, f"{where}: leaf hash differs")
            self.assertEqual(log.commands[note.index].command_hash, note.command_hash, f"{where}: other command")
            self.assertEqual(log.entries[note.index].envelope, rec["envelope"], f"{where}: envelope differs")
            self.assertEqual(log.entries[note.index].node_time_ms, note.node_time_ms, where)
            cp = self._checkpoint(rec["body"]["checkpoint"], verifier, origin)
            self.assertGreater(cp.size, note.index, f"{where}: its checkpoint does not cover it")
        if cycles:
            self.assertGreater(shared.retried_commands, 0, "no kill ever interrupted a command; nothing was tested")
        answered_nonces = [rec["nonce"] for rec in shared.answered]
        self.assertEqual(len(answered_nonces), len(set(answered_nonces)))

        # Every checkpoint any client saw is a prefix of the final tree: recomputed from entries...
        checkpoints = {}
        for cp in shared.checkpoints.values():
            self.assertLessEqual(cp.size, final_size, "a checkpoint seen by a client is beyond the final tree")
            other = checkpoints.setdefault(cp.size, cp)
            self.assertEqual(other.root, cp.root, f"two checkpoints of size {cp.size} with different roots")
        for size, cp in checkpoints.items():
            self.assertEqual(tree.root(size), cp.root, f"checkpoint of size {size} is not the root of the first "
                                                      f"{size} entries")
        # ...and by a consistency proof from the largest of them to the final tree.
        largest = checkpoints[max(checkpoints)]
        answer = node.client().consistency_proof(largest.size, final_size)
        proof = [vb.b64d(p) for p in answer["proof"]]
        self.assertTrue(
            vb.verify_consistency(largest.size, final_size, largest.root, audit.checkpoint.root, proof),
            f"consistency proof {largest.size} -> {final_size} does not verify: {answer}",
        )
        for index in random.Random(5).sample(range(final_size), min(10, final_size)):
            answer = node.client().inclusion_proof(index, final_size)
            proof = [vb.b64d(p) for p in answer["proof"]]
            self.assertTrue(vb.verify_inclusion(tree.leaves[index], index, final_size, proof, audit.checkpoint.root))

        # Every entry after genesis is one of our clients' commands, each (signer, nonce) once
        # (verify_log refuses repeats), and each answered command is there.
        ours = {cmd.payload["nonce"] for cmd in log.commands[1:]}
        self.assertTrue(set(answered_nonces) <= ours)
        self.assertTrue(all(n.startswith("crash-") for n in ours))

        print(
            f"\ncrash test: {cycles} SIGKILL cycles, {node.starts} starts, {len(shared.answered)} commands answered "
            f"({shared.retried_commands} after unanswered attempts, {shared.replayed} as replays), "
            f"{len(checkpoints)} distinct checkpoints seen (largest {largest.size}), final tree size {final_size}, "
            f"load {load_seconds:.1f}s, total {time.monotonic() - started:.1f}s"
        )

    @staticmethod
    def _checkpoint(text: str, verifier: vb.VerifierKey, origin: str) -> vb.Checkpoint:
        return vb.Checkpoint.parse_verified(text, verifier, origin)


if __name__ == "__main__":
    unittest.main()
