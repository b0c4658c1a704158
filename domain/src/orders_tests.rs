//! Orders on the pure state machine: voucher share and caps, both payment modes, delivery,
//! confirmation, disputes, cancellation, every refusal, and the fraud flags.

use serde_json::{json, Value};

use super::orders::{
    load_order, EscrowStatus, FraudFlagRecord, FraudRule, OrderStatus, FRAUD_FLAG_PREFIX,
};
use super::programs::load_program;
use super::tests::{key, refusal, World};
use super::vouchers::load_voucher;
use super::vouchers_tests::program_body;
use super::*;
use vledger_tlog::keys::SigningKey;

const DAY_MS: u64 = 86_400_000;
const NOW: u64 = 1_700_000_000_000;

struct Market {
    w: World,
    admin: SigningKey,
    enterprise: SigningKey,
    agency: SigningKey,
    escrow: SigningKey,
}

fn b64(k: &SigningKey) -> String {
    k.public_key().to_base64()
}

impl Market {
    /// A program (50%, per-order cap 200,000, per voucher 300,000, per enterprise-year 500,000),
    /// a qualified enterprise with voucher `v1` of 300,000, an accredited agency with listing
    /// `lab-1` (category testing, price 1,000,000), and an escrow provider.
    fn new() -> Self {
        let mut w = World::founded();
        let admin = w.admin.clone();
        let (enterprise, agency, escrow) = (key(), key(), key());
        w.register(&enterprise, "enterprise").unwrap();
        w.register(&agency, "agency").unwrap();
        w.register(&escrow, "escrow").unwrap();
        w.run(&admin, "program.create", program_body("cq-rs"))
            .unwrap();
        let q = json!({ "program_id": "cq-rs", "enterprise": b64(&enterprise), "expires_at_ms": NOW + 20 * DAY_MS });
        w.run(&admin, "enterprise.qualify", q).unwrap();
        w.run(
            &admin,
            "agency.accredit",
            json!({ "agency": b64(&agency), "expires_at_ms": NOW + 365 * DAY_MS }),
        )
        .unwrap();
        let mut m = Self {
            w,
            admin,
            enterprise,
            agency,
            escrow,
        };
        m.list("lab-1", "testing", 1_000_000);
        m.issue("v1", 300_000);
        m
    }

    fn list(&mut self, id: &str, category: &str, price: u64) {
        let agency = self.agency.clone();
        let body = json!({
            "listing_id": id, "pool": "instruments_equipment", "category": category,
            "title": "材料检测", "description": "Material testing", "price_minor": price, "currency": "CNY"
        });
        self.w.run(&agency, "catalog.list", body).unwrap();
    }

    fn issue(&mut self, id: &str, face: u64) {
        let admin = self.admin.clone();
        let body = json!({ "voucher_id": id, "program_id": "cq-rs", "holder": b64(&self.enterprise), "face_value_minor": face });
        self.w.run(&admin, "voucher.issue", body).unwrap();
    }

    fn order_body(&self, id: &str, price: u64, payment: Value) -> Value {
        json!({ "order_id": id, "listing_id": "lab-1", "voucher_id": "v1", "price_minor": price,
                "payment": payment, "auto_confirm_after_ms": 7 * DAY_MS })
    }

    fn escrow_plan(&self) -> Value {
        json!({ "mode": "escrow", "escrow_provider": b64(&self.escrow), "fee_minor": 300 })
    }

    fn place(&mut self, id: &str, price: u64, payment: Value) -> Result<Vec<Event>, Rejection> {
        let enterprise = self.enterprise.clone();
        let body = self.order_body(id, price, payment);
        self.w.run(&enterprise, "order.place", body)
    }

    fn as_party(
        &mut self,
        who: &SigningKey,
        command_type: &str,
        body: Value,
    ) -> Result<Vec<Event>, Rejection> {
        self.w.run(who, command_type, body)
    }

    fn order(&self, id: &str) -> orders::OrderRecord {
        load_order(&self.w.state, &id.try_into().unwrap())
            .unwrap()
            .unwrap()
    }

    fn voucher_balance(&self) -> u64 {
        load_voucher(&self.w.state, &"v1".try_into().unwrap())
            .unwrap()
            .unwrap()
            .balance_minor
    }

    fn flags(&self) -> Vec<FraudFlagRecord> {
        self.w
            .state
            .records
            .iter()
            .filter(|(k, _)| k.starts_with(FRAUD_FLAG_PREFIX))
            .map(|(k, v)| crate::decode_record(k, v).unwrap())
            .collect()
    }

    fn evidence(&self, byte: char) -> Value {
        json!([{ "kind": "invoice", "sha256": byte.to_string().repeat(64) }, { "kind": "report", "sha256": "f".repeat(63) + &byte.to_string() }])
    }
}

#[test]
fn escrow_order_from_placement_to_release() {
    let mut m = Market::new();
    let events = m.place("o1", 100_000, m.escrow_plan()).unwrap();
    assert!(matches!(
        &events[0],
        Event::OrderPlaced {
            voucher_share_minor: 50_000,
            enterprise_share_minor: 50_000,
            ..
        }
    ));
    assert_eq!(m.voucher_balance(), 250_000);
    let (enterprise, agency, escrow) = (m.enterprise.clone(), m.agency.clone(), m.escrow.clone());

    let deliver = json!({ "order_id": "o1", "evidence": m.evidence('a') });
    // The state is named as the order's JSON names it, not as the Rust variant is spelt.
    assert_eq!(
        m.as_party(&agency, "order.deliver", deliver.clone()),
        Err(Rejection::EscrowWrongState {
            status: "awaiting_funds".into()
        })
    );
    let fund =
        |amount: u64| json!({ "order_id": "o1", "amount_minor": amount, "reference": "PAY-1" });
    assert!(matches!(
        m.as_party(&escrow, "escrow.fund", fund(49_999)),
        Err(Rejection::EscrowAmountMismatch { .. })
    ));
    assert!(matches!(
        m.as_party(&agency, "escrow.fund", fund(50_000)),
        Err(Rejection::NotAuthorized { .. })
    ));
    m.as_party(&escrow, "escrow.fund", fund(50_000)).unwrap();
    assert!(matches!(
        m.as_party(&escrow, "escrow.fund", fund(50_000)),
        Err(Rejection::EscrowWrongState { .. })
    ));

    let confirm = json!({ "order_id": "o1" });
    assert!(matches!(
        m.as_party(&enterprise, "order.confirm", confirm.clone()),
        Err(Rejection::OrderWrongState { .. })
    ));
    assert!(matches!(
        m.as_party(&enterprise, "order.deliver", deliver.clone()),
        Err(Rejection::NotAuthorized { .. })
    ));
    m.as_party(&agency, "order.deliver", deliver).unwrap();
    assert_eq!(
        m.as_party(&agency, "order.confirm", confirm.clone()),
        Err(Rejection::NotAuthorized(refusal(
            "order.confirm",
            "the order's enterprise",
            "an agency"
        )))
    );
    let other = key();
    m.w.register(&other, "enterprise").unwrap();
    assert_eq!(
        m.as_party(&other, "order.confirm", confirm.clone()),
        Err(Rejection::NotAuthorized(refusal(
            "order.confirm",
            "the order's enterprise",
            "an enterprise that is not the order's enterprise"
        )))
    );
    m.as_party(&enterprise, "order.confirm", confirm).unwrap();
    let order = m.order("o1");
    assert_eq!(order.status, OrderStatus::Confirmed);
    let e = order.escrow.unwrap();
    assert_eq!(
        (
            e.status,
            e.funded_minor,
            e.held_minor,
            e.released_minor,
            e.fee_minor
        ),
        (EscrowStatus::Released, 50_000, 0, 50_000, 300)
    );
    assert!(m.flags().is_empty(), "{:?}", m.flags());
}

