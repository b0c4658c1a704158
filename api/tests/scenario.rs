//! The voucher lifecycle of the Chengdu–Chongqing scenario, end to end through the real HTTP API
//! with real signed envelopes: programs in both regions, qualification, issuance, a catalog
//! search, an order paid partly by voucher and partly through escrow, delivery, confirmation,
//! a claim through two-level review, the notice period and payout; an order paid directly in
//! three installments; expiry and revocation returning value; a refused related-party order;
//! a dispute that refunds the escrow.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vledger_node::writer::wall_clock_ms;
use vledger_tlog::keys::SigningKey;

use common::Api;

const DAY_MS: u64 = 86_400_000;

fn key() -> SigningKey {
    common::fresh_key()
}

fn b64(k: &SigningKey) -> String {
    k.public_key().to_base64()
}

fn program(id: &str, spend_regions: &[&str], review_levels: u8, now: u64) -> Value {
    json!({
        "program_id": id, "name": format!("{id} innovation vouchers"), "kind": "resource_sharing", "currency": "CNY",
        "budget_minor": 50_000_000, "subsidy_ratio_bps": 5000,
        "caps": { "per_voucher_minor": 2_000_000, "per_order_minor": 1_000_000,
                  "per_enterprise_year_minor": 3_000_000, "per_group_year_minor": 5_000_000 },
        "eligible_categories": ["testing", "data"], "valid_from_ms": now - DAY_MS, "valid_until_ms": now + 90 * DAY_MS,
        "claim_deadline_ms": now + 120 * DAY_MS, "spend_regions": spend_regions, "cross_region_payer": "agency_region",
        "use_mode": "multi", "review_levels": review_levels, "notice_period_ms": 1500
    })
}

