"""Independent client and verifier for a vledger node, written from the published formats only.

Nothing here imports or calls project code: the node is driven as a separate process over HTTP,
and every check (RFC 6962/9162 Merkle trees and proofs, C2SP signed notes, DSSE envelopes, the
entry byte layout) is re-implemented with the Python standard library and `cryptography`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from typing import Iterable, Optional, Sequence

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

COMMAND_PAYLOAD_TYPE = "application/vnd.vledger.command+json"
PROBLEM_PREFIX = "urn:vledger:problem:"
RECEIPTS_HEADER = "vledger/receipts/v1"
ENTRY_VERSION = 1
ENTRY_HEADER_LEN = 1 + 8 + 8 + 32
ED25519_NOTE_KEY_TYPE = 0x01
SIGNATURE_LINE_PREFIX = "\u2014 "


class VerificationError(AssertionError):
    """A check of data served by the node failed."""


def binary_path() -> str:
    path = os.environ.get("VLEDGER_BIN")
    if not path:
        raise RuntimeError(
            "VLEDGER_BIN is not set: point it at the vledger node binary, "
            "e.g. VLEDGER_BIN=target/debug/vledger python3 -m pytest tests/python"
        )
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError(f"VLEDGER_BIN={path!r} is not an executable file")
    return path


# ----------------------------------------------------------------------------------------------
# Encodings
# ----------------------------------------------------------------------------------------------


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64d(text: str) -> bytes:
    """Strict standard base64 (with padding); anything else is a VerificationError."""
    if not isinstance(text, str):
        raise VerificationError(f"expected a base64 string, got {type(text).__name__}")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise VerificationError(f"not standard base64: {text!r}: {e}") from e
    if b64e(raw) != text:
        raise VerificationError(f"not canonical standard base64: {text!r}")
    return raw


def canonical_json(value) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (what the node writes for events)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_private_key_pem(path: str) -> Ed25519PrivateKey:
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise VerificationError(f"{path} is not an ed25519 private key")
    return key


def ed25519_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except (InvalidSignature, ValueError):
        return False


# ----------------------------------------------------------------------------------------------
# RFC 6962 / RFC 9162 Merkle trees
# ----------------------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def empty_root() -> bytes:
    return hashlib.sha256(b"").digest()


def _largest_power_of_two_below(n: int) -> int:
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 section 2.1, from the leaf hashes."""
    n = len(leaves)
    if n == 0:
        return empty_root()
    if n == 1:
        return leaves[0]
    k = _largest_power_of_two_below(n)
    return node_hash(root_from_leaf_hashes(leaves[:k]), root_from_leaf_hashes(leaves[k:]))