#[test]
fn direct_payment_in_three_installments() {
    let mut m = Market::new();
    let plan = |amounts: [u64; 3]| {
        json!({ "mode": "direct", "installments": amounts.iter().enumerate()
            .map(|(i, a)| json!({ "amount_minor": a, "due_at_ms": NOW + (i as u64 + 1) * DAY_MS })).collect::<Vec<_>>() })
    };
    assert_eq!(
        m.place("o1", 90_000, plan([10_000, 10_000, 10_000])),
        Err(Rejection::PaymentPlanMismatch {
            planned_minor: 30_000,
            enterprise_share_minor: 45_000
        })
    );
    let backwards = json!({ "mode": "direct", "installments": [
        { "amount_minor": 20_000, "due_at_ms": NOW + 2 * DAY_MS }, { "amount_minor": 25_000, "due_at_ms": NOW + DAY_MS }] });
    assert!(matches!(
        m.place("o1", 90_000, backwards),
        Err(Rejection::InvalidField {
            field: "payment.installments",
            ..
        })
    ));
    m.place("o1", 90_000, plan([15_000, 15_000, 15_000]))
        .unwrap();
    let agency = m.agency.clone();
    for i in 0..3 {
        let ack = json!({ "order_id": "o1", "installment": i, "reference": format!("BANK-{i}") });
        m.as_party(&agency, "payment.acknowledge", ack).unwrap();
    }
    let again = json!({ "order_id": "o1", "installment": 1, "reference": "BANK-1" });
    assert_eq!(
        m.as_party(&agency, "payment.acknowledge", again),
        Err(Rejection::InstallmentAlreadyPaid { installment: 1 })
    );
    let missing = json!({ "order_id": "o1", "installment": 3, "reference": "BANK-3" });
    assert_eq!(
        m.as_party(&agency, "payment.acknowledge", missing),
        Err(Rejection::InstallmentNotFound { installment: 3 })
    );
    let order = m.order("o1");
    assert!(order.enterprise_share_paid());
    let enterprise = m.enterprise.clone();
    let cancel = json!({ "order_id": "o1", "reason": "changed plans" });
    assert_eq!(
        m.as_party(&enterprise, "order.cancel", cancel),
        Err(Rejection::PaymentsRecorded)
    );
}

#[test]
fn the_voucher_share_respects_every_cap() {
    let mut m = Market::new();
    // 50% of 500,000 is 250,000, over the per-order cap of 200,000.
    let events = m.place("o1", 500_000, m.escrow_plan()).unwrap();
    assert!(matches!(
        &events[0],
        Event::OrderPlaced {
            voucher_share_minor: 200_000,
            enterprise_share_minor: 300_000,
            ..
        }
    ));
    // The voucher has 100,000 left.
    let events = m.place("o2", 400_000, m.escrow_plan()).unwrap();
    assert!(matches!(
        &events[0],
        Event::OrderPlaced {
            voucher_share_minor: 100_000,
            ..
        }
    ));
    assert_eq!(
        m.place("o3", 10_000, m.escrow_plan()),
        Err(Rejection::NoSubsidyLeft {
            limit: "voucher_balance"
        })
    );
    // A second voucher: the enterprise has used 300,000 of its 500,000 this year.
    m.issue("v2", 300_000);
    let mut body = m.order_body("o4", 1_000_000, m.escrow_plan());
    body["voucher_id"] = json!("v2");
    let enterprise = m.enterprise.clone();
    let events = m.w.run(&enterprise, "order.place", body).unwrap();
    assert!(
        matches!(
            &events[0],
            Event::OrderPlaced {
                voucher_share_minor: 200_000,
                ..
            }
        ),
        "{events:?}"
    );
    let mut body = m.order_body("o5", 100_000, m.escrow_plan());
    body["voucher_id"] = json!("v2");
    assert_eq!(
        m.w.run(&enterprise, "order.place", body),
        Err(Rejection::NoSubsidyLeft {
            limit: "per_enterprise_year"
        })
    );
    // Cancelling gives the share back to the voucher and the yearly allowance.
    m.as_party(
        &enterprise,
        "order.cancel",
        json!({ "order_id": "o2", "reason": "not needed" }),
    )
    .unwrap();
    assert_eq!(m.voucher_balance(), 100_000);
    let mut body = m.order_body("o6", 100_000, m.escrow_plan());
    body["voucher_id"] = json!("v2");
    assert!(m.w.run(&enterprise, "order.place", body).is_ok());
}

#[test]
fn the_controlling_group_cap_joins_related_enterprises() {
    let mut m = Market::new();
    let admin = m.admin.clone();
    let sister = key();
    m.w.register(&sister, "enterprise").unwrap();
    let q = json!({ "program_id": "cq-rs", "enterprise": b64(&sister), "expires_at_ms": NOW + 20 * DAY_MS });
    m.w.run(&admin, "enterprise.qualify", q).unwrap();
    for who in [&m.enterprise.clone(), &sister] {
        m.w.run(
            &admin,
            "party.declare_affiliation",
            json!({ "party": b64(who), "controlling_group": "Group A" }),
        )
        .unwrap();
    }
    // Per-group cap 800,000: the first enterprise's share comes to 400,000 in three orders.
    m.issue("v2", 100_000);
    m.place("o1", 400_000, m.escrow_plan()).unwrap();
    m.place("o2", 200_000, m.escrow_plan()).unwrap();
    let mut body = m.order_body("o3", 200_000, m.escrow_plan());
    body["voucher_id"] = json!("v2");
    let enterprise = m.enterprise.clone();
    m.w.run(&enterprise, "order.place", body).unwrap();
    for (id, face) in [("s1", 300_000), ("s2", 300_000)] {
        let body = json!({ "voucher_id": id, "program_id": "cq-rs", "holder": b64(&sister), "face_value_minor": face });
        m.w.run(&admin, "voucher.issue", body).unwrap();
    }
    let plan = m.escrow_plan();
    let order = |id: &str, voucher: &str, price: u64| {
        json!({ "order_id": id, "listing_id": "lab-1", "voucher_id": voucher,
        "price_minor": price, "payment": plan, "auto_confirm_after_ms": DAY_MS })
    };
    let share = |events: &[Event]| match &events[0] {
        Event::OrderPlaced {
            voucher_share_minor,
            ..
        } => *voucher_share_minor,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        share(
            &m.w.run(&sister, "order.place", order("x1", "s1", 400_000))
                .unwrap()
        ),
        200_000
    );
    assert_eq!(
        share(
            &m.w.run(&sister, "order.place", order("x2", "s1", 200_000))
                .unwrap()
        ),
        100_000
    );
    // The group has 100,000 left of 800,000, though the sister alone could take 200,000 more.
    assert_eq!(
        share(
            &m.w.run(&sister, "order.place", order("x3", "s2", 400_000))
                .unwrap()
        ),
        100_000
    );
    assert_eq!(
        m.w.run(&sister, "order.place", order("x4", "s2", 100_000)),
        Err(Rejection::NoSubsidyLeft {
            limit: "per_group_year"
        })
    );
}

