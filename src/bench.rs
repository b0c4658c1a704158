//! `vledger bench`: a load generator for a durable node, with the machine's limits measured in
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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use vledger_domain::types::RegionId;
use vledger_domain::GenesisBody;
use vledger_node::node::{Node, NodeConfig};
use vledger_node::writer::{COMMIT_THREAD_NAME, WRITER_THREAD_NAME};
use vledger_tlog::keys::SigningKey;
use vledger_wire::envelope::{
    pae, seal, CommandPayload, VerifiedEnvelope, COMMAND_FORMAT_VERSION, COMMAND_PAYLOAD_TYPE,
};

const REGION: &str = "cq";
const ORIGIN: &str = "vledger.bench/cq";
/// Puts per synced batch in the RocksDB probe, and the size of each value.
const PROBE_BATCH_PUTS: usize = 1000;
const PROBE_VALUE_BYTES: usize = 100;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(clap::Args)]
pub struct BenchArgs {
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
    /// `vledger bench --target URL --admin-key DIR/keys/admin.pem`).
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

// ---------------------------------------------------------------------------------------------
// The command mix

/// A kind of command the load generator can make. To add one: a variant, its name, the commands
/// that must be in the log before it can be applied (`setup`), and how to make the `seq`-th one
/// (`build`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CommandKind {
    /// The admin registers a fresh agency key.
    PartyRegister,
    /// The seven stages of a voucher's life, each a command (see the module documentation).
    VoucherLifecycle,
}

/// Parties of the lifecycle mix: enterprises, accredited agencies (one listing each).
const LIFECYCLE_ENTERPRISES: u64 = 64;
const LIFECYCLE_AGENCIES: u64 = 16;
/// The stages of one voucher's life, in order.
const LIFECYCLE_STAGES: [&str; 7] = [
    "voucher.issue",
    "order.place",
    "escrow.fund",
    "order.deliver",
    "order.confirm",
    "claim.submit",
    "claim.review",
];
const DAY_MS: u64 = 24 * 3600 * 1000;
const LIFECYCLE_PRICE_MINOR: u64 = 250_000;
const LIFECYCLE_FACE_MINOR: u64 = 100_000;

impl CommandKind {
    const ALL: [CommandKind; 2] = [CommandKind::VoucherLifecycle, CommandKind::PartyRegister];

    fn name(self) -> &'static str {
        match self {
            CommandKind::PartyRegister => "party.register",
            CommandKind::VoucherLifecycle => "voucher.lifecycle",
        }
    }

    /// Commands submitted (and awaited) on every fresh node before the timed phase.
    fn setup(self, fixture: &Fixture) -> Vec<Vec<u8>> {
        match self {
            CommandKind::PartyRegister => Vec::new(),
            CommandKind::VoucherLifecycle => fixture.lifecycle_setup(),
        }
    }

    /// The signed envelope of the `seq`-th of `total` commands (`seq` is unique in the run).
    fn build(self, fixture: &Fixture, seq: u64, total: u64) -> Vec<u8> {
        match self {
            CommandKind::VoucherLifecycle => fixture.lifecycle_command(seq, total),
            CommandKind::PartyRegister => {
                let party = fixture.derived_key("party", seq).public_key();
                let body = json!({
                    "key": party.to_base64(),
                    "role": "agency",
                    "home_region": fixture.region,
                    "name": format!("Chongqing Innovation Service Agency {seq}"),
                });
                fixture.sign(&fixture.admin, self.name(), seq, body)
            }
        }
    }
}

/// Weighted kinds; the `seq`-th command is of the kind at `seq` in the repeated weight cycle.
struct Mix {
    cycle: Vec<CommandKind>,
    weights: Vec<(CommandKind, u32)>,
}

