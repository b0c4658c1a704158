//! Model-based tests of the voucher domain: random command sequences run through the real state
//! machine, each step checked against a small reference model of the money (program buckets,
//! voucher balances, order shares) and the invariants of the design: value conserved per program,
//! no negative balance, every cap, escrow funded = held + released + refunded, settlement nets to
//! zero, clawed-back value a receivable until recovered. Every order's share matches the quote
//! taken just before it is placed. Each sequence ends past the claim deadline, after the node's
//! release of unclaimed shares: no value may stay committed except to claims under way. Every
//! accepted command is written as a real signed entry; at the end, replaying those entries from
//! nothing must give exactly the same state.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};
use vledger_domain::claims::{ClaimStatus, SettlementPosition, SETTLEMENT_PREFIX};
use vledger_domain::money::AmountMinor;
use vledger_domain::orders::{quote_order, EscrowStatus, ListingRef, OrderRecord, OrderStatus};
use vledger_domain::programs::{load_program, BudgetBuckets};
use vledger_domain::vouchers::{load_voucher, VoucherStatus};
use vledger_domain::{
    self as domain, ApplyContext, ApplyError, Command, Event, MemoryState, Rejection,
};
use vledger_offline::replay::{EventFolder, MemoryReplay, Replayer};
use vledger_tlog::keys::SigningKey;
use vledger_tlog::merkle::leaf_hash;
use vledger_wire::entry::Entry;
use vledger_wire::envelope::{seal, CommandPayload, VerifiedEnvelope};

const DAY_MS: u64 = 86_400_000;
const START_MS: u64 = 1_767_225_600_000;
const BUDGET: u64 = 1_000_000;
const PER_VOUCHER: u64 = 150_000;
const PER_ORDER: u64 = 100_000;
const PER_ENTERPRISE_YEAR: u64 = 250_000;
const PER_GROUP_YEAR: u64 = 400_000;
const RATIO_BPS: u64 = 6000;
const LISTING_PRICE: u64 = 100_000;
const CLAIM_DEADLINE_MS: u64 = START_MS + 360 * DAY_MS;

/// A ledger held in memory that writes real entries, as the writer does.
#[derive(Clone)]
struct Ledger {
    state: MemoryState,
    entries: Vec<Vec<u8>>,
    node: SigningKey,
    time_ms: u64,
    nonce: u64,
}

impl Ledger {
    fn submit(
        &mut self,
        signer: &SigningKey,
        command_type: &str,
        body: Value,
    ) -> Result<Vec<Event>, Rejection> {
        self.nonce += 1;
        let payload = CommandPayload {
            v: 1,
            command_type: command_type.into(),
            region: "cq".try_into().unwrap(),
            signer: signer.public_key(),
            nonce: format!("n{}", self.nonce),
            body,
        };
        let envelope = VerifiedEnvelope::parse_and_verify(&seal(&payload, signer)).unwrap();
        let command = Command::parse(command_type, &envelope.payload.body)?;
        let index = self.entries.len() as u64;
        let ctx = ApplyContext {
            index,
            node_time_ms: self.time_ms,
            region: "cq".try_into().unwrap(),
            node_key: self.node.public_key(),
        };
        match domain::apply(&mut self.state, &ctx, &signer.public_key(), &command) {
            Ok(events) => {
                let prev_leaf_hash = self.entries.last().map(|e| leaf_hash(e)).unwrap_or([0; 32]);
                let entry = Entry {
                    index,
                    node_time_ms: self.time_ms,
                    prev_leaf_hash,
                    envelope: envelope.raw,
                    events: domain::encode_events(&events),
                };
                self.entries.push(entry.encode());
                Ok(events)
            }
            Err(ApplyError::Rejected(r)) => Err(r),
            Err(ApplyError::State(e)) => panic!("state error: {e}"),
        }
    }
}

fn b64(k: &SigningKey) -> String {
    k.public_key().to_base64()
}