#[test]
fn orders_between_related_parties_are_refused() {
    let mut m = Market::new();
    let enterprise = m.enterprise.clone();
    let declare = json!({ "party": b64(&enterprise), "related_parties": [b64(&m.agency)] });
    m.as_party(&enterprise, "party.declare_affiliation", declare)
        .unwrap();
    assert_eq!(
        m.place("o1", 100_000, m.escrow_plan()),
        Err(Rejection::RelatedParties)
    );
    // A shared controlling group is a relation too.
    let admin = m.admin.clone();
    m.as_party(
        &enterprise,
        "party.declare_affiliation",
        json!({ "party": b64(&enterprise), "controlling_group": "G" }),
    )
    .unwrap();
    assert!(m.place("o1", 100_000, m.escrow_plan()).is_ok());
    m.as_party(
        &admin,
        "party.declare_affiliation",
        json!({ "party": b64(&m.agency.clone()), "controlling_group": "G" }),
    )
    .unwrap();
    assert_eq!(
        m.place("o2", 100_000, m.escrow_plan()),
        Err(Rejection::RelatedParties)
    );
    let stranger = m.agency.clone();
    assert!(matches!(
        m.as_party(
            &stranger,
            "party.declare_affiliation",
            json!({ "party": b64(&enterprise), "controlling_group": "H" })
        ),
        Err(Rejection::NotAuthorized { .. })
    ));
}

#[test]
fn placement_refusals() {
    let mut m = Market::new();
    let (admin, agency, enterprise) = (m.admin.clone(), m.agency.clone(), m.enterprise.clone());
    m.place("o1", 100_000, m.escrow_plan()).unwrap();
    assert_eq!(
        m.place("o1", 100_000, m.escrow_plan()),
        Err(Rejection::OrderExists("o1".into()))
    );
    assert!(matches!(
        m.place("o2", 0, m.escrow_plan()),
        Err(Rejection::InvalidField {
            field: "price_minor",
            ..
        })
    ));
    let body = m.order_body("o2", 100_000, m.escrow_plan());
    assert!(matches!(
        m.w.run(&agency, "order.place", body),
        Err(Rejection::NotAuthorized { .. })
    ));

    let other = key();
    m.w.register(&other, "enterprise").unwrap();
    let body = m.order_body("o2", 100_000, m.escrow_plan());
    assert_eq!(
        m.w.run(&other, "order.place", body),
        Err(Rejection::NotVoucherHolder(refusal(
            "order.place",
            "the voucher's holder",
            "an enterprise that is not the voucher's holder"
        )))
    );

    let mut body = m.order_body("o2", 100_000, m.escrow_plan());
    body["listing_id"] = json!("nope");
    assert_eq!(
        m.w.run(&enterprise, "order.place", body),
        Err(Rejection::ListingNotFound("nope".into()))
    );

    m.list("lab-2", "consulting", 100_000);
    let mut body = m.order_body("o2", 100_000, m.escrow_plan());
    body["listing_id"] = json!("lab-2");
    assert!(matches!(
        m.w.run(&enterprise, "order.place", body),
        Err(Rejection::CategoryNotEligible { .. })
    ));

    m.as_party(
        &admin,
        "voucher.freeze",
        json!({ "voucher_id": "v1", "reason": "audit" }),
    )
    .unwrap();
    assert_eq!(
        m.place("o2", 100_000, m.escrow_plan()),
        Err(Rejection::VoucherFrozen)
    );
    m.as_party(
        &admin,
        "voucher.unfreeze",
        json!({ "voucher_id": "v1", "reason": "cleared" }),
    )
    .unwrap();

    m.as_party(
        &admin,
        "party.suspend",
        json!({ "key": b64(&agency), "reason": "inspection" }),
    )
    .unwrap();
    assert_eq!(
        m.place("o2", 100_000, m.escrow_plan()),
        Err(Rejection::PartySuspended)
    );
    // A suspended party signs nothing, whatever it may sign otherwise.
    assert_eq!(
        m.as_party(&agency, "order.confirm", json!({ "order_id": "o1" })),
        Err(Rejection::SignerSuspended)
    );
    m.as_party(
        &admin,
        "party.reinstate",
        json!({ "key": b64(&agency), "reason": "cleared" }),
    )
    .unwrap();

    let plain_plan = json!({ "mode": "escrow", "escrow_provider": b64(&agency), "fee_minor": 0 });
    assert!(matches!(
        m.place("o2", 100_000, plain_plan),
        Err(Rejection::WrongPartyRole {
            needed: "escrow",
            ..
        })
    ));

    m.w.time_ms = NOW + 366 * DAY_MS;
    assert!(matches!(
        m.place("o2", 100_000, m.escrow_plan()),
        Err(Rejection::VoucherNotActive { .. })
    ));
}

