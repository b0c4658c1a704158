//! The worked examples of docs/FORMAT.md: three entries built by the real state machine with
//! fixed keys and times. The committed file `docs/vectors/entries.json` must match what the code
//! produces today, so a change to the byte format cannot slip through; `tests/python/
//! check_format_vectors.py` checks the same file with no code of ours.
//! Regenerate after an intended format change with `VLEDGER_UPDATE_VECTORS=1 cargo nextest run
//! --workspace -E 'binary(format_vectors)'`.

use std::path::PathBuf;

use serde_json::{json, Value};
use vledger_domain::{self as domain, ApplyContext, Command, MemoryState};
use vledger_tlog::keys::SigningKey;
use vledger_tlog::merkle::{leaf_hash, MemoryTree};
use vledger_tlog::note::{Checkpoint, NoteSigner};
use vledger_wire::entry::Entry;
use vledger_wire::envelope::{seal, CommandPayload, VerifiedEnvelope};

const ORIGIN: &str = "vledger.example/cq";

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors/entries.json")
}

fn build() -> Value {
    let node = SigningKey::from_bytes(&[1u8; 32]);
    let admin = SigningKey::from_bytes(&[2u8; 32]);
    let agency = SigningKey::from_bytes(&[3u8; 32]);
    let commands = [
        (
            &node,
            "region.genesis",
            "genesis",
            json!({
            "region_name": "重庆市科学技术局", "admin_key": admin.public_key().to_base64(), "admin_name": "CQ admin" }),
        ),
        (
            &admin,
            "party.register",
            "reg-1",
            json!({
            "key": agency.public_key().to_base64(), "role": "agency", "home_region": "cq", "name": "Demo Lab" }),
        ),
        (
            &admin,
            "party.revoke_key",
            "rev-1",
            json!({ "key": agency.public_key().to_base64(), "reason": "key lost" }),
        ),
    ];
    let mut state = MemoryState::default();
    let mut tree = MemoryTree::new();
    let mut prev = [0u8; 32];
    let mut entries = Vec::new();
    for (i, (signer, command_type, nonce, body)) in commands.into_iter().enumerate() {
        let payload = CommandPayload {
            v: 1,
            command_type: command_type.into(),
            region: "cq".try_into().unwrap(),
            signer: signer.public_key(),
            nonce: nonce.into(),
            body,
        };
        let envelope = VerifiedEnvelope::parse_and_verify(&seal(&payload, signer)).unwrap();
        let ctx = ApplyContext {
            index: i as u64,
            node_time_ms: 1_767_225_600_000 + 1000 * i as u64,
            region: "cq".try_into().unwrap(),
            node_key: node.public_key(),
        };
        let command = Command::parse(command_type, &payload.body).unwrap();
        let events = domain::apply(&mut state, &ctx, &signer.public_key(), &command).unwrap();
        let entry = Entry {
            index: ctx.index,
            node_time_ms: ctx.node_time_ms,
            prev_leaf_hash: prev,
            envelope: envelope.raw.clone(),
            events: domain::encode_events(&events),
        };
        let bytes = entry.encode();
        prev = leaf_hash(&bytes);
        tree.append(&bytes);
        entries.push(json!({
            "index": ctx.index,
            "entry_hex": hex::encode(&bytes),
            "leaf_hash_hex": hex::encode(prev),
            "signer": signer.public_key().to_base64(),
        }));
    }
    let checkpoint = Checkpoint {
        origin: ORIGIN.into(),
        size: tree.size(),
        root_hash: tree.root(),
        extensions: vec![],
    };
    let signer = NoteSigner::new(ORIGIN, node.clone()).unwrap();
    json!({
        "description": "Three entries (genesis, party.register, party.revoke_key) and the signed checkpoint of the tree they form. Keys are ed25519 seeds of 32 bytes 0x01 (node), 0x02 (admin), 0x03 (agency).",
        "node_verifier_key": signer.verifier().to_verifier_key(),
        "entries": entries,
        "root_hex": hex::encode(tree.root()),
        "checkpoint": signer.sign(&checkpoint.to_text()).unwrap(),
    })
}

#[test]
fn committed_vectors_match_the_code() {
    let built = build();
    let path = vectors_path();
    if std::env::var_os("VLEDGER_UPDATE_VECTORS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&built).unwrap() + "\n").unwrap();
    }
    let committed: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        committed, built,
        "docs/vectors/entries.json is out of date with the entry format"
    );
}
