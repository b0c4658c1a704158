//! Settlement statements on the pure state machine: region `cq`'s claims paid out with the
//! payout advanced by region `sc` (an agency of `sc`, known here through an adoption), netted
//! into statements that both regions' admins sign and that close when paid.

use serde_json::{json, Value};

use super::catalog::{ListingRecord, ListingStatus};
use super::claims::{load_position, SettlementPosition};
use super::federation::{view_key, AdoptedRecord, ADOPTED_PREFIX};
use super::parties::party_key;
use super::programs::ProgramRecord;
use super::settlement::{load_payout, load_statement, StatementRecord, StatementStatus};
use super::tests::{key, World};
use super::vouchers_tests::program_body;
use super::*;
use crate::types::RegionId;
use vledger_tlog::keys::SigningKey;

const DAY_MS: u64 = 86_400_000;
/// 2023-11-15T06:13:20+08:00.
const NOW: u64 = 1_700_000_000_000;
/// 2023-11-01T00:00:00+08:00 and 2023-12-01T00:00:00+08:00.
const NOVEMBER_MS: u64 = 1_698_768_000_000;
const DECEMBER_MS: u64 = 1_701_360_000_000;
/// A leaf hash of the right shape (the state machine checks the entry by index, order and
/// amount; the hash is the entry's as the proposer read it).
const LEAF: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn b64(k: &SigningKey) -> String {
    k.public_key().to_base64()
}

fn region(id: &str) -> RegionId {
    id.try_into().unwrap()
}

/// Region `cq` with a program whose cross-region payouts the agency's region advances, an
/// enterprise holding voucher `v1`, and, known through adoptions, an accredited agency of `sc`
/// (with listing `lab-sc` in the catalog), `sc`'s admin and regulator, and `cd`'s admin.
struct Settling {
    w: World,
    admin: SigningKey,
    second_admin: SigningKey,
    regulator: SigningKey,
    enterprise: SigningKey,
    sc_agency: SigningKey,
    sc_admin: SigningKey,
    sc_regulator: SigningKey,
    cd_admin: SigningKey,
}

/// A payout made: its order, amount and entry.
#[derive(Debug, Clone)]
struct Payout {
    order: String,
    amount: u64,
    index: u64,
}

impl Settling {
    fn new() -> Self {
        let mut w = World::founded();
        w.time_ms = NOW;
        let admin = w.admin.clone();
        let (second_admin, regulator, enterprise) = (key(), key(), key());
        w.register(&second_admin, "admin").unwrap();
        w.register(&regulator, "regulator").unwrap();
        w.register(&enterprise, "enterprise").unwrap();
        let (sc_agency, sc_admin, sc_regulator, cd_admin) = (key(), key(), key(), key());
        adopt(
            &mut w,
            "sc",
            &[
                (&sc_agency, "agency"),
                (&sc_admin, "admin"),
                (&sc_regulator, "regulator"),
            ],
        );
        adopt(&mut w, "cd", &[(&cd_admin, "admin")]);
        let mut program = program_body("p");
        program["cross_region_payer"] = json!("agency_region");
        program["notice_period_ms"] = json!(0);
        program["review_levels"] = json!(1);
        program["valid_from_ms"] = json!(NOW - 30 * DAY_MS);
        program["valid_until_ms"] = json!(NOW + 60 * DAY_MS);
        program["claim_deadline_ms"] = json!(NOW + 90 * DAY_MS);
        program["caps"]["per_voucher_minor"] = json!(1_000_000);
        w.run(&admin, "program.create", program).unwrap();
        let q = json!({ "program_id": "p", "enterprise": b64(&enterprise), "expires_at_ms": NOW + 90 * DAY_MS });
        w.run(&admin, "enterprise.qualify", q).unwrap();
        let issue = json!({ "voucher_id": "v1", "program_id": "p", "holder": b64(&enterprise), "face_value_minor": 1_000_000 });
        w.run(&admin, "voucher.issue", issue).unwrap();
        // The listing lives in `sc`'s log: `cq` reads it from the view adopted.
        adopt_listing(&mut w, "sc", "lab-sc", &sc_agency, 100_000);
        Settling {
            w,
            admin,
            second_admin,
            regulator,
            enterprise,
            sc_agency,
            sc_admin,
            sc_regulator,
            cd_admin,
        }
    }

