//! Programs, qualification and vouchers on the pure state machine: every refusal, and value
//! conservation through issue, revoke and expiry.

use serde_json::{json, Value};

use super::programs::load_program;
use super::tests::{key, World};
use super::vouchers::{load_voucher, VoucherStatus};
use super::*;
use vledger_tlog::keys::SigningKey;

const DAY_MS: u64 = 86_400_000;
const NOW: u64 = 1_700_000_000_000;

pub(super) fn program_body(id: &str) -> Value {
    json!({
        "program_id": id,
        "name": "Chongqing resource sharing vouchers",
        "kind": "resource_sharing",
        "currency": "CNY",
        "budget_minor": 1_000_000,
        "subsidy_ratio_bps": 5000,
        "caps": {
            "per_voucher_minor": 300_000,
            "per_order_minor": 200_000,
            "per_enterprise_year_minor": 500_000,
            "per_group_year_minor": 800_000
        },
        "eligible_categories": ["testing", "instrument"],
        "valid_from_ms": NOW - DAY_MS,
        "valid_until_ms": NOW + 30 * DAY_MS,
        "claim_deadline_ms": NOW + 60 * DAY_MS,
        "spend_regions": ["cq", "sc"],
        "cross_region_payer": "issuing_region",
        "use_mode": "multi",
        "review_levels": 2,
        "notice_period_ms": 5 * DAY_MS
    })
}

struct Voucherland {
    w: World,
    admin: SigningKey,
    enterprise: SigningKey,
}

impl Voucherland {
    fn new() -> Self {
        let mut w = World::founded();
        let admin = w.admin.clone();
        let enterprise = key();
        w.register(&enterprise, "enterprise").unwrap();
        w.run(&admin, "program.create", program_body("cq-rs"))
            .unwrap();
        let q = json!({ "program_id": "cq-rs", "enterprise": enterprise.public_key().to_base64(), "expires_at_ms": NOW + 20 * DAY_MS });
        w.run(&admin, "enterprise.qualify", q).unwrap();
        Self {
            w,
            admin,
            enterprise,
        }
    }

    fn issue(&mut self, id: &str, face: u64) -> Result<Vec<Event>, Rejection> {
        let body = json!({ "voucher_id": id, "program_id": "cq-rs", "holder": self.enterprise.public_key().to_base64(), "face_value_minor": face });
        let admin = self.admin.clone();
        self.w.run(&admin, "voucher.issue", body)
    }

    fn act(
        &mut self,
        signer: &SigningKey,
        command_type: &str,
        id: &str,
    ) -> Result<Vec<Event>, Rejection> {
        self.w.run(
            signer,
            command_type,
            json!({ "voucher_id": id, "reason": "audit" }),
        )
    }

    fn buckets(&self) -> programs::BudgetBuckets {
        load_program(&self.w.state, &"cq-rs".try_into().unwrap())
            .unwrap()
            .unwrap()
            .buckets
    }
}

#[test]
fn program_terms_are_checked() {
    let mut w = World::founded();
    let admin = w.admin.clone();
    let cases: [(&str, Value); 7] = [
        ("currency", json!("yuan")),
        ("budget_minor", json!(0)),
        ("subsidy_ratio_bps", json!(0)),
        ("eligible_categories", json!([])),
        ("spend_regions", json!([])),
        ("review_levels", json!(3)),
        ("valid_until_ms", json!(NOW - 2 * DAY_MS)),
    ];
    for (field, value) in cases {
        let mut body = program_body("p");
        body[field] = value;
        let result = w.run(&admin, "program.create", body);
        assert!(
            matches!(result, Err(Rejection::InvalidField { .. })),
            "{field}: {result:?}"
        );
    }
    let mut body = program_body("p");
    body["caps"]["per_order_minor"] = json!(0);
    assert!(matches!(
        w.run(&admin, "program.create", body),
        Err(Rejection::InvalidField {
            field: "caps.per_order_minor",
            ..
        })
    ));
    let mut body = program_body("p");
    body["claim_deadline_ms"] = json!(NOW);
    assert!(matches!(
        w.run(&admin, "program.create", body),
        Err(Rejection::InvalidField {
            field: "claim_deadline_ms",
            ..
        })
    ));
    let mut body = program_body("p");
    body["subsidy_ratio_bps"] = json!(10_001);
    assert!(matches!(
        w.run(&admin, "program.create", body),
        Err(Rejection::InvalidValue { field, .. }) if field == "subsidy_ratio_bps"
    ));
    w.run(&admin, "program.create", program_body("p")).unwrap();
    assert_eq!(
        w.run(&admin, "program.create", program_body("p")),
        Err(Rejection::ProgramExists("p".into()))
    );
    let agency = key();
    w.register(&agency, "agency").unwrap();
    assert!(matches!(
        w.run(&agency, "program.create", program_body("q")),
        Err(Rejection::NotAuthorized { .. })
    ));
}

