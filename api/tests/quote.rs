//! The order quote over HTTP, against the real node: the share an order would get, the limit
//! that binds, and the same refusals as placement; an order placed next gets exactly the quoted
//! share. And the node's own clock releasing an unclaimed order's share after the claim deadline.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vledger_node::writer::wall_clock_ms;
use vledger_tlog::keys::SigningKey;

use common::Api;

const DAY_MS: u64 = 86_400_000;

fn b64(k: &SigningKey) -> String {
    k.public_key().to_base64()
}

/// A program (50%, per-order cap 300,000), a qualified enterprise holding voucher `V` of
/// 400,000, and an accredited agency's listing `lab` at 1,000,000.
async fn market(valid_for_ms: u64, claim_for_ms: u64) -> (Api, SigningKey, SigningKey, SigningKey) {
    let admin = common::fresh_key();
    let api = Api::start(&admin).await;
    let (sme, lab) = (common::fresh_key(), common::fresh_key());
    for (k, role) in [(&sme, "enterprise"), (&lab, "agency")] {
        let body = json!({ "key": b64(k), "role": role, "home_region": "cq", "name": role });
        api.ok(&admin, "party.register", body).await;
    }
    let now = wall_clock_ms();
    api.ok(
        &admin,
        "agency.accredit",
        json!({ "agency": b64(&lab), "expires_at_ms": now + 365 * DAY_MS }),
    )
    .await;
    let program = json!({
        "program_id": "p", "name": "vouchers", "kind": "resource_sharing", "currency": "CNY",
        "budget_minor": 10_000_000, "subsidy_ratio_bps": 5000,
        "caps": { "per_voucher_minor": 1_000_000, "per_order_minor": 300_000,
                  "per_enterprise_year_minor": 2_000_000, "per_group_year_minor": 3_000_000 },
        "eligible_categories": ["testing"], "valid_from_ms": now - DAY_MS, "valid_until_ms": now + valid_for_ms,
        "claim_deadline_ms": now + claim_for_ms, "spend_regions": ["cq"], "cross_region_payer": "issuing_region",
        "use_mode": "multi", "review_levels": 1, "notice_period_ms": 0
    });
    api.ok(&admin, "program.create", program).await;
    let qualify =
        json!({ "program_id": "p", "enterprise": b64(&sme), "expires_at_ms": now + 365 * DAY_MS });
    api.ok(&admin, "enterprise.qualify", qualify).await;
    let issue = json!({ "voucher_id": "V", "program_id": "p", "holder": b64(&sme), "face_value_minor": 400_000 });
    api.ok(&admin, "voucher.issue", issue).await;
    let listing = json!({ "listing_id": "lab", "pool": "instruments_equipment", "category": "testing",
        "title": "检测", "description": "testing", "price_minor": 1_000_000, "currency": "CNY" });
    api.ok(&lab, "catalog.list", listing).await;
    (api, admin, sme, lab)
}

fn order(id: &str, price: u64) -> Value {
    json!({ "order_id": id, "listing_id": "lab", "voucher_id": "V", "price_minor": price,
            "payment": { "mode": "direct" }, "auto_confirm_after_ms": DAY_MS })
}

#[tokio::test]
async fn a_quote_answers_the_share_placement_then_gives() {
    let (api, _admin, sme, _lab) = market(90 * DAY_MS, 120 * DAY_MS).await;
    let quote = api
        .get("/v1/order-quote?voucher=V&listing=lab&price=200000")
        .await;
    assert_eq!(
        quote,
        json!({ "voucher_id": "V", "listing_id": "lab", "program_id": "p", "price_minor": 200_000,
                "listing_price_minor": 1_000_000, "voucher_share_minor": 100_000,
                "enterprise_share_minor": 100_000, "binding_limit": "subsidy_ratio",
                "year": quote["year"] })
    );
    let quote = api
        .get("/v1/order-quote?voucher=V&listing=lab&price=800000")
        .await;
    assert_eq!(
        (&quote["voucher_share_minor"], &quote["binding_limit"]),
        (&json!(300_000), &json!("per_order"))
    );
    // The order placed next gets the quoted share, and its single installment is derived.
    api.ok(&sme, "order.place", order("o1", 800_000)).await;
    let placed = api.get("/v1/orders/o1").await;
    assert_eq!(placed["voucher_share_minor"], quote["voucher_share_minor"]);
    assert_eq!(
        placed["installments"][0]["amount_minor"],
        quote["enterprise_share_minor"]
    );
    // 100,000 is left on the voucher: now it binds.
    let quote = api
        .get("/v1/order-quote?voucher=V&listing=lab&price=800000")
        .await;
    assert_eq!(
        (&quote["voucher_share_minor"], &quote["binding_limit"]),
        (&json!(100_000), &json!("voucher_balance"))
    );
    // Refusals are placement's, as problems.
    for (query, status, code) in [
        (
            "voucher=V&listing=lab&price=1000001",
            422,
            "price-above-listing",
        ),
        (
            "voucher=nope&listing=lab&price=1000",
            404,
            "voucher-not-found",
        ),
        (
            "voucher=V&listing=nope&price=1000",
            404,
            "listing-not-found",
        ),
        ("voucher=V&listing=lab", 400, "invalid-query"),
        ("voucher=V&listing=lab&price=-1", 400, "invalid-query"),
    ] {
        let (got, problem) = api
            .get_with_status(&format!("/v1/order-quote?{query}"))
            .await;
        assert_eq!(
            (got, problem["type"].as_str().unwrap()),
            (status, format!("urn:vledger:problem:{code}").as_str()),
            "{query}: {problem}"
        );
    }
    api.refused(
        &sme,
        "order.place",
        order("o2", 1_000_001),
        422,
        "price-above-listing",
    )
    .await;
}

#[tokio::test]
async fn the_node_releases_an_unclaimed_share_after_the_claim_deadline() {
    // The program closes in two seconds, its claims a second later.
    let (api, _admin, sme, lab) = market(2_000, 3_000).await;
    api.ok(&sme, "order.place", order("o1", 200_000)).await;
    let evidence = json!([{ "kind": "invoice", "sha256": "a".repeat(64) }]);
    api.ok(
        &lab,
        "payment.acknowledge",
        json!({ "order_id": "o1", "installment": 0, "reference": "B" }),
    )
    .await;
    api.ok(
        &lab,
        "order.deliver",
        json!({ "order_id": "o1", "evidence": evidence }),
    )
    .await;
    api.ok(&sme, "order.confirm", json!({ "order_id": "o1" }))
        .await;
    assert_eq!(api.get("/v1/vouchers/V").await["committed_minor"], 100_000);
    // Nobody claims. The node expires the voucher, then releases the share to the budget.
    let started = Instant::now();
    let order = loop {
        let order = api.get("/v1/orders/o1").await;
        if !order["unclaimed_released_at_ms"].is_null() {
            break order;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the share was never released: {order}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(order["status"], "confirmed");
    let voucher = api.get("/v1/vouchers/V").await;
    assert_eq!(
        (&voucher["status"], &voucher["committed_minor"]),
        (&json!("expired"), &json!(0))
    );
    let buckets = api.get("/v1/programs/p").await["buckets"].clone();
    assert_eq!(
        (&buckets["outstanding_minor"], &buckets["expired_minor"]),
        (&json!(0), &json!(400_000))
    );
    api.refused(
        &lab,
        "claim.submit",
        json!({ "order_id": "o1" }),
        422,
        "claim-deadline-passed",
    )
    .await;
}
