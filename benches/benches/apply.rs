//! The pure state machine, per command type: `domain::apply` (decide, the events' encoding that
//! checks their bound, evolve) of each stage of a voucher's life on in-memory state, as a
//! regulator's replay runs it (no signatures, no storage). For each stage, the state holds `PREPARED` vouchers that went through the earlier
//! stages; the timed loop applies the stage to them one after another.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use vledger_benches::{admin_key, key_from_seed, node_key, REGION};
use vledger_domain::{apply, encode_events, ApplyContext, Command, Event, MemoryState};
use vledger_tlog::keys::SigningKey;

const DAY_MS: u64 = 24 * 3600 * 1000;
const NOW_MS: u64 = 1_750_000_000_000;
const ENTERPRISES: u64 = 64;
const AGENCIES: u64 = 16;
const STAGES: [&str; 7] = [
    "voucher.issue",
    "order.place",
    "escrow.fund",
    "order.deliver",
    "order.confirm",
    "claim.submit",
    "claim.review",
];

struct World {
    state: MemoryState,
    index: u64,
    admin: SigningKey,
}

impl World {
    fn run(&mut self, signer: &SigningKey, command_type: &str, body: Value) {
        let command = Command::parse(command_type, &body).expect("command parses");
        let ctx = self.ctx();
        apply(&mut self.state, &ctx, &signer.public_key(), &command)
            .unwrap_or_else(|e| panic!("{command_type}: {e}"));
        self.index += 1;
    }

    fn ctx(&self) -> ApplyContext {
        ApplyContext {
            index: self.index,
            node_time_ms: NOW_MS + self.index,
            region: REGION.try_into().expect("region id"),
            node_key: node_key().public_key(),
        }
    }

    fn founded() -> Self {
        let admin = admin_key();
        let mut world = World {
            state: MemoryState::default(),
            index: 0,
            admin: admin.clone(),
        };
        world.run(
            &node_key(),
            "region.genesis",
            json!({ "region_name": "CQ", "admin_key": admin.public_key().to_base64(), "admin_name": "A" }),
        );
        let parties = (0..ENTERPRISES)
            .map(|n| (enterprise(n), "enterprise"))
            .chain((0..AGENCIES).map(|n| (agency(n), "agency")))
            .chain([(escrow(), "escrow")]);
        for (key, role) in parties {
            let body = json!({ "key": key.public_key().to_base64(), "role": role, "home_region": REGION, "name": role });
            world.run(&admin, "party.register", body);
        }
        for n in 0..AGENCIES {
            let body = json!({ "agency": agency(n).public_key().to_base64(), "expires_at_ms": NOW_MS + 365 * DAY_MS });
            world.run(&admin, "agency.accredit", body);
        }
        world.run(&admin, "program.create", json!({
            "program_id": "bench-rs", "name": "vouchers", "kind": "resource_sharing", "currency": "CNY",
            "budget_minor": 1_000_000_000_000_000u64, "subsidy_ratio_bps": 5000,
            "caps": { "per_voucher_minor": 1_000_000, "per_order_minor": 1_000_000,
                      "per_enterprise_year_minor": 100_000_000_000_000u64, "per_group_year_minor": 100_000_000_000_000u64 },
            "eligible_categories": ["testing"], "valid_from_ms": NOW_MS - DAY_MS, "valid_until_ms": NOW_MS + 90 * DAY_MS,
            "claim_deadline_ms": NOW_MS + 120 * DAY_MS, "spend_regions": [REGION], "cross_region_payer": "agency_region",
            "use_mode": "single", "review_levels": 1, "notice_period_ms": 1000 }));
        for n in 0..ENTERPRISES {
            let body = json!({ "program_id": "bench-rs", "enterprise": enterprise(n).public_key().to_base64(),
                               "expires_at_ms": NOW_MS + 60 * DAY_MS });
            world.run(&admin, "enterprise.qualify", body);
        }
        for n in 0..AGENCIES {
            let body = json!({ "listing_id": format!("listing-{n}"), "pool": "instruments_equipment",
                "category": "testing", "title": "XRD testing", "description": "CNAS accredited",
                "price_minor": 250_000, "currency": "CNY" });
            world.run(&agency(n), "catalog.list", body);
        }
        world
    }
}

fn enterprise(n: u64) -> SigningKey {
    key_from_seed("enterprise", n % ENTERPRISES)
}
fn agency(n: u64) -> SigningKey {
    key_from_seed("agency", n % AGENCIES)
}
fn escrow() -> SigningKey {
    key_from_seed("escrow", 0)
}

/// Stage `stage` of voucher `g`: its signer and parsed command.
fn stage_command(admin: &SigningKey, stage: usize, g: u64) -> (SigningKey, Command) {
    let (key, body) = stage_body(admin, stage, g);
    let command = Command::parse(STAGES[stage], &body).expect("command parses");
    (key, command)
}