#[test]
fn qualification_rules() {
    let mut v = Voucherland::new();
    let admin = v.admin.clone();
    let agency = key();
    v.w.register(&agency, "agency").unwrap();
    let q = |who: &SigningKey, program: &str, expires: u64| json!({ "program_id": program, "enterprise": who.public_key().to_base64(), "expires_at_ms": expires });
    assert_eq!(
        v.w.run(
            &admin,
            "enterprise.qualify",
            q(&v.enterprise, "nope", NOW + DAY_MS)
        ),
        Err(Rejection::ProgramNotFound("nope".into()))
    );
    assert!(matches!(
        v.w.run(
            &admin,
            "enterprise.qualify",
            q(&agency, "cq-rs", NOW + DAY_MS)
        ),
        Err(Rejection::WrongPartyRole { .. })
    ));
    assert_eq!(
        v.w.run(
            &admin,
            "enterprise.qualify",
            q(&key(), "cq-rs", NOW + DAY_MS)
        ),
        Err(Rejection::PartyNotFound)
    );
    assert!(matches!(
        v.w.run(&admin, "enterprise.qualify", q(&v.enterprise, "cq-rs", NOW)),
        Err(Rejection::InvalidField { .. })
    ));
    assert!(matches!(
        v.w.run(
            &agency,
            "enterprise.qualify",
            q(&v.enterprise, "cq-rs", NOW + DAY_MS)
        ),
        Err(Rejection::NotAuthorized { .. })
    ));
}

#[test]
fn issuance_rules_and_conservation() {
    let mut v = Voucherland::new();
    v.issue("v1", 300_000).unwrap();
    assert_eq!(v.buckets().unissued_minor, 700_000);
    assert_eq!(v.buckets().outstanding_minor, 300_000);
    assert_eq!(v.issue("v1", 1), Err(Rejection::VoucherExists("v1".into())));
    assert!(matches!(
        v.issue("v2", 300_001),
        Err(Rejection::CapExceeded {
            cap: "per_voucher",
            ..
        })
    ));
    assert!(matches!(
        v.issue("v2", 0),
        Err(Rejection::InvalidField {
            field: "face_value_minor",
            ..
        })
    ));
    v.issue("v2", 300_000).unwrap();
    v.issue("v3", 300_000).unwrap();
    assert_eq!(
        v.issue("v4", 200_000),
        Err(Rejection::BudgetExhausted {
            available_minor: 100_000,
            requested_minor: 200_000
        })
    );

    let stranger = key();
    v.w.register(&stranger, "enterprise").unwrap();
    let admin = v.admin.clone();
    let body = json!({ "voucher_id": "v5", "program_id": "cq-rs", "holder": stranger.public_key().to_base64(), "face_value_minor": 1 });
    assert_eq!(
        v.w.run(&admin, "voucher.issue", body),
        Err(Rejection::NotQualified)
    );
    let body = json!({ "voucher_id": "v5", "program_id": "cq-rs", "holder": v.enterprise.public_key().to_base64(), "face_value_minor": 1, "expires_at_ms": NOW + 365 * DAY_MS });
    assert!(matches!(
        v.w.run(&admin, "voucher.issue", body),
        Err(Rejection::InvalidField {
            field: "expires_at_ms",
            ..
        })
    ));
}