#[test]
fn agencies_must_be_accredited_and_in_an_allowed_region() {
    let mut m = Market::new();
    let (admin, enterprise) = (m.admin.clone(), m.enterprise.clone());
    let unaccredited = key();
    m.w.register(&unaccredited, "agency").unwrap();
    let listing = json!({ "listing_id": "u-1", "pool": "science_data", "category": "testing", "title": "数据", "description": "d",
        "price_minor": 1000, "currency": "CNY" });
    m.w.run(&unaccredited, "catalog.list", listing).unwrap();
    let mut body = m.order_body("o1", 1000, m.escrow_plan());
    body["listing_id"] = json!("u-1");
    assert_eq!(
        m.w.run(&enterprise, "order.place", body),
        Err(Rejection::AgencyNotAccredited)
    );
    assert!(matches!(
        m.w.run(
            &admin,
            "agency.accredit",
            json!({ "agency": b64(&enterprise), "expires_at_ms": NOW + DAY_MS })
        ),
        Err(Rejection::WrongPartyRole { .. })
    ));
    // A program spendable only elsewhere.
    let mut program = program_body("sc-only");
    program["spend_regions"] = json!(["sc"]);
    m.w.run(&admin, "program.create", program).unwrap();
    let q = json!({ "program_id": "sc-only", "enterprise": b64(&enterprise), "expires_at_ms": NOW + DAY_MS });
    m.w.run(&admin, "enterprise.qualify", q).unwrap();
    let issue = json!({ "voucher_id": "sc-1", "program_id": "sc-only", "holder": b64(&enterprise), "face_value_minor": 1000 });
    m.w.run(&admin, "voucher.issue", issue).unwrap();
    let mut body = m.order_body("o2", 1000, m.escrow_plan());
    body["voucher_id"] = json!("sc-1");
    assert_eq!(
        m.w.run(&enterprise, "order.place", body),
        Err(Rejection::RegionNotAllowed {
            region: "cq".into()
        })
    );
}

#[test]
fn a_single_use_voucher_pays_for_one_order_at_a_time() {
    let mut m = Market::new();
    let admin = m.admin.clone();
    let mut program = program_body("once");
    program["use_mode"] = json!("single");
    m.w.run(&admin, "program.create", program).unwrap();
    let e = b64(&m.enterprise);
    m.w.run(
        &admin,
        "enterprise.qualify",
        json!({ "program_id": "once", "enterprise": e, "expires_at_ms": NOW + DAY_MS }),
    )
    .unwrap();
    m.w.run(&admin, "voucher.issue", json!({ "voucher_id": "one", "program_id": "once", "holder": e, "face_value_minor": 100_000 })).unwrap();
    let enterprise = m.enterprise.clone();
    let mut body = m.order_body("o1", 20_000, m.escrow_plan());
    body["voucher_id"] = json!("one");
    m.w.run(&enterprise, "order.place", body.clone()).unwrap();
    body["order_id"] = json!("o2");
    assert_eq!(
        m.w.run(&enterprise, "order.place", body),
        Err(Rejection::VoucherAlreadyUsed)
    );
}

#[test]
fn disputes_freeze_the_escrow_until_an_admin_decides() {
    let mut m = Market::new();
    let (admin, agency, enterprise, escrow) = (
        m.admin.clone(),
        m.agency.clone(),
        m.enterprise.clone(),
        m.escrow.clone(),
    );
    for id in ["o1", "o2"] {
        m.place(id, 100_000, m.escrow_plan()).unwrap();
        m.as_party(
            &escrow,
            "escrow.fund",
            json!({ "order_id": id, "amount_minor": 50_000, "reference": "R" }),
        )
        .unwrap();
        let evidence = m.evidence(if id == "o1" { 'b' } else { 'c' });
        m.as_party(
            &agency,
            "order.deliver",
            json!({ "order_id": id, "evidence": evidence }),
        )
        .unwrap();
        m.as_party(
            &enterprise,
            "order.dispute",
            json!({ "order_id": id, "reason": "report incomplete" }),
        )
        .unwrap();
        assert_eq!(m.order(id).escrow.unwrap().status, EscrowStatus::Frozen);
    }
    assert!(matches!(
        m.as_party(&enterprise, "order.confirm", json!({ "order_id": "o1" })),
        Err(Rejection::OrderWrongState { .. })
    ));
    let resolve = |id: &str, outcome: &str| json!({ "order_id": id, "outcome": outcome, "reason": "reviewed" });
    assert!(matches!(
        m.as_party(&agency, "dispute.resolve", resolve("o1", "refund")),
        Err(Rejection::NotAuthorized { .. })
    ));
    let balance_before = m.voucher_balance();
    m.as_party(&admin, "dispute.resolve", resolve("o1", "refund"))
        .unwrap();
    let o1 = m.order("o1");
    assert_eq!(o1.status, OrderStatus::Cancelled);
    let e = o1.escrow.unwrap();
    assert_eq!(
        (e.status, e.refunded_minor, e.held_minor),
        (EscrowStatus::Refunded, 50_000, 0)
    );
    assert_eq!(m.voucher_balance(), balance_before + 50_000);
    m.as_party(&admin, "dispute.resolve", resolve("o2", "release"))
        .unwrap();
    assert_eq!(m.order("o2").escrow.unwrap().status, EscrowStatus::Released);
    assert!(matches!(
        m.as_party(&admin, "dispute.resolve", resolve("o2", "refund")),
        Err(Rejection::OrderWrongState { .. })
    ));
}

#[test]
fn the_node_auto_confirms_after_the_period() {
    let mut m = Market::new();
    let (agency, escrow, node, enterprise) = (
        m.agency.clone(),
        m.escrow.clone(),
        m.w.node.clone(),
        m.enterprise.clone(),
    );
    m.place("o1", 100_000, m.escrow_plan()).unwrap();
    m.as_party(
        &escrow,
        "escrow.fund",
        json!({ "order_id": "o1", "amount_minor": 50_000, "reference": "R" }),
    )
    .unwrap();
    m.as_party(
        &agency,
        "order.deliver",
        json!({ "order_id": "o1", "evidence": m.evidence('d') }),
    )
    .unwrap();
    let auto = json!({ "order_id": "o1" });
    assert!(matches!(
        m.as_party(&enterprise, "order.auto_confirm", auto.clone()),
        Err(Rejection::NotAuthorized { .. })
    ));
    assert!(matches!(
        m.as_party(&node, "order.auto_confirm", auto.clone()),
        Err(Rejection::NotYetDue { .. })
    ));
    m.w.time_ms = NOW + 7 * DAY_MS;
    let events = m.as_party(&node, "order.auto_confirm", auto).unwrap();
    assert_eq!(
        events,
        vec![Event::OrderConfirmed {
            order_id: "o1".try_into().unwrap(),
            automatic: true
        }]
    );
    assert!(m
        .w
        .state
        .records
        .keys()
        .all(|k| !k.starts_with(orders::AUTO_CONFIRM_INDEX_PREFIX)));
}