    /// An order with `sc`'s agency, delivered, confirmed, claimed, approved and paid now.
    fn paid(&mut self, order: &str, price: u64) -> Payout {
        let (admin, sc_admin, agency, enterprise) = (
            self.admin.clone(),
            self.sc_admin.clone(),
            self.sc_agency.clone(),
            self.enterprise.clone(),
        );
        let w = &mut self.w;
        let place = json!({ "order_id": order, "listing_id": "lab-sc", "listing_region": "sc",
            "voucher_id": "v1", "price_minor": price, "payment": { "mode": "direct" }, "auto_confirm_after_ms": 7 * DAY_MS });
        w.run(&enterprise, "order.place", place).unwrap();
        let ack = json!({ "order_id": order, "installment": 0, "reference": "BANK" });
        w.run(&agency, "payment.acknowledge", ack).unwrap();
        let evidence = json!([{ "kind": "report", "sha256": hex_of(order) }]);
        w.run(
            &agency,
            "order.deliver",
            json!({ "order_id": order, "evidence": evidence }),
        )
        .unwrap();
        w.run(&enterprise, "order.confirm", json!({ "order_id": order }))
            .unwrap();
        w.run(&agency, "claim.submit", json!({ "order_id": order }))
            .unwrap();
        let review = json!({ "order_id": order, "level": 1, "decision": "approve" });
        w.run(&admin, "claim.review", review).unwrap();
        let index = w.next_index;
        // `sc` advances the payout: its admin signs it here.
        let events = w
            .run(
                &sc_admin,
                "claim.pay",
                json!({ "order_id": order, "reference": "TREASURY" }),
            )
            .unwrap();
        let Event::ClaimPaid {
            amount_minor,
            advanced_by,
            ..
        } = &events[0]
        else {
            panic!("{events:?}")
        };
        assert_eq!(advanced_by.as_ref().map(|r| r.as_str()), Some("sc"));
        Payout {
            order: order.into(),
            amount: *amount_minor,
            index,
        }
    }

    fn run(
        &mut self,
        who: &SigningKey,
        command: &str,
        body: Value,
    ) -> Result<Vec<Event>, Rejection> {
        self.w.run(who, command, body)
    }

    fn statement(&self, id: &str) -> StatementRecord {
        load_statement(&self.w.state, &id.try_into().unwrap())
            .unwrap()
            .unwrap()
    }

    fn position(&self) -> u64 {
        load_position(&self.w.state, &region("cq"), &region("sc"))
            .unwrap()
            .map_or(0, |p| p.amount_minor)
    }

    fn sign(&mut self, who: &SigningKey, id: &str) -> Result<Vec<Event>, Rejection> {
        self.run(
            &who.clone(),
            "settlement.sign",
            json!({ "statement_id": id }),
        )
    }

    fn pay(&mut self, who: &SigningKey, id: &str, amount: u64) -> Result<Vec<Event>, Rejection> {
        let body =
            json!({ "statement_id": id, "amount_minor": amount, "reference": "PBOC-2023-12-001" });
        self.run(&who.clone(), "settlement.record_payment", body)
    }
}

fn hex_of(text: &str) -> String {
    let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{hex:0>64}")
}

/// What region `id` would hold after an adoption: its adoption record and its parties.
fn adopt(w: &mut World, id: &str, parties: &[(&SigningKey, &str)]) {
    let record = AdoptedRecord {
        region: region(id),
        origin: format!("vledger.example/{id}"),
        verifier_key: format!("vledger.example/{id}+00000000+AQ=="),
        size: 10,
        root_hash: LEAF.into(),
        adopted_at: 0,
        adopted_time_ms: NOW,
    };
    w.state
        .put([ADOPTED_PREFIX, id.as_bytes()].concat(), &record);
    for (i, (party, role)) in parties.iter().enumerate() {
        let record = PartyRecord {
            key: party.public_key(),
            role: serde_json::from_value(json!(role)).unwrap(),
            home_region: region(id),
            name: format!("{role} of {id}"),
            registered_at: i as u64 + 1,
            revoked_at: None,
            suspended: false,
            accredited_until_ms: (*role == "agency").then_some(NOW + 365 * DAY_MS),
            controlling_group: None,
            related_parties: Vec::new(),
        };
        w.state.put(
            view_key(&region(id), &party_key(&party.public_key())),
            &record,
        );
    }
}

