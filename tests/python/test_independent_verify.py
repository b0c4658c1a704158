"""A third party's audit of a live vledger node: everything it serves is re-checked from the
published formats with code that shares nothing with the node."""

from __future__ import annotations

import functools
import hashlib
import os
import random
import sys
import unittest
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

import vledger_blackbox as vb  # noqa: E402

REGION = "cq"
COMMANDS = 50
ROLES = ("agency", "enterprise", "escrow", "regulator", "admin")


def flip(data: bytes, position: int, mask: int = 0x01) -> bytes:
    b = bytearray(data)
    b[position] ^= mask
    return bytes(b)


def dump_node_log_on_failure(method):
    """Prints the node's output to stderr when the wrapped test fails."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception:
            node = getattr(type(self), "node", None)
            if node is not None:
                print(node.log_tail(), file=sys.stderr)
            raise

    return wrapper


# ------------------------------------------------------------------------------------------------
# Self-checks of the verifier's own Merkle code, against published vectors and a reference prover
# ------------------------------------------------------------------------------------------------

# The eight inputs and roots of the RFC 6962 reference test vectors (certificate-transparency).
RFC6962_INPUTS = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
RFC6962_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def reference_path(m: int, leaves: list) -> list:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1, from leaf hashes."""
    n = len(leaves)
    if n == 1:
        return []
    k = vb._largest_power_of_two_below(n)
    if m < k:
        return reference_path(m, leaves[:k]) + [vb.root_from_leaf_hashes(leaves[k:])]
    return reference_path(m - k, leaves[k:]) + [vb.root_from_leaf_hashes(leaves[:k])]


def reference_subproof(m: int, leaves: list, complete: bool) -> list:
    """SUBPROOF(m, D[n], b) of RFC 6962 section 2.1.2, from leaf hashes."""
    n = len(leaves)
    if m == n:
        return [] if complete else [vb.root_from_leaf_hashes(leaves)]
    k = vb._largest_power_of_two_below(n)
    if m <= k:
        return reference_subproof(m, leaves[:k], complete) + [vb.root_from_leaf_hashes(leaves[k:])]
    return reference_subproof(m - k, leaves[k:], False) + [vb.root_from_leaf_hashes(leaves[:k])]