#[test]
fn fraud_flags_for_face_value_prices_split_orders_and_duplicate_evidence() {
    let mut m = Market::new();
    let (agency, escrow) = (m.agency.clone(), m.escrow.clone());
    m.issue("v-face", 100_000);
    let mut body = m.order_body("face", 100_000, m.escrow_plan());
    body["voucher_id"] = json!("v-face");
    let enterprise = m.enterprise.clone();
    m.w.run(&enterprise, "order.place", body).unwrap();
    assert_eq!(m.flags().len(), 1);
    assert_eq!(m.flags()[0].rule, FraudRule::PriceAtFaceValue);

    // Two orders of 300,000 (subsidy 150,000 each, under the 200,000 cap) to the same agency.
    m.place("split-1", 300_000, m.escrow_plan()).unwrap();
    m.place("split-2", 300_000, m.escrow_plan()).unwrap();
    let rules: Vec<FraudRule> = m.flags().iter().map(|f| f.rule).collect();
    assert!(rules.contains(&FraudRule::SplitOrder), "{rules:?}");

    for id in ["split-1", "split-2"] {
        let amount = m.order(id).enterprise_share_minor;
        m.as_party(
            &escrow,
            "escrow.fund",
            json!({ "order_id": id, "amount_minor": amount, "reference": "R" }),
        )
        .unwrap();
        m.as_party(
            &agency,
            "order.deliver",
            json!({ "order_id": id, "evidence": m.evidence('e') }),
        )
        .unwrap();
    }
    let flags = m.flags();
    let duplicate: Vec<&FraudFlagRecord> = flags
        .iter()
        .filter(|f| f.rule == FraudRule::DuplicateEvidence)
        .collect();
    assert_eq!(
        duplicate.len(),
        2,
        "both documents of split-2 were used by split-1"
    );
    assert!(duplicate
        .iter()
        .all(|f| f.order_id.as_str() == "split-2" && f.detail.contains("split-1")));
    let bad = json!({ "order_id": "face", "evidence": [{ "kind": "invoice", "sha256": "XYZ" }] });
    assert!(matches!(
        m.as_party(&agency, "order.deliver", bad),
        Err(Rejection::InvalidField {
            field: "evidence.sha256",
            ..
        })
    ));
}

#[test]
fn value_is_conserved_through_orders() {
    let mut m = Market::new();
    let enterprise = m.enterprise.clone();
    m.place("o1", 100_000, m.escrow_plan()).unwrap();
    let admin = m.admin.clone();
    // Revoking the voucher returns only its uncommitted balance; cancelling the order later
    // returns the committed share to the revoked bucket.
    m.as_party(
        &admin,
        "voucher.revoke",
        json!({ "voucher_id": "v1", "reason": "fraud" }),
    )
    .unwrap();
    let b = load_program(&m.w.state, &"cq-rs".try_into().unwrap())
        .unwrap()
        .unwrap()
        .buckets;
    assert_eq!((b.revoked_minor, b.outstanding_minor), (250_000, 50_000));
    m.as_party(
        &enterprise,
        "order.cancel",
        json!({ "order_id": "o1", "reason": "voucher revoked" }),
    )
    .unwrap();
    let b = load_program(&m.w.state, &"cq-rs".try_into().unwrap())
        .unwrap()
        .unwrap()
        .buckets;
    assert_eq!((b.revoked_minor, b.outstanding_minor), (300_000, 0));
    assert_eq!(b.total(), Some(1_000_000));
}

impl Market {
    /// Places, funds, delivers and confirms an escrow order; returns its voucher share.
    fn confirmed_order(&mut self, id: &str, price: u64, evidence: char) -> u64 {
        let (agency, escrow, enterprise) = (
            self.agency.clone(),
            self.escrow.clone(),
            self.enterprise.clone(),
        );
        self.place(id, price, self.escrow_plan()).unwrap();
        let order = self.order(id);
        let fund = json!({ "order_id": id, "amount_minor": order.enterprise_share_minor, "reference": "R" });
        self.as_party(&escrow, "escrow.fund", fund).unwrap();
        self.as_party(
            &agency,
            "order.deliver",
            json!({ "order_id": id, "evidence": self.evidence(evidence) }),
        )
        .unwrap();
        self.as_party(&enterprise, "order.confirm", json!({ "order_id": id }))
            .unwrap();
        order.voucher_share_minor
    }

    fn buckets(&self) -> programs::BudgetBuckets {
        load_program(&self.w.state, &"cq-rs".try_into().unwrap())
            .unwrap()
            .unwrap()
            .buckets
    }
}