#[tokio::test]
async fn the_voucher_lifecycle_through_the_api() {
    let (admin, second_admin, regulator) = (key(), key(), key());
    let api = Api::start(&admin).await;
    let now = wall_clock_ms();
    let (sme, sme_affiliate, lab, data_center, escrow) = (key(), key(), key(), key(), key());
    for (k, role) in [
        (&second_admin, "admin"),
        (&regulator, "regulator"),
        (&sme, "enterprise"),
        (&sme_affiliate, "enterprise"),
        (&lab, "agency"),
        (&data_center, "agency"),
        (&escrow, "escrow"),
    ] {
        api.ok(
            &admin,
            "party.register",
            json!({ "key": b64(k), "role": role, "home_region": "cq", "name": role }),
        )
        .await;
    }
    for agency in [&lab, &data_center] {
        api.ok(
            &admin,
            "agency.accredit",
            json!({ "agency": b64(agency), "expires_at_ms": now + 365 * DAY_MS }),
        )
        .await;
    }
    // A Chongqing program (two review levels) and a Sichuan-style 科创券 program (one level).
    api.ok(
        &admin,
        "program.create",
        program("cq-rs", &["cq", "sc"], 2, now),
    )
    .await;
    api.ok(&admin, "program.create", program("sc-kcq", &["cq"], 1, now))
        .await;
    for p in ["cq-rs", "sc-kcq"] {
        api.ok(
            &admin,
            "enterprise.qualify",
            json!({ "program_id": p, "enterprise": b64(&sme), "expires_at_ms": now + 60 * DAY_MS }),
        )
        .await;
    }
    let issue = |id: &str, program: &str, face: u64, expires: Option<u64>| {
        let mut body = json!({ "voucher_id": id, "program_id": program, "holder": b64(&sme), "face_value_minor": face });
        if let Some(at) = expires {
            body["expires_at_ms"] = json!(at);
        }
        body
    };
    api.ok(
        &admin,
        "voucher.issue",
        issue("CQ-1", "cq-rs", 2_000_000, None),
    )
    .await;
    api.ok(
        &admin,
        "voucher.issue",
        issue("SC-1", "sc-kcq", 1_000_000, None),
    )
    .await;

    // The catalog: two listings, found by a search.
    let listing = |id: &str, title: &str, category: &str, price: u64| {
        json!({
        "listing_id": id, "pool": "instruments_equipment", "category": category, "title": title,
        "description": "CNAS accredited", "price_minor": price, "currency": "CNY" })
    };
    api.ok(
        &lab,
        "catalog.list",
        listing("lab-xrd", "X射线衍射检测", "testing", 1_200_000),
    )
    .await;
    api.ok(
        &data_center,
        "catalog.list",
        listing("dc-1", "科学数据服务", "data", 600_000),
    )
    .await;
    let found = api
        .get("/v1/catalog/listings?category=testing&q=%E8%A1%8D%E5%B0%84")
        .await;
    assert_eq!(found["listings"][0]["listing_id"], "lab-xrd", "{found}");

    // An order paid half by voucher, half through escrow.
    let escrow_plan =
        json!({ "mode": "escrow", "escrow_provider": b64(&escrow), "fee_minor": 3_000 });
    let placed = api
        .ok(
            &sme,
            "order.place",
            json!({ "order_id": "o-1", "listing_id": "lab-xrd", "voucher_id": "CQ-1",
        "price_minor": 1_200_000, "payment": escrow_plan, "auto_confirm_after_ms": 7 * DAY_MS }),
        )
        .await;
    assert!(placed["receipt"]["index"].as_u64().unwrap() > 0);
    let order = api.get("/v1/orders/o-1").await;
    assert_eq!(
        (
            order["voucher_share_minor"].as_u64(),
            order["enterprise_share_minor"].as_u64()
        ),
        (Some(600_000), Some(600_000))
    );
    api.ok(
        &escrow,
        "escrow.fund",
        json!({ "order_id": "o-1", "amount_minor": 600_000, "reference": "ALIPAY-778" }),
    )
    .await;
    let evidence = json!([{ "kind": "contract", "sha256": "1".repeat(64) }, { "kind": "invoice", "sha256": "2".repeat(64) },
        { "kind": "report", "sha256": "3".repeat(64) }]);
    api.ok(
        &lab,
        "order.deliver",
        json!({ "order_id": "o-1", "evidence": evidence }),
    )
    .await;
    api.ok(&sme, "order.confirm", json!({ "order_id": "o-1" }))
        .await;
    assert_eq!(
        api.get("/v1/orders/o-1").await["escrow"]["status"],
        "released"
    );

    // The claim: two levels by two admins, a notice period, then payout.
    api.ok(&lab, "claim.submit", json!({ "order_id": "o-1" }))
        .await;
    api.ok(
        &admin,
        "claim.review",
        json!({ "order_id": "o-1", "level": 1, "decision": "approve" }),
    )
    .await;
    api.refused(
        &admin,
        "claim.review",
        json!({ "order_id": "o-1", "level": 2, "decision": "approve" }),
        422,
        "same-reviewer",
    )
    .await;
    api.ok(
        &second_admin,
        "claim.review",
        json!({ "order_id": "o-1", "level": 2, "decision": "approve" }),
    )
    .await;
    api.refused(
        &admin,
        "claim.pay",
        json!({ "order_id": "o-1", "reference": "TREASURY-1" }),
        422,
        "notice-period-running",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    api.ok(
        &admin,
        "claim.pay",
        json!({ "order_id": "o-1", "reference": "TREASURY-1" }),
    )
    .await;
    assert_eq!(api.get("/v1/claims/o-1").await["status"], "paid");
    let budget = api.get("/v1/programs/cq-rs").await["buckets"].clone();
    assert_eq!(budget["spent_minor"], 600_000);

    // An order paid directly in three installments.
    let installments: Vec<Value> = (1..=3)
        .map(|i| json!({ "amount_minor": 100_000, "due_at_ms": now + i * 30 * DAY_MS }))
        .collect();
    api.ok(&sme, "order.place", json!({ "order_id": "o-2", "listing_id": "dc-1", "voucher_id": "SC-1", "price_minor": 600_000,
        "payment": { "mode": "direct", "installments": installments }, "auto_confirm_after_ms": DAY_MS })).await;
    for i in 0..3 {
        api.ok(
            &data_center,
            "payment.acknowledge",
            json!({ "order_id": "o-2", "installment": i, "reference": format!("BANK-{i}") }),
        )
        .await;
    }
    assert!(api.get("/v1/orders/o-2").await["installments"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| !i["paid_at_ms"].is_null()));

    // A related-party order is refused.
    api.ok(
        &admin,
        "party.declare_affiliation",
        json!({ "party": b64(&data_center), "related_parties": [b64(&sme)] }),
    )
    .await;
    api.refused(&sme, "order.place", json!({ "order_id": "o-3", "listing_id": "dc-1", "voucher_id": "CQ-1", "price_minor": 100_000,
        "payment": { "mode": "escrow", "escrow_provider": b64(&escrow), "fee_minor": 0 }, "auto_confirm_after_ms": DAY_MS }),
        422, "related-parties").await;

    // A dispute that refunds the escrow and returns the voucher share.
    let before = api.get("/v1/vouchers/CQ-1").await["balance_minor"]
        .as_u64()
        .unwrap();
    api.ok(&sme, "order.place", json!({ "order_id": "o-4", "listing_id": "lab-xrd", "voucher_id": "CQ-1", "price_minor": 400_000,
        "payment": { "mode": "escrow", "escrow_provider": b64(&escrow), "fee_minor": 0 }, "auto_confirm_after_ms": DAY_MS })).await;
    api.ok(
        &escrow,
        "escrow.fund",
        json!({ "order_id": "o-4", "amount_minor": 200_000, "reference": "ALIPAY-779" }),
    )
    .await;
    api.ok(
        &lab,
        "order.deliver",
        json!({ "order_id": "o-4", "evidence": [{ "kind": "report", "sha256": "4".repeat(64) }] }),
    )
    .await;
    api.ok(
        &sme,
        "order.dispute",
        json!({ "order_id": "o-4", "reason": "the report is for another sample" }),
    )
    .await;
    assert_eq!(
        api.get("/v1/orders/o-4").await["escrow"]["status"],
        "frozen"
    );
    api.ok(
        &admin,
        "dispute.resolve",
        json!({ "order_id": "o-4", "outcome": "refund", "reason": "upheld" }),
    )
    .await;
    let o4 = api.get("/v1/orders/o-4").await;
    assert_eq!(
        (
            o4["status"].as_str(),
            o4["escrow"]["refunded_minor"].as_u64()
        ),
        (Some("cancelled"), Some(200_000))
    );
    assert_eq!(
        api.get("/v1/vouchers/CQ-1").await["balance_minor"]
            .as_u64()
            .unwrap(),
        before
    );

    // A revoked voucher and an expiring one return their value to the budget.
    api.ok(
        &admin,
        "voucher.issue",
        issue("CQ-2", "cq-rs", 500_000, None),
    )
    .await;
    api.ok(
        &admin,
        "voucher.revoke",
        json!({ "voucher_id": "CQ-2", "reason": "qualification withdrawn" }),
    )
    .await;
    api.ok(
        &admin,
        "voucher.issue",
        issue("CQ-3", "cq-rs", 300_000, Some(wall_clock_ms() + 1200)),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while api.get("/v1/vouchers/CQ-3").await["status"] != "expired" {
        assert!(Instant::now() < deadline, "the node never expired CQ-3");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let b = api.get("/v1/programs/cq-rs").await["buckets"].clone();
    assert_eq!(
        (b["revoked_minor"].as_u64(), b["expired_minor"].as_u64()),
        (Some(500_000), Some(300_000))
    );
    let total: u64 = [
        "unissued_minor",
        "outstanding_minor",
        "spent_minor",
        "expired_minor",
        "revoked_minor",
    ]
    .iter()
    .map(|k| b[k].as_u64().unwrap())
    .sum();
    assert_eq!(total, 50_000_000, "value is conserved: {b}");

    // Regulators see the flags; the price of o-1 was not the face value, so only if rules fired.
    let flags = api.get("/v1/fraud-flags").await;
    assert!(flags["flags"].as_array().is_some());
}
