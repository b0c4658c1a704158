//! `vledger-load`: a load generator for a durable node, with the machine's limits measured in
//! the same run.
//!
//! It pre-signs N commands of a mix, then drives them into fresh nodes, each in a temporary data
//! directory with synced commits. With `--sign-chunk`, the writer and inproc phases sign them
//! chunk by chunk as they go instead, so that a run of millions of commands (the resident-memory
//! goal at 10M entries) needs no more memory than a chunk; every phase reports the process's
//! resident memory at its end. The default mix, `voucher.lifecycle`, is the life of vouchers
//! as the seeds describe it, one seventh each: the admin issues a voucher, the enterprise orders
//! a listed service paying its share through escrow, the escrow provider attests the funds, the
//! agency records delivery with evidence hashes, the enterprise confirms (escrow released), the
//! agency claims the voucher share and the admin approves the claim. Every stage of every
//! voucher is a separate command, laid out stage by stage (all issues, then all orders, ...) so
//! that the commands one depends on are thousands of positions earlier even when clients race.
//! `party.register` (fresh agencies registered by the admin) is the other mix.
//!
//! The phases:
//!
//! - `writer`: pre-verified envelopes handed to `Node::submit` (the writer's ceiling);
//! - `inproc`: raw envelopes checked with `parse_and_verify` on one thread per core, then
//!   submitted (everything a node does for a command except HTTP);
//! - `http`: K clients on loopback against the HTTP API of a node served in process, each
//!   sending one command at a time and waiting for its answer. With `--target`, against a node
//!   already running elsewhere instead: the bench sets up its parties, program and listings
//!   there as the region's admin, under ids and nonces of its own run, then sends the load.
//!
//! The limits: the `verify_strict` rate on one thread and on every core, the envelope check rate
//! on every core, and the rate of synced RocksDB write batches (of 1000 small puts, and of one).
//! Wall-clock time is read here, never in the ledger's domain.
//!
//! The modules: `mix` (the commands and their fixture), `limits` (the machine's limits),
//! `in_process` (the writer and inproc phases), `http` (the HTTP phases), `measure` (what a
//! phase measured) and `report` (the table and the JSON).

mod http;
mod in_process;
mod limits;
mod measure;
mod mix;
mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use vledger_node::key_file::write_new_key;
use vledger_wire::envelope::VerifiedEnvelope;

use crate::parallel_map;
use in_process::Load;
use measure::PhaseResult;
use mix::{Fixture, Mix};
use report::Report;

/// The region of the load generator's own nodes, and their checkpoint origin.
const REGION: &str = "cq";
const ORIGIN: &str = "vledger.bench/cq";
const MIB: f64 = 1024.0 * 1024.0;

/// vledger-load: drives signed commands into durable nodes (in process and over HTTP) and
/// measures throughput and latency against the machine's limits, measured in the same run.
#[derive(clap::Parser)]
#[command(name = "vledger-load", version, long_about = None)]
pub struct LoadArgs {
    /// Commands to pre-sign; each phase submits all of them to a fresh node.
    #[arg(long, default_value_t = 20_000)]
    commands: u64,
    /// Concurrent HTTP clients; each sends one command at a time and waits for its answer.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Commands in flight at once on the in-process phases (the writer queue holds 16384).
    #[arg(long, default_value_t = 8192)]
    window: usize,
    /// Most commands in one batch, that is in one synced write, of the bench's nodes (default:
    /// a node's own limit). benches/pg_baseline.sh sets it to PostgreSQL's COPY batch size, so
    /// that the writer phase and PostgreSQL form 1 are compared at the same batch size.
    #[arg(long, default_value_t = vledger_domain::limits::MAX_BATCH_COMMANDS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_batch: usize,
    /// The command mix, `type=weight,...`. Types: voucher.lifecycle (issue, order with escrow,
    /// fund, deliver, confirm, claim, approve; not mixable), party.register.
    #[arg(long, default_value = "voucher.lifecycle")]
    mix: String,
    /// Phases to run, in this order: limits, writer, inproc, http, http-half (HTTP again at
    /// half the rate the http phase reached, sent on a fixed schedule: its latencies count from
    /// when each command was due, so a slow answer cannot hide the commands queued behind it;
    /// a client that was idle until then counts from when its timer woke it, less up to the
    /// timer's 1 ms resolution).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "limits,writer,inproc,http,http-half"
    )]
    phases: Vec<Phase>,
    /// Seconds each machine-limit probe runs.
    #[arg(long, default_value_t = 1.0)]
    probe_seconds: f64,
    /// A phase stops sending after this many seconds, even if commands are left.
    #[arg(long, default_value_t = 600)]
    max_seconds: u64,
    /// Directory for the temporary data directories (default: the system's temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The JSON of `pg_baseline` (benches/pg_baseline.sh runs it first): adds vledger's
    /// ratios against PostgreSQL's COPY batches (writer phase) and one-entry transactions
    /// (HTTP phase).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Print one JSON object on standard output (the table goes to standard error).
    #[arg(long)]
    json: bool,
    /// Keep the data directory of the in-process phase's node here instead of deleting it (it
    /// must not exist; on the file system of --dir), e.g. to export an archive of a realistic
    /// log from it with `vledger export --data DIR`, or to serve it (the node's key is kept in
    /// DIR/keys/node.pem, the region admin's in DIR/keys/admin.pem for a later
    /// `vledger-load --target URL --admin-key DIR/keys/admin.pem`).
    #[arg(long, value_name = "DIR")]
    keep_data: Option<PathBuf>,
    /// Sign the commands of the writer and inproc phases in chunks of N while the phase runs
    /// (every core signs a chunk, then the chunk is driven in) instead of all of them before:
    /// memory stays flat however many commands there are, e.g. to measure a node's resident
    /// memory at 10M entries. The phase's rate then includes the signing.
    #[arg(long, value_name = "N")]
    sign_chunk: Option<u64>,
    /// Send the http phase to this running node (its base URL, e.g. http://127.0.0.1:8080)
    /// instead of a fresh node of the bench's own. The bench first submits its set-up commands
    /// there, signed by --admin-key, with ids and nonces of its own run, so that it can run
    /// again against the same node. Only the limits and http phases; the node's batches and
    /// memory are not visible from here (its /metrics and its process show them).
    #[arg(long, value_name = "URL", requires = "admin_key")]
    target: Option<String>,
    /// The target region's admin key (PKCS#8 PEM): it signs the set-up and the admin's commands.
    #[arg(long, value_name = "PEM", requires = "target")]
    admin_key: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