impl Mix {
    fn parse(text: &str) -> Result<Self> {
        let mut weights = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let kind = CommandKind::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .with_context(|| {
                    let known: Vec<_> = CommandKind::ALL.iter().map(|k| k.name()).collect();
                    format!("--mix: unknown command type `{name}`; known: {known:?}")
                })?;
            let weight: u32 = weight
                .parse()
                .with_context(|| format!("--mix: weight of `{name}` is not an integer"))?;
            if weight > 0 {
                weights.push((kind, weight));
            }
        }
        let cycle: Vec<_> = weights
            .iter()
            .flat_map(|&(kind, w)| std::iter::repeat_n(kind, w as usize))
            .collect();
        if cycle.is_empty() {
            bail!("--mix names no command with a positive weight");
        }
        if weights.len() > 1 && cycle.contains(&CommandKind::VoucherLifecycle) {
            bail!("--mix: voucher.lifecycle is a whole workload and cannot be mixed");
        }
        Ok(Self { cycle, weights })
    }

    fn kind(&self, seq: u64) -> CommandKind {
        self.cycle[(seq % self.cycle.len() as u64) as usize]
    }

    fn describe(&self) -> String {
        if self.weights[0].0 == CommandKind::VoucherLifecycle {
            return format!(
                "voucher.lifecycle: {}, 1/7 each",
                LIFECYCLE_STAGES.join(", ")
            );
        }
        let total: u32 = self.weights.iter().map(|w| w.1).sum();
        self.weights
            .iter()
            .map(|(k, w)| {
                format!(
                    "{} {:.0}%",
                    k.name(),
                    f64::from(*w) * 100.0 / f64::from(total)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The keys and region the commands are made for; the same for every node of the run.
struct Fixture {
    region: RegionId,
    admin: SigningKey,
    run: u64,
    /// The wall clock when the run started: the lifecycle program's validity is around it.
    now_ms: u64,
    /// Appended to every record id and nonce the run makes: empty on a fresh node of the
    /// bench's own, the run's number on a target node that may hold earlier runs.
    scope: String,
}

impl Fixture {
    /// A fixture for fresh nodes: a new region admin.
    fn new() -> Self {
        Self::with_admin(
            RegionId::try_from(REGION).expect("valid region id"),
            SigningKey::generate(&mut rand::rngs::OsRng),
        )
    }

    fn with_admin(region: RegionId, admin: SigningKey) -> Self {
        use rand::RngCore;
        Self {
            region,
            admin,
            run: rand::rngs::OsRng.next_u64(),
            now_ms: vledger_node::writer::wall_clock_ms(),
            scope: String::new(),
        }
    }

    /// A fixture for a running node of `region` whose admin is `admin`.
    fn for_target(region: RegionId, admin: SigningKey) -> Self {
        let mut fixture = Self::with_admin(region, admin);
        fixture.scope = format!("-r{:016x}", fixture.run);
        fixture
    }

    /// `base` in this run's scope.
    fn id(&self, base: &str) -> String {
        format!("{base}{}", self.scope)
    }

    /// A key of this run, derived from a purpose and a counter.
    /// Ed25519 hashes the seed, so distinct seeds are all it needs.
    fn derived_key(&self, purpose: &str, n: u64) -> SigningKey {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.run.to_be_bytes());
        seed[8..16].copy_from_slice(&n.to_be_bytes());
        for (slot, byte) in seed[16..].iter_mut().zip(purpose.bytes()) {
            *slot = byte;
        }
        SigningKey::from_bytes(&seed)
    }

    fn enterprise(&self, n: u64) -> SigningKey {
        self.derived_key("enterprise", n % LIFECYCLE_ENTERPRISES)
    }

    fn agency(&self, n: u64) -> SigningKey {
        self.derived_key("agency", n % LIFECYCLE_AGENCIES)
    }

    fn escrow(&self) -> SigningKey {
        self.derived_key("escrow", 0)
    }

    /// The parties, accreditations, program, qualifications and listings the lifecycle needs.
    fn lifecycle_setup(&self) -> Vec<Vec<u8>> {
        let now = self.now_ms;
        let program = self.id("bench-rs");
        let mut out = Vec::new();
        let mut seq = u64::MAX / 2;
        let mut sign = |key: &SigningKey, command_type: &str, body: Value| {
            seq += 1;
            out.push(self.sign(key, command_type, seq, body));
        };
        let enterprises: Vec<_> = (0..LIFECYCLE_ENTERPRISES)
            .map(|n| self.enterprise(n))
            .collect();
        let agencies: Vec<_> = (0..LIFECYCLE_AGENCIES).map(|n| self.agency(n)).collect();
        let escrow = self.escrow();
        let parties = enterprises
            .iter()
            .map(|k| (k, "enterprise"))
            .chain(agencies.iter().map(|k| (k, "agency")))
            .chain([(&escrow, "escrow")]);
        for (n, (key, role)) in parties.enumerate() {
            sign(
                &self.admin,
                "party.register",
                json!({ "key": key.public_key().to_base64(), "role": role, "home_region": self.region,
                        "name": format!("{role} {n}") }),
            );
        }
        for agency in &agencies {
            sign(
                &self.admin,
                "agency.accredit",
                json!({ "agency": agency.public_key().to_base64(), "expires_at_ms": now + 365 * DAY_MS }),
            );
        }
        sign(
            &self.admin,
            "program.create",
            json!({
                "program_id": program, "name": "Resource sharing innovation vouchers",
                "kind": "resource_sharing", "currency": "CNY", "budget_minor": 1_000_000_000_000_000u64,
                "subsidy_ratio_bps": 5000,
                "caps": { "per_voucher_minor": 1_000_000, "per_order_minor": 1_000_000,
                          "per_enterprise_year_minor": 100_000_000_000_000u64,
                          "per_group_year_minor": 100_000_000_000_000u64 },
                "eligible_categories": ["testing"], "valid_from_ms": now - DAY_MS,
                "valid_until_ms": now + 90 * DAY_MS, "claim_deadline_ms": now + 120 * DAY_MS,
                "spend_regions": [self.region], "cross_region_payer": "agency_region",
                "use_mode": "single", "review_levels": 1, "notice_period_ms": 1000
            }),
        );
        for enterprise in &enterprises {
            sign(
                &self.admin,
                "enterprise.qualify",
                json!({ "program_id": program, "enterprise": enterprise.public_key().to_base64(),
                        "expires_at_ms": now + 60 * DAY_MS }),
            );
        }
        for (n, agency) in agencies.iter().enumerate() {
            sign(
                agency,
                "catalog.list",
                json!({ "listing_id": self.id(&format!("listing-{n}")), "pool": "instruments_equipment",
                        "category": "testing", "title": format!("X-ray diffraction testing {n}"),
                        "description": "CNAS accredited", "price_minor": LIFECYCLE_PRICE_MINOR,
                        "currency": "CNY" }),
            );
        }
        out
    }

    /// Command `seq` of `total`: stage `seq / groups` of voucher `seq % groups`.
    fn lifecycle_command(&self, seq: u64, total: u64) -> Vec<u8> {
        let groups = total.div_ceil(LIFECYCLE_STAGES.len() as u64);
        let (stage, g) = ((seq / groups) as usize, seq % groups);
        let (enterprise, agency) = (self.enterprise(g), self.agency(g));
        let (voucher, order) = (self.id(&format!("v-{g}")), self.id(&format!("o-{g}")));
        let share = LIFECYCLE_FACE_MINOR.min(LIFECYCLE_PRICE_MINOR / 2);
        let evidence = |kind: u64| format!("{:016x}{:016x}{:016x}{:016x}", self.run, g, kind, seq);
        let (key, body) = match LIFECYCLE_STAGES[stage] {
            "voucher.issue" => (
                &self.admin,
                json!({ "voucher_id": voucher, "program_id": self.id("bench-rs"),
                        "holder": enterprise.public_key().to_base64(), "face_value_minor": LIFECYCLE_FACE_MINOR }),
            ),
            "order.place" => (
                &enterprise,
                json!({ "order_id": order, "listing_id": self.id(&format!("listing-{}", g % LIFECYCLE_AGENCIES)),
                        "voucher_id": voucher, "price_minor": LIFECYCLE_PRICE_MINOR,
                        "payment": { "mode": "escrow", "escrow_provider": self.escrow().public_key().to_base64(),
                                     "fee_minor": 1_000 },
                        "auto_confirm_after_ms": 7 * DAY_MS }),
            ),
            "escrow.fund" => (
                &self.escrow(),
                json!({ "order_id": order, "amount_minor": LIFECYCLE_PRICE_MINOR - share,
                        "reference": self.id(&format!("PAY-{g}")) }),
            ),
            "order.deliver" => (
                &agency,
                json!({ "order_id": order, "evidence": [
                    { "kind": "contract", "sha256": evidence(1) }, { "kind": "invoice", "sha256": evidence(2) },
                    { "kind": "report", "sha256": evidence(3) } ] }),
            ),
            "order.confirm" => (&enterprise, json!({ "order_id": order })),
            "claim.submit" => (&agency, json!({ "order_id": order })),
            _ => (
                &self.admin,
                json!({ "order_id": order, "level": 1, "decision": "approve" }),
            ),
        };
        self.sign(key, LIFECYCLE_STAGES[stage], seq, body)
    }

    fn sign(&self, key: &SigningKey, command_type: &str, seq: u64, body: Value) -> Vec<u8> {
        let payload = CommandPayload {
            v: u64::from(COMMAND_FORMAT_VERSION),
            command_type: command_type.into(),
            region: self.region.clone(),
            signer: key.public_key(),
            nonce: self.id(&format!("bench-{seq:012}")),
            body,
        };
        seal(&payload, key)
    }

    fn genesis(&self) -> GenesisBody {
        GenesisBody {
            region_name: "Chongqing Science and Technology Bureau".into(),
            admin_key: self.admin.public_key(),
            admin_name: "Chongqing Science and Technology Bureau admin".into(),
            time_zone: "Asia/Shanghai".into(),
        }
    }

    /// A fresh durable node in a new temporary directory under `parent`, with the mix's setup
    /// commands applied.
    fn open_node(
        &self,
        parent: &Path,
        mix: &Mix,
        max_batch_commands: usize,
    ) -> Result<(Arc<Node>, tempfile::TempDir, SigningKey)> {
        let dir = tempfile::Builder::new()
            .prefix("vledger-bench-")
            .tempdir_in(parent)
            .with_context(|| format!("cannot make a directory in {}", parent.display()))?;
        let node_key = SigningKey::generate(&mut rand::rngs::OsRng);
        let node = Node::open(NodeConfig {
            data_dir: dir.path().join("db"),
            region: self.region.clone(),
            origin: ORIGIN.into(),
            node_key: node_key.clone(),
            max_batch_commands,
            genesis: Some(self.genesis()),
        })
        .map_err(|e| anyhow::anyhow!("cannot open the node: {e}"))?;
        for &(kind, _) in &mix.weights {
            for raw in kind.setup(self) {
                let envelope = VerifiedEnvelope::parse_and_verify(&raw)
                    .map_err(|e| anyhow::anyhow!("setup command of {}: {e}", kind.name()))?;
                node.submit_and_wait(envelope)
                    .map_err(|e| anyhow::anyhow!("setup command of {}: {e}", kind.name()))?;
            }
        }
        Ok((node, dir, node_key))
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements

/// What one ingest phase measured.
struct PhaseResult {
    name: &'static str,
    label: String,
    sent: usize,
    accepted: usize,
    errors: BTreeMap<String, usize>,
    elapsed: Duration,
    /// Per command, from when it was taken up (before any check) to its answer.
    latencies: Latencies,
    /// The writer's counters; not known for a target node in another process.
    writer: Option<WriterDelta>,
    /// The process's resident memory at the end of the phase, and its peak so far.
    memory: Option<ProcessMemory>,
}

/// Latencies in nanoseconds, kept in a histogram with three significant digits: its memory does
/// not grow with the number of commands.
struct Latencies(hdrhistogram::Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    fn new() -> Self {
        // 1 ns to an hour; anything longer counts as an hour.
        Self(
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("valid histogram bounds"),
        )
    }

    fn record(&mut self, nanos: u64) {
        self.0.saturating_record(nanos);
    }

    /// The latency at quantile `q` (the maximum at 1.0), or None when nothing was recorded.
    fn percentile(&self, q: f64) -> Option<Duration> {
        if self.0.is_empty() {
            return None;
        }
        let nanos = if q >= 1.0 {
            self.0.max()
        } else {
            self.0.value_at_quantile(q)
        };
        Some(Duration::from_nanos(nanos))
    }
}

/// Resident memory of this process, from `/proc/self/status` (Linux).
#[derive(Clone, Copy)]
struct ProcessMemory {
    resident_bytes: u64,
    peak_resident_bytes: u64,
}

impl ProcessMemory {
    fn read() -> Option<Self> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib = |field: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(field))?;
            line[field.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        };
        Some(Self {
            resident_bytes: kib("VmRSS:")? * 1024,
            peak_resident_bytes: kib("VmHWM:")? * 1024,
        })
    }
}

/// The writer's counters over a phase.
#[derive(Clone, Copy)]
struct WriterDelta {
    batches: u64,
    accepted: u64,
    commit_micros: u64,
    /// The node's longest synced write (each phase's node is a fresh one).
    longest_commit_micros: u64,
    /// CPU time the writer thread ran, and the commit thread (`None` where the kernel does not
    /// tell a thread's CPU time).
    writer_cpu_nanos: Option<u64>,
    commit_cpu_nanos: Option<u64>,
}

impl WriterDelta {
    fn read(node: &Node) -> Self {
        let stats = &node.published().stats;
        Self {
            batches: stats.batches.load(Ordering::Relaxed),
            accepted: stats.commands_accepted.load(Ordering::Relaxed),
            commit_micros: stats.commit_micros_total.load(Ordering::Relaxed),
            longest_commit_micros: stats.longest_commit_micros.load(Ordering::Relaxed),
            writer_cpu_nanos: threads_cpu_nanos(WRITER_THREAD_NAME),
            commit_cpu_nanos: threads_cpu_nanos(COMMIT_THREAD_NAME),
        }
    }

    fn since(self, before: Self) -> Self {
        let delta = |now: Option<u64>, then: Option<u64>| Some(now?.saturating_sub(then?));
        Self {
            batches: self.batches - before.batches,
            accepted: self.accepted - before.accepted,
            commit_micros: self.commit_micros - before.commit_micros,
            longest_commit_micros: self.longest_commit_micros,
            writer_cpu_nanos: delta(self.writer_cpu_nanos, before.writer_cpu_nanos),
            commit_cpu_nanos: delta(self.commit_cpu_nanos, before.commit_cpu_nanos),
        }
    }

    /// CPU microseconds per accepted command of the writer thread and of the commit thread.
    fn cpu_micros_per_command(&self) -> Option<(f64, f64)> {
        let per_command =
            |nanos: Option<u64>| Some(nanos? as f64 / 1e3 / self.accepted.max(1) as f64);
        Some((
            per_command(self.writer_cpu_nanos)?,
            per_command(self.commit_cpu_nanos)?,
        ))
    }
}

/// The CPU time (ns) the threads of this process named `name` have run so far, from Linux's
/// `/proc/self/task/*/schedstat`; `None` if no such thread reports it. A node has one writer
/// and one commit thread, and each phase's node is a fresh one: the difference over a phase
/// is that node's (threads of earlier nodes that still exist add the same to both readings).
fn threads_cpu_nanos(name: &str) -> Option<u64> {
    let mut total = None;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        if !std::fs::read_to_string(path.join("comm")).is_ok_and(|comm| comm.trim_end() == name) {
            continue;
        }
        let ran = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|stat| stat.split_whitespace().next()?.parse::<u64>().ok());
        if let Some(nanos) = ran {
            total = Some(total.unwrap_or(0) + nanos);
        }
    }
    total
}

impl PhaseResult {
    fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Option<Duration> {
        self.latencies.percentile(p)
    }

    fn mean_batch(&self) -> Option<f64> {
        let w = self.writer?;
        Some(w.accepted as f64 / w.batches.max(1) as f64)
    }

    fn mean_commit(&self) -> Option<Duration> {
        let w = self.writer?;
        Some(Duration::from_micros(w.commit_micros / w.batches.max(1)))
    }

    /// The share of the phase's wall time the commit thread spent in synced writes (the writer
    /// decides the next batch meanwhile).
    fn commit_share(&self) -> Option<f64> {
        let w = self.writer?;
        Some(w.commit_micros as f64 / 1e6 / self.elapsed.as_secs_f64())
    }

    fn to_json(&self) -> Value {
        let ms = |p: f64| self.percentile(p).map(|d| d.as_secs_f64() * 1e3);
        json!({
            "label": self.label,
            "sent": self.sent,
            "accepted": self.accepted,
            "errors": self.errors,
            "seconds": self.elapsed.as_secs_f64(),
            "commands_per_second": self.rate(),
            "latency_ms": { "p50": ms(0.50), "p99": ms(0.99), "p999": ms(0.999), "max": ms(1.0) },
            "resident_memory_mib": self.memory.map(|m| json!({
                "at_end": m.resident_bytes as f64 / MIB,
                "peak_of_process": m.peak_resident_bytes as f64 / MIB,
            })),
            "writer": self.writer.map(|w| json!({
                "batches": w.batches,
                "mean_batch_commands": self.mean_batch(),
                "mean_commit_ms": self.mean_commit().map(|d| d.as_secs_f64() * 1e3),
                "commit_share_of_wall_time": self.commit_share(),
                "longest_commit_ms": w.longest_commit_micros as f64 / 1e3,
                "writer_thread_cpu_us_per_command": w.cpu_micros_per_command().map(|c| c.0),
                "commit_thread_cpu_us_per_command": w.cpu_micros_per_command().map(|c| c.1),
            })),
        })
    }
}

/// The machine's limits, measured in the same run.
#[derive(Default)]
struct Limits {
    threads: usize,
    verify_1t: f64,
    verify_nt: f64,
    rule_nt: f64,
    envelope_nt: f64,
    batch_1000_per_s: f64,
    batch_1_per_s: f64,
}

impl Limits {
    fn to_json(&self) -> Value {
        json!({
            "threads": self.threads,
            "verify_strict_per_second_1_thread": self.verify_1t,
            "verify_strict_per_second_all_threads": self.verify_nt,
            "ledger_signature_rule_per_second_all_threads": self.rule_nt,
            "envelope_parse_and_verify_per_second_all_threads": self.envelope_nt,
            "rocksdb_synced_batches_of_1000_per_second": self.batch_1000_per_s,
            "rocksdb_synced_puts_per_second_in_batches_of_1000": self.batch_1000_per_s * PROBE_BATCH_PUTS as f64,
            "rocksdb_synced_batches_of_1_per_second": self.batch_1_per_s,
        })
    }
}

/// Runs `work` on `threads` threads for about `seconds`; returns operations per second.
fn rate_on_threads(threads: usize, seconds: f64, work: impl Fn() + Sync) -> f64 {
    let deadline = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let total: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = 0u64;
                    while started.elapsed() < deadline {
                        for _ in 0..32 {
                            work();
                        }
                        done += 32;
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("probe thread"))
            .sum()
    });
    total as f64 / started.elapsed().as_secs_f64()
}