/// What region `id`'s view would hold of a listing of `agency` at `price_minor`, adopted.
pub(super) fn adopt_listing(
    w: &mut World,
    id: &str,
    listing_id: &str,
    agency: &SigningKey,
    price_minor: u64,
) {
    let listing = ListingRecord {
        listing_id: listing_id.try_into().unwrap(),
        agency: agency.public_key(),
        region: region(id),
        pool: catalog::Pool::InstrumentsEquipment,
        industry: None,
        category: "testing".into(),
        title: "EMC 测试".into(),
        description: "EMC testing".into(),
        price_minor,
        currency: "CNY".into(),
        unit: None,
        tags: Vec::new(),
        status: ListingStatus::Active,
        listed_at_ms: NOW - DAY_MS,
        updated_at_ms: NOW - DAY_MS,
    };
    let key = [catalog::LISTING_PREFIX, listing_id.as_bytes()].concat();
    w.state.put(view_key(&region(id), &key), &listing);
}

fn line(p: &Payout) -> Value {
    json!({ "region": "cq", "log_index": p.index, "leaf_hash": LEAF, "order_id": p.order,
            "amount_minor": p.amount, "direction": "debtor_to_creditor" })
}

fn proposal(id: &str, lines: &[Value], gross: u64) -> Value {
    json!({ "statement_id": id, "creditor": "sc", "from_ms": NOW - DAY_MS, "until_ms": NOW + DAY_MS,
            "lines": lines, "gross_debtor_to_creditor_minor": gross,
            "gross_creditor_to_debtor_minor": 0, "net_minor": gross })
}

fn mismatch(result: Result<Vec<Event>, Rejection>) -> String {
    match result {
        Err(Rejection::StatementMismatch(detail)) => detail,
        other => panic!("not a mismatch: {other:?}"),
    }
}

#[test]
fn a_statement_is_proposed_signed_by_both_regions_and_paid() {
    let mut s = Settling::new();
    let a = s.paid("o1", 100_000);
    let b = s.paid("o2", 60_000);
    assert_eq!((a.amount, b.amount), (50_000, 30_000));
    assert_eq!(s.position(), 80_000);
    s.w.time_ms = NOW + 2 * DAY_MS;
    let admin = s.admin.clone();
    let events = s
        .run(
            &admin,
            "settlement.propose",
            proposal("st-1", &[line(&a), line(&b)], 80_000),
        )
        .unwrap();
    assert!(matches!(
        &events[..],
        [Event::StatementProposed {
            net_minor: 80_000,
            ..
        }]
    ));
    let st = s.statement("st-1");
    assert_eq!(
        (
            st.status,
            st.lines.len(),
            st.gross_debtor_to_creditor_minor,
            st.net_minor
        ),
        (StatementStatus::Proposed, 2, 80_000, 80_000)
    );
    assert_eq!((st.debtor.as_str(), st.creditor.as_str()), ("cq", "sc"));
    assert_eq!((st.from_ms, st.until_ms), (NOW - DAY_MS, NOW + DAY_MS));
    let payout = load_payout(&s.w.state, &"o1".try_into().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        payout.statement_id.as_ref().map(|i| i.as_str()),
        Some("st-1")
    );
    assert_eq!(payout.log_index, a.index);
    // Proposed is not in effect: the position stands until the payment.
    assert_eq!(s.position(), 80_000);

    // An unsigned statement cannot be paid, nor one signed by one region only.
    assert_eq!(
        s.pay(&admin, "st-1", 80_000),
        Err(Rejection::StatementWrongState {
            status: "proposed".into()
        })
    );
    let events = s.sign(&admin, "st-1").unwrap();
    assert!(matches!(
        &events[..],
        [Event::StatementSigned {
            in_effect: false,
            ..
        }]
    ));
    // A region signs once, whichever of its admins signs again.
    let second = s.second_admin.clone();
    for who in [&admin, &second] {
        assert_eq!(
            s.sign(who, "st-1"),
            Err(Rejection::StatementAlreadySigned {
                region: "cq".into()
            })
        );
    }
    assert_eq!(
        s.pay(&admin, "st-1", 80_000),
        Err(Rejection::StatementWrongState {
            status: "proposed".into()
        })
    );
    // The creditor's admin, a party of another region, signs on the debtor's node.
    let sc_admin = s.sc_admin.clone();
    let events = s.sign(&sc_admin, "st-1").unwrap();
    assert!(matches!(
        &events[..],
        [Event::StatementSigned {
            in_effect: true,
            ..
        }]
    ));
    assert_eq!(s.statement("st-1").status, StatementStatus::Signed);
    assert_eq!(
        s.sign(&sc_admin, "st-1"),
        Err(Rejection::StatementAlreadySigned {
            region: "sc".into()
        })
    );
    let regions: Vec<String> = s
        .statement("st-1")
        .signatures
        .iter()
        .map(|x| x.region.to_string())
        .collect();
    assert_eq!(regions, ["cq", "sc"]);

    // The payment is the debtor's, of the net exactly.
    assert!(matches!(
        s.pay(&sc_admin, "st-1", 80_000),
        Err(Rejection::ForeignAuthority { .. })
    ));
    assert!(mismatch(s.pay(&admin, "st-1", 79_999)).contains("nets to 80000"));
    let agency = s.sc_agency.clone();
    assert!(matches!(
        s.pay(&agency, "st-1", 80_000),
        Err(Rejection::NotAuthorized(_))
    ));
    assert!(matches!(
        s.run(
            &admin,
            "settlement.record_payment",
            json!({ "statement_id": "st-1", "amount_minor": 80_000, "reference": " " })
        ),
        Err(Rejection::InvalidField {
            field: "reference",
            ..
        })
    ));
    s.pay(&admin, "st-1", 80_000).unwrap();
    let st = s.statement("st-1");
    assert_eq!(st.status, StatementStatus::Paid);
    let payment = st.payment.unwrap();
    assert_eq!(
        (payment.amount_minor, payment.reference.as_str()),
        (80_000, "PBOC-2023-12-001")
    );
    assert_eq!(s.position(), 0);
    assert_eq!(
        s.pay(&admin, "st-1", 80_000),
        Err(Rejection::StatementWrongState {
            status: "paid".into()
        })
    );
    assert_eq!(
        s.sign(&admin, "st-1"),
        Err(Rejection::StatementAlreadySigned {
            region: "cq".into()
        })
    );
    assert_eq!(
        s.sign(&s.cd_admin.clone(), "st-2"),
        Err(Rejection::ForeignAuthority {
            home_region: "cd".into(),
            role: "an admin".into()
        })
    );
    assert_eq!(
        s.sign(&admin, "st-2"),
        Err(Rejection::StatementNotFound("st-2".into()))
    );
}