class MerkleSelfCheck(unittest.TestCase):
    def test_roots_match_rfc6962_vectors(self):
        leaves = [vb.leaf_hash(d) for d in RFC6962_INPUTS]
        tree = vb.MerkleTree(leaves)
        for size, want in enumerate(RFC6962_ROOTS, start=1):
            self.assertEqual(vb.root_from_leaf_hashes(leaves[:size]).hex(), want, f"size {size}")
            self.assertEqual(tree.root(size).hex(), want, f"size {size}")
        self.assertEqual(vb.empty_root().hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

    def test_proof_verifiers_accept_reference_proofs_and_nothing_else(self):
        leaves = [vb.leaf_hash(b"leaf %d" % i) for i in range(40)]
        tree = vb.MerkleTree(leaves)
        for size in range(1, 41):
            root = tree.root(size)
            self.assertEqual(root, vb.root_from_leaf_hashes(leaves[:size]))
            for index in range(size):
                proof = reference_path(index, leaves[:size])
                self.assertTrue(vb.verify_inclusion(leaves[index], index, size, proof, root), (index, size))
                if proof:
                    self.assertFalse(vb.verify_inclusion(leaves[index], index, size, proof[:-1], root))
                    self.assertFalse(vb.verify_inclusion(leaves[index], index, size, [flip(proof[0], 3)] + proof[1:], root))
                self.assertFalse(vb.verify_inclusion(flip(leaves[index], 0), index, size, proof, root))
                self.assertFalse(vb.verify_inclusion(leaves[index], index, size, proof + [root], root))
            for first in range(1, size + 1):
                proof = reference_subproof(first, leaves[:size], True) if first < size else []
                old = tree.root(first)
                self.assertTrue(vb.verify_consistency(first, size, old, root, proof), (first, size))
                self.assertFalse(vb.verify_consistency(first, size, flip(old, 5), root, proof), (first, size))
                self.assertFalse(vb.verify_consistency(first, size, old, flip(root, 5), proof), (first, size))
                for i in range(len(proof)):
                    bad = list(proof)
                    bad[i] = flip(bad[i], 31)
                    self.assertFalse(vb.verify_consistency(first, size, old, root, bad), (first, size, i))

    def test_note_round_trip_with_a_key_of_our_own(self):
        key = Ed25519PrivateKey.generate()
        pub = vb.public_key_bytes(key.public_key())
        name = "example.test/log"
        kid = vb.note_key_id(name, pub)
        verifier = vb.VerifierKey.parse(f"{name}+{kid.hex()}+{vb.b64e(bytes([1]) + pub)}")
        text = f"{name}\n3\n{vb.b64e(bytes(32))}\n"
        note = text + "\n\u2014 " + name + " " + vb.b64e(kid + key.sign(text.encode())) + "\n"
        cp = vb.Checkpoint.parse_verified(note, verifier, name)
        self.assertEqual((cp.size, cp.root), (3, bytes(32)))
        with self.assertRaises(vb.VerificationError):
            vb.Checkpoint.parse_verified(note.replace("\n3\n", "\n4\n"), verifier, name)
        with self.assertRaises(vb.VerificationError):
            vb.VerifierKey.parse(f"{name}+{flip(kid, 0).hex()}+{vb.b64e(bytes([1]) + pub)}")


# ------------------------------------------------------------------------------------------------
# The audit of a real node
# ------------------------------------------------------------------------------------------------


class IndependentVerifyTest(unittest.TestCase):
    node: vb.NodeProcess = None

    @classmethod
    def setUpClass(cls):
        vb.binary_path()
        cls.node = vb.NodeProcess(region=REGION)
        try:
            cls.node.start()
            cls._submit_commands()
        except BaseException:
            print(cls.node.log_tail(), file=sys.stderr)
            cls.node.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.node is not None:
            cls.node.cleanup()

    @classmethod
    def _submit_commands(cls):
        cls.admin = cls.node.admin_key()
        client = cls.node.client()
        cls.info = client.node_info()
        cls.verifier = vb.VerifierKey.parse(cls.info["verifier_key"])
        cls.origin = cls.info["origin"]

        def one(i: int):
            party = Ed25519PrivateKey.generate()
            payload = vb.register_party_payload(
                cls.admin, REGION, f"verify-{i}", vb.public_key_bytes(party.public_key()),
                ROLES[i % len(ROLES)], f"Party {i} \u91cd\u5e86",
            )
            envelope, payload_bytes = vb.seal(payload, cls.admin, with_keyid=i % 2 == 0)
            response = cls.node.client().post_command(envelope)
            return i, envelope, payload_bytes, response.status_code, response.json()

        # Some commands alone, then the rest concurrently so that batches hold several entries.
        results = [one(i) for i in range(5)]
        with ThreadPoolExecutor(max_workers=6) as pool:
            results += list(pool.map(one, range(5, COMMANDS)))
        cls.submitted = results

    def _audit(self) -> vb.AuditResult:
        return vb.audit_node(self.node.client(), REGION)

    @dump_node_log_on_failure
    def test_every_answer_is_a_signed_receipt_with_a_signed_checkpoint(self):
        for i, envelope, payload_bytes, status, body in self.submitted:
            self.assertEqual(status, 201, f"command {i}: {body}")
            self.assertIs(body["replayed"], False)
            receipt = body["receipt"]
            note = vb.verify_receipt(receipt, self.verifier, self.origin)
            self.assertEqual(note.command_hash, hashlib.sha256(payload_bytes).digest())
            cp = vb.Checkpoint.parse_verified(body["checkpoint"], self.verifier, self.origin)
            self.assertGreater(cp.size, note.index, "the checkpoint given with a receipt must cover it")

    @dump_node_log_on_failure
    def test_log_verifies_from_its_bytes(self):
        audit = self._audit()
        log = audit.log
        self.assertGreaterEqual(audit.checkpoint.size, COMMANDS + 1)
        self.assertGreaterEqual(audit.info["tree_size"], audit.checkpoint.size)
        indexes = set()
        for i, envelope, payload_bytes, status, body in self.submitted:
            note = vb.verify_receipt(body["receipt"], self.verifier, self.origin)
            self.assertLess(note.index, len(log.entries))
            indexes.add(note.index)
            self.assertEqual(log.leaves[note.index], note.leaf_hash, f"command {i}")
            self.assertEqual(log.entries[note.index].envelope, envelope, "the envelope is stored exactly as sent")
            self.assertEqual(log.commands[note.index].command_hash, note.command_hash)
            self.assertEqual(log.entries[note.index].node_time_ms, note.node_time_ms)
        self.assertEqual(len(indexes), COMMANDS, "each command has its own entry")
        self.assertNotIn(0, indexes)
        genesis = log.commands[0].payload
        self.assertEqual(genesis["type"], "region.genesis")
        self.assertEqual(genesis["body"]["admin_key"], vb.b64e(vb.public_key_bytes(self.admin.public_key())))

    @dump_node_log_on_failure
    def test_inclusion_proofs_against_our_own_roots(self):
        audit = self._audit()
        tree, n = audit.log.tree, audit.checkpoint.size
        rng = random.Random(1)
        pairs = {(0, 1), (0, n), (n - 1, n), (1, 2), (2, 3), (5, 17), (16, 17), (15, 16), (31, 33), (7, n)}
        pairs |= {(i, s) for s in rng.sample(range(1, n + 1), 8) for i in rng.sample(range(s), min(3, s))}
        client = self.node.client()
        for index, size in sorted(pairs):
            if not index < size <= n:
                continue
            answer = client.inclusion_proof(index, size)
            self.assertEqual((answer["index"], answer["size"]), (index, size))
            root = tree.root(size)
            self.assertEqual(vb.b64d(answer["leaf_hash"]), tree.leaves[index], (index, size))
            self.assertEqual(vb.b64d(answer["root_hash"]), root, (index, size))
            proof = [vb.b64d(p) for p in answer["proof"]]
            self.assertTrue(vb.verify_inclusion(tree.leaves[index], index, size, proof, root),
                            f"inclusion proof of {index} in {size} does not verify: {answer}")

    @dump_node_log_on_failure
    def test_consistency_proofs_against_our_own_roots(self):
        audit = self._audit()
        tree, n = audit.log.tree, audit.checkpoint.size
        rng = random.Random(2)
        pairs = {(1, n), (2, n), (n - 1, n), (n, n), (1, 2), (3, 7), (4, 8), (5, 16), (16, 32), (17, n), (8, 9)}
        pairs |= {tuple(sorted(rng.sample(range(1, n + 1), 2))) for _ in range(10)}
        client = self.node.client()
        for first, second in sorted(pairs):
            if not 1 <= first <= second <= n:
                continue
            answer = client.consistency_proof(first, second)
            self.assertEqual((answer["from"], answer["to"]), (first, second))
            proof = [vb.b64d(p) for p in answer["proof"]]
            self.assertTrue(
                vb.verify_consistency(first, second, tree.root(first), tree.root(second), proof),
                f"consistency proof {first} -> {second} does not verify: {answer}",
            )

    @dump_node_log_on_failure
    def test_retry_repeats_the_receipt_and_a_reused_nonce_is_refused(self):
        client = self.node.client()
        i, envelope, payload_bytes, status, body = self.submitted[7]
        again = client.post_command(envelope)
        self.assertEqual(again.status_code, 200, again.text)
        doc = again.json()
        self.assertIs(doc["replayed"], True)
        for field in ("index", "leaf_hash", "node_time_ms", "command_hash"):
            self.assertEqual(doc["receipt"][field], body["receipt"][field], field)
        vb.verify_receipt(doc["receipt"], self.verifier, self.origin)
        vb.Checkpoint.parse_verified(doc["checkpoint"], self.verifier, self.origin)

        other = vb.register_party_payload(self.admin, REGION, f"verify-{i}",
                                          vb.public_key_bytes(Ed25519PrivateKey.generate().public_key()),
                                          "agency", "Someone else")
        reused = client.post_command(vb.seal(other, self.admin)[0])
        self.assertEqual(reused.status_code, 409, reused.text)
        self.assertEqual(vb.problem_code(reused), "nonce-reused", reused.text)
        self.assertTrue(reused.headers.get("content-type", "").startswith("application/problem+json"))

        intruder = Ed25519PrivateKey.generate()
        payload = vb.register_party_payload(self.admin, REGION, "forged",
                                            vb.public_key_bytes(intruder.public_key()), "agency", "Forged")
        bad_sig = vb.seal(payload, intruder)[0]
        refused = client.post_command(bad_sig)
        self.assertEqual(refused.status_code, 401, refused.text)
        self.assertEqual(vb.problem_code(refused), "bad-signature", refused.text)

    @dump_node_log_on_failure
    def test_tampering_is_detected(self):
        audit = self._audit()
        node_key = vb.b64d(audit.info["node_key"])
        entries = [vb.b64d(r["entry"]) for r in audit.rows]
        n = len(entries)

        def full_check(entry_bytes):
            log = vb.verify_log(entry_bytes, node_key, REGION)
            if log.tree.root() != audit.checkpoint.root:
                raise vb.VerificationError("root differs from the checkpoint")

        full_check(entries)  # the untouched log passes
        rng = random.Random(3)
        targets = [0, 1, n // 2, n - 1]
        for idx in targets:
            e = vb.parse_entry(entries[idx])
            env_start = vb.ENTRY_HEADER_LEN + 4
            ev_start = env_start + len(e.envelope) + 4
            positions = {0, 1, 8, 9, 16, 17, 48, vb.ENTRY_HEADER_LEN + 3, env_start + 2,
                         env_start + len(e.envelope) // 2, env_start + len(e.envelope) - 20,
                         ev_start, ev_start + len(e.events) // 2, len(entries[idx]) - 1,
                         rng.randrange(len(entries[idx]))}
            for pos in sorted(positions):
                for mask in (0x01, 0x80):
                    tampered = list(entries)
                    tampered[idx] = flip(entries[idx], pos, mask)
                    with self.assertRaises(vb.VerificationError, msg=f"entry {idx} byte {pos} mask {mask:#x}"):
                        full_check(tampered)
        # Dropping, duplicating or reordering entries is caught too.
        for tampered in (entries[:-1], entries + [entries[-1]], [entries[0], entries[2], entries[1]] + entries[3:]):
            with self.assertRaises(vb.VerificationError):
                full_check(tampered)

        tree = audit.log.tree
        client = self.node.client()
        for index, size in ((0, n), (n - 1, n), (n // 3, n), (3, 9)):
            answer = client.inclusion_proof(index, size)
            proof = [vb.b64d(p) for p in answer["proof"]]
            root = tree.root(size)
            self.assertTrue(vb.verify_inclusion(tree.leaves[index], index, size, proof, root))
            self.assertTrue(proof, "a proof in a tree of more than one leaf is not empty")
            for k in range(len(proof)):
                for pos in (0, 17, 31):
                    bad = list(proof)
                    bad[k] = flip(bad[k], pos)
                    self.assertFalse(vb.verify_inclusion(tree.leaves[index], index, size, bad, root), (index, size, k))
            self.assertFalse(vb.verify_inclusion(flip(tree.leaves[index], 9), index, size, proof, root))
            self.assertFalse(vb.verify_inclusion(tree.leaves[index], index, size, proof, flip(root, 9)))
        for first, second in ((1, n), (n // 2, n), (3, 9), (8, n)):
            answer = client.consistency_proof(first, second)
            proof = [vb.b64d(p) for p in answer["proof"]]
            old, new = tree.root(first), tree.root(second)
            self.assertTrue(vb.verify_consistency(first, second, old, new, proof))
            for k in range(len(proof)):
                bad = list(proof)
                bad[k] = flip(bad[k], 30)
                self.assertFalse(vb.verify_consistency(first, second, old, new, bad), (first, second, k))
            self.assertFalse(vb.verify_consistency(first, second, flip(old, 0), new, proof))
            self.assertFalse(vb.verify_consistency(first, second, old, flip(new, 0), proof))

        note = audit.checkpoint.note
        sig_line_start = note.index("\n\n") + 2
        for pos in (0, note.index("\n") + 1, sig_line_start - 3, len(note) - 5):
            chars = list(note)
            chars[pos] = "A" if chars[pos] != "A" else "B"
            with self.assertRaises(vb.VerificationError, msg=f"checkpoint char {pos}"):
                vb.Checkpoint.parse_verified("".join(chars), audit.verifier, audit.info["origin"])
        good = self.submitted[3][4]["receipt"]
        vb.verify_receipt(good, self.verifier, self.origin)
        changes = {
            "index": good["index"] + 1,
            "node_time_ms": good["node_time_ms"] + 1,
            "leaf_hash": vb.b64e(bytes(32)),
            "command_hash": vb.b64e(bytes(32)),
            "note": good["note"].replace("vledger/receipts/v1\n", "vledger/receipts/v2\n", 1),
        }
        for field, value in changes.items():
            with self.assertRaises(vb.VerificationError, msg=f"receipt {field} changed"):
                vb.verify_receipt(dict(good, **{field: value}), self.verifier, self.origin)
        other = vb.VerifierKey.parse(self._foreign_verifier_key(audit.info["origin"]))
        with self.assertRaises(vb.VerificationError):
            vb.Checkpoint.parse_verified(note, other, audit.info["origin"])

    @staticmethod
    def _foreign_verifier_key(name: str) -> str:
        pub = vb.public_key_bytes(Ed25519PrivateKey.generate().public_key())
        return f"{name}+{vb.note_key_id(name, pub).hex()}+{vb.b64e(bytes([1]) + pub)}"


if __name__ == "__main__":
    unittest.main()
