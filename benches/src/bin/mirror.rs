//! `vledger-mirror-bench`: how fast a node catches up with another region's log, against how
//! fast `vledger verify` checks the same log, in the same run.
//!
//! Builds a region's log of `--entries` party registrations (in process, on RocksDB), then:
//! 1. a second region's node mirrors it from nothing (`Mirror::step` over `LocalSource`: every
//!    check of the mirror, the replay and one adoption per step), timed;
//! 2. the log is exported with `vledger export --data` and checked with `vledger verify`
//!    (the verifier's own time, from its report), timed;
//!
//! and prints both rates and their ratio as JSON.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use vledger_domain::types::RegionId;
use vledger_domain::GenesisBody;
use vledger_federation::source::LocalSource;
use vledger_federation::{Mirror, Peer, StepOutcome};
use vledger_node::node::{Node, NodeConfig};
use vledger_tlog::keys::SigningKey;
use vledger_tlog::note::NoteVerifier;
use vledger_wire::envelope::{seal, CommandPayload, VerifiedEnvelope, COMMAND_FORMAT_VERSION};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Entries of the region mirrored.
    #[arg(long, default_value_t = 100_000)]
    entries: u64,
    /// The `vledger` binary (for export and verify).
    #[arg(long, env = "VLEDGER_BIN")]
    vledger: PathBuf,
    /// Where the stores go (a fresh temporary directory by default).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn open(dir: &Path, region: &str, key: &SigningKey, admin: &SigningKey) -> Result<Arc<Node>> {
    Node::open(NodeConfig {
        data_dir: dir.join("db"),
        region: RegionId::try_from(region).map_err(|e| anyhow::anyhow!("{e}"))?,
        origin: format!("vledger.local/{region}"),
        node_key: key.clone(),
        genesis: Some(GenesisBody {
            region_name: region.into(),
            admin_key: admin.public_key(),
            admin_name: "admin".into(),
            time_zone: "Asia/Shanghai".into(),
        }),
        max_batch_commands: vledger_domain::limits::MAX_BATCH_COMMANDS,
    })
    .context("open node")
}

/// Fills `node` with `count` registrations, many in flight at once.
fn fill(node: &Node, admin: &SigningKey, count: u64) {
    let region = node.region().clone();
    vledger_benches::submit_all(
        node,
        (0..count).map(|i| {
            let mut seed = [3u8; 32];
            seed[..8].copy_from_slice(&i.to_be_bytes());
            let party = SigningKey::from_bytes(&seed).public_key();
            let payload = CommandPayload {
                v: u64::from(COMMAND_FORMAT_VERSION),
                command_type: "party.register".into(),
                region: region.clone(),
                signer: admin.public_key(),
                nonce: format!("fill-{i}"),
                body: serde_json::json!({ "key": party.to_base64(), "role": "enterprise",
                                          "home_region": region.as_str(), "name": format!("firm {i}") }),
            };
            VerifiedEnvelope::parse_and_verify(&seal(&payload, admin)).expect("sealed")
        }),
    );
}

fn main() -> Result<()> {
    let args = Args::parse();
    let scratch = tempfile::tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| scratch.path().to_path_buf());
    let (sc_key, sc_admin) = (
        SigningKey::from_bytes(&[1; 32]),
        SigningKey::from_bytes(&[2; 32]),
    );
    let sc_dir = dir.join("sc");
    let sc = open(&sc_dir, "sc", &sc_key, &sc_admin)?;
    let started = Instant::now();
    fill(&sc, &sc_admin, args.entries);
    let size = sc.tree_size();
    eprintln!(
        "built a log of {size} entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let cq_dir = dir.join("cq");
    let cq = open(
        &cq_dir,
        "cq",
        &SigningKey::from_bytes(&[3; 32]),
        &SigningKey::from_bytes(&[4; 32]),
    )?;
    let peer = Peer {
        region: sc.region().clone(),
        url: String::new(),
        verifier: NoteVerifier::new("vledger.local/sc", sc_key.public_key())?,
    };
    let mut mirror = Mirror::new(cq.clone(), peer, None);
    let mut source = LocalSource { node: sc.clone() };
    let started = Instant::now();
    let mut steps = 0u64;
    loop {
        match mirror.step(&mut source, vledger_node::writer::wall_clock_ms()) {
            StepOutcome::Adopted { .. } => steps += 1,
            StepOutcome::UpToDate => break,
            other => bail!("mirror step: {other:?}"),
        }
    }
    let mirror_secs = started.elapsed().as_secs_f64();
    drop(mirror);
    drop(source);
    sc.shutdown();
    drop(sc);

    let archive = dir.join("sc.jsonl");
    let status = Command::new(&args.vledger)
        .args(["export", "--data"])
        .arg(&sc_dir)
        .args(["--checkpoints", "all", "--out"])
        .arg(&archive)
        .status()?;
    if !status.success() {
        bail!("vledger export failed");
    }
    let started = Instant::now();
    let status = Command::new(&args.vledger)
        .arg("verify")
        .arg(&archive)
        .stdout(std::process::Stdio::null())
        .status()?;
    let verify_secs = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("vledger verify failed");
    }
    let mirror_rate = size as f64 / mirror_secs;
    let verify_rate = size as f64 / verify_secs;
    println!(
        "{}",
        serde_json::json!({
            "entries": size,
            "mirror_steps": steps,
            "mirror_seconds": mirror_secs,
            "mirror_entries_per_second": mirror_rate,
            "verify_seconds": verify_secs,
            "verify_entries_per_second": verify_rate,
            "mirror_over_verify": mirror_rate / verify_rate,
        })
    );
    Ok(())
}