#[test]
fn a_claim_is_reviewed_twice_noticed_paid_and_clawed_back() {
    use super::claims::{load_claim, ClaimStatus};
    let mut m = Market::new();
    let (admin, agency, enterprise) = (m.admin.clone(), m.agency.clone(), m.enterprise.clone());
    let second_admin = key();
    m.w.register(&second_admin, "admin").unwrap();
    let regulator = key();
    m.w.register(&regulator, "regulator").unwrap();

    m.place("early", 100_000, m.escrow_plan()).unwrap();
    let submit = |id: &str| json!({ "order_id": id });
    assert_eq!(
        m.as_party(&agency, "claim.submit", submit("early")),
        Err(Rejection::DeliveryNotConfirmed)
    );
    assert_eq!(
        m.as_party(&agency, "claim.submit", submit("nope")),
        Err(Rejection::OrderNotFound("nope".into()))
    );

    let share = m.confirmed_order("o1", 100_000, '1');
    assert!(matches!(
        m.as_party(&enterprise, "claim.submit", submit("o1")),
        Err(Rejection::NotAuthorized { .. })
    ));
    m.as_party(&agency, "claim.submit", submit("o1")).unwrap();
    assert_eq!(
        m.as_party(&agency, "claim.submit", submit("o1")),
        Err(Rejection::ClaimExists("o1".into()))
    );

    let review = |level: u8, decision: &str| json!({ "order_id": "o1", "level": level, "decision": decision, "note": "ok" });
    assert_eq!(
        m.as_party(&admin, "claim.review", review(2, "approve")),
        Err(Rejection::WrongReviewLevel { expected: 1 })
    );
    assert!(matches!(
        m.as_party(&agency, "claim.review", review(1, "approve")),
        Err(Rejection::NotAuthorized { .. })
    ));
    // A note is a readable text: no bidirectional override may turn it around.
    let misleading =
        json!({ "order_id": "o1", "level": 1, "decision": "approve", "note": "ok\u{202E}" });
    assert!(matches!(
        m.as_party(&admin, "claim.review", misleading),
        Err(Rejection::InvalidField { field: "note", .. })
    ));
    m.as_party(&admin, "claim.review", review(1, "approve"))
        .unwrap();
    assert_eq!(
        m.as_party(&admin, "claim.review", review(2, "approve")),
        Err(Rejection::SameReviewer)
    );
    let pay = json!({ "order_id": "o1", "reference": "TREASURY-1" });
    assert_eq!(
        m.as_party(&admin, "claim.pay", pay.clone()),
        Err(Rejection::ClaimWrongState {
            status: "in_review".into()
        })
    );
    m.as_party(&second_admin, "claim.review", review(2, "approve"))
        .unwrap();
    assert!(matches!(
        m.as_party(&admin, "claim.pay", pay.clone()),
        Err(Rejection::NoticePeriodRunning { .. })
    ));
    m.w.time_ms = NOW + 5 * DAY_MS;
    let outstanding_before = m.buckets().outstanding_minor;
    m.as_party(&admin, "claim.pay", pay.clone()).unwrap();
    assert!(matches!(
        m.as_party(&admin, "claim.pay", pay),
        Err(Rejection::ClaimWrongState { .. })
    ));
    let b = m.buckets();
    assert_eq!(
        (b.spent_minor, b.outstanding_minor),
        (share, outstanding_before - share)
    );
    assert_eq!(b.total(), Some(1_000_000));
    let claim = load_claim(&m.w.state, &"o1".try_into().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!((claim.status, claim.reviews.len()), (ClaimStatus::Paid, 2));
    assert!(
        m.w.state
            .records
            .keys()
            .all(|k| !k.starts_with(super::claims::SETTLEMENT_PREFIX)),
        "same region: no settlement"
    );

    let clawback = json!({ "order_id": "o1", "reason": "forged invoice" });
    assert!(matches!(
        m.as_party(&agency, "claim.clawback", clawback.clone()),
        Err(Rejection::NotAuthorized { .. })
    ));
    m.as_party(&regulator, "claim.clawback", clawback.clone())
        .unwrap();
    assert!(matches!(
        m.as_party(&regulator, "claim.clawback", clawback),
        Err(Rejection::ClaimWrongState { .. })
    ));
    let claim = load_claim(&m.w.state, &"o1".try_into().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(claim.status, ClaimStatus::ClawedBack);
}

#[test]
fn a_rejected_claim_returns_the_voucher_share_and_claims_close_at_the_deadline() {
    let mut m = Market::new();
    let (admin, agency) = (m.admin.clone(), m.agency.clone());
    let share = m.confirmed_order("o1", 100_000, '2');
    let before = m.voucher_balance();
    m.as_party(&agency, "claim.submit", json!({ "order_id": "o1" }))
        .unwrap();
    m.as_party(
        &admin,
        "claim.review",
        json!({ "order_id": "o1", "level": 1, "decision": "reject", "note": "no report" }),
    )
    .unwrap();
    assert_eq!(m.voucher_balance(), before + share);
    m.confirmed_order("o2", 100_000, '3');
    m.w.time_ms = NOW + 61 * DAY_MS;
    assert!(matches!(
        m.as_party(&agency, "claim.submit", json!({ "order_id": "o2" })),
        Err(Rejection::ClaimDeadlinePassed { .. })
    ));
}

#[test]
fn a_direct_order_is_claimable_only_when_every_installment_is_acknowledged() {
    let mut m = Market::new();
    let (agency, enterprise) = (m.agency.clone(), m.enterprise.clone());
    let plan = json!({ "mode": "direct", "installments": [
        { "amount_minor": 20_000, "due_at_ms": NOW + DAY_MS }, { "amount_minor": 30_000, "due_at_ms": NOW + 2 * DAY_MS }] });
    m.place("o1", 100_000, plan).unwrap();
    m.as_party(
        &agency,
        "order.deliver",
        json!({ "order_id": "o1", "evidence": m.evidence('4') }),
    )
    .unwrap();
    m.as_party(&enterprise, "order.confirm", json!({ "order_id": "o1" }))
        .unwrap();
    m.as_party(
        &agency,
        "payment.acknowledge",
        json!({ "order_id": "o1", "installment": 0, "reference": "B0" }),
    )
    .unwrap();
    assert_eq!(
        m.as_party(&agency, "claim.submit", json!({ "order_id": "o1" })),
        Err(Rejection::EnterpriseShareUnpaid)
    );
    m.as_party(
        &agency,
        "payment.acknowledge",
        json!({ "order_id": "o1", "installment": 1, "reference": "B1" }),
    )
    .unwrap();
    m.as_party(&agency, "claim.submit", json!({ "order_id": "o1" }))
        .unwrap();
}

#[test]
fn the_remaining_refusals() {
    let mut m = Market::new();
    let (admin, agency, enterprise, escrow) = (
        m.admin.clone(),
        m.agency.clone(),
        m.enterprise.clone(),
        m.escrow.clone(),
    );
    // Suspension is toggled, never repeated.
    let suspend = json!({ "key": b64(&agency), "reason": "inspection" });
    assert_eq!(
        m.as_party(&admin, "party.reinstate", suspend.clone()),
        Err(Rejection::NotSuspended)
    );
    m.as_party(&admin, "party.suspend", suspend.clone())
        .unwrap();
    assert_eq!(
        m.as_party(&admin, "party.suspend", suspend.clone()),
        Err(Rejection::AlreadySuspended)
    );
    m.as_party(&admin, "party.reinstate", suspend).unwrap();
    // A revoked party cannot be accredited, suspended or ordered from.
    let gone = key();
    m.w.register(&gone, "agency").unwrap();
    m.as_party(
        &admin,
        "party.revoke_key",
        json!({ "key": b64(&gone), "reason": "closed" }),
    )
    .unwrap();
    assert_eq!(
        m.as_party(
            &admin,
            "agency.accredit",
            json!({ "agency": b64(&gone), "expires_at_ms": NOW + DAY_MS })
        ),
        Err(Rejection::PartyInactive)
    );
    // A withdrawn listing cannot be ordered.
    m.list("lab-w", "testing", 10_000);
    m.as_party(
        &agency,
        "catalog.withdraw",
        json!({ "listing_id": "lab-w", "reason": "instrument broken" }),
    )
    .unwrap();
    let mut body = m.order_body("o1", 10_000, m.escrow_plan());
    body["listing_id"] = json!("lab-w");
    assert_eq!(
        m.w.run(&enterprise, "order.place", body),
        Err(Rejection::ListingWithdrawn("lab-w".into()))
    );
    // A listing in another currency.
    let usd = json!({ "listing_id": "lab-usd", "pool": "instruments_equipment", "category": "testing", "title": "Assay",
        "description": "d", "price_minor": 10_000, "currency": "USD" });
    m.as_party(&agency, "catalog.list", usd).unwrap();
    let mut body = m.order_body("o1", 10_000, m.escrow_plan());
    body["listing_id"] = json!("lab-usd");
    assert!(matches!(
        m.w.run(&enterprise, "order.place", body),
        Err(Rejection::CurrencyMismatch { .. })
    ));
    // Escrow funding of a direct order, and claims on orders without one.
    let plan = json!({ "mode": "direct", "installments": [{ "amount_minor": 5_000, "due_at_ms": NOW + DAY_MS }] });
    m.place("direct", 10_000, plan).unwrap();
    let fund = json!({ "order_id": "direct", "amount_minor": 5_000, "reference": "R" });
    assert_eq!(
        m.as_party(&escrow, "escrow.fund", fund),
        Err(Rejection::NotAnEscrowOrder)
    );
    let review = json!({ "order_id": "direct", "level": 1, "decision": "approve" });
    assert_eq!(
        m.as_party(&admin, "claim.review", review),
        Err(Rejection::ClaimNotFound("direct".into()))
    );
}

#[test]
fn an_order_above_the_listing_price_is_refused() {
    let mut m = Market::new();
    let enterprise = m.enterprise.clone();
    m.list("lab-cheap", "testing", 50_000);
    let mut body = m.order_body("o1", 50_001, m.escrow_plan());
    body["listing_id"] = json!("lab-cheap");
    assert_eq!(
        m.w.run(&enterprise, "order.place", body.clone()),
        Err(Rejection::PriceAboveListing {
            price_minor: 50_001,
            listing_price_minor: 50_000
        })
    );
    // A ten times larger price, whose subsidy would grow with it, is refused the same way.
    body["price_minor"] = json!(500_000);
    assert!(matches!(
        m.w.run(&enterprise, "order.place", body.clone()),
        Err(Rejection::PriceAboveListing { .. })
    ));
    // At or below the listing's price the order stands.
    body["price_minor"] = json!(50_000);
    m.w.run(&enterprise, "order.place", body).unwrap();
    assert_eq!(m.order("o1").voucher_share_minor, 25_000);
}

#[test]
fn a_direct_plan_without_installments_is_one_installment_of_the_enterprise_share() {
    let mut m = Market::new();
    // Per-order cap 200,000 binds: the enterprise pays 500,000 - 200,000.
    let events = m.place("o1", 500_000, json!({ "mode": "direct" })).unwrap();
    let Event::OrderPlaced {
        payment: orders::PaymentPlan::Direct { installments },
        enterprise_share_minor,
        ..
    } = &events[0]
    else {
        panic!("{events:?}")
    };
    assert_eq!(*enterprise_share_minor, 300_000);
    assert_eq!(installments.len(), 1);
    assert_eq!(
        (
            installments[0].amount_minor.get(),
            installments[0].due_at_ms.get()
        ),
        (300_000, NOW)
    );
    let order = m.order("o1");
    assert_eq!(order.installments.len(), 1);
    assert_eq!(order.installments[0].amount_minor, 300_000);
    // An explicit plan is still checked against the share.
    assert!(matches!(
        m.place(
            "o2",
            100_000,
            json!({ "mode": "direct", "installments": [{ "amount_minor": 1, "due_at_ms": NOW }] })
        ),
        Err(Rejection::PaymentPlanMismatch { .. })
    ));
}

#[test]
fn the_quote_is_the_share_placement_gives_and_names_the_binding_limit() {
    let mut m = Market::new();
    let (v1, lab) = ("v1".try_into().unwrap(), "lab-1".try_into().unwrap());
    let quote = |m: &Market, price: u64| {
        orders::quote_order(
            &m.w.state,
            m.w.time_ms,
            &v1,
            orders::ListingRef {
                id: &lab,
                region: None,
            },
            money::AmountMinor::new(price).unwrap(),
        )
    };
    let q = quote(&m, 100_000).unwrap();
    assert_eq!(
        (
            q.voucher_share_minor,
            q.enterprise_share_minor,
            q.binding_limit.as_str(),
            q.listing_price_minor
        ),
        (50_000, 50_000, "subsidy_ratio", 1_000_000)
    );
    let q = quote(&m, 600_000).unwrap();
    assert_eq!(
        (q.voucher_share_minor, q.binding_limit.as_str()),
        (200_000, "per_order")
    );
    let events = m.place("o1", 600_000, m.escrow_plan()).unwrap();
    assert!(matches!(
        events[0],
        Event::OrderPlaced {
            voucher_share_minor: 200_000,
            enterprise_share_minor: 400_000,
            ..
        }
    ));
    // 100,000 is left on the voucher: it binds the next quote, and the next order.
    let q = quote(&m, 400_000).unwrap();
    assert_eq!(
        (q.voucher_share_minor, q.binding_limit.as_str()),
        (100_000, "voucher_balance")
    );
    let events = m.place("o2", 400_000, json!({ "mode": "direct" })).unwrap();
    assert!(matches!(
        events[0],
        Event::OrderPlaced {
            voucher_share_minor: 100_000,
            ..
        }
    ));
    // A quote refuses what placement refuses.
    assert!(matches!(
        quote(&m, 10_000),
        Err(ApplyError::Rejected(Rejection::NoSubsidyLeft {
            limit: "voucher_balance"
        }))
    ));
    assert_eq!(
        m.place("o3", 10_000, json!({ "mode": "direct" })),
        Err(Rejection::NoSubsidyLeft {
            limit: "voucher_balance"
        })
    );
    assert!(matches!(
        quote(&m, 2_000_000),
        Err(ApplyError::Rejected(Rejection::PriceAboveListing { .. }))
    ));
}

impl Market {
    /// A second admin and a regulator, for reviews and freezes.
    fn reviewers(&mut self) -> (SigningKey, SigningKey) {
        let (second_admin, regulator) = (key(), key());
        self.w.register(&second_admin, "admin").unwrap();
        self.w.register(&regulator, "regulator").unwrap();
        (second_admin, regulator)
    }

    fn review(&mut self, who: &SigningKey, id: &str, level: u8) -> Result<Vec<Event>, Rejection> {
        let body = json!({ "order_id": id, "level": level, "decision": "approve", "note": "ok" });
        self.as_party(who, "claim.review", body)
    }

    fn claim(&self, id: &str) -> claims::ClaimRecord {
        claims::load_claim(&self.w.state, &id.try_into().unwrap())
            .unwrap()
            .unwrap()
    }

    fn voucher_committed(&self) -> u64 {
        load_voucher(&self.w.state, &"v1".try_into().unwrap())
            .unwrap()
            .unwrap()
            .committed_minor
    }
}

#[test]
fn an_unclaimed_order_releases_its_share_after_the_claim_deadline() {
    let mut m = Market::new();
    let (agency, enterprise, node) = (m.agency.clone(), m.enterprise.clone(), m.w.node.clone());
    let share = m.confirmed_order("o1", 100_000, '5');
    m.place("open", 100_000, m.escrow_plan()).unwrap();
    m.confirmed_order("claimed", 100_000, '6');
    m.as_party(&agency, "claim.submit", json!({ "order_id": "claimed" }))
        .unwrap();
    let release = |id: &str| json!({ "order_id": id });
    let deadline = NOW + 60 * DAY_MS;
    // Claims are taken until the deadline itself.
    m.w.time_ms = deadline;
    assert_eq!(
        m.as_party(&node, "order.release_unclaimed", release("o1")),
        Err(Rejection::NotYetDue {
            due_at_ms: deadline + 1
        })
    );
    m.w.time_ms = deadline + 1;
    assert!(matches!(
        m.as_party(&enterprise, "order.release_unclaimed", release("o1")),
        Err(Rejection::NotAuthorized { .. })
    ));
    m.as_party(&node, "voucher.expire", json!({ "voucher_id": "v1" }))
        .unwrap();
    let before = m.buckets();
    let events = m
        .as_party(&node, "order.release_unclaimed", release("o1"))
        .unwrap();
    assert_eq!(
        events,
        vec![Event::UnclaimedShareReleased {
            order_id: "o1".try_into().unwrap(),
            voucher_id: "v1".try_into().unwrap(),
            amount_minor: share
        }]
    );
    // The voucher has expired: the share goes back to the program's budget, as expired value.
    let after = m.buckets();
    assert_eq!(
        (after.expired_minor, after.outstanding_minor),
        (
            before.expired_minor + share,
            before.outstanding_minor - share
        )
    );
    assert_eq!(
        m.as_party(&node, "order.release_unclaimed", release("o1")),
        Err(Rejection::ShareAlreadyReleased)
    );
    assert!(matches!(
        m.as_party(&agency, "claim.submit", json!({ "order_id": "o1" })),
        Err(Rejection::ClaimDeadlinePassed { .. })
    ));
    assert_eq!(
        m.as_party(&node, "order.release_unclaimed", release("claimed")),
        Err(Rejection::ClaimExists("claimed".into()))
    );
    // An order never delivered is released too, and cancelling it later returns nothing twice.
    m.as_party(&node, "order.release_unclaimed", release("open"))
        .unwrap();
    m.as_party(
        &enterprise,
        "order.cancel",
        json!({ "order_id": "open", "reason": "no longer needed" }),
    )
    .unwrap();
    let b = m.buckets();
    assert_eq!(b.total(), Some(1_000_000));
    // Only the share of the claim in review is still committed, and nothing is left to sweep.
    assert_eq!(m.voucher_committed(), m.claim("claimed").amount_minor);
    assert_eq!(b.outstanding_minor, m.voucher_committed());
    assert!(
        m.w.state
            .records
            .keys()
            .all(|k| !k.starts_with(orders::CLAIM_DEADLINE_INDEX_PREFIX)),
        "the claim-deadline index still lists orders"
    );
}

#[test]
fn a_frozen_voucher_holds_claim_approval_and_payout() {
    let mut m = Market::new();
    let (admin, agency, node) = (m.admin.clone(), m.agency.clone(), m.w.node.clone());
    let (second_admin, regulator) = m.reviewers();
    m.confirmed_order("o1", 100_000, '7');
    m.as_party(&agency, "claim.submit", json!({ "order_id": "o1" }))
        .unwrap();
    // The voucher expires; while value is committed to its orders it can still be frozen.
    m.w.time_ms = NOW + 31 * DAY_MS;
    m.as_party(&node, "voucher.expire", json!({ "voucher_id": "v1" }))
        .unwrap();
    let freeze = json!({ "voucher_id": "v1", "reason": "inspection" });
    m.as_party(&regulator, "voucher.freeze", freeze.clone())
        .unwrap();
    assert_eq!(m.review(&admin, "o1", 1), Err(Rejection::VoucherFrozen));
    m.as_party(&regulator, "voucher.unfreeze", freeze.clone())
        .unwrap();
    m.review(&admin, "o1", 1).unwrap();
    m.review(&second_admin, "o1", 2).unwrap();
    m.as_party(&regulator, "voucher.freeze", freeze.clone())
        .unwrap();
    m.w.time_ms += 5 * DAY_MS;
    let pay = json!({ "order_id": "o1", "reference": "TREASURY-1" });
    assert_eq!(
        m.as_party(&admin, "claim.pay", pay.clone()),
        Err(Rejection::VoucherFrozen)
    );
    m.as_party(&admin, "voucher.unfreeze", freeze.clone())
        .unwrap();
    m.as_party(&admin, "claim.pay", pay).unwrap();
    // Nothing is committed any more: an ended voucher cannot be frozen.
    assert!(matches!(
        m.as_party(&regulator, "voucher.freeze", freeze),
        Err(Rejection::VoucherNotActive { .. })
    ));
}

#[test]
fn a_clawback_is_a_receivable_that_recoveries_pay_back() {
    use super::claims::ClaimStatus;
    let mut m = Market::new();
    let (admin, agency) = (m.admin.clone(), m.agency.clone());
    let (second_admin, regulator) = m.reviewers();
    let share = m.confirmed_order("o1", 100_000, '8');
    m.as_party(&agency, "claim.submit", json!({ "order_id": "o1" }))
        .unwrap();
    m.review(&admin, "o1", 1).unwrap();
    m.review(&second_admin, "o1", 2).unwrap();
    m.w.time_ms = NOW + 5 * DAY_MS;
    let recover =
        |amount: u64| json!({ "order_id": "o1", "amount_minor": amount, "reference": "BANK-9" });
    m.as_party(
        &admin,
        "claim.pay",
        json!({ "order_id": "o1", "reference": "T" }),
    )
    .unwrap();
    assert!(matches!(
        m.as_party(&admin, "claim.recover", recover(1)),
        Err(Rejection::ClaimWrongState { .. })
    ));
    m.as_party(
        &regulator,
        "claim.clawback",
        json!({ "order_id": "o1", "reason": "forged invoice" }),
    )
    .unwrap();
    let b = m.buckets();
    assert_eq!(
        (b.spent_minor, b.clawed_back_minor, b.recovered_minor),
        (0, share, 0)
    );
    assert_eq!(b.total(), Some(1_000_000));
    assert!(matches!(
        m.as_party(&regulator, "claim.recover", recover(1)),
        Err(Rejection::NotAuthorized { .. })
    ));
    assert_eq!(
        m.as_party(&admin, "claim.recover", recover(share + 1)),
        Err(Rejection::RecoveryExceedsReceivable {
            owed_minor: share,
            requested_minor: share + 1
        })
    );
    m.as_party(&admin, "claim.recover", recover(20_000))
        .unwrap();
    let b = m.buckets();
    assert_eq!(
        (b.clawed_back_minor, b.recovered_minor),
        (share - 20_000, 20_000)
    );
    let claim = m.claim("o1");
    assert_eq!(
        (claim.status, claim.recovered_minor),
        (ClaimStatus::ClawedBack, 20_000)
    );
    let events = m
        .as_party(&admin, "claim.recover", recover(share - 20_000))
        .unwrap();
    assert!(matches!(
        events[0],
        Event::ClaimRecovered { owed_minor: 0, .. }
    ));
    let b = m.buckets();
    assert_eq!(
        (b.spent_minor, b.clawed_back_minor, b.recovered_minor),
        (0, 0, share)
    );
    assert_eq!(b.total(), Some(1_000_000));
    assert_eq!(m.claim("o1").status, ClaimStatus::Recovered);
    assert!(matches!(
        m.as_party(&admin, "claim.recover", recover(1)),
        Err(Rejection::ClaimWrongState { .. })
    ));
}