fn measure_limits(args: &BenchArgs, fixture: &Fixture, parent: &Path) -> Result<Limits> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let raw = CommandKind::PartyRegister.build(fixture, u64::MAX, 1);
    let verified = VerifiedEnvelope::parse_and_verify(&raw)
        .map_err(|e| anyhow::anyhow!("probe envelope: {e}"))?;
    let message = pae(COMMAND_PAYLOAD_TYPE, &verified.payload_bytes);
    let signature = fixture.admin.sign(&message);
    let public = fixture.admin.public_key();
    // The machine's limit: ed25519-dalek's own `verify_strict`, with the key decoded once.
    let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(public.as_bytes())
        .context("the probe key decodes")?;
    let dalek_signature = ed25519_dalek::Signature::from_bytes(&signature);
    let verify = || {
        dalek_key
            .verify_strict(std::hint::black_box(&message), &dalek_signature)
            .expect("valid signature");
    };
    let s = args.probe_seconds;
    eprintln!("limits: verify_strict on 1 and {threads} threads, envelope checks, synced RocksDB writes ...");
    let verify_1t = rate_on_threads(1, s, verify);
    let verify_nt = rate_on_threads(threads, s, verify);
    // The ledger's check of the same rule (keys::PublicKey::verify).
    let rule_nt = rate_on_threads(threads, s, || {
        public
            .verify(std::hint::black_box(&message), &signature)
            .expect("valid signature");
    });
    let envelope_nt = rate_on_threads(threads, s, || {
        VerifiedEnvelope::parse_and_verify(std::hint::black_box(&raw)).expect("verifies");
    });

    let dir = tempfile::Builder::new()
        .prefix("vledger-bench-rocksdb-")
        .tempdir_in(parent)?;
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.increase_parallelism(2);
    let db = rocksdb::DB::open(&options, dir.path()).context("open the probe RocksDB")?;
    let mut synced = rocksdb::WriteOptions::default();
    synced.set_sync(true);
    let value = [0x5a_u8; PROBE_VALUE_BYTES];
    let mut key = 0u64;
    let mut synced_batches = |puts: usize| -> Result<f64> {
        let started = Instant::now();
        let mut batches = 0u64;
        while started.elapsed().as_secs_f64() < s {
            let mut batch = rocksdb::WriteBatch::default();
            for _ in 0..puts {
                key += 1;
                batch.put(key.to_be_bytes(), value);
            }
            db.write_opt(batch, &synced).context("synced write")?;
            batches += 1;
        }
        Ok(batches as f64 / started.elapsed().as_secs_f64())
    };
    let batch_1000_per_s = synced_batches(PROBE_BATCH_PUTS)?;
    let batch_1_per_s = synced_batches(1)?;
    Ok(Limits {
        threads,
        verify_1t,
        verify_nt,
        rule_nt,
        envelope_nt,
        batch_1000_per_s,
        batch_1_per_s,
    })
}

