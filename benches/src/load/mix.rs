//! The command mix: the kinds of command the load generator makes, the weights it mixes them
//! in, and the keys, region and set-up commands they are made for.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vledger_domain::types::RegionId;
use vledger_domain::GenesisBody;
use vledger_node::node::{Node, NodeConfig};
use vledger_tlog::keys::SigningKey;
use vledger_wire::envelope::{seal, CommandPayload, VerifiedEnvelope, COMMAND_FORMAT_VERSION};

use super::{ORIGIN, REGION};

/// A kind of command the load generator can make. To add one: a variant, its name, the commands
/// that must be in the log before it can be applied (`setup`), and how to make the `seq`-th one
/// (`build`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CommandKind {
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

    pub(crate) fn name(self) -> &'static str {
        match self {
            CommandKind::PartyRegister => "party.register",
            CommandKind::VoucherLifecycle => "voucher.lifecycle",
        }
    }

    /// Commands submitted (and awaited) on every fresh node before the timed phase.
    pub(crate) fn setup(self, fixture: &Fixture) -> Vec<Vec<u8>> {
        match self {
            CommandKind::PartyRegister => Vec::new(),
            CommandKind::VoucherLifecycle => fixture.lifecycle_setup(),
        }
    }

    /// The signed envelope of the `seq`-th of `total` commands (`seq` is unique in the run).
    pub(crate) fn build(self, fixture: &Fixture, seq: u64, total: u64) -> Vec<u8> {
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
pub(crate) struct Mix {
    pub(crate) cycle: Vec<CommandKind>,
    pub(crate) weights: Vec<(CommandKind, u32)>,
}

impl Mix {
    pub(crate) fn parse(text: &str) -> Result<Self> {
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

    pub(crate) fn kind(&self, seq: u64) -> CommandKind {
        self.cycle[(seq % self.cycle.len() as u64) as usize]
    }

    pub(crate) fn describe(&self) -> String {
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
pub(crate) struct Fixture {
    pub(crate) region: RegionId,
    pub(crate) admin: SigningKey,
    pub(crate) run: u64,
    /// The wall clock when the run started: the lifecycle program's validity is around it.
    pub(crate) now_ms: u64,
    /// Appended to every record id and nonce the run makes: empty on a fresh node of the
    /// bench's own, the run's number on a target node that may hold earlier runs.
    pub(crate) scope: String,
}

impl Fixture {
    /// A fixture for fresh nodes: a new region admin.
    pub(crate) fn new() -> Self {
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
    pub(crate) fn for_target(region: RegionId, admin: SigningKey) -> Self {
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

    pub(crate) fn enterprise(&self, n: u64) -> SigningKey {
        self.derived_key("enterprise", n % LIFECYCLE_ENTERPRISES)
    }

    pub(crate) fn agency(&self, n: u64) -> SigningKey {
        self.derived_key("agency", n % LIFECYCLE_AGENCIES)
    }

    pub(crate) fn escrow(&self) -> SigningKey {
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

    pub(crate) fn sign(
        &self,
        key: &SigningKey,
        command_type: &str,
        seq: u64,
        body: Value,
    ) -> Vec<u8> {
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
    pub(crate) fn open_node(
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