class MerkleTree:
    """Leaf hashes plus memoised perfect subtrees, to compute roots of many prefixes cheaply."""

    def __init__(self, leaves: Iterable[bytes] = ()):
        self.leaves: list[bytes] = list(leaves)
        self._perfect: dict[tuple[int, int], bytes] = {}

    def _subtree(self, start: int, size: int) -> bytes:
        # `size` is a power of two and `start` a multiple of it: a perfect subtree.
        if size == 1:
            return self.leaves[start]
        key = (start, size)
        cached = self._perfect.get(key)
        if cached is None:
            half = size // 2
            cached = node_hash(self._subtree(start, half), self._subtree(start + half, half))
            self._perfect[key] = cached
        return cached

    def _range_root(self, start: int, n: int) -> bytes:
        if n == 1:
            return self.leaves[start]
        if n & (n - 1) == 0:
            return self._subtree(start, n)
        k = _largest_power_of_two_below(n)
        return node_hash(self._subtree(start, k), self._range_root(start + k, n - k))

    def root(self, size: Optional[int] = None) -> bytes:
        if size is None:
            size = len(self.leaves)
        if size > len(self.leaves) or size < 0:
            raise ValueError(f"tree of size {size} from {len(self.leaves)} leaves")
        if size == 0:
            return empty_root()
        return self._range_root(0, size)


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if index < 0 or index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if len(p) != 32 or sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2 (with the trivial case first == second: empty proof, equal roots)."""
    if first <= 0 or first > second:
        return False
    if any(len(p) != 32 for p in proof):
        return False
    if first == second:
        return len(proof) == 0 and first_root == second_root
    if len(proof) == 0:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    if fn & 1:
        while fn & 1:
            fn >>= 1
            sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


# ----------------------------------------------------------------------------------------------
# C2SP signed notes, checkpoints and receipts
# ----------------------------------------------------------------------------------------------


def note_key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ED25519_NOTE_KEY_TYPE]) + public_key).digest()[:4]


@dataclasses.dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> "VerifierKey":
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise VerificationError(f"verifier key {text!r} is not name+hash+key")
        name, key_hex, key_b64 = parts
        if not name or "+" in name or any(c.isspace() for c in name):
            raise VerificationError(f"verifier key name {name!r} is not valid")
        if len(key_hex) != 8 or key_hex.lower() != key_hex:
            raise VerificationError(f"verifier key hash {key_hex!r} is not 8 lowercase hex digits")
        try:
            key_id = bytes.fromhex(key_hex)
        except ValueError as e:
            raise VerificationError(f"verifier key hash {key_hex!r}: {e}") from e
        raw = b64d(key_b64)
        if len(raw) != 33 or raw[0] != ED25519_NOTE_KEY_TYPE:
            raise VerificationError(f"verifier key {text!r} is not a 0x01-typed 32-byte ed25519 key")
        public_key = raw[1:]
        expected = note_key_id(name, public_key)
        if key_id != expected:
            raise VerificationError(
                f"verifier key hash {key_hex} does not match SHA-256(name\\n0x01 key)[:4] = {expected.hex()}"
            )
        return cls(name=name, key_id=key_id, public_key=public_key)


@dataclasses.dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes


@dataclasses.dataclass(frozen=True)
class SignedNote:
    text: str
    signatures: tuple

    @classmethod
    def parse(cls, note: str) -> "SignedNote":
        if not isinstance(note, str):
            raise VerificationError("a note must be text")
        sep = note.find("\n\n")
        if sep < 0:
            raise VerificationError(f"note has no blank line before its signatures: {note!r}")
        text = note[: sep + 1]
        sig_block = note[sep + 2:]
        if not sig_block.endswith("\n"):
            raise VerificationError("note signature block does not end with a newline")
        sigs = []
        for line in sig_block[:-1].split("\n"):
            if not line.startswith(SIGNATURE_LINE_PREFIX):
                raise VerificationError(f"note signature line {line!r} does not start with an em dash and space")
            rest = line[len(SIGNATURE_LINE_PREFIX):]
            fields = rest.split(" ")
            if len(fields) != 2:
                raise VerificationError(f"note signature line {line!r} is not '— name signature'")
            name, sig_b64 = fields
            raw = b64d(sig_b64)
            if len(raw) < 5:
                raise VerificationError(f"note signature on line {line!r} is too short")
            sigs.append(NoteSignature(name=name, key_id=raw[:4], signature=raw[4:]))
        if not sigs:
            raise VerificationError("note carries no signature")
        return cls(text=text, signatures=tuple(sigs))

    def verify(self, verifier: VerifierKey) -> None:
        """At least one signature by `verifier` must be present and valid."""
        matching = [s for s in self.signatures if s.name == verifier.name and s.key_id == verifier.key_id]
        if not matching:
            raise VerificationError(
                f"note has no signature by {verifier.name} with key id {verifier.key_id.hex()}: "
                f"{[(s.name, s.key_id.hex()) for s in self.signatures]}"
            )
        for s in matching:
            if len(s.signature) != 64 or not ed25519_verify(verifier.public_key, s.signature, self.text.encode("utf-8")):
                raise VerificationError(f"note signature by {verifier.name} does not verify")


def _parse_uint(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise VerificationError(f"{what} {text!r} is not a decimal integer")
    return int(text)


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    note: str

    @classmethod
    def parse_verified(cls, note: str, verifier: VerifierKey, origin: Optional[str] = None) -> "Checkpoint":
        signed = SignedNote.parse(note)
        signed.verify(verifier)
        lines = signed.text[:-1].split("\n")
        if len(lines) < 3:
            raise VerificationError(f"checkpoint text has {len(lines)} lines: {signed.text!r}")
        cp_origin, size_text, root_b64 = lines[0], lines[1], lines[2]
        if origin is not None and cp_origin != origin:
            raise VerificationError(f"checkpoint origin {cp_origin!r}, expected {origin!r}")
        root = b64d(root_b64)
        if len(root) != 32:
            raise VerificationError("checkpoint root is not 32 bytes")
        return cls(origin=cp_origin, size=_parse_uint(size_text, "checkpoint size"), root=root, note=note)


@dataclasses.dataclass(frozen=True)
class ReceiptNote:
    """The facts a verified receipt proves."""
    origin: str
    index: int
    leaf_hash: bytes
    node_time_ms: int
    command_hash: bytes


def receipt_line(index: int, leaf: bytes, node_time_ms: int, command_hash: bytes) -> bytes:
    """A receipt's line: the leaf of its batch's receipts tree."""
    return f"{index}\n{b64e(leaf)}\n{node_time_ms}\n{b64e(command_hash)}\n".encode()


def verify_receipt(receipt: dict, verifier: VerifierKey, origin: str) -> ReceiptNote:
    """Checks a receipt object: the batch's receipts note verifies, is of `origin`, and the
    tree whose root it signs holds the receipt's line at position index - first index."""
    signed = SignedNote.parse(receipt["note"])
    signed.verify(verifier)
    lines = signed.text[:-1].split("\n")
    if len(lines) != 5 or lines[0] != RECEIPTS_HEADER:
        raise VerificationError(f"receipt note is not a {RECEIPTS_HEADER} note: {signed.text!r}")
    if lines[1] != origin:
        raise VerificationError(f"receipt origin {lines[1]!r}, expected {origin!r}")
    first = _parse_uint(lines[2], "first receipt index")
    count = _parse_uint(lines[3], "receipt count")
    root = b64d(lines[4])
    leaf, command_hash = b64d(receipt["leaf_hash"]), b64d(receipt["command_hash"])
    if len(root) != 32 or len(leaf) != 32 or len(command_hash) != 32:
        raise VerificationError("receipt hashes are not 32 bytes")
    index, node_time_ms = receipt["index"], receipt["node_time_ms"]
    if not first <= index < first + count:
        raise VerificationError(f"receipt index {index} is not among {first}..{first + count}")
    line = receipt_line(index, leaf, node_time_ms, command_hash)
    proof = [b64d(h) for h in receipt["proof"]]
    if not verify_inclusion(leaf_hash(line), index - first, count, proof, root):
        raise VerificationError(f"receipt facts are not in the tree its note signs: {receipt!r}")
    return ReceiptNote(origin=origin, index=index, leaf_hash=leaf, node_time_ms=node_time_ms,
                       command_hash=command_hash)