/// Counts in-flight commands; `acquire` waits while `limit` are out. A release wakes a waiter
/// only when there is one, so that answering a command costs the load generator no system call.
struct Window {
    state: Mutex<WindowState>,
    freed: Condvar,
    limit: usize,
}

#[derive(Default)]
struct WindowState {
    out: usize,
    waiting: usize,
}

impl Window {
    fn new(limit: usize) -> Self {
        Self {
            state: Mutex::default(),
            freed: Condvar::new(),
            limit: limit.max(1),
        }
    }

    fn acquire(&self) {
        let mut state = self.state.lock().expect("window lock");
        while state.out >= self.limit {
            state.waiting += 1;
            state = self.freed.wait(state).expect("window lock");
            state.waiting -= 1;
        }
        state.out += 1;
    }

    fn release(&self) {
        let mut state = self.state.lock().expect("window lock");
        state.out -= 1;
        if state.waiting > 0 {
            self.freed.notify_one();
        }
    }
}

/// What the in-process phases submit: raw envelopes (checked by the submitting threads) or
/// envelopes verified before the clock starts.
enum Load {
    Raw(Arc<Vec<Vec<u8>>>),
    Verified(Vec<VerifiedEnvelope>),
}

impl Load {
    fn len(&self) -> usize {
        match self {
            Load::Raw(raw) => raw.len(),
            Load::Verified(verified) => verified.len(),
        }
    }
}

/// A short, stable description of why a command was not accepted, for counting.
fn error_kind(text: &str) -> String {
    text.chars().take(80).collect()
}

/// The answers an in-process phase has collected.
struct Tally {
    answered: usize,
    accepted: usize,
    errors: BTreeMap<String, usize>,
    latencies: Latencies,
    last_answer: Instant,
}

impl Tally {
    fn add(&mut self, (answer, latency_ns): (Result<(), String>, u64)) {
        self.answered += 1;
        self.last_answer = Instant::now();
        self.latencies.record(latency_ns);
        match answer {
            Ok(()) => self.accepted += 1,
            Err(kind) => *self.errors.entry(kind).or_insert(0) += 1,
        }
    }
}