#[test]
fn a_later_payout_is_netted_by_the_next_statement_and_the_position_follows() {
    let mut s = Settling::new();
    let a = s.paid("o1", 100_000);
    s.w.time_ms = NOW + 2 * DAY_MS;
    let admin = s.admin.clone();
    let sc_admin = s.sc_admin.clone();
    s.run(
        &admin,
        "settlement.propose",
        proposal("st-1", &[line(&a)], a.amount),
    )
    .unwrap();
    let b = s.paid("o2", 40_000);
    assert_eq!(s.position(), a.amount + b.amount);
    // The first period's payout is settled; the second period holds only the new one.
    let mut second = proposal("st-2", &[line(&a), line(&b)], a.amount + b.amount);
    second["from_ms"] = json!(NOW - DAY_MS);
    second["until_ms"] = json!(NOW + 2 * DAY_MS + 1);
    s.w.time_ms = NOW + 3 * DAY_MS;
    assert!(
        mismatch(s.run(&admin, "settlement.propose", second.clone()))
            .contains("already settled by statement `st-1`")
    );
    second["lines"] = json!([line(&b)]);
    second["gross_debtor_to_creditor_minor"] = json!(b.amount);
    second["net_minor"] = json!(b.amount);
    s.run(&admin, "settlement.propose", second).unwrap();
    for id in ["st-2", "st-1"] {
        s.sign(&admin, id).unwrap();
        s.sign(&sc_admin, id).unwrap();
    }
    s.pay(&admin, "st-2", b.amount).unwrap();
    assert_eq!(s.position(), a.amount);
    s.pay(&admin, "st-1", a.amount).unwrap();
    assert_eq!(s.position(), 0);
    assert_eq!(
        s.run(
            &admin,
            "settlement.propose",
            proposal("st-1", &[line(&a)], a.amount)
        ),
        Err(Rejection::StatementExists("st-1".into()))
    );
}

