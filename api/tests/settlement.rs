//! Settlement statements over HTTP, on a real node of region `cq` that mirrors and adopts a
//! real node of region `sc`: a Chongqing enterprise buys a test a Sichuan lab listed in `sc`'s
//! log, `sc` advances the payout, and `cq`'s admin proposes the statement that `sc`'s admin
//! signs on `cq`'s node; it is paid and read back.

mod common;

use serde_json::{json, Value};
use vledger_federation::source::LocalSource;
use vledger_federation::{Mirror, Peer, StepOutcome};
use vledger_node::node::Node;
use vledger_node::writer::wall_clock_ms;
use vledger_tlog::keys::SigningKey;
use vledger_tlog::note::NoteVerifier;
use vledger_wire::envelope::{seal, CommandPayload, VerifiedEnvelope};

use common::market::b64;
use common::{expect_problem, fresh_key, Api};

const DAY_MS: u64 = 86_400_000;

fn submit(node: &Node, region: &str, signer: &SigningKey, command_type: &str, body: Value) {
    let payload = CommandPayload {
        v: 1,
        command_type: command_type.into(),
        region: region.try_into().unwrap(),
        signer: signer.public_key(),
        nonce: format!("{command_type}-{}", rand::random::<u64>()),
        body,
    };
    let envelope = VerifiedEnvelope::parse_and_verify(&seal(&payload, signer)).unwrap();
    node.submit_and_wait(envelope)
        .unwrap_or_else(|e| panic!("{command_type}: {e}"));
}