/// Drives `total` commands, arriving in `loads` (all at once, or chunk by chunk as they are
/// signed), into a fresh node through `Node::submit`, at most `--window` in flight, and waits
/// for every answer. `checked`: the loads are raw envelopes, checked by one thread per core.
fn run_in_process(
    args: &BenchArgs,
    fixture: &Fixture,
    mix: &Mix,
    parent: &Path,
    checked: bool,
    total: u64,
    loads: impl Iterator<Item = Load>,
) -> Result<PhaseResult> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (name, mut label, threads) = if checked {
        (
            "inproc",
            format!("in process (checks on {cores} threads)"),
            cores,
        )
    } else {
        ("writer", "writer (pre-verified)".to_string(), 1)
    };
    if let Some(chunk) = args.sign_chunk {
        label.push_str(&format!(", signed in chunks of {chunk} during the phase"));
    }
    eprintln!("{label}: {total} commands ...");
    let (node, dir, node_key) = fixture.open_node(parent, mix, args.max_batch)?;
    let window = Arc::new(Window::new(args.window));
    let deadline = Duration::from_secs(args.max_seconds);
    let before = WriterDelta::read(&node);
    let started = Instant::now();
    let mut sent = 0usize;
    // Counted where each answer arrives (the node's commit thread, or a checking thread for a
    // refused envelope): no channel and no wake-up per command.
    let tally = Arc::new(Mutex::new(Tally {
        answered: 0,
        accepted: 0,
        errors: BTreeMap::new(),
        latencies: Latencies::new(),
        last_answer: started,
    }));

    for load in loads {
        if started.elapsed() >= deadline {
            break;
        }
        let count = load.len();
        let (slots, raw): (Vec<Mutex<Option<VerifiedEnvelope>>>, _) = match load {
            Load::Verified(v) => (v.into_iter().map(|e| Mutex::new(Some(e))).collect(), None),
            Load::Raw(raw) => (Vec::new(), Some(raw)),
        };
        let next = AtomicUsize::new(0);
        let chunk_sent = AtomicUsize::new(0);
        let submitter = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count || started.elapsed() >= deadline {
                break;
            }
            window.acquire();
            chunk_sent.fetch_add(1, Ordering::Relaxed);
            let taken = Instant::now();
            let envelope = match &raw {
                None => slots[i]
                    .lock()
                    .expect("slot lock")
                    .take()
                    .expect("each envelope is taken once"),
                Some(raw) => match VerifiedEnvelope::parse_and_verify(&raw[i]) {
                    Ok(envelope) => envelope,
                    Err(e) => {
                        window.release();
                        let latency = taken.elapsed().as_nanos() as u64;
                        let answer = Err(error_kind(&e.to_string()));
                        tally.lock().expect("tally lock").add((answer, latency));
                        continue;
                    }
                },
            };
            let (tally, window) = (tally.clone(), window.clone());
            node.submit(
                envelope,
                Box::new(move |answer| {
                    let latency = taken.elapsed().as_nanos() as u64;
                    window.release();
                    let answer = answer.map(|_| ()).map_err(|e| error_kind(&e.to_string()));
                    tally.lock().expect("tally lock").add((answer, latency));
                }),
            );
        };
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(submitter);
            }
        });
        sent += chunk_sent.into_inner();
    }
    // Every command sent is answered (the writer answers each, accepted or not).
    while tally.lock().expect("tally lock").answered < sent {
        std::thread::sleep(Duration::from_millis(1));
    }
    let tally = {
        let mut counted = tally.lock().expect("tally lock");
        Tally {
            errors: std::mem::take(&mut counted.errors),
            latencies: std::mem::take(&mut counted.latencies),
            ..*counted
        }
    };
    let writer = WriterDelta::read(&node).since(before);
    let memory = ProcessMemory::read();
    node.shutdown();
    drop(node);
    if let Some(keep) = &args.keep_data {
        if keep.exists() {
            bail!("--keep-data: {} exists already", keep.display());
        }
        // Renamed, so on the file system of --dir.
        std::fs::rename(dir.keep(), keep)
            .with_context(|| format!("--keep-data: cannot move the data to {}", keep.display()))?;
        crate::write_new_key(&keep.join("keys").join("node.pem"), &node_key)?;
        crate::write_new_key(&keep.join("keys").join("admin.pem"), &fixture.admin)?;
        eprintln!(
            "kept the node's data, its key and its admin's key in {}; serve it with \
             `vledger serve --data {} --region {REGION} --origin {ORIGIN}`",
            keep.display(),
            keep.display()
        );
    }
    Ok(PhaseResult {
        name,
        label,
        sent,
        accepted: tally.accepted,
        errors: tally.errors,
        elapsed: tally.last_answer - started,
        latencies: tally.latencies,
        writer: Some(writer),
        memory,
    })
}

/// What one HTTP client saw.
#[derive(Default)]
struct ClientLog {
    sent: usize,
    accepted: usize,
    errors: BTreeMap<String, usize>,
    last_answer: Option<Instant>,
}