/// The reference model: where the money should be.
#[derive(Default, Debug, Clone)]
struct Model {
    buckets: BudgetBuckets,
    /// voucher id -> (holder index, balance, active)
    vouchers: BTreeMap<String, (usize, u64, bool)>,
    /// order id -> (voucher id, share, enterprise index)
    orders: BTreeMap<String, (String, u64, usize)>,
    /// Orders whose share the node released at the claim deadline.
    released: std::collections::BTreeSet<String>,
    settled_claims: u64,
}

#[derive(Clone)]
struct World {
    ledger: Ledger,
    admins: [SigningKey; 2],
    regulator: SigningKey,
    enterprises: [SigningKey; 3],
    agencies: [SigningKey; 2],
    escrow: SigningKey,
    model: Model,
    next_id: u64,
}

impl World {
    fn new() -> Self {
        let key = || SigningKey::generate(&mut rand_core_rng());
        let node = key();
        let mut ledger = Ledger {
            state: MemoryState::default(),
            entries: Vec::new(),
            node: node.clone(),
            time_ms: START_MS,
            nonce: 0,
        };
        let admins = [key(), key()];
        let genesis =
            json!({ "region_name": "CQ", "admin_key": b64(&admins[0]), "admin_name": "A" });
        ledger.submit(&node, "region.genesis", genesis).unwrap();
        let mut w = Self {
            ledger,
            admins,
            regulator: key(),
            enterprises: [key(), key(), key()],
            agencies: [key(), key()],
            escrow: key(),
            model: Model::default(),
            next_id: 0,
        };
        let admin = w.admins[0].clone();
        let register = |w: &mut World, k: &SigningKey, role: &str| {
            let body = json!({ "key": b64(k), "role": role, "home_region": "cq", "name": "P" });
            w.ledger.submit(&admin, "party.register", body).unwrap();
        };
        let (second_admin, regulator, escrow) =
            (w.admins[1].clone(), w.regulator.clone(), w.escrow.clone());
        register(&mut w, &second_admin, "admin");
        register(&mut w, &regulator, "regulator");
        register(&mut w, &escrow, "escrow");
        for e in w.enterprises.clone() {
            register(&mut w, &e, "enterprise");
        }
        for a in w.agencies.clone() {
            register(&mut w, &a, "agency");
            let body = json!({ "agency": b64(&a), "expires_at_ms": START_MS + 400 * DAY_MS });
            w.ledger.submit(&admin, "agency.accredit", body).unwrap();
        }
        // Enterprises 1 and 2 share a controlling group.
        for e in &w.enterprises.clone()[1..] {
            let body = json!({ "party": b64(e), "controlling_group": "G" });
            w.ledger
                .submit(&admin, "party.declare_affiliation", body)
                .unwrap();
        }
        let program = json!({
            "program_id": "p", "name": "P", "kind": "resource_sharing", "currency": "CNY", "budget_minor": BUDGET,
            "subsidy_ratio_bps": RATIO_BPS,
            "caps": { "per_voucher_minor": PER_VOUCHER, "per_order_minor": PER_ORDER,
                      "per_enterprise_year_minor": PER_ENTERPRISE_YEAR, "per_group_year_minor": PER_GROUP_YEAR },
            "eligible_categories": ["testing"], "valid_from_ms": START_MS, "valid_until_ms": START_MS + 300 * DAY_MS,
            "claim_deadline_ms": CLAIM_DEADLINE_MS, "spend_regions": ["cq"], "cross_region_payer": "agency_region",
            "use_mode": "multi", "review_levels": 2, "notice_period_ms": 2 * DAY_MS
        });
        w.ledger.submit(&admin, "program.create", program).unwrap();
        w.model.buckets.unissued_minor = BUDGET;
        for e in w.enterprises.clone() {
            let body = json!({ "program_id": "p", "enterprise": b64(&e), "expires_at_ms": START_MS + 300 * DAY_MS });
            w.ledger.submit(&admin, "enterprise.qualify", body).unwrap();
        }
        for (i, a) in w.agencies.clone().iter().enumerate() {
            let body = json!({ "listing_id": format!("l{i}"), "pool": "instruments_equipment", "category": "testing",
                "title": "检测", "description": "testing", "price_minor": LISTING_PRICE, "currency": "CNY" });
            w.ledger.submit(a, "catalog.list", body).unwrap();
        }
        w
    }

    fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    fn nth(map: &BTreeMap<String, impl Sized>, n: usize) -> Option<&String> {
        if map.is_empty() {
            None
        } else {
            map.keys().nth(n % map.len())
        }
    }

    fn order(&self, id: &str) -> OrderRecord {
        vledger_domain::orders::load_order(&self.ledger.state, &id.try_into().unwrap())
            .unwrap()
            .unwrap()
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Issue { holder, face } => {
                let id = self.fresh_id("v");
                let body = json!({ "voucher_id": id, "program_id": "p", "holder": b64(&self.enterprises[holder]), "face_value_minor": face });
                let admin = self.admins[0].clone();
                let result = self.ledger.submit(&admin, "voucher.issue", body);
                let in_window = self.ledger.time_ms < START_MS + 300 * DAY_MS;
                let expected =
                    in_window && face <= PER_VOUCHER && face <= self.model.buckets.unissued_minor;
                assert_eq!(
                    result.is_ok(),
                    expected,
                    "issue {face}: {result:?}, model {:?}",
                    self.model.buckets
                );
                if result.is_ok() {
                    self.model.buckets.unissued_minor -= face;
                    self.model.buckets.outstanding_minor += face;
                    self.model.vouchers.insert(id, (holder, face, true));
                }
            }
            Op::Place {
                voucher,
                agency,
                price,
                escrow,
            } => {
                let Some(voucher_id) = Self::nth(&self.model.vouchers, voucher).cloned() else {
                    return;
                };
                let (holder, balance, _) = self.model.vouchers[&voucher_id];
                let id = self.fresh_id("o");
                let listing_id = format!("l{agency}");
                // A client asks for the share first; placement must give exactly the quote.
                let quote = quote_order(
                    &self.ledger.state,
                    self.ledger.time_ms,
                    &voucher_id.as_str().try_into().unwrap(),
                    ListingRef {
                        id: &listing_id.as_str().try_into().unwrap(),
                        region: None,
                    },
                    AmountMinor::new(price).unwrap(),
                );
                let payment = match (escrow, &quote) {
                    (true, _) => {
                        json!({ "mode": "escrow", "escrow_provider": b64(&self.escrow), "fee_minor": 10 })
                    }
                    // The enterprise's share from the quote, in one explicit installment.
                    (false, Ok(q)) if price % 2 == 0 && q.enterprise_share_minor > 0 => {
                        json!({ "mode": "direct", "installments": [{ "amount_minor": q.enterprise_share_minor, "due_at_ms": self.ledger.time_ms + DAY_MS }] })
                    }
                    // Or the single installment the node derives.
                    (false, _) => json!({ "mode": "direct" }),
                };
                let body = json!({ "order_id": id, "listing_id": listing_id, "voucher_id": voucher_id,
                    "price_minor": price, "payment": payment, "auto_confirm_after_ms": 3 * DAY_MS });
                let enterprise = self.enterprises[holder].clone();
                let result = self.ledger.submit(&enterprise, "order.place", body.clone());
                match (&quote, &result) {
                    (Ok(q), Ok(events)) => assert!(
                        matches!(events[0], Event::OrderPlaced { voucher_share_minor, enterprise_share_minor, .. }
                            if voucher_share_minor == q.voucher_share_minor && enterprise_share_minor == q.enterprise_share_minor),
                        "placement differs from its quote {q:?}: {events:?}"
                    ),
                    (Err(ApplyError::Rejected(q)), Err(r)) => {
                        assert_eq!(q, r, "the quote and placement refuse differently")
                    }
                    (q, r) => panic!("quote {q:?} and placement {r:?} disagree"),
                }
                match result {
                    Ok(events) => {
                        let Event::OrderPlaced {
                            voucher_share_minor: share,
                            enterprise_share_minor: rest,
                            ..
                        } = events[0]
                        else {
                            panic!("{events:?}")
                        };
                        assert!(
                            share > 0 && share <= balance && share <= PER_ORDER,
                            "share {share}, balance {balance}"
                        );
                        assert!(
                            share <= price * RATIO_BPS / 10_000,
                            "share {share} over the ratio of {price}"
                        );
                        assert_eq!(share + rest, price);
                        assert!(price <= LISTING_PRICE, "price {price} above the listing's");
                        self.model.vouchers.get_mut(&voucher_id).unwrap().1 -= share;
                        self.model.orders.insert(id, (voucher_id, share, holder));
                    }
                    Err(r) => assert!(
                        matches!(
                            r,
                            Rejection::NoSubsidyLeft { .. }
                                | Rejection::VoucherNotActive { .. }
                                | Rejection::VoucherFrozen
                                | Rejection::ProgramNotOpen { .. }
                                | Rejection::InvalidField { .. }
                        ) || matches!(r, Rejection::PriceAboveListing { .. } if price > LISTING_PRICE),
                        "{r:?}"
                    ),
                }
            }
            Op::OrderStep { order, action } => {
                let Some(order_id) = Self::nth(&self.model.orders, order).cloned() else {
                    return;
                };
                let record = self.order(&order_id);
                let body = json!({ "order_id": order_id, "reason": "r" });
                let (enterprise, agency) = (self.enterprise_of(&record), self.agency_of(&record));
                let result = match action {
                    Action::Fund => {
                        let fund = json!({ "order_id": order_id, "amount_minor": record.enterprise_share_minor, "reference": "R" });
                        let escrow = self.escrow.clone();
                        self.ledger.submit(&escrow, "escrow.fund", fund)
                    }
                    Action::Deliver(seed) => {
                        let evidence = json!([{ "kind": "invoice", "sha256": format!("{seed:x}").repeat(64) }]);
                        self.ledger.submit(
                            &agency,
                            "order.deliver",
                            json!({ "order_id": order_id, "evidence": evidence }),
                        )
                    }
                    Action::Confirm => self.ledger.submit(&enterprise, "order.confirm", body),
                    Action::Dispute => self.ledger.submit(&enterprise, "order.dispute", body),
                    Action::Cancel => self.ledger.submit(&enterprise, "order.cancel", body),
                    Action::Resolve(release) => {
                        let outcome = if release { "release" } else { "refund" };
                        let admin = self.admins[0].clone();
                        self.ledger.submit(
                            &admin,
                            "dispute.resolve",
                            json!({ "order_id": order_id, "outcome": outcome, "reason": "r" }),
                        )
                    }
                    Action::AutoConfirm => {
                        let node = self.ledger.node.clone();
                        self.ledger.submit(&node, "order.auto_confirm", body)
                    }
                    Action::Claim => {
                        self.ledger
                            .submit(&agency, "claim.submit", json!({ "order_id": order_id }))
                    }
                    Action::Review {
                        level,
                        approve,
                        reviewer,
                    } => {
                        let decision = if approve { "approve" } else { "reject" };
                        let admin = self.admins[reviewer].clone();
                        let body =
                            json!({ "order_id": order_id, "level": level, "decision": decision });
                        self.ledger.submit(&admin, "claim.review", body)
                    }
                    Action::Acknowledge(installment) => {
                        let body = json!({ "order_id": order_id, "installment": installment, "reference": "B" });
                        self.ledger.submit(&agency, "payment.acknowledge", body)
                    }
                    Action::Pay => {
                        let admin = self.admins[0].clone();
                        self.ledger.submit(
                            &admin,
                            "claim.pay",
                            json!({ "order_id": order_id, "reference": "T" }),
                        )
                    }
                    Action::Clawback => {
                        let regulator = self.regulator.clone();
                        self.ledger.submit(
                            &regulator,
                            "claim.clawback",
                            json!({ "order_id": order_id, "reason": "forged invoice" }),
                        )
                    }
                    Action::Recover(amount) => {
                        let admin = self.admins[1].clone();
                        self.ledger.submit(
                            &admin,
                            "claim.recover",
                            json!({ "order_id": order_id, "amount_minor": amount, "reference": "B" }),
                        )
                    }
                };
                if let Ok(events) = result {
                    for event in events {
                        self.model_order_event(&order_id, &event);
                    }
                }
            }
            Op::VoucherStep { voucher, action } => {
                let Some(voucher_id) = Self::nth(&self.model.vouchers, voucher).cloned() else {
                    return;
                };
                let (_, balance, active) = self.model.vouchers[&voucher_id];
                let body = json!({ "voucher_id": voucher_id, "reason": "r" });
                let (admin, regulator, node) = (
                    self.admins[0].clone(),
                    self.regulator.clone(),
                    self.ledger.node.clone(),
                );
                let result = match action {
                    VoucherAction::Revoke => self.ledger.submit(&admin, "voucher.revoke", body),
                    VoucherAction::Freeze => self.ledger.submit(&regulator, "voucher.freeze", body),
                    VoucherAction::Unfreeze => self.ledger.submit(&admin, "voucher.unfreeze", body),
                    VoucherAction::Expire => self.ledger.submit(
                        &node,
                        "voucher.expire",
                        json!({ "voucher_id": voucher_id }),
                    ),
                };
                match (action, result) {
                    (VoucherAction::Revoke, Ok(events)) => {
                        assert!(active);
                        assert!(
                            matches!(events[0], Event::VoucherRevoked { returned_minor, .. } if returned_minor == balance)
                        );
                        self.model.buckets.outstanding_minor -= balance;
                        self.model.buckets.revoked_minor += balance;
                        self.model.vouchers.get_mut(&voucher_id).unwrap().1 = 0;
                        self.model.vouchers.get_mut(&voucher_id).unwrap().2 = false;
                    }
                    (VoucherAction::Revoke, Err(r)) => {
                        assert!(!active, "revoke of an active voucher refused: {r:?}")
                    }
                    (VoucherAction::Expire, Ok(events)) => {
                        assert!(
                            matches!(events[0], Event::VoucherExpired { returned_minor, .. } if returned_minor == balance)
                        );
                        self.model.buckets.outstanding_minor -= balance;
                        self.model.buckets.expired_minor += balance;
                        self.model.vouchers.get_mut(&voucher_id).unwrap().1 = 0;
                        self.model.vouchers.get_mut(&voucher_id).unwrap().2 = false;
                    }
                    _ => {}
                }
            }
            Op::Advance { ms } => self.ledger.time_ms += ms,
            Op::Sweep => self.sweep_unclaimed(),
        }
    }

    /// The node's claim-deadline sweep: `order.release_unclaimed` for every order. Accepted
    /// exactly for the orders past the deadline that no claim took, whose share is not yet back.
    fn sweep_unclaimed(&mut self) {
        let node = self.ledger.node.clone();
        for order_id in self.model.orders.keys().cloned().collect::<Vec<_>>() {
            let order = self.order(&order_id);
            let claimed = vledger_domain::claims::load_claim(
                &self.ledger.state,
                &order_id.as_str().try_into().unwrap(),
            )
            .unwrap()
            .is_some();
            let due = self.ledger.time_ms > CLAIM_DEADLINE_MS
                && order.status != OrderStatus::Cancelled
                && !claimed
                && !self.model.released.contains(&order_id);
            let result = self.ledger.submit(
                &node,
                "order.release_unclaimed",
                json!({ "order_id": order_id }),
            );
            assert_eq!(result.is_ok(), due, "release of {order_id}: {result:?}");
            if let Ok(events) = result {
                for event in events {
                    self.model_order_event(&order_id, &event);
                }
            }
        }
    }

    /// Past the claim deadline and the node's sweep, value stays committed only to claims under
    /// way (in review or in notice): every other order's share is spent or returned.
    fn check_nothing_stuck(&self) {
        assert!(self.ledger.time_ms > CLAIM_DEADLINE_MS);
        let state = &self.ledger.state;
        let mut in_flight: BTreeMap<&str, u64> = BTreeMap::new();
        for (id, (voucher_id, share, _)) in &self.model.orders {
            let claim = vledger_domain::claims::load_claim(state, &id.as_str().try_into().unwrap())
                .unwrap();
            if claim
                .is_some_and(|c| matches!(c.status, ClaimStatus::InReview | ClaimStatus::InNotice))
            {
                *in_flight.entry(voucher_id).or_default() += share;
            }
        }
        let mut committed_total = 0;
        for id in self.model.vouchers.keys() {
            let v = load_voucher(state, &id.as_str().try_into().unwrap())
                .unwrap()
                .unwrap();
            assert_eq!(
                v.committed_minor,
                in_flight.get(id.as_str()).copied().unwrap_or(0),
                "voucher {id} keeps value committed past the claim deadline"
            );
            committed_total += v.committed_minor;
            if v.status != VoucherStatus::Active {
                assert_eq!(v.balance_minor, 0);
            }
        }
        let buckets = load_program(state, &"p".try_into().unwrap())
            .unwrap()
            .unwrap()
            .buckets;
        let balances: u64 = self.model.vouchers.values().map(|(_, b, _)| b).sum();
        assert_eq!(
            buckets.outstanding_minor,
            committed_total + balances,
            "outstanding is more than balances and claims under way"
        );
    }

    fn enterprise_of(&self, order: &OrderRecord) -> SigningKey {
        self.enterprises
            .iter()
            .find(|k| k.public_key() == order.enterprise)
            .unwrap()
            .clone()
    }

    fn agency_of(&self, order: &OrderRecord) -> SigningKey {
        self.agencies
            .iter()
            .find(|k| k.public_key() == order.agency)
            .unwrap()
            .clone()
    }

    fn voucher_of(&self, order_id: &str) -> vledger_domain::vouchers::VoucherRecord {
        let voucher_id = &self.model.orders[order_id].0;
        load_voucher(&self.ledger.state, &voucher_id.as_str().try_into().unwrap())
            .unwrap()
            .unwrap()
    }

    /// Moves a voucher share back: to the voucher if it is active, else to the bucket of its end.
    fn model_return_share(&mut self, order_id: &str) {
        let (voucher_id, share, _) = self.model.orders[order_id].clone();
        let status = load_voucher(&self.ledger.state, &voucher_id.as_str().try_into().unwrap())
            .unwrap()
            .unwrap()
            .status;
        match status {
            VoucherStatus::Active => self.model.vouchers.get_mut(&voucher_id).unwrap().1 += share,
            VoucherStatus::Revoked => {
                self.model.buckets.outstanding_minor -= share;
                self.model.buckets.revoked_minor += share;
            }
            VoucherStatus::Expired => {
                self.model.buckets.outstanding_minor -= share;
                self.model.buckets.expired_minor += share;
            }
        }
    }

    fn model_order_event(&mut self, order_id: &str, event: &Event) {
        match event {
            Event::OrderCancelled { .. } if self.model.released.contains(order_id) => {}
            Event::OrderCancelled { .. } | Event::ClaimRejected { .. } => {
                self.model_return_share(order_id)
            }
            Event::UnclaimedShareReleased { amount_minor, .. } => {
                assert_eq!(*amount_minor, self.model.orders[order_id].1);
                self.model_return_share(order_id);
                self.model.released.insert(order_id.to_string());
            }
            Event::ClaimApproved { .. } | Event::ClaimPaid { .. }
                if self.voucher_of(order_id).frozen =>
            {
                panic!("a claim on a frozen voucher was approved or paid: {event:?}")
            }
            Event::ClaimClawedBack {
                receivable_minor, ..
            } => {
                assert_eq!(*receivable_minor, self.model.orders[order_id].1);
                self.model.buckets.spent_minor -= receivable_minor;
                self.model.buckets.clawed_back_minor += receivable_minor;
            }
            Event::ClaimRecovered { amount_minor, .. } => {
                self.model.buckets.clawed_back_minor -= amount_minor;
                self.model.buckets.recovered_minor += amount_minor;
            }
            Event::ClaimPaid { amount_minor, .. } => {
                assert_eq!(*amount_minor, self.model.orders[order_id].1);
                self.model.buckets.outstanding_minor -= amount_minor;
                self.model.buckets.spent_minor += amount_minor;
                self.model.settled_claims += 1;
            }
            _ => {}
        }
    }

    /// Every invariant, after every step.
    fn check(&self) {
        let state = &self.ledger.state;
        let program = load_program(state, &"p".try_into().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            program.buckets, self.model.buckets,
            "program buckets differ from the model"
        );
        assert_eq!(
            program.buckets.total(),
            Some(BUDGET),
            "value is not conserved"
        );
        for (id, (_, balance, _)) in &self.model.vouchers {
            let v = load_voucher(state, &id.as_str().try_into().unwrap())
                .unwrap()
                .unwrap();
            assert_eq!(v.balance_minor, *balance, "voucher {id} balance");
        }
        let mut per_enterprise = [0u64; 3];
        for (id, (_, share, holder)) in &self.model.orders {
            let order = self.order(id);
            if let Some(e) = &order.escrow {
                assert_eq!(
                    e.funded_minor,
                    e.held_minor + e.released_minor + e.refunded_minor
                );
                if e.status == EscrowStatus::Released {
                    assert_eq!(order.status, OrderStatus::Confirmed);
                }
            }
            let claim = vledger_domain::claims::load_claim(state, &id.as_str().try_into().unwrap())
                .unwrap();
            let counted = order.status != OrderStatus::Cancelled
                && order.unclaimed_released_at_ms.is_none()
                && claim.is_none_or(|c| c.status != ClaimStatus::Rejected);
            if counted {
                per_enterprise[*holder] += share;
            }
        }
        for spent in per_enterprise {
            assert!(
                spent <= PER_ENTERPRISE_YEAR,
                "per-enterprise cap broken: {spent}"
            );
        }
        assert!(
            per_enterprise[1] + per_enterprise[2] <= PER_GROUP_YEAR,
            "per-group cap broken"
        );
        let mut net: BTreeMap<String, i128> = BTreeMap::new();
        for (key, value) in &state.records {
            if key.starts_with(SETTLEMENT_PREFIX) {
                let p: SettlementPosition = domain::decode_record(key, value).unwrap();
                *net.entry(p.debtor.to_string()).or_default() -= i128::from(p.amount_minor);
                *net.entry(p.creditor.to_string()).or_default() += i128::from(p.amount_minor);
            }
        }
        assert_eq!(
            net.values().sum::<i128>(),
            0,
            "settlement does not net to zero"
        );
    }
}