#[test]
fn a_statement_that_does_not_net_the_open_payouts_is_refused() {
    let mut s = Settling::new();
    let a = s.paid("o1", 100_000);
    let b = s.paid("o2", 60_000);
    s.w.time_ms = NOW + 2 * DAY_MS;
    let admin = s.admin.clone();
    let both = [line(&a), line(&b)];
    let mut propose = |body: Value| s.run(&admin, "settlement.propose", body);

    // A line naming a claim twice.
    let twice = proposal("st", &[line(&a), line(&a)], 2 * a.amount);
    assert!(mismatch(propose(twice)).contains("line 2 names the payout of order `o1` again"));
    // A claim with no advanced payout.
    let mut unknown = line(&a);
    unknown["order_id"] = json!("nope");
    assert!(
        mismatch(propose(proposal("st", &[unknown, line(&b)], 80_000)))
            .contains("order `nope` has no payout advanced")
    );
    // Another entry.
    let mut moved = line(&a);
    moved["log_index"] = json!(a.index + 1);
    assert!(
        mismatch(propose(proposal("st", &[moved, line(&b)], 80_000))).contains(&format!(
            "is entry {}, not {}",
            a.index,
            a.index + 1
        ))
    );
    // A wrong amount.
    let mut more = line(&a);
    more["amount_minor"] = json!(a.amount + 1);
    assert!(mismatch(propose(proposal("st", &[more, line(&b)], 80_001)))
        .contains("is 50000, not 50001"));
    // Wrong gross, net, or gross the other way.
    assert!(mismatch(propose(proposal("st", &both, 80_001))).contains("add up to 80000, not 80001"));
    let mut net = proposal("st", &both, 80_000);
    net["net_minor"] = json!(70_000);
    assert!(mismatch(propose(net)).contains("nets to 80000, not 70000"));
    let mut other_way = proposal("st", &both, 80_000);
    other_way["gross_creditor_to_debtor_minor"] = json!(10_000);
    other_way["net_minor"] = json!(70_000);
    assert!(mismatch(propose(other_way)).contains("the gross owed to it is 0, not 10000"));
    // A line of the other direction, or of another log.
    let mut reverse = line(&a);
    reverse["direction"] = json!("creditor_to_debtor");
    assert!(
        mismatch(propose(proposal("st", &[reverse, line(&b)], 80_000)))
            .contains("only payouts of this log")
    );
    let mut foreign = line(&a);
    foreign["region"] = json!("sc");
    assert!(
        mismatch(propose(proposal("st", &[foreign, line(&b)], 80_000)))
            .contains("only payouts of this log")
    );
    // A line left out, or the lines out of order.
    assert!(
        mismatch(propose(proposal("st", &[line(&a)], a.amount))).contains("leaves out order `o2`")
    );
    assert!(
        mismatch(propose(proposal("st", &[line(&b), line(&a)], 80_000)))
            .contains("not in the order the payouts were made")
    );
    // Another creditor, and a period with nothing in it.
    let mut cd = proposal("st", &both, 80_000);
    cd["creditor"] = json!("cd");
    assert!(mismatch(propose(cd)).contains("was advanced by `sc`, not `cd`"));
    let mut empty = proposal("st", &[], 0);
    empty["from_ms"] = json!(NOW - 10 * DAY_MS);
    empty["until_ms"] = json!(NOW - 9 * DAY_MS);
    assert!(mismatch(propose(empty)).contains("no open payout"));
    let mut outside = proposal("st", &both, 80_000);
    outside["until_ms"] = json!(NOW - DAY_MS / 2);
    assert!(mismatch(propose(outside)).contains("outside the period"));
    // A leaf hash that is not one.
    let mut hash = line(&a);
    hash["leaf_hash"] = json!("AAAA");
    assert!(matches!(
        propose(proposal("st", &[hash, line(&b)], 80_000)),
        Err(Rejection::InvalidField { field: "lines", .. })
    ));
    // Periods.
    let mut open = proposal("st", &both, 80_000);
    open["until_ms"] = json!(NOW + 3 * DAY_MS);
    assert!(matches!(
        propose(open),
        Err(Rejection::InvalidField {
            field: "until_ms",
            ..
        })
    ));
    let mut backwards = proposal("st", &both, 80_000);
    backwards["until_ms"] = json!(NOW - DAY_MS);
    assert!(matches!(
        propose(backwards),
        Err(Rejection::InvalidField {
            field: "until_ms",
            ..
        })
    ));
    let mut both_ways = proposal("st", &both, 80_000);
    both_ways["month"] = json!("2023-11");
    assert!(matches!(
        propose(both_ways),
        Err(Rejection::InvalidField { field: "month", .. })
    ));
    let mut half = proposal("st", &both, 80_000);
    half.as_object_mut().unwrap().remove("until_ms");
    assert!(matches!(
        propose(half),
        Err(Rejection::InvalidField {
            field: "until_ms",
            ..
        })
    ));
    let mut itself = proposal("st", &both, 80_000);
    itself["creditor"] = json!("cq");
    assert!(matches!(
        propose(itself),
        Err(Rejection::InvalidField {
            field: "creditor",
            ..
        })
    ));
    let mut bad_month = proposal("st", &both, 80_000);
    bad_month.as_object_mut().unwrap().remove("from_ms");
    bad_month.as_object_mut().unwrap().remove("until_ms");
    bad_month["month"] = json!("2023-13");
    assert!(matches!(
        propose(bad_month),
        Err(Rejection::InvalidField { field: "month", .. })
    ));
    let many: Vec<Value> = (0..65).map(|_| line(&a)).collect();
    assert!(matches!(
        propose(proposal("st", &many, 0)),
        Err(Rejection::InvalidField { field: "lines", .. })
    ));

    // Nothing of a refusal was recorded: the payouts are still open.
    propose(proposal("st", &both, 80_000)).unwrap();
}

