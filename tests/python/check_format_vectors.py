"""Checks docs/vectors/entries.json from docs/FORMAT.md alone: entry layout, hash chain, DSSE
signatures, the RFC 6962 root and the checkpoint's signed note. Standard library + cryptography."""
import base64, hashlib, json, pathlib, struct, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

H = lambda b: hashlib.sha256(b).digest()
doc = json.loads((pathlib.Path(__file__).parents[2] / "docs/vectors/entries.json").read_text())

def root(leaves):
    if len(leaves) == 1: return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return H(b"\x01" + root(leaves[:k]) + root(leaves[k:]))

prev, leaves = bytes(32), []
for e in doc["entries"]:
    b = bytes.fromhex(e["entry_hex"])
    version, index, time_ms = b[0], *struct.unpack(">QQ", b[1:17])
    assert (version, index, b[17:49]) == (1, e["index"], prev), f"header of entry {index}"
    n = struct.unpack(">I", b[49:53])[0]; envelope = json.loads(b[53:53 + n])
    m = struct.unpack(">I", b[53 + n:57 + n])[0]; events = json.loads(b[57 + n:57 + n + m])
    assert len(b) == 57 + n + m and b[57 + n:] == json.dumps(events, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    payload = base64.b64decode(envelope["payload"]); cmd = json.loads(payload)
    t = envelope["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)
    Ed25519PublicKey.from_public_bytes(base64.b64decode(cmd["signer"])).verify(base64.b64decode(envelope["signatures"][0]["sig"]), pae)
    assert cmd["signer"] == e["signer"]
    prev = H(b"\x00" + b); leaves.append(prev)
    assert prev.hex() == e["leaf_hash_hex"], f"leaf hash of entry {index}"
    print(f"entry {index}: {cmd['type']}, {len(events)} events, leaf {prev.hex()[:16]}…")

assert root(leaves).hex() == doc["root_hex"]
text, sig_line = doc["checkpoint"].split("\n\n")
origin, size, root_b64 = text.split("\n")
assert (int(size), base64.b64decode(root_b64)) == (len(leaves), root(leaves))
name, key_hash, key_b64 = doc["node_verifier_key"].split("+")
key = base64.b64decode(key_b64)
assert key[0] == 1 and H(name.encode() + b"\n" + key).hex()[:8] == key_hash
dash, signer_name, blob = sig_line.rstrip("\n").split(" ")
blob = base64.b64decode(blob)
assert dash == "\u2014" and signer_name == name and blob[:4].hex() == key_hash
Ed25519PublicKey.from_public_bytes(key[1:]).verify(blob[4:], (text + "\n").encode())
print(f"root {root(leaves).hex()} and checkpoint signature verified")
sys.exit(0)