/// Serves a fresh node on 127.0.0.1:0 and drives the commands into it with `--clients`
/// concurrent clients, each sending one command at a time and waiting for its answer. With a
/// `rate` (commands per second), command `i` is due at `i / rate` seconds: a client waits until
/// then to send it, and its latency counts from that moment even if the client was late.
fn run_http(
    args: &BenchArgs,
    fixture: &Fixture,
    mix: &Mix,
    parent: &Path,
    envelopes: Arc<Vec<Vec<u8>>>,
    rate: Option<f64>,
) -> Result<PhaseResult> {
    let (name, mut label) = match rate {
        None => ("http", format!("HTTP, {} clients", args.clients)),
        Some(rate) => (
            "http-half",
            format!("HTTP at half: {}/s, {} clients", count(rate), args.clients),
        ),
    };
    // A fresh node served in process, or none: the target was set up before the phases.
    let local = match &args.target {
        None => Some(fixture.open_node(parent, mix, args.max_batch)?),
        Some(target) => {
            label.push_str(&format!(" to {target}"));
            None
        }
    };
    eprintln!("{label}: {} commands ...", envelopes.len());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let clients = args.clients.max(1);
    let max_seconds = Duration::from_secs(args.max_seconds);
    runtime.block_on(async move {
        let (url, served) = match (&local, &args.target) {
            (Some((node, _, _)), _) => {
                let listener = vledger_api::listen("127.0.0.1:0")
                    .await
                    .context("cannot listen on 127.0.0.1")?;
                let url = format!("http://{}/v1/commands", listener.local_addr()?);
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let server =
                    tokio::spawn(vledger_api::serve(listener, Arc::clone(node), async move {
                        let _ = stopped.await;
                    }));
                (url, Some((node, stop, server)))
            }
            (None, Some(target)) => (commands_url(target), None),
            (None, None) => unreachable!("a node is opened when there is no target"),
        };
        let target = Arc::new(PostTarget::parse(&url)?);
        let next = Arc::new(AtomicUsize::new(0));
        // One histogram for all clients, made before the clock starts: one per client would
        // be a quarter of a megabyte each, zeroed on the shared cores while the phase runs.
        let latencies = Arc::new(std::sync::Mutex::new(Latencies::new()));
        let before = served.as_ref().map(|(node, _, _)| WriterDelta::read(node));
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (target, next, envelopes) = (target.clone(), next.clone(), envelopes.clone());
                let latencies = latencies.clone();
                tokio::spawn(async move {
                    let mut log = ClientLog::default();
                    let mut connection = None;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= envelopes.len() || started.elapsed() >= max_seconds {
                            break;
                        }
                        log.sent += 1;
                        let taken = match rate {
                            None => Instant::now(),
                            Some(rate) => {
                                let due = started + Duration::from_secs_f64(i as f64 / rate);
                                let before = Instant::now();
                                if before < due {
                                    tokio::time::sleep_until(due.into()).await;
                                }
                                scheduled_start(due, before, Instant::now())
                            }
                        };
                        let body = Bytes::copy_from_slice(&envelopes[i]);
                        let outcome = target.post(&mut connection, body).await;
                        let latency_ns = taken.elapsed().as_nanos() as u64;
                        latencies.lock().expect("latencies lock").record(latency_ns);
                        log.last_answer = Some(Instant::now());
                        match outcome {
                            Ok(()) => log.accepted += 1,
                            Err(kind) => *log.errors.entry(kind).or_insert(0) += 1,
                        }
                    }
                    log
                })
            })
            .collect();
        let (mut sent, mut accepted, mut errors) = (0, 0, BTreeMap::new());
        let mut last_answer = started;
        for task in tasks {
            let log = task.await.context("client task")?;
            sent += log.sent;
            accepted += log.accepted;
            for (kind, n) in log.errors {
                *errors.entry(kind).or_insert(0) += n;
            }
            last_answer = last_answer.max(log.last_answer.unwrap_or(started));
        }
        // Every client has ended, and with it its share of the histogram.
        let latencies = Arc::try_unwrap(latencies)
            .map_err(|_| anyhow::anyhow!("a client outlived the phase"))?
            .into_inner()
            .expect("latencies lock");
        let mut result = PhaseResult {
            name,
            label,
            sent,
            accepted,
            errors,
            elapsed: last_answer - started,
            latencies,
            writer: None,
            memory: None,
        };
        if let (Some((node, stop, server)), Some(before)) = (served, before) {
            result.writer = Some(WriterDelta::read(node).since(before));
            result.memory = ProcessMemory::read();
            let _ = stop.send(());
            server
                .await
                .context("server task")?
                .context("the server failed")?;
        }
        Ok::<_, anyhow::Error>(result)
    })
}

/// How late tokio's timer may wake a sleeping task: it keeps time in whole milliseconds.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// When a command sent on a fixed schedule counts as sent, for its latency: `due` if its client
/// was already behind schedule at `before` (an earlier answer was slow, and that wait counts);
/// otherwise when the client woke from its sleep until `due`, less any lateness beyond the
/// timer's resolution (up to a millisecond late is the load generator's own timer, not the
/// node; later than that, the cores were busy and it counts).
fn scheduled_start(due: Instant, before: Instant, woke: Instant) -> Instant {
    if before >= due {
        due
    } else {
        woke.clamp(due, due + TIMER_RESOLUTION)
    }
}

/// Where the http phase posts commands. Each client keeps one HTTP/1.1 connection
/// (hyper's, without a pool or redirects: the load generator shares the node's cores).
struct PostTarget {
    /// `host:port`, to connect to and for the `Host` header.
    address: String,
    path: String,
}

/// A client's connection: requests go out one at a time, each after the last answer.
type Connection = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

impl PostTarget {
    fn parse(url: &str) -> Result<Self> {
        let parsed: reqwest::Url = url.parse().context("the node's address")?;
        if parsed.scheme() != "http" {
            bail!("{url}: the load generator speaks plain http:// only");
        }
        let host = parsed
            .host_str()
            .context("the node's address has no host")?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        Ok(Self {
            address: format!("{host}:{port}"),
            path: parsed.path().to_string(),
        })
    }

    async fn connect(&self) -> Result<Connection, String> {
        let stream = tokio::net::TcpStream::connect(&self.address)
            .await
            .map_err(|e| error_kind(&format!("connecting: {e}")))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| error_kind(&format!("connecting: {e}")))?;
        // Drives the connection until the sender is dropped or the server closes it.
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Posts one envelope on the client's connection (opened again after an error) and
    /// classifies the answer: accepted (201), or the problem or error that refused it.
    async fn post(&self, connection: &mut Option<Connection>, body: Bytes) -> Result<(), String> {
        let sender = match connection {
            Some(sender) if !sender.is_closed() => sender,
            _ => connection.insert(self.connect().await?),
        };
        let request = hyper::Request::post(self.path.as_str())
            .header(hyper::header::HOST, self.address.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .expect("a valid request");
        let answer = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        match answer {
            Ok((status, _)) if status == hyper::StatusCode::CREATED => Ok(()),
            Ok((status, body)) => Err(problem_kind(status, &body)),
            Err(e) => {
                *connection = None;
                Err(error_kind(&format!("request: {e}")))
            }
        }
    }
}

/// The command endpoint of a node's base URL.
fn commands_url(base: &str) -> String {
    format!("{}/v1/commands", base.trim_end_matches('/'))
}

/// For `--target`: the running node's region, and the bench's set-up submitted there, one
/// command at a time, each required to be accepted.
fn set_up_target(target: &str, admin_key: &Path, mix: &Mix) -> Result<Fixture> {
    let pem = std::fs::read_to_string(admin_key)
        .with_context(|| format!("--admin-key: cannot read {}", admin_key.display()))?;
    let admin = SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| anyhow::anyhow!("--admin-key {}: {e}", admin_key.display()))?;
    let client = reqwest::blocking::Client::new();
    let base = target.trim_end_matches('/');
    let node: Value = client
        .get(format!("{base}/v1/node"))
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .with_context(|| format!("--target: cannot read {base}/v1/node"))?;
    let region = node["region"]
        .as_str()
        .and_then(|r| RegionId::try_from(r).ok())
        .with_context(|| format!("--target: {base}/v1/node names no region"))?;
    let fixture = Fixture::for_target(region, admin);
    for &(kind, _) in &mix.weights {
        for raw in kind.setup(&fixture) {
            let response = client
                .post(commands_url(base))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(raw)
                .send()
                .with_context(|| format!("--target: cannot send to {base}"))?;
            let status = response.status();
            if status != reqwest::StatusCode::CREATED {
                let body = response.text().unwrap_or_default();
                bail!(
                    "--target: a set-up command of {} was refused ({status}): {body}",
                    kind.name()
                );
            }
        }
    }
    Ok(fixture)
}