fn rand_core_rng() -> impl rand_core::CryptoRngCore {
    rand_core::OsRng
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Fund,
    Deliver(u8),
    Confirm,
    Dispute,
    Cancel,
    Resolve(bool),
    AutoConfirm,
    Claim,
    Review {
        level: u8,
        approve: bool,
        reviewer: usize,
    },
    Acknowledge(u32),
    Pay,
    Clawback,
    Recover(u64),
}

#[derive(Debug, Clone, Copy)]
enum VoucherAction {
    Revoke,
    Freeze,
    Unfreeze,
    Expire,
}

#[derive(Debug, Clone)]
enum Op {
    Issue {
        holder: usize,
        face: u64,
    },
    Place {
        voucher: usize,
        agency: usize,
        price: u64,
        escrow: bool,
    },
    OrderStep {
        order: usize,
        action: Action,
    },
    VoucherStep {
        voucher: usize,
        action: VoucherAction,
    },
    Advance {
        ms: u64,
    },
    /// The node's clock sweep of orders past the claim deadline.
    Sweep,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => Just(Action::Fund),
        3 => (0u8..4).prop_map(Action::Deliver),
        2 => Just(Action::Confirm),
        1 => Just(Action::Dispute),
        1 => Just(Action::Cancel),
        1 => any::<bool>().prop_map(Action::Resolve),
        1 => Just(Action::AutoConfirm),
        3 => Just(Action::Claim),
        4 => (1u8..=2, prop::bool::weighted(0.85), 0usize..2)
            .prop_map(|(level, approve, reviewer)| Action::Review { level, approve, reviewer }),
        2 => (0u32..2).prop_map(Action::Acknowledge),
        3 => Just(Action::Pay),
        1 => Just(Action::Clawback),
        1 => (1u64..=60_000).prop_map(Action::Recover),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..3, 1u64..=160_000).prop_map(|(holder, face)| Op::Issue { holder, face }),
        4 => (any::<usize>(), 0usize..2, 1u64..=300_000, any::<bool>())
            .prop_map(|(voucher, agency, price, escrow)| Op::Place { voucher, agency, price, escrow }),
        10 => (any::<usize>(), action()).prop_map(|(order, action)| Op::OrderStep { order, action }),
        2 => (any::<usize>(), prop_oneof![Just(VoucherAction::Revoke), Just(VoucherAction::Freeze),
                Just(VoucherAction::Unfreeze), Just(VoucherAction::Expire)])
            .prop_map(|(voucher, action)| Op::VoucherStep { voucher, action }),
        2 => (0u64..=40 * DAY_MS).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Advance { ms: 200 * DAY_MS }),
        1 => Just(Op::Sweep),
    ]
}