#[test]
fn issuance_is_refused_outside_the_window_and_after_qualification_expiry() {
    let mut v = Voucherland::new();
    v.w.time_ms = NOW + 21 * DAY_MS;
    assert_eq!(v.issue("late", 1), Err(Rejection::QualificationExpired));
    v.w.time_ms = NOW + 31 * DAY_MS;
    assert!(matches!(
        v.issue("later", 1),
        Err(Rejection::ProgramNotOpen { .. })
    ));
}

#[test]
fn freeze_revoke_and_expire() {
    let mut v = Voucherland::new();
    let (admin, node) = (v.admin.clone(), v.w.node.clone());
    let regulator = key();
    v.w.register(&regulator, "regulator").unwrap();
    let enterprise = v.enterprise.clone();
    v.issue("v1", 100_000).unwrap();
    v.issue("v2", 50_000).unwrap();

    assert!(matches!(
        v.act(&enterprise, "voucher.freeze", "v1"),
        Err(Rejection::NotAuthorized { .. })
    ));
    assert_eq!(
        v.act(&admin, "voucher.unfreeze", "v1"),
        Err(Rejection::NotFrozen)
    );
    v.act(&regulator, "voucher.freeze", "v1").unwrap();
    assert_eq!(
        v.act(&admin, "voucher.freeze", "v1"),
        Err(Rejection::AlreadyFrozen)
    );
    assert!(
        load_voucher(&v.w.state, &"v1".try_into().unwrap())
            .unwrap()
            .unwrap()
            .frozen
    );
    v.act(&admin, "voucher.unfreeze", "v1").unwrap();

    assert!(matches!(
        v.act(&regulator, "voucher.revoke", "v1"),
        Err(Rejection::NotAuthorized { .. })
    ));
    assert_eq!(
        v.act(&admin, "voucher.revoke", "nope"),
        Err(Rejection::VoucherNotFound("nope".into()))
    );
    v.act(&admin, "voucher.revoke", "v1").unwrap();
    assert!(matches!(
        v.act(&admin, "voucher.revoke", "v1"),
        Err(Rejection::VoucherNotActive { .. })
    ));
    assert_eq!(v.buckets().revoked_minor, 100_000);
    assert_eq!(v.buckets().outstanding_minor, 50_000);

    let expire = json!({ "voucher_id": "v2" });
    assert!(matches!(
        v.w.run(&admin, "voucher.expire", expire.clone()),
        Err(Rejection::NotAuthorized { .. })
    ));
    assert!(matches!(
        v.w.run(&node, "voucher.expire", expire.clone()),
        Err(Rejection::NotYetExpired { .. })
    ));
    v.w.time_ms = NOW + 30 * DAY_MS;
    v.w.run(&node, "voucher.expire", expire.clone()).unwrap();
    let voucher = load_voucher(&v.w.state, &"v2".try_into().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        (voucher.status, voucher.balance_minor),
        (VoucherStatus::Expired, 0)
    );
    assert_eq!(v.buckets().expired_minor, 50_000);
    assert_eq!(v.buckets().outstanding_minor, 0);
    assert!(matches!(
        v.w.run(&node, "voucher.expire", expire),
        Err(Rejection::VoucherNotActive { .. })
    ));
    assert!(
        v.w.state
            .records
            .keys()
            .all(|k| !k.starts_with(vouchers::EXPIRY_INDEX_PREFIX)),
        "expiry index is cleaned"
    );
}

#[test]
fn calendar_year_follows_the_program_time_zone() {
    let mut body = program_body("tz");
    body["time_zone"] = json!("Mars/Olympus");
    let mut w = World::founded();
    let admin = w.admin.clone();
    assert!(matches!(
        w.run(&admin, "program.create", body),
        Err(Rejection::InvalidField {
            field: "time_zone",
            ..
        })
    ));
    let terms: programs::ProgramTerms = serde_json::from_value(program_body("tz")).unwrap();
    // 2025-12-31T16:30:00Z is 2026-01-01 00:30 in Shanghai.
    assert_eq!(terms.calendar_year(1_767_198_600_000), 2026);
    let mut utc = terms.clone();
    utc.time_zone = "UTC".into();
    assert_eq!(utc.calendar_year(1_767_198_600_000), 2025);
}