/// Stage `stage` of voucher `g`: its signer and command body.
fn stage_body(admin: &SigningKey, stage: usize, g: u64) -> (SigningKey, Value) {
    let order = format!("o-{g}");
    let hash = |kind: u64| format!("{:032x}{:032x}", g, kind);
    let (key, body) = match STAGES[stage] {
        "voucher.issue" => (
            admin.clone(),
            json!({ "voucher_id": format!("v-{g}"), "program_id": "bench-rs",
            "holder": enterprise(g).public_key().to_base64(), "face_value_minor": 100_000 }),
        ),
        "order.place" => (
            enterprise(g),
            json!({ "order_id": order, "listing_id": format!("listing-{}", g % AGENCIES),
            "voucher_id": format!("v-{g}"), "price_minor": 250_000,
            "payment": { "mode": "escrow", "escrow_provider": escrow().public_key().to_base64(), "fee_minor": 1_000 },
            "auto_confirm_after_ms": 7 * DAY_MS }),
        ),
        "escrow.fund" => (
            escrow(),
            json!({ "order_id": order, "amount_minor": 150_000, "reference": "PAY" }),
        ),
        "order.deliver" => (
            agency(g),
            json!({ "order_id": order, "evidence": [
            { "kind": "contract", "sha256": hash(1) }, { "kind": "invoice", "sha256": hash(2) },
            { "kind": "report", "sha256": hash(3) } ] }),
        ),
        "order.confirm" => (enterprise(g), json!({ "order_id": order })),
        "claim.submit" => (agency(g), json!({ "order_id": order })),
        _ => (
            admin.clone(),
            json!({ "order_id": order, "level": 1, "decision": "approve" }),
        ),
    };
    (key, body)
}

/// `Command::parse` of each stage's body (as the checking threads run it after the envelope's
/// JSON is parsed; the body's keys are already in the checked-key set).
fn parse_per_command_type(c: &mut Criterion) {
    let admin = admin_key();
    let mut group = c.benchmark_group("parse");
    for (stage, name) in STAGES.iter().enumerate() {
        let (_, body) = stage_body(&admin, stage, 7);
        Command::parse(name, &body).expect("command parses");
        group.bench_function(*name, |b| b.iter(|| Command::parse(name, &body)));
    }
    group.finish();
}

/// The events of each stage's command, as one entry records them: their canonical encoding
/// (`encode_events`, written straight from the events) against the same bytes made through a
/// sorted `serde_json::Value` (the encoding's first definition, and its first implementation).
fn encode_events_per_command_type(c: &mut Criterion) {
    let mut world = World::founded();
    let admin = world.admin.clone();
    let mut group = c.benchmark_group("encode_events");
    for (stage, name) in STAGES.iter().enumerate() {
        let (key, command) = stage_command(&admin, stage, 0);
        let ctx = world.ctx();
        let events: Vec<Event> =
            apply(&mut world.state, &ctx, &key.public_key(), &command).expect("stage applies");
        world.index += 1;
        let through_value = || {
            serde_json::to_vec(&serde_json::to_value(&events).expect("events serialize"))
                .expect("values serialize")
        };
        assert_eq!(encode_events(&events), through_value());
        group.bench_function(format!("{name}/direct"), |b| {
            b.iter(|| encode_events(&events))
        });
        group.bench_function(format!("{name}/through_value"), |b| b.iter(through_value));
    }
    group.finish();
}

fn per_command_type(c: &mut Criterion) {
    let base = World::founded();
    let mut group = c.benchmark_group("apply");
    group.sample_size(10);
    for (stage, name) in STAGES.iter().enumerate() {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                // Untimed: a world whose first `iters` vouchers went through the earlier stages.
                let mut world = World {
                    state: base.state.clone(),
                    index: base.index,
                    admin: base.admin.clone(),
                };
                let admin = world.admin.clone();
                for earlier in 0..stage {
                    for g in 0..iters {
                        let (key, command) = stage_command(&admin, earlier, g);
                        let ctx = world.ctx();
                        apply(&mut world.state, &ctx, &key.public_key(), &command)
                            .expect("earlier stage");
                        world.index += 1;
                    }
                }
                let commands: Vec<_> = (0..iters)
                    .map(|g| {
                        let (key, command) = stage_command(&admin, stage, g);
                        (key.public_key(), command)
                    })
                    .collect();
                let started = Instant::now();
                for (signer, command) in &commands {
                    let ctx = world.ctx();
                    apply(&mut world.state, &ctx, signer, command).expect("stage applies");
                    world.index += 1;
                }
                started.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = per_command_type, parse_per_command_type, encode_events_per_command_type
}
criterion_main!(benches);