/// The problem code of a refused command's answer, with its status.
fn problem_kind(status: reqwest::StatusCode, body: &[u8]) -> String {
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|p| p["code"].as_str().map(str::to_string))
        .unwrap_or_default();
    error_kind(&format!("HTTP {} {code}", status.as_u16()))
}

// ---------------------------------------------------------------------------------------------
// The run

pub fn run(args: BenchArgs) -> Result<()> {
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
            set_up_target(target, admin_key, &mix)?
        }
        _ => Fixture::new(),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let limits = if phases.contains(&Phase::Limits) {
        Some(measure_limits(&args, &fixture, &parent)?)
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
                    Load::Verified(parallel_map(hi - lo, |i| {
                        VerifiedEnvelope::parse_and_verify(&build(i))
                            .expect("a generated envelope verifies")
                    }))
                } else {
                    Load::Raw(Arc::new(parallel_map(hi - lo, build)))
                }
            })
        };
        for phase in ingest_phases {
            let checked = phase == Phase::Inproc;
            let result =
                run_in_process(&args, &fixture, &mix, &parent, checked, n, chunks(!checked))?;
            results.push(result);
        }
    } else if !ingest_phases.is_empty() {
        eprintln!(
            "signing {} commands ({}) ...",
            args.commands,
            mix.describe()
        );
        let signing = Instant::now();
        let envelopes = Arc::new(parallel_map(args.commands, |seq| {
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
                    let verified = parallel_map(n, |seq| {
                        VerifiedEnvelope::parse_and_verify(&envelopes[seq as usize])
                            .expect("a generated envelope verifies")
                    });
                    let load = std::iter::once(Load::Verified(verified));
                    run_in_process(&args, &fixture, &mix, &parent, false, n, load)?
                }
                Phase::Inproc => {
                    let load = std::iter::once(Load::Raw(envelopes.clone()));
                    run_in_process(&args, &fixture, &mix, &parent, true, n, load)?
                }
                Phase::Http => run_http(&args, &fixture, &mix, &parent, envelopes.clone(), None)?,
                Phase::HttpHalf => {
                    let max = results
                        .iter()
                        .find(|r: &&PhaseResult| r.name == "http")
                        .map(PhaseResult::rate)
                        .context("the http-half phase needs the http phase in the same run")?;
                    run_http(
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

/// Maps `f` over `0..count` on every core, keeping the order.
fn parallel_map<T: Send>(count: u64, f: impl Fn(u64) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let chunk = count.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let lo = (t * chunk).min(count);
                let hi = (lo + chunk).min(count);
                scope.spawn(move || (lo..hi).map(f).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread"))
            .collect()
    })
}

struct Report {
    commands: u64,
    mix: String,
    clients: usize,
    window: usize,
    max_batch: usize,
    cores: usize,
    dir: PathBuf,
    limits: Option<Limits>,
    results: Vec<PhaseResult>,
    baseline: Option<Value>,
}

impl Report {
    fn result(&self, name: &str) -> Option<&PhaseResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// Each phase's ingest rate over the all-core `verify_strict` rate.
    fn ratios(&self) -> Vec<(&'static str, String, f64)> {
        let mut out = self.baseline_ratios();
        let Some(limits) = &self.limits else {
            return out;
        };
        for r in &self.results {
            out.push((
                r.name,
                format!("{} / verify_strict on {} threads", r.label, limits.threads),
                r.rate() / limits.verify_nt,
            ));
        }
        for r in &self.results {
            out.push((
                r.name,
                format!(
                    "{} / envelope checks on {} threads",
                    r.label, limits.threads
                ),
                r.rate() / limits.envelope_nt,
            ));
        }
        out
    }

    /// The writer phase over PostgreSQL's COPY batches, the HTTP phase over PostgreSQL's
    /// one-entry transactions.
    fn baseline_ratios(&self) -> Vec<(&'static str, String, f64)> {
        let Some(pg) = &self.baseline else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let batch = &pg["batch"];
        if let (Some(r), Some(rate)) = (self.result("writer"), batch["entries_per_s"].as_f64()) {
            out.push((
                "writer",
                format!(
                    "{}, batches of at most {} / PostgreSQL COPY batches of {} ({:.0}/s)",
                    r.label, self.max_batch, batch["batch_size"], rate
                ),
                r.rate() / rate,
            ));
        }
        let clients = &pg["clients"];
        if let (Some(r), Some(rate)) = (self.result("http"), clients["entries_per_s"].as_f64()) {
            out.push((
                "http",
                format!(
                    "{} / PostgreSQL {} clients, 1 entry per transaction ({:.0}/s)",
                    r.label, clients["clients"], rate
                ),
                r.rate() / rate,
            ));
        }
        out
    }

    fn table(&self) -> String {
        use std::fmt::Write;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "vledger bench: {} commands ({}), {} cores, durable (synced) stores under {}, \
             batches of at most {} commands",
            self.commands,
            self.mix,
            self.cores,
            self.dir.display(),
            self.max_batch
        );
        if let Some(l) = &self.limits {
            let _ = writeln!(t, "\nmachine limits (this run)");
            let _ = writeln!(
                t,
                "  {:<44} {:>12}/s",
                "verify_strict, 1 thread",
                count(l.verify_1t)
            );
            let _ = writeln!(
                t,
                "  {:<44} {:>12}/s",
                format!("verify_strict, {} threads", l.threads),
                count(l.verify_nt)
            );
            let _ = writeln!(
                t,
                "  {:<44} {:>12}/s",
                format!("ledger signature rule, {} threads", l.threads),
                count(l.rule_nt)
            );
            let _ = writeln!(
                t,
                "  {:<44} {:>12}/s",
                format!("envelope parse_and_verify, {} threads", l.threads),
                count(l.envelope_nt)
            );
            let _ = writeln!(
                t,
                "  {:<44} {:>12}/s  ({} puts/s)",
                format!("synced RocksDB batch of {PROBE_BATCH_PUTS} x {PROBE_VALUE_BYTES} B"),
                count(l.batch_1000_per_s),
                count(l.batch_1000_per_s * PROBE_BATCH_PUTS as f64)
            );
            let _ = writeln!(
                t,
                "  {:<44} {:>12}/s  ({} each)",
                "synced RocksDB batch of 1 put",
                count(l.batch_1_per_s),
                duration(Duration::from_secs_f64(1.0 / l.batch_1_per_s.max(1e-9)))
            );
        }
        if !self.results.is_empty() {
            let _ = writeln!(
                t,
                "\ningest (window {} in flight in process; HTTP clients wait for each answer)",
                self.window
            );
            let _ = writeln!(
                t,
                "  {:<32} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9} {:>7} {:>9}",
                "phase",
                "cmd/s",
                "p50",
                "p99",
                "p99.9",
                "max",
                "batches",
                "cmd/batch",
                "commit",
                "in sync",
                "longest"
            );
            for r in &self.results {
                let p = |q| r.percentile(q).map_or("-".into(), duration);
                let _ = writeln!(
                    t,
                    "  {:<32} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9} {:>7} {:>9}",
                    r.label,
                    count(r.rate()),
                    p(0.50),
                    p(0.99),
                    p(0.999),
                    p(1.0),
                    r.writer.map_or("-".into(), |w| w.batches.to_string()),
                    r.mean_batch().map_or("-".into(), |b| format!("{b:.0}")),
                    r.mean_commit().map_or("-".into(), duration),
                    r.commit_share()
                        .map_or("-".into(), |c| format!("{:.0}%", c * 100.0)),
                    r.writer
                        .map_or("-".into(), |w| duration(Duration::from_micros(
                            w.longest_commit_micros
                        )))
                );
                if r.accepted != r.sent || !r.errors.is_empty() {
                    let _ = writeln!(
                        t,
                        "    {} of {} sent were accepted; refused: {:?}",
                        r.accepted, r.sent, r.errors
                    );
                }
                if let Some((writer, commit)) = r.writer.and_then(|w| w.cpu_micros_per_command()) {
                    let _ = writeln!(
                        t,
                        "    CPU per command: writer thread {writer:.2} µs, commit thread \
                         {commit:.2} µs (the writer thread alone could decide {}/s)",
                        count(1e6 / writer.max(f64::MIN_POSITIVE))
                    );
                }
                if let Some(m) = r.memory {
                    let _ = writeln!(
                        t,
                        "    resident memory at the end {:.0} MiB; the process's peak so far {:.0} MiB",
                        m.resident_bytes as f64 / MIB,
                        m.peak_resident_bytes as f64 / MIB
                    );
                }
            }
            let _ = writeln!(
                t,
                "  (commit: mean synced write per batch; in sync: share of the phase's wall time \
                 the commit thread spent in it, while the writer decides the next batch; longest: \
                 the longest synced write)"
            );
        }
        let ratios = self.ratios();
        if !ratios.is_empty() {
            let _ = writeln!(t, "\nratios");
            for (_, label, ratio) in &ratios {
                let _ = writeln!(t, "  {label:<72} {ratio:>6.3}");
            }
            if let (Some(l), Some(http)) = (&self.limits, self.result("http")) {
                let bound = l.batch_1_per_s * self.clients as f64;
                let _ = writeln!(
                    t,
                    "  {:<72} {:>6.3}",
                    format!(
                        "{} / ({} clients x synced batches of 1 per s)",
                        http.label, self.clients
                    ),
                    http.rate() / bound
                );
            }
        }
        t
    }

    fn to_json(&self) -> Value {
        let mut phases = serde_json::Map::new();
        for r in &self.results {
            phases.insert(r.name.to_string(), r.to_json());
        }
        let mut ratios = serde_json::Map::new();
        if let Some(l) = &self.limits {
            for r in &self.results {
                ratios.insert(
                    format!("{}_over_verify_strict_all_threads", r.name),
                    json!(r.rate() / l.verify_nt),
                );
                ratios.insert(
                    format!("{}_over_envelope_checks_all_threads", r.name),
                    json!(r.rate() / l.envelope_nt),
                );
            }
            if let Some(http) = self.result("http") {
                ratios.insert(
                    "http_over_clients_times_synced_batches_of_1".into(),
                    json!(http.rate() / (l.batch_1_per_s * self.clients as f64)),
                );
            }
        }
        for (name, _, ratio) in self.baseline_ratios() {
            let key = match name {
                "writer" => "writer_over_postgres_copy_batches",
                _ => "http_over_postgres_one_entry_transactions",
            };
            ratios.insert(key.into(), json!(ratio));
        }
        json!({
            "commands": self.commands,
            "mix": self.mix,
            "clients": self.clients,
            "window": self.window,
            "max_batch_commands": self.max_batch,
            "cores": self.cores,
            "limits": self.limits.as_ref().map(Limits::to_json),
            "phases": phases,
            "ratios": ratios,
            "postgres": self.baseline,
        })
    }
}

/// A rate or count with thousands separators.
fn count(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A latency in the unit that suits it.
fn duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 10_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::routing::post;

    #[test]
    fn the_cpu_time_of_named_threads_is_read_from_the_kernel() {
        let name = "bench-cpu-probe";
        assert_eq!(threads_cpu_nanos(name), None, "no such thread yet");
        let (spun, has_spun) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let spinner = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let started = Instant::now();
                let mut spins = 0u64;
                while started.elapsed() < Duration::from_millis(50) {
                    spins = std::hint::black_box(spins + 1);
                }
                spun.send(()).unwrap();
                stopped.recv().unwrap();
            })
            .unwrap();
        has_spun.recv().unwrap();
        let nanos = threads_cpu_nanos(name).expect("the spinning thread is counted");
        // It ran for about 50 ms of wall time, most of it on a core.
        assert!(nanos >= 10_000_000, "{nanos} ns");
        assert!(nanos < 10_000_000_000, "{nanos} ns");
        stop.send(()).unwrap();
        spinner.join().unwrap();
    }

    #[test]
    fn a_scheduled_command_counts_from_when_it_was_due_or_sent() {
        let due = Instant::now() + Duration::from_secs(10);
        let ms = Duration::from_millis;
        // Behind schedule: the wait for earlier answers counts, however late the send.
        assert_eq!(scheduled_start(due, due, due + ms(40)), due);
        assert_eq!(scheduled_start(due, due + ms(3), due + ms(40)), due);
        // Idle until due, woken within the timer's resolution: counts from the wake-up.
        assert_eq!(scheduled_start(due, due - ms(5), due), due);
        assert_eq!(scheduled_start(due, due - ms(5), due + ms(1)), due + ms(1));
        // Woken later than that: the lateness beyond the resolution counts.
        assert_eq!(scheduled_start(due, due - ms(5), due + ms(7)), due + ms(1));
    }

    /// A server that accepts a body `ok`, refuses anything else with a problem document, and
    /// closes the connection after every answer.
    async fn serve_answers() -> String {
        let app = axum::Router::new().route(
            "/v1/commands",
            post(|body: Bytes| async move {
                let close = [(axum::http::header::CONNECTION, "close")];
                if &body[..] == b"ok" {
                    (StatusCode::CREATED, close, String::new())
                } else {
                    let problem = r#"{"code":"invalid-envelope"}"#.to_string();
                    (StatusCode::BAD_REQUEST, close, problem)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn each_answer_is_classified_and_a_closed_connection_is_opened_again() {
        let target = PostTarget::parse(&commands_url(&serve_answers().await)).unwrap();
        let mut connection = None;
        for _ in 0..3 {
            assert_eq!(
                target.post(&mut connection, Bytes::from("ok")).await,
                Ok(())
            );
            let refused = target.post(&mut connection, Bytes::from("no")).await;
            assert_eq!(refused, Err("HTTP 400 invalid-envelope".to_string()));
        }
        let nobody = PostTarget::parse("http://127.0.0.1:1/v1/commands").unwrap();
        let error = nobody.post(&mut None, Bytes::from("ok")).await.unwrap_err();
        assert!(error.starts_with("connecting:"), "{error}");
        assert!(PostTarget::parse("https://node.example/v1/commands").is_err());
    }
}