# ----------------------------------------------------------------------------------------------
# DSSE envelopes and commands
# ----------------------------------------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode("utf-8")
    return b"DSSEv1 " + str(len(t)).encode() + b" " + t + b" " + str(len(payload)).encode() + b" " + payload


def seal(payload: dict, key: Ed25519PrivateKey, with_keyid: bool = True) -> tuple[bytes, bytes]:
    """Signs a command payload; returns (envelope bytes, payload bytes)."""
    payload_bytes = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    sig = key.sign(pae(COMMAND_PAYLOAD_TYPE, payload_bytes))
    signature = {"sig": b64e(sig)}
    if with_keyid:
        signature["keyid"] = b64e(public_key_bytes(key.public_key()))
    envelope = {"payloadType": COMMAND_PAYLOAD_TYPE, "payload": b64e(payload_bytes), "signatures": [signature]}
    return json.dumps(envelope, separators=(",", ":")).encode("utf-8"), payload_bytes


def command_payload(command_type: str, region: str, signer: Ed25519PrivateKey, nonce: str, body: dict) -> dict:
    return {
        "v": 1,
        "type": command_type,
        "region": region,
        "signer": b64e(public_key_bytes(signer.public_key())),
        "nonce": nonce,
        "body": body,
    }


def register_party_payload(admin: Ed25519PrivateKey, region: str, nonce: str, party_key: bytes, role: str,
                           name: str) -> dict:
    body = {"key": b64e(party_key), "role": role, "home_region": region, "name": name}
    return command_payload("party.register", region, admin, nonce, body)