#[test]
fn the_default_period_is_the_month_before_in_the_regions_time_zone() {
    let mut s = Settling::new();
    // One payout in the last minute of October (Shanghai time), two in November.
    s.w.time_ms = NOVEMBER_MS - 60_000;
    let october = s.paid("o-oct", 20_000);
    s.w.time_ms = NOVEMBER_MS;
    let first = s.paid("o-nov-1", 100_000);
    s.w.time_ms = DECEMBER_MS - 1;
    let last = s.paid("o-nov-2", 40_000);
    s.w.time_ms = DECEMBER_MS + 3 * DAY_MS;
    let admin = s.admin.clone();
    let gross = first.amount + last.amount;
    let mut body = proposal("st-nov", &[line(&first), line(&last)], gross);
    body.as_object_mut().unwrap().remove("from_ms");
    body.as_object_mut().unwrap().remove("until_ms");
    let mut month = body.clone();
    month["statement_id"] = json!("st-nov-2");
    month["month"] = json!("2023-11");
    // The month named and the month before the entry's are the same period.
    s.run(&admin, "settlement.propose", body).unwrap();
    let st = s.statement("st-nov");
    assert_eq!((st.from_ms, st.until_ms), (NOVEMBER_MS, DECEMBER_MS));
    assert!(mismatch(s.run(&admin, "settlement.propose", month)).contains("already settled"));
    let mut oct = proposal("st-oct", &[line(&october)], october.amount);
    oct.as_object_mut().unwrap().remove("from_ms");
    oct.as_object_mut().unwrap().remove("until_ms");
    oct["month"] = json!("2023-10");
    s.run(&admin, "settlement.propose", oct).unwrap();
    assert_eq!(s.statement("st-oct").until_ms, NOVEMBER_MS);
}

