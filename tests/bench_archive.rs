//! Makes a large archive that verifies, for `benches/verify_bench.sh`: genesis, then
//! `party.register` commands signed by one admin, each decided by the real state machine, with
//! a checkpoint signed by the node key every [`CHECKPOINT_EVERY`] entries and at the end.
//!
//! Ignored in the normal suite; the script runs it as
//! `VLEDGER_BENCH_ENTRIES=1000000 VLEDGER_BENCH_ARCHIVE=<path> cargo nextest run --workspace
//! --run-ignored only -E 'test(make_bench_archive)'`.

use std::io::BufWriter;

use vledger_ledger::archive::{ArchiveHeader, ArchiveWriter};
use vledger_ledger::domain::{self, ApplyContext, Command, GenesisBody, MemoryState};
use vledger_ledger::entry::Entry;
use vledger_ledger::envelope::{seal, CommandPayload, COMMAND_FORMAT_VERSION};
use vledger_ledger::keys::{PublicKey, SigningKey};
use vledger_ledger::merkle::{leaf_hash, Frontier};
use vledger_ledger::note::{Checkpoint, NoteSigner};
use vledger_ledger::types::RegionId;

/// A signed checkpoint every this many entries.
const CHECKPOINT_EVERY: u64 = 10_000;
/// Commands signed at a time (in parallel) before they are decided in order.
const SIGN_CHUNK: u64 = 20_000;
const ORIGIN: &str = "vledger.local/cq";

fn payload(
    signer: &SigningKey,
    command_type: &str,
    nonce: String,
    body: serde_json::Value,
) -> CommandPayload {
    CommandPayload {
        v: u64::from(COMMAND_FORMAT_VERSION),
        command_type: command_type.into(),
        region: RegionId::try_from("cq").unwrap(),
        signer: signer.public_key(),
        nonce,
        body,
    }
}

/// The sealed `party.register` of party `n` by `admin`.
fn registration(admin: &SigningKey, n: u64) -> Vec<u8> {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&n.to_be_bytes());
    seed[8] = 0xb7;
    let party = SigningKey::from_bytes(&seed).public_key();
    let body = serde_json::json!({
        "key": party.to_base64(),
        "role": "agency",
        "home_region": "cq",
        "name": format!("Bench Lab {n}"),
    });
    seal(
        &payload(admin, "party.register", format!("bench-{n:012}"), body),
        admin,
    )
}

/// Seals commands `from..to` on every core.
fn sign_chunk(admin: &SigningKey, from: u64, to: u64) -> Vec<Vec<u8>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let per = (to - from).div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = (from + t * per).min(to);
                let end = (start + per).min(to);
                scope.spawn(move || {
                    (start..end)
                        .map(|n| registration(admin, n))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

#[test]
#[ignore = "makes a benchmark archive; run by benches/verify_bench.sh"]
fn make_bench_archive() {
    let entries: u64 = std::env::var("VLEDGER_BENCH_ENTRIES")
        .expect("set VLEDGER_BENCH_ENTRIES to the number of party registrations")
        .parse()
        .expect("VLEDGER_BENCH_ENTRIES is a number");
    let path = std::env::var("VLEDGER_BENCH_ARCHIVE")
        .expect("set VLEDGER_BENCH_ARCHIVE to the output path");
    let node = SigningKey::from_bytes(&[11; 32]);
    let admin = SigningKey::from_bytes(&[12; 32]);
    let note_signer = NoteSigner::new(ORIGIN, node.clone()).unwrap();
    let header = ArchiveHeader::new(
        ORIGIN,
        "cq",
        &note_signer.verifier().to_verifier_key(),
        entries + 1,
        0,
    );
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = ArchiveWriter::new(BufWriter::with_capacity(1 << 20, file), &header).unwrap();
    let mut state = MemoryState::default();
    let mut frontier = Frontier::empty();
    let node_key: PublicKey = node.public_key();
    let time_base_ms = 1_780_000_000_000u64;
    let mut prev_leaf_hash = [0u8; 32];
    let mut append = |writer: &mut ArchiveWriter<_>, envelope: Vec<u8>| {
        let index = frontier.size();
        let payload: CommandPayload = serde_json::from_slice(&base64_payload(&envelope)).unwrap();
        let command = Command::parse(&payload.command_type, &payload.body).unwrap();
        let ctx = ApplyContext {
            index,
            node_time_ms: time_base_ms + index,
            region: RegionId::try_from("cq").unwrap(),
            node_key,
        };
        let events = domain::apply(&mut state, &ctx, &payload.signer, &command)
            .unwrap_or_else(|e| panic!("entry {index} is refused: {e:?}"));
        let bytes = Entry {
            index,
            node_time_ms: ctx.node_time_ms,
            prev_leaf_hash,
            envelope,
            events: domain::encode_events(&events),
        }
        .encode();
        writer.entry(index, &bytes).unwrap();
        prev_leaf_hash = leaf_hash(&bytes);
        frontier.append(prev_leaf_hash);
        let size = frontier.size();
        if size.is_multiple_of(CHECKPOINT_EVERY) || size == entries + 1 {
            let text = Checkpoint {
                origin: ORIGIN.into(),
                size,
                root_hash: frontier.root(),
                extensions: Vec::new(),
            }
            .to_text();
            writer
                .checkpoint(size, &note_signer.sign(&text).unwrap())
                .unwrap();
        }
    };
    let genesis = GenesisBody {
        region_name: "Bench region".into(),
        admin_key: admin.public_key(),
        admin_name: "Bench admin".into(),
        time_zone: "Asia/Shanghai".into(),
    };
    append(
        &mut writer,
        seal(
            &payload(
                &node,
                "region.genesis",
                "genesis".into(),
                serde_json::to_value(&genesis).unwrap(),
            ),
            &node,
        ),
    );
    let started = std::time::Instant::now();
    let mut from = 0;
    while from < entries {
        let to = entries.min(from + SIGN_CHUNK);
        for envelope in sign_chunk(&admin, from, to) {
            append(&mut writer, envelope);
        }
        from = to;
        eprintln!(
            "{to} / {entries} commands ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    writer.finish(None).unwrap();
}

/// The decoded payload of a sealed envelope.
fn base64_payload(envelope: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let value: serde_json::Value = serde_json::from_slice(envelope).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(value["payload"].as_str().unwrap())
        .unwrap()
}