@dataclasses.dataclass(frozen=True)
class VerifiedCommand:
    payload_bytes: bytes
    payload: dict
    signer: bytes
    command_hash: bytes


def verify_envelope(envelope_bytes: bytes) -> VerifiedCommand:
    """Parses a DSSE envelope and verifies its one signature with the signer key in its payload."""
    try:
        envelope = json.loads(envelope_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise VerificationError(f"envelope is not JSON: {e}") from e
    if not isinstance(envelope, dict) or set(envelope) != {"payloadType", "payload", "signatures"}:
        raise VerificationError(f"envelope does not have the DSSE shape: {envelope!r}")
    if envelope["payloadType"] != COMMAND_PAYLOAD_TYPE:
        raise VerificationError(f"payloadType is {envelope['payloadType']!r}")
    sigs = envelope["signatures"]
    if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict):
        raise VerificationError(f"envelope must carry exactly one signature: {sigs!r}")
    payload_bytes = b64d(envelope["payload"])
    sig = b64d(sigs[0].get("sig"))
    try:
        payload = json.loads(payload_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise VerificationError(f"payload is not JSON: {e}") from e
    if not isinstance(payload, dict) or set(payload) != {"v", "type", "region", "signer", "nonce", "body"}:
        raise VerificationError(f"payload does not have the command shape: {payload!r}")
    if payload["v"] != 1:
        raise VerificationError(f"payload version {payload['v']!r}")
    nonce = payload["nonce"]
    if not isinstance(nonce, str) or not 1 <= len(nonce.encode("utf-8")) <= 128:
        raise VerificationError(f"nonce {nonce!r} is not 1 to 128 bytes")
    signer = b64d(payload["signer"])
    if len(signer) != 32:
        raise VerificationError("signer is not a 32-byte key")
    if not ed25519_verify(signer, sig, pae(COMMAND_PAYLOAD_TYPE, payload_bytes)):
        raise VerificationError(f"DSSE signature does not verify for signer {payload['signer']}")
    return VerifiedCommand(payload_bytes, payload, signer, hashlib.sha256(payload_bytes).digest())


# ----------------------------------------------------------------------------------------------
# Entries
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Entry:
    index: int
    node_time_ms: int
    prev_leaf_hash: bytes
    envelope: bytes
    events: bytes


def parse_entry(data: bytes) -> Entry:
    """u8 version | u64 index | u64 time | [32] prev leaf | u32 len + envelope | u32 len + events."""
    if len(data) < ENTRY_HEADER_LEN + 8:
        raise VerificationError(f"entry is {len(data)} bytes, shorter than the minimum")
    if data[0] != ENTRY_VERSION:
        raise VerificationError(f"entry version {data[0]}")
    index, node_time_ms = struct.unpack(">QQ", data[1:17])
    prev = data[17:49]
    pos = ENTRY_HEADER_LEN
    sections = []
    for name in ("envelope", "events"):
        if len(data) - pos < 4:
            raise VerificationError(f"entry {index}: no room for the {name} length")
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        pos += 4
        if len(data) - pos < n:
            raise VerificationError(f"entry {index}: {name} length {n} runs past the end")
        sections.append(data[pos:pos + n])
        pos += n
    if pos != len(data):
        raise VerificationError(f"entry {index}: {len(data) - pos} trailing bytes")
    return Entry(index, node_time_ms, prev, sections[0], sections[1])


def encode_entry(e: Entry) -> bytes:
    return (bytes([ENTRY_VERSION]) + struct.pack(">QQ", e.index, e.node_time_ms) + e.prev_leaf_hash
            + struct.pack(">I", len(e.envelope)) + e.envelope + struct.pack(">I", len(e.events)) + e.events)


def expected_events(command: VerifiedCommand, node_key: bytes, region: str) -> Optional[list]:
    """The events a command of known type must have produced, or None for other types."""
    p = command.payload
    body = p["body"]
    if p["type"] == "party.register":
        return [{"type": "party.registered", "key": body["key"], "role": body["role"],
                 "home_region": body["home_region"], "name": body["name"]}]
    if p["type"] == "region.genesis":
        node_b64 = b64e(node_key)
        return [
            {"type": "region.founded", "region": region, "region_name": body["region_name"],
             "node_key": node_b64, "time_zone": body.get("time_zone", "Asia/Shanghai")},
            {"type": "party.registered", "key": node_b64, "role": "node", "home_region": region,
             "name": f"{body['region_name']} node"},
            {"type": "party.registered", "key": body["admin_key"], "role": "admin", "home_region": region,
             "name": body["admin_name"]},
        ]
    return None


@dataclasses.dataclass
class VerifiedLog:
    entries: list  # of Entry
    commands: list  # of VerifiedCommand
    leaves: list  # of bytes
    tree: MerkleTree


def verify_log(entry_bytes: Sequence[bytes], node_key: bytes, region: str) -> VerifiedLog:
    """Checks a whole log from index 0, from its exact bytes alone.

    Every entry decodes, indexes run 0, 1, 2, ..., each entry names its predecessor's leaf hash
    (zeros for the first), node time never goes backwards, every envelope's DSSE signature
    verifies for the signer in its payload and names this region, events are canonical JSON and
    match the command, entry 0 is the node-signed genesis, and no (signer, nonce) repeats.
    """
    entries, commands, leaves = [], [], []
    seen_nonces: dict[tuple[bytes, str], int] = {}
    prev = b"\x00" * 32
    last_time = 0
    for position, data in enumerate(entry_bytes):
        try:
            leaf, e, cmd = _verify_one_entry(position, data, prev, last_time, node_key, region, seen_nonces)
        except VerificationError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise VerificationError(f"entry {position}: {type(err).__name__}: {err}") from err
        entries.append(e)
        commands.append(cmd)
        leaves.append(leaf)
        prev = leaf
        last_time = e.node_time_ms
    return VerifiedLog(entries, commands, leaves, MerkleTree(leaves))


def _verify_one_entry(position, data, prev, last_time, node_key, region, seen_nonces):
    e = parse_entry(data)
    if e.index != position:
        raise VerificationError(f"entry at position {position} says its index is {e.index}")
    if e.prev_leaf_hash != prev:
        raise VerificationError(
            f"entry {position} names previous leaf {e.prev_leaf_hash.hex()}, expected {prev.hex()}"
        )
    if e.node_time_ms < last_time:
        raise VerificationError(f"entry {position} time {e.node_time_ms} is before {last_time}")
    cmd = verify_envelope(e.envelope)
    if cmd.payload["region"] != region:
        raise VerificationError(f"entry {position} is for region {cmd.payload['region']!r}")
    try:
        events = json.loads(e.events.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise VerificationError(f"entry {position}: events are not JSON: {err}") from err
    if canonical_json(events) != e.events:
        raise VerificationError(f"entry {position}: events are not in canonical form: {e.events!r}")
    want = expected_events(cmd, node_key, region)
    if want is not None and events != want:
        raise VerificationError(f"entry {position}: events {events!r}, expected {want!r}")
    if position == 0:
        if cmd.payload["type"] != "region.genesis" or cmd.signer != node_key:
            raise VerificationError("entry 0 is not a genesis signed by the node key")
    nonce_key = (cmd.signer, cmd.payload["nonce"])
    if nonce_key in seen_nonces:
        raise VerificationError(
            f"entry {position} repeats signer+nonce {cmd.payload['nonce']!r} of entry {seen_nonces[nonce_key]}"
        )
    seen_nonces[nonce_key] = position
    return leaf_hash(data), e, cmd


# ----------------------------------------------------------------------------------------------
# HTTP client
# ----------------------------------------------------------------------------------------------


class Client:
    def __init__(self, base_url: str, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def get_json(self, path: str, **params):
        r = self.session.get(self.base_url + path, params=params or None, timeout=self.timeout)
        if r.status_code != 200:
            raise VerificationError(f"GET {path} {params} answered {r.status_code}: {r.text}")
        return r.json()

    def node_info(self) -> dict:
        return self.get_json("/v1/node")

    def checkpoint_text(self) -> str:
        r = self.session.get(self.base_url + "/v1/checkpoint", timeout=self.timeout)
        if r.status_code != 200:
            raise VerificationError(f"GET /v1/checkpoint answered {r.status_code}: {r.text}")
        return r.content.decode("utf-8")

    def post_command(self, envelope: bytes) -> requests.Response:
        return self.session.post(
            self.base_url + "/v1/commands", data=envelope,
            headers={"Content-Type": "application/json"}, timeout=self.timeout,
        )

    def all_entries(self, size: int) -> list[dict]:
        """Every entry in [0, size), page by page; checks the page shape and ordering."""
        out: list[dict] = []
        while len(out) < size:
            start = len(out)
            page = self.get_json("/v1/entries", start=start, end=size)
            rows = page["entries"]
            if not rows:
                raise VerificationError(f"GET /v1/entries start={start} end={size} returned no entries")
            if len(rows) > 1000:
                raise VerificationError(f"a page held {len(rows)} entries, over the 1000 limit")
            for i, row in enumerate(rows):
                if row["index"] != start + i:
                    raise VerificationError(f"page from {start} has index {row['index']} at position {i}")
            out.extend(rows)
        return out[:size]

    def inclusion_proof(self, index: int, size: int) -> dict:
        return self.get_json("/v1/proofs/inclusion", index=index, size=size)

    def consistency_proof(self, first: int, second: int) -> dict:
        return self.get_json("/v1/proofs/consistency", **{"from": first, "to": second})


def check_entry_views(rows: Sequence[dict]) -> list[bytes]:
    """The exact bytes of each entry view, after checking the view's leaf hash and decoded fields."""
    out = []
    for row in rows:
        data = b64d(row["entry"])
        if b64d(row["leaf_hash"]) != leaf_hash(data):
            raise VerificationError(f"entry {row['index']}: API leaf_hash is not SHA-256(0x00 || bytes)")
        e = parse_entry(data)
        d = row["decoded"]
        if d["node_time_ms"] != e.node_time_ms or b64d(d["prev_leaf_hash"]) != e.prev_leaf_hash:
            raise VerificationError(f"entry {row['index']}: decoded header disagrees with the bytes")
        if d["envelope"] != json.loads(e.envelope) or d["events"] != json.loads(e.events):
            raise VerificationError(f"entry {row['index']}: decoded envelope/events disagree with the bytes")
        if d["command"] != json.loads(b64d(json.loads(e.envelope)["payload"])):
            raise VerificationError(f"entry {row['index']}: decoded command disagrees with the payload")
        out.append(data)
    return out


def problem_code(response: requests.Response) -> Optional[str]:
    try:
        doc = response.json()
    except ValueError:
        return None
    t = doc.get("type") if isinstance(doc, dict) else None
    if isinstance(t, str) and t.startswith(PROBLEM_PREFIX):
        return t[len(PROBLEM_PREFIX):]
    return None


# ----------------------------------------------------------------------------------------------
# Node process
# ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NodeProcess:
    """A vledger node run as a child process on a free port, with a temporary data directory."""

    def __init__(self, region: str = "cq", data_dir: Optional[str] = None):
        self.binary = binary_path()
        self.region = region
        self.tmp = tempfile.mkdtemp(prefix="vledger-blackbox-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.log_path = os.path.join(self.tmp, "node.log")
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 10.0) -> Client:
        return Client(self.url, timeout)

    def admin_key(self) -> Ed25519PrivateKey:
        return load_private_key_pem(os.path.join(self.data_dir, "keys", "admin.pem"))

    def node_key(self) -> Ed25519PrivateKey:
        return load_private_key_pem(os.path.join(self.data_dir, "keys", "node.pem"))

    def _spawn(self) -> None:
        log = open(self.log_path, "ab")
        try:
            log.write(f"\n===== start {self.starts} on port {self.port} =====\n".encode())
            log.flush()
            env = dict(os.environ)
            env.setdefault("RUST_LOG", "warn")
            env.setdefault("RUST_BACKTRACE", "1")
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--data", self.data_dir, "--listen", f"127.0.0.1:{self.port}",
                 "--region", self.region, "--demo"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        finally:
            log.close()
        self.starts += 1

    def start(self, timeout: float = 60.0) -> None:
        """Starts the node and waits until /healthz answers; retries once on another port."""
        for attempt in range(3):
            self._spawn()
            try:
                self.wait_healthy(timeout)
                return
            except RuntimeError:
                if self.proc is not None and self.proc.poll() is not None and "cannot listen" in self.log_tail():
                    self.port = free_port()
                    continue
                raise
        raise RuntimeError(f"the node could not listen on a free port\n{self.log_tail()}")

    def wait_healthy(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        session = requests.Session()
        last_error = None
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(f"the node exited with status {code} before it was healthy\n{self.log_tail()}")
            try:
                r = session.get(self.url + "/healthz", timeout=2)
                if r.status_code == 200 and r.json().get("status") == "ok":
                    return r.json()
                last_error = f"{r.status_code} {r.text}"
            except requests.RequestException as e:
                last_error = str(e)
            time.sleep(0.02)
        raise RuntimeError(f"the node was not healthy after {timeout}s ({last_error})\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, no chance to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=30)

    def log_tail(self, max_bytes: int = 20000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return "(no node log)"
        text = data[-max_bytes:].decode("utf-8", "replace")
        return f"--- node output ({self.log_path}) ---\n{text}\n--- end of node output ---"

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# The whole check, as a third party would run it
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class AuditResult:
    info: dict
    verifier: VerifierKey
    checkpoint: Checkpoint
    log: VerifiedLog
    rows: list


def audit_node(client: Client, region: str) -> AuditResult:
    """Fetches node info, the checkpoint and every entry up to it; verifies all of them."""
    info = client.node_info()
    verifier = VerifierKey.parse(info["verifier_key"])
    node_key = b64d(info["node_key"])
    if verifier.public_key != node_key:
        raise VerificationError("the verifier key's ed25519 key is not the node key")
    if verifier.name != info["origin"]:
        raise VerificationError(f"verifier key name {verifier.name!r} is not the origin {info['origin']!r}")
    if info["region"] != region:
        raise VerificationError(f"node region {info['region']!r}, expected {region!r}")
    checkpoint = Checkpoint.parse_verified(client.checkpoint_text(), verifier, info["origin"])
    if checkpoint.size < 1:
        raise VerificationError("checkpoint of an empty log; genesis is missing")
    rows = client.all_entries(checkpoint.size)
    log = verify_log(check_entry_views(rows), node_key, region)
    root = log.tree.root()
    if root != checkpoint.root:
        raise VerificationError(
            f"root of the {checkpoint.size} entries is {b64e(root)}, the checkpoint says {b64e(checkpoint.root)}"
        )
    return AuditResult(info, verifier, checkpoint, log, rows)