#[test]
fn only_an_admin_of_each_of_the_statements_regions_signs_it() {
    let mut s = Settling::new();
    let a = s.paid("o1", 100_000);
    s.w.time_ms = NOW + 2 * DAY_MS;
    let admin = s.admin.clone();
    s.run(
        &admin,
        "settlement.propose",
        proposal("st-1", &[line(&a)], a.amount),
    )
    .unwrap();
    let (sc_admin, sc_regulator, cd_admin, agency, regulator, enterprise) = (
        s.sc_admin.clone(),
        s.sc_regulator.clone(),
        s.cd_admin.clone(),
        s.sc_agency.clone(),
        s.regulator.clone(),
        s.enterprise.clone(),
    );
    // An admin of a third region, and the creditor's regulator: foreign authorities.
    for who in [&cd_admin, &sc_regulator] {
        assert!(matches!(
            s.sign(who, "st-1"),
            Err(Rejection::ForeignAuthority { .. })
        ));
    }
    // The creditor's admin signs the statement and nothing else here.
    let foreign = [
        (
            "settlement.propose",
            proposal("st-9", &[line(&a)], a.amount),
        ),
        (
            "party.register",
            json!({ "key": b64(&key()), "role": "agency", "home_region": "cq", "name": "x" }),
        ),
        (
            "voucher.freeze",
            json!({ "voucher_id": "v1", "reason": "r" }),
        ),
    ];
    for (command, body) in foreign {
        assert!(
            matches!(
                s.run(&sc_admin, command, body),
                Err(Rejection::ForeignAuthority { .. })
            ),
            "{command}"
        );
    }
    // Parties of other roles, of either region, are not admins.
    for who in [&agency, &regulator, &enterprise] {
        match s.sign(who, "st-1") {
            Err(Rejection::NotAuthorized(refusal)) => assert_eq!(
                refusal.required,
                "an admin of the statement's debtor or creditor region"
            ),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(s.statement("st-1").signatures.len(), 0);
    s.sign(&sc_admin, "st-1").unwrap();
    s.sign(&admin, "st-1").unwrap();
    assert_eq!(s.statement("st-1").status, StatementStatus::Signed);
}

#[test]
#[should_panic(expected = "would go below zero")]
fn a_position_never_goes_below_zero() {
    let mut s = Settling::new();
    let a = s.paid("o1", 100_000);
    s.w.time_ms = NOW + 2 * DAY_MS;
    let (admin, sc_admin) = (s.admin.clone(), s.sc_admin.clone());
    s.run(
        &admin,
        "settlement.propose",
        proposal("st-1", &[line(&a)], a.amount),
    )
    .unwrap();
    s.sign(&admin, "st-1").unwrap();
    s.sign(&sc_admin, "st-1").unwrap();
    // A position smaller than what the statement nets (which no command can make) stops the
    // writer rather than going negative.
    let smaller = SettlementPosition {
        debtor: region("cq"),
        creditor: region("sc"),
        amount_minor: a.amount - 1,
    };
    s.w.state.put(b"settle/cq/sc".to_vec(), &smaller);
    let _ = s.pay(&admin, "st-1", a.amount);
}

/// An order on a listing of another region reads the listing as adopted: its price bounds the
/// order, its withdrawal in the view stops new orders, and a region not adopted has no listings.
#[test]
fn an_order_on_another_regions_listing_reads_it_as_adopted() {
    let mut s = Settling::new();
    let enterprise = s.enterprise.clone();
    let place = |id: &str, region: Option<&str>, price: u64| {
        let mut body = json!({ "order_id": id, "listing_id": "lab-sc", "voucher_id": "v1",
            "price_minor": price, "payment": { "mode": "direct" }, "auto_confirm_after_ms": DAY_MS });
        if let Some(region) = region {
            body["listing_region"] = json!(region);
        }
        body
    };
    // Named without its region, the listing is looked for in this log, where it is not.
    assert!(matches!(
        s.run(&enterprise, "order.place", place("o1", None, 50_000)),
        Err(Rejection::ListingNotFound(name)) if name == "lab-sc"
    ));
    // A region adopted, but not holding it; a region never adopted.
    for region in ["cd", "gz"] {
        assert!(matches!(
            s.run(&enterprise, "order.place", place("o1", Some(region), 50_000)),
            Err(Rejection::ListingNotFound(name)) if name == format!("lab-sc of region `{region}`")
        ));
    }
    assert!(matches!(
        s.run(&enterprise, "order.place", place("o1", Some("sc"), 100_001)),
        Err(Rejection::PriceAboveListing {
            listing_price_minor: 100_000,
            ..
        })
    ));
    let events = s
        .run(&enterprise, "order.place", place("o1", Some("sc"), 80_000))
        .unwrap();
    assert!(matches!(&events[0],
        Event::OrderPlaced { listing_region: Some(r), agency_region, .. }
            if r.as_str() == "sc" && agency_region.as_str() == "sc"));
    let order = orders::load_order(&s.w.state, &"o1".try_into().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(order.listing_region, Some(region("sc")));
    // `sc` withdrew the listing, and `cq` adopted that state.
    let mut withdrawn: ListingRecord =
        s.w.state
            .get(&view_key(
                &region("sc"),
                &[catalog::LISTING_PREFIX, b"lab-sc"].concat(),
            ))
            .unwrap()
            .unwrap();
    withdrawn.status = ListingStatus::Withdrawn;
    s.w.state.put(
        view_key(
            &region("sc"),
            &[catalog::LISTING_PREFIX, b"lab-sc"].concat(),
        ),
        &withdrawn,
    );
    assert!(matches!(
        s.run(&enterprise, "order.place", place("o2", Some("sc"), 50_000)),
        Err(Rejection::ListingWithdrawn(_))
    ));
}

/// Listings and parties live in their party's home log: another region's node refuses to found
/// or change them, whoever signs; the order's foreign agency still acts on the order.
#[test]
fn records_of_a_home_log_are_refused_on_another_regions_node() {
    let mut s = Settling::new();
    let agency = s.sc_agency.clone();
    let listing = json!({ "listing_id": "lab-2", "pool": "instruments_equipment",
        "category": "testing", "title": "EMC 测试", "description": "EMC testing",
        "price_minor": 100_000, "currency": "CNY" });
    let refused = s.run(&agency, "catalog.list", listing);
    assert!(
        matches!(&refused, Err(Rejection::HomeRegionMismatch { record: "a listing", node_region, home_region })
            if node_region == "cq" && home_region == "sc"),
        "{refused:?}"
    );
    assert!(refused
        .unwrap_err()
        .to_string()
        .contains("send the command to `sc`'s node"));
    let update = json!({ "listing_id": "lab-sc", "price_minor": 1 });
    assert!(matches!(
        s.run(&agency, "catalog.update", update),
        Err(Rejection::HomeRegionMismatch {
            record: "a listing",
            ..
        })
    ));
    let revoke = json!({ "key": b64(&agency), "reason": "lost" });
    assert!(matches!(
        s.run(&agency, "party.revoke_key", revoke),
        Err(Rejection::HomeRegionMismatch {
            record: "a party",
            ..
        })
    ));
    // The order on `sc`'s listing is `cq`'s, and `sc`'s agency delivers and claims it here.
    let payout = s.paid("o1", 100_000);
    assert_eq!(payout.amount, 50_000);
}

/// An escrow provider of another region holds the enterprise's share of an order here.
#[test]
fn an_escrow_provider_of_another_region_funds_an_order() {
    let mut s = Settling::new();
    let provider = key();
    adopt(
        &mut s.w,
        "cd",
        &[(&s.cd_admin.clone(), "admin"), (&provider, "escrow")],
    );
    let enterprise = s.enterprise.clone();
    let place = json!({ "order_id": "o1", "listing_id": "lab-sc", "listing_region": "sc",
        "voucher_id": "v1", "price_minor": 100_000,
        "payment": { "mode": "escrow", "escrow_provider": b64(&provider), "fee_minor": 0 },
        "auto_confirm_after_ms": DAY_MS });
    s.run(&enterprise, "order.place", place).unwrap();
    let fund = json!({ "order_id": "o1", "amount_minor": 50_000, "reference": "ESCROW-1" });
    let events = s.run(&provider, "escrow.fund", fund).unwrap();
    assert!(matches!(
        &events[0],
        Event::EscrowFunded {
            amount_minor: 50_000,
            ..
        }
    ));
}

/// The region that pays a claim signs its payout: the advancing region's admin when the program
/// has the agency's region advance it, and then not the funding region's; else the funding
/// region's admin, and no admin of another region.
#[test]
fn the_paying_regions_admin_signs_the_payout() {
    let mut s = Settling::new();
    let (admin, sc_admin, agency, enterprise) = (
        s.admin.clone(),
        s.sc_admin.clone(),
        s.sc_agency.clone(),
        s.enterprise.clone(),
    );
    let approved = |s: &mut Settling, order: &str| {
        let place = json!({ "order_id": order, "listing_id": "lab-sc", "listing_region": "sc",
            "voucher_id": "v1", "price_minor": 100_000, "payment": { "mode": "direct" },
            "auto_confirm_after_ms": DAY_MS });
        s.run(&enterprise, "order.place", place).unwrap();
        let ack = json!({ "order_id": order, "installment": 0, "reference": "BANK" });
        s.run(&agency, "payment.acknowledge", ack).unwrap();
        let deliver = json!({ "order_id": order, "evidence": [{ "kind": "report", "sha256": hex_of(order) }] });
        s.run(&agency, "order.deliver", deliver).unwrap();
        s.run(&enterprise, "order.confirm", json!({ "order_id": order }))
            .unwrap();
        s.run(&agency, "claim.submit", json!({ "order_id": order }))
            .unwrap();
        let review = json!({ "order_id": order, "level": 1, "decision": "approve" });
        s.run(&admin, "claim.review", review).unwrap();
    };
    let pay = |order: &str| json!({ "order_id": order, "reference": "TREASURY" });
    approved(&mut s, "o1");
    let refused = s.run(&admin, "claim.pay", pay("o1"));
    assert!(
        matches!(&refused, Err(Rejection::NotAuthorized(r)) if r.required == "an admin of the region that pays the claim"),
        "{refused:?}"
    );
    let cd_admin = s.cd_admin.clone();
    assert!(matches!(
        s.run(&cd_admin, "claim.pay", pay("o1")),
        Err(Rejection::ForeignAuthority { .. })
    ));
    s.run(&sc_admin, "claim.pay", pay("o1")).unwrap();

    // The same program paying directly: the funding region's admin pays, `sc`'s may not.
    let mut program: ProgramRecord = s.w.state.get(b"program/p").unwrap().unwrap();
    program.terms.cross_region_payer = programs::CrossRegionPayer::IssuingRegion;
    s.w.state.put(b"program/p".to_vec(), &program);
    approved(&mut s, "o2");
    assert!(matches!(
        s.run(&sc_admin, "claim.pay", pay("o2")),
        Err(Rejection::ForeignAuthority { .. })
    ));
    let events = s.run(&admin, "claim.pay", pay("o2")).unwrap();
    assert!(matches!(
        &events[0],
        Event::ClaimPaid {
            advanced_by: None,
            ..
        }
    ));
}