enum Phase {
    Limits,
    Writer,
    Inproc,
    Http,
    HttpHalf,
}

pub fn run(args: LoadArgs) -> Result<()> {
    if args.commands == 0 {
        bail!("--commands must be at least 1");
    }
    let mix = Mix::parse(&args.mix)?;
    let mut phases = args.phases.clone();
    phases.sort_unstable();
    phases.dedup();
    let parent = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir(),
    };
    let baseline = match &args.baseline {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--baseline: cannot read {}", path.display()))?;
            Some(
                serde_json::from_str::<Value>(&text)
                    .with_context(|| format!("--baseline: {} is not JSON", path.display()))?,
            )
        }
        None => None,
    };
    let fixture = match (&args.target, &args.admin_key) {
        (Some(target), Some(admin_key)) => {
            if let Some(p) = phases
                .iter()
                .find(|p| !matches!(p, Phase::Limits | Phase::Http))
            {
                bail!(
                    "--target drives the http phase into a running node; {p:?} needs a fresh \
                     node of the bench's own (run it without --target)"
                );
            }
            http::set_up_target(target, admin_key, &mix)?
        }
        _ => Fixture::new(),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let limits = if phases.contains(&Phase::Limits) {
        Some(limits::measure(&args, &fixture, &parent)?)
    } else {
        None
    };

    let ingest_phases: Vec<Phase> = phases
        .iter()
        .copied()
        .filter(|p| *p != Phase::Limits)
        .collect();
    let mut results = Vec::new();
    if let Some(chunk) = args.sign_chunk {
        if chunk == 0 {
            bail!("--sign-chunk must be at least 1");
        }
        if let Some(p) = ingest_phases
            .iter()
            .find(|p| matches!(p, Phase::Http | Phase::HttpHalf))
        {
            bail!(
                "--sign-chunk applies to the writer and inproc phases only, not to {p:?}: \
                 the HTTP phases send commands signed before the clock starts"
            );
        }
        let n = args.commands;
        // Commands lo..hi of the run, signed on every core (and verified, for the writer).
        let chunks = |verified: bool| {
            let (fixture, mix) = (&fixture, &mix);
            (0..n).step_by(chunk as usize).map(move |lo| {
                let hi = (lo + chunk).min(n);
                let build = move |i: u64| mix.kind(lo + i).build(fixture, lo + i, n);
                if verified {
                    Load::Verified(parallel_map(0..hi - lo, |i| {
                        VerifiedEnvelope::parse_and_verify(&build(i))
                            .expect("a generated envelope verifies")
                    }))
                } else {
                    Load::Raw(Arc::new(parallel_map(0..hi - lo, build)))
                }
            })
        };
        for phase in ingest_phases {
            let checked = phase == Phase::Inproc;
            let result =
                in_process::run(&args, &fixture, &mix, &parent, checked, n, chunks(!checked))?;
            results.push(result);
        }
    } else if !ingest_phases.is_empty() {
        eprintln!(
            "signing {} commands ({}) ...",
            args.commands,
            mix.describe()
        );
        let signing = Instant::now();
        let envelopes = Arc::new(parallel_map(0..args.commands, |seq| {
            mix.kind(seq).build(&fixture, seq, args.commands)
        }));
        eprintln!(
            "signed in {:.1} s; mean envelope {} bytes",
            signing.elapsed().as_secs_f64(),
            envelopes.iter().map(Vec::len).sum::<usize>() / envelopes.len()
        );
        let n = args.commands;
        for phase in ingest_phases {
            let result = match phase {
                Phase::Writer => {
                    let verified = parallel_map(0..n, |seq| {
                        VerifiedEnvelope::parse_and_verify(&envelopes[seq as usize])
                            .expect("a generated envelope verifies")
                    });
                    let load = std::iter::once(Load::Verified(verified));
                    in_process::run(&args, &fixture, &mix, &parent, false, n, load)?
                }
                Phase::Inproc => {
                    let load = std::iter::once(Load::Raw(envelopes.clone()));
                    in_process::run(&args, &fixture, &mix, &parent, true, n, load)?
                }
                Phase::Http => http::run(&args, &fixture, &mix, &parent, envelopes.clone(), None)?,
                Phase::HttpHalf => {
                    let max = results
                        .iter()
                        .find(|r: &&PhaseResult| r.name == "http")
                        .map(PhaseResult::rate)
                        .context("the http-half phase needs the http phase in the same run")?;
                    http::run(
                        &args,
                        &fixture,
                        &mix,
                        &parent,
                        envelopes.clone(),
                        Some(max / 2.0),
                    )?
                }
                Phase::Limits => unreachable!("measured above"),
            };
            results.push(result);
        }
    }

    let report = Report {
        commands: args.commands,
        mix: mix.describe(),
        clients: args.clients,
        window: args.window,
        max_batch: args.max_batch,
        cores,
        dir: parent,
        limits,
        results,
        baseline,
    };
    if args.json {
        eprint!("{}", report.table());
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