fn setup() -> &'static (World, Replayer<MemoryReplay>) {
    static SETUP: std::sync::OnceLock<(World, Replayer<MemoryReplay>)> = std::sync::OnceLock::new();
    SETUP.get_or_init(|| {
        let world = World::new();
        let mut replayer = Replayer::in_memory();
        for entry in &world.ledger.entries {
            replayer.apply_entry(entry).expect("the set-up replays");
        }
        assert_eq!(replayer.state().state, world.ledger.state);
        (world, replayer)
    })
}

fn cases() -> u32 {
    std::env::var("VLEDGER_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_command_sequences_keep_every_invariant_and_replay_identically(ops in prop::collection::vec(op(), 1..40)) {
        // The set-up (parties, program, listings) is built and replayed once, then copied.
        let (template, replayed_setup) = setup();
        let mut world = template.clone();
        world.check();
        for op in &ops {
            world.step(op);
            world.check();
        }
        // Past the claim deadline, the node's sweep leaves nothing committed but claims under way.
        world.ledger.time_ms = world.ledger.time_ms.max(CLAIM_DEADLINE_MS + 1);
        world.sweep_unclaimed();
        world.check();
        world.check_nothing_stuck();
        let mut replayer = replayed_setup.clone();
        for (i, entry) in world.ledger.entries.iter().enumerate().skip(template.ledger.entries.len()) {
            replayer.apply_entry(entry).unwrap_or_else(|e| panic!("replay of entry {i}: {e}"));
        }
        prop_assert_eq!(&replayer.into_state().state, &world.ledger.state);
        // The projections folded from the recorded events alone are the same state.
        let mut folder = EventFolder::default();
        for entry in &world.ledger.entries {
            folder.fold(entry).unwrap_or_else(|e| panic!("folding {e}"));
        }
        prop_assert_eq!(&folder.state().state, &world.ledger.state);
    }
}