/// Steps `mirror` until it holds everything `sc` has.
fn catch_up(mirror: &mut Mirror, source: &mut LocalSource) {
    loop {
        match mirror.step(source, wall_clock_ms()) {
            StepOutcome::Adopted { .. } => {}
            StepOutcome::UpToDate => return,
            other => panic!("mirror step: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_is_proposed_signed_by_both_regions_paid_and_read_back() {
    let (cq_admin, sc_admin, sc_node_key) = (fresh_key(), fresh_key(), fresh_key());
    let (api, cq_node) = Api::start_with_node(&cq_admin).await;
    let (sc_node, _sc_dir) = common::open_node_in("sc", &sc_admin, &sc_node_key);
    let (agency, enterprise) = (fresh_key(), fresh_key());
    let now = wall_clock_ms();
    let register = json!({ "key": b64(&agency), "role": "agency", "home_region": "sc", "name": "成都检测中心" });
    submit(&sc_node, "sc", &sc_admin, "party.register", register);
    let accredit = json!({ "agency": b64(&agency), "expires_at_ms": now + 300 * DAY_MS });
    submit(&sc_node, "sc", &sc_admin, "agency.accredit", accredit);
    // The listing lives in `sc`'s log; `cq` reads it as adopted.
    let listing = json!({ "listing_id": "emc", "pool": "instruments_equipment", "category": "testing",
        "title": "EMC 测试", "description": "EMC testing", "price_minor": 200_000, "currency": "CNY" });
    submit(&sc_node, "sc", &agency, "catalog.list", listing);
    let peer = Peer {
        region: "sc".try_into().unwrap(),
        url: String::new(),
        verifier: NoteVerifier::new("vledger.test/sc", sc_node_key.public_key()).unwrap(),
    };
    let mut mirror = Mirror::new(cq_node.clone(), peer, None);
    let mut source = LocalSource {
        node: sc_node.clone(),
    };
    let handle = tokio::task::spawn_blocking(move || {
        catch_up(&mut mirror, &mut source);
    });
    handle.await.unwrap();

    let body = json!({ "key": b64(&enterprise), "role": "enterprise", "home_region": "cq", "name": "重庆企业" });
    api.ok(&cq_admin, "party.register", body).await;
    let program = json!({
        "program_id": "p", "name": "vouchers", "kind": "resource_sharing", "currency": "CNY",
        "budget_minor": 10_000_000, "subsidy_ratio_bps": 5000,
        "caps": { "per_voucher_minor": 300_000, "per_order_minor": 200_000,
                  "per_enterprise_year_minor": 500_000, "per_group_year_minor": 1_000_000 },
        "eligible_categories": ["testing"], "valid_from_ms": now - DAY_MS,
        "valid_until_ms": now + 365 * DAY_MS, "claim_deadline_ms": now + 400 * DAY_MS,
        "spend_regions": ["cq", "sc"], "cross_region_payer": "agency_region", "use_mode": "multi",
        "review_levels": 1, "notice_period_ms": 0
    });
    api.ok(&cq_admin, "program.create", program).await;
    let qualify = json!({ "program_id": "p", "enterprise": b64(&enterprise), "expires_at_ms": now + 300 * DAY_MS });
    api.ok(&cq_admin, "enterprise.qualify", qualify).await;
    let issue = json!({ "voucher_id": "v", "program_id": "p", "holder": b64(&enterprise), "face_value_minor": 300_000 });
    api.ok(&cq_admin, "voucher.issue", issue).await;
    let place = json!({ "order_id": "o1", "listing_id": "emc", "listing_region": "sc",
        "voucher_id": "v", "price_minor": 200_000,
        "payment": { "mode": "direct" }, "auto_confirm_after_ms": DAY_MS });
    api.ok(&enterprise, "order.place", place).await;
    let ack = json!({ "order_id": "o1", "installment": 0, "reference": "BANK-1" });
    api.ok(&agency, "payment.acknowledge", ack).await;
    let deliver =
        json!({ "order_id": "o1", "evidence": [{ "kind": "report", "sha256": "c".repeat(64) }] });
    api.ok(&agency, "order.deliver", deliver).await;
    api.ok(&enterprise, "order.confirm", json!({ "order_id": "o1" }))
        .await;
    api.ok(&agency, "claim.submit", json!({ "order_id": "o1" }))
        .await;
    let review = json!({ "order_id": "o1", "level": 1, "decision": "approve" });
    api.ok(&cq_admin, "claim.review", review).await;
    // `sc` advances the payout: its admin signs it on `cq`'s node.
    let paid = api
        .ok(
            &sc_admin,
            "claim.pay",
            json!({ "order_id": "o1", "reference": "TREASURY-1" }),
        )
        .await;
    let (index, leaf_hash) = (
        paid["receipt"]["index"].as_u64().unwrap(),
        paid["receipt"]["leaf_hash"].as_str().unwrap().to_string(),
    );
    let positions = api.get("/v1/settlement/positions").await;
    assert_eq!(
        positions,
        json!([{ "debtor": "cq", "creditor": "sc", "amount_minor": 100_000 }])
    );

    // The draft names the open payout of the period; the proposal adds its entry's leaf hash.
    let from = now - DAY_MS;
    let until = wall_clock_ms();
    let draft = api
        .get(&format!(
            "/v1/settlement/draft?creditor=sc&from_ms={from}&until_ms={until}"
        ))
        .await;
    assert_eq!(
        (draft["from_ms"].as_u64(), draft["until_ms"].as_u64()),
        (Some(from), Some(until))
    );
    let payouts = draft["payouts"].as_array().unwrap();
    assert_eq!(payouts.len(), 1);
    assert_eq!(payouts[0]["log_index"].as_u64(), Some(index));
    assert_eq!(payouts[0]["amount_minor"].as_u64(), Some(100_000));
    let (status, answer) = api
        .get_with_status("/v1/settlement/draft?creditor=sc&from_ms=1")
        .await;
    expect_problem(
        "a draft before 2000",
        (status, &answer),
        400,
        "invalid-query",
    );
    let (status, answer) = api
        .get_with_status(&format!("/v1/settlement/draft?creditor=sc&from_ms={from}"))
        .await;
    expect_problem(
        "a draft without its end",
        (status, &answer),
        422,
        "invalid-field",
    );

    let line = json!({ "region": "cq", "log_index": index, "leaf_hash": leaf_hash, "order_id": "o1",
                       "amount_minor": 100_000, "direction": "debtor_to_creditor" });
    let proposal = |amount: u64| {
        json!({ "statement_id": "cq-sc-1", "creditor": "sc", "from_ms": from, "until_ms": until,
                "lines": [line.clone()], "gross_debtor_to_creditor_minor": amount,
                "gross_creditor_to_debtor_minor": 0, "net_minor": amount })
    };
    let size = api.tree_size().await;
    let refused = api
        .refused(
            &cq_admin,
            "settlement.propose",
            proposal(90_000),
            422,
            "statement-mismatch",
        )
        .await;
    assert!(refused["detail"]
        .as_str()
        .unwrap()
        .contains("add up to 100000, not 90000"));
    assert_eq!(api.tree_size().await, size);
    api.refused(
        &agency,
        "settlement.propose",
        proposal(100_000),
        403,
        "not-authorized",
    )
    .await;
    api.ok(&cq_admin, "settlement.propose", proposal(100_000))
        .await;
    api.refused(
        &cq_admin,
        "settlement.propose",
        proposal(100_000),
        409,
        "statement-exists",
    )
    .await;

    let sign = json!({ "statement_id": "cq-sc-1" });
    let pay =
        json!({ "statement_id": "cq-sc-1", "amount_minor": 100_000, "reference": "PBOC-001" });
    api.refused(
        &cq_admin,
        "settlement.record_payment",
        pay.clone(),
        422,
        "statement-wrong-state",
    )
    .await;
    api.ok(&cq_admin, "settlement.sign", sign.clone()).await;
    api.refused(
        &cq_admin,
        "settlement.sign",
        sign.clone(),
        409,
        "statement-already-signed",
    )
    .await;
    // `sc`'s admin, known here through the adoption, signs on `cq`'s node; it may not pay the statement.
    api.ok(&sc_admin, "settlement.sign", sign.clone()).await;
    api.refused(
        &sc_admin,
        "settlement.record_payment",
        pay.clone(),
        403,
        "foreign-authority",
    )
    .await;
    let statement = api.get("/v1/settlement/statements/cq-sc-1").await;
    assert_eq!(statement["status"], "signed");
    api.ok(&cq_admin, "settlement.record_payment", pay.clone())
        .await;
    api.refused(
        &cq_admin,
        "settlement.record_payment",
        pay,
        422,
        "statement-wrong-state",
    )
    .await;

    let statement = api.get("/v1/settlement/statements/cq-sc-1").await;
    assert_eq!(statement["status"], "paid");
    assert_eq!(
        (statement["debtor"].as_str(), statement["creditor"].as_str()),
        (Some("cq"), Some("sc"))
    );
    assert_eq!(statement["lines"], json!([line]));
    assert_eq!(statement["gross_debtor_to_creditor_minor"], 100_000);
    assert_eq!(statement["net_minor"], 100_000);
    let signers: Vec<&str> = statement["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["region"].as_str().unwrap())
        .collect();
    assert_eq!(signers, ["cq", "sc"]);
    assert_eq!(statement["payment"]["reference"], "PBOC-001");
    assert_eq!(statement["payment"]["amount_minor"], 100_000);
    let positions = api.get("/v1/settlement/positions").await;
    assert_eq!(positions[0]["amount_minor"], 0);

    // The list, its filters and paging.
    let page = api.get("/v1/settlement/statements").await;
    assert_eq!(page["records"], json!([statement]));
    assert!(page["next_after"].is_null());
    let paid_to_sc = api
        .get("/v1/settlement/statements?creditor=sc&status=paid&limit=1")
        .await;
    assert_eq!(paid_to_sc["records"].as_array().unwrap().len(), 1);
    assert_eq!(paid_to_sc["next_after"], "cq-sc-1");
    let after = api.get("/v1/settlement/statements?after=cq-sc-1").await;
    assert_eq!(after["records"], json!([]));
    let none = api.get("/v1/settlement/statements?status=proposed").await;
    assert_eq!(none["records"], json!([]));
    for (path, status, code) in [
        ("/v1/settlement/statements/nope", 404, "statement-not-found"),
        ("/v1/settlement/statements/a%20b", 400, "invalid-path"),
        ("/v1/settlement/statements?limit=0", 400, "invalid-query"),
        (
            "/v1/settlement/statements?status=open",
            400,
            "invalid-query",
        ),
    ] {
        let (got, answer) = api.get_with_status(path).await;
        expect_problem(path, (got, &answer), status, code);
    }
}
