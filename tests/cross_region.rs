//! Vouchers across the border, on three real node processes (Chongqing `cq`, Sichuan `sc`,
//! Chengdu `cd`) that mirror each other: a Chongqing enterprise buys, with Chongqing vouchers,
//! a test a Sichuan lab listed in Sichuan's log (Chongqing pays the lab directly) and a test a
//! Chengdu lab listed in Chengdu's log, half through a Chengdu escrow provider (Chengdu advances
//! the payout and recovers it through settlement). Every command goes through the federation
//! router from a node of the signer's own region, so the labs' deliveries and claims reach
//! Chongqing's node without naming it. Chongqing's node is killed with SIGKILL in the middle. A
//! statement with a line that matches no payout is refused; the right one is signed by both
//! regions' admins and paid. At the end every node shows the same positions and statements, they
//! net to zero, and `vledger verify` of the three archives together decides every cross-region
//! decision again.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use vledger_client::{fresh_nonce, Federation};
use vledger_tlog::keys::SigningKey;

mod common;

use common::region_node::RegionNode;

const BIN: &str = env!("CARGO_BIN_EXE_vledger");
const DAY_MS: u64 = 86_400_000;

fn key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

fn b64(key: &SigningKey) -> String {
    key.public_key().to_base64()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Submits through the federation router of `via`'s map; returns the region it went to and the
/// node's answer.
fn submit(
    via: &RegionNode,
    signer: &SigningKey,
    command_type: &str,
    body: Value,
) -> (String, Value) {
    let federation = Federation::discover(&via.url()).unwrap();
    let (region, accepted) = federation
        .submit_with_nonce(signer, command_type, &body, &fresh_nonce(), None)
        .unwrap_or_else(|e| panic!("{command_type} via {}: {e}", via.region));
    (region.to_string(), serde_json::to_value(accepted).unwrap())
}

/// The problem code of a refused command, sent to `via`'s own node.
fn refused(via: &RegionNode, signer: &SigningKey, command_type: &str, body: Value) -> String {
    let error = via
        .client()
        .submit(signer, command_type, &body)
        .unwrap_err();
    error.problem_code().unwrap_or("none").to_string()
}

fn register(node: &RegionNode, party: &SigningKey, role: &str, name: &str) {
    let body = json!({ "key": b64(party), "role": role, "home_region": node.region, "name": name });
    assert_eq!(
        submit(node, &node.admin(), "party.register", body).0,
        node.region
    );
}

fn program(id: &str, payer: &str, now: u64) -> Value {
    json!({
        "program_id": id, "name": format!("vouchers paid by the {payer}"), "kind": "resource_sharing",
        "currency": "CNY", "budget_minor": 10_000_000, "subsidy_ratio_bps": 5000,
        "caps": { "per_voucher_minor": 400_000, "per_order_minor": 200_000,
                  "per_enterprise_year_minor": 800_000, "per_group_year_minor": 1_000_000 },
        "eligible_categories": ["testing"], "valid_from_ms": now - DAY_MS,
        "valid_until_ms": now + 365 * DAY_MS, "claim_deadline_ms": now + 400 * DAY_MS,
        "spend_regions": ["cq", "sc", "cd"], "cross_region_payer": payer, "use_mode": "multi",
        "review_levels": 1, "notice_period_ms": 0
    })
}

fn verify(archives: &[&Path]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("verify")
        .args(archives)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_cross_region_order_under_each_payer_rule_settled_by_both_regions() {
    let dir = tempfile::tempdir().unwrap();
    let mut cq = RegionNode::prepare(dir.path(), "cq");
    let mut sc = RegionNode::prepare(dir.path(), "sc");
    let mut cd = RegionNode::prepare(dir.path(), "cd");
    RegionNode::connect_all(&mut [&mut cq, &mut sc, &mut cd]);
    for node in [&mut cq, &mut sc, &mut cd] {
        node.start();
    }
    let now = now_ms();
    let (enterprise, sc_lab, cd_lab, cd_escrow) = (key(), key(), key(), key());

    // Each lab and its listing in its own region's log; a listing sent to another region's
    // node is refused there.
    register(&sc, &sc_lab, "agency", "四川检测中心");
    register(&cd, &cd_lab, "agency", "成都检测中心");
    register(&cd, &cd_escrow, "escrow", "成都托管");
    for (node, lab) in [(&sc, &sc_lab), (&cd, &cd_lab)] {
        let accredit = json!({ "agency": b64(lab), "expires_at_ms": now + 300 * DAY_MS });
        submit(node, &node.admin(), "agency.accredit", accredit);
        let listing = json!({ "listing_id": format!("emc-{}", node.region),
            "pool": "instruments_equipment", "category": "testing", "title": "EMC 测试",
            "description": "EMC testing", "price_minor": 200_000, "currency": "CNY" });
        assert_eq!(
            refused(&cq, lab, "catalog.list", listing.clone()),
            "unknown-signer",
            "cq has not adopted the lab yet"
        );
        assert_eq!(submit(node, lab, "catalog.list", listing).0, node.region);
    }
    // Chongqing's programs, enterprise and vouchers.
    register(&cq, &enterprise, "enterprise", "重庆企业");
    let cq_admin = cq.admin();
    for (id, payer) in [("direct", "issuing_region"), ("advance", "agency_region")] {
        submit(&cq, &cq_admin, "program.create", program(id, payer, now));
        let qualify = json!({ "program_id": id, "enterprise": b64(&enterprise),
                              "expires_at_ms": now + 300 * DAY_MS });
        submit(&cq, &cq_admin, "enterprise.qualify", qualify);
        let issue = json!({ "voucher_id": format!("v-{id}"), "program_id": id,
                            "holder": b64(&enterprise), "face_value_minor": 400_000 });
        submit(&cq, &cq_admin, "voucher.issue", issue);
    }
    cq.wait_adopted(&sc, sc.tree_size());
    cq.wait_adopted(&cd, cd.tree_size());
    let late_listing = json!({ "listing_id": "late", "pool": "instruments_equipment",
        "category": "testing", "title": "EMC", "description": "EMC testing",
        "price_minor": 1, "currency": "CNY" });
    assert_eq!(
        refused(&cq, &sc_lab, "catalog.list", late_listing),
        "home-region-mismatch"
    );

    // 1. The issuing region pays: a Sichuan listing, the share paid directly to the lab.
    let place = json!({ "order_id": "o-sc", "listing_id": "emc-sc", "listing_region": "sc",
        "voucher_id": "v-direct", "price_minor": 200_000, "payment": { "mode": "direct" },
        "auto_confirm_after_ms": DAY_MS });
    assert_eq!(submit(&cq, &enterprise, "order.place", place).0, "cq");
    let ack = json!({ "order_id": "o-sc", "installment": 0, "reference": "BANK-1" });
    // The Sichuan lab's commands, sent from its own node's map, go to Chongqing's.
    assert_eq!(submit(&sc, &sc_lab, "payment.acknowledge", ack).0, "cq");
    let evidence = json!([{ "kind": "report", "sha256": "a".repeat(64) }]);
    let deliver = json!({ "order_id": "o-sc", "evidence": evidence });
    assert_eq!(submit(&sc, &sc_lab, "order.deliver", deliver).0, "cq");
    submit(
        &cq,
        &enterprise,
        "order.confirm",
        json!({ "order_id": "o-sc" }),
    );
    assert_eq!(
        submit(&sc, &sc_lab, "claim.submit", json!({ "order_id": "o-sc" })).0,
        "cq"
    );
    let review = json!({ "order_id": "o-sc", "level": 1, "decision": "approve" });
    submit(&cq, &cq_admin, "claim.review", review);
    let pay = json!({ "order_id": "o-sc", "reference": "CQ-TREASURY-1" });
    assert_eq!(
        refused(&cq, &sc.admin(), "claim.pay", pay.clone()),
        "foreign-authority"
    );
    submit(&cq, &cq_admin, "claim.pay", pay);

    // 2. The agency's region advances: a Chengdu listing, half the price through a Chengdu
    //    escrow provider; Chongqing's node is killed in the middle.
    let place = json!({ "order_id": "o-cd", "listing_id": "emc-cd", "listing_region": "cd",
        "voucher_id": "v-advance", "price_minor": 200_000,
        "payment": { "mode": "escrow", "escrow_provider": b64(&cd_escrow), "fee_minor": 0 },
        "auto_confirm_after_ms": DAY_MS });
    submit(&cq, &enterprise, "order.place", place);
    let fund = json!({ "order_id": "o-cd", "amount_minor": 100_000, "reference": "ESCROW-1" });
    assert_eq!(submit(&cd, &cd_escrow, "escrow.fund", fund).0, "cq");
    let size_before_kill = cq.tree_size();
    cq.kill();
    cq.start();
    assert!(
        cq.tree_size() >= size_before_kill,
        "nothing acknowledged is lost"
    );
    let deliver =
        json!({ "order_id": "o-cd", "evidence": [{ "kind": "report", "sha256": "b".repeat(64) }] });
    assert_eq!(submit(&cd, &cd_lab, "order.deliver", deliver).0, "cq");
    submit(
        &cq,
        &enterprise,
        "order.confirm",
        json!({ "order_id": "o-cd" }),
    );
    submit(&cd, &cd_lab, "claim.submit", json!({ "order_id": "o-cd" }));
    let review = json!({ "order_id": "o-cd", "level": 1, "decision": "approve" });
    submit(&cq, &cq_admin, "claim.review", review);
    let pay = json!({ "order_id": "o-cd", "reference": "CD-ADVANCE-1" });
    assert_eq!(
        refused(&cq, &cq_admin, "claim.pay", pay.clone()),
        "not-authorized"
    );
    let (_, paid) = submit(&cd, &cd.admin(), "claim.pay", pay);
    let (index, leaf_hash) = (
        paid["receipt"]["index"].as_u64().unwrap(),
        paid["receipt"]["leaf_hash"].as_str().unwrap().to_string(),
    );
    let order = cq.get("/v1/orders/o-cd");
    assert_eq!(
        (
            order["listing_region"].as_str(),
            order["agency_region"].as_str()
        ),
        (Some("cd"), Some("cd"))
    );
    assert_eq!(
        cq.get("/v1/settlement/positions"),
        json!([{ "debtor": "cq", "creditor": "cd", "amount_minor": 100_000 }])
    );

    // 3. The statement: a line that matches no payout is refused; both admins sign; paid.
    let until = now_ms();
    let line = |amount: u64| {
        json!({ "region": "cq", "log_index": index, "leaf_hash": leaf_hash, "order_id": "o-cd",
                "amount_minor": amount, "direction": "debtor_to_creditor" })
    };
    let proposal = |amount: u64| {
        json!({ "statement_id": "cq-cd-1", "creditor": "cd", "from_ms": now - DAY_MS,
                "until_ms": until, "lines": [line(amount)], "gross_debtor_to_creditor_minor": amount,
                "gross_creditor_to_debtor_minor": 0, "net_minor": amount })
    };
    assert_eq!(
        refused(&cq, &cq_admin, "settlement.propose", proposal(90_000)),
        "statement-mismatch"
    );
    submit(&cq, &cq_admin, "settlement.propose", proposal(100_000));
    let sign = json!({ "statement_id": "cq-cd-1" });
    submit(&cq, &cq_admin, "settlement.sign", sign.clone());
    cq.wait_adopted(&cd, cd.tree_size());
    // Chengdu's admin signs from Chengdu's node: the router finds the statement in `cq`'s log.
    assert_eq!(submit(&cd, &cd.admin(), "settlement.sign", sign).0, "cq");
    let payment = json!({ "statement_id": "cq-cd-1", "amount_minor": 100_000,
                          "reference": "PBOC-CQ-CD-1" });
    submit(&cq, &cq_admin, "settlement.record_payment", payment);

    // Every node, once it adopted Chongqing's log, shows the same positions and statements.
    let final_size = cq.tree_size();
    for node in [&sc, &cd] {
        node.wait_adopted(&cq, final_size);
    }
    let positions: Vec<Value> = [&cq, &sc, &cd]
        .iter()
        .map(|n| n.get("/v1/settlement/positions"))
        .collect();
    assert_eq!(
        positions[0],
        json!([{ "debtor": "cq", "creditor": "cd", "amount_minor": 0 }])
    );
    assert!(
        positions.iter().all(|p| *p == positions[0]),
        "{positions:?}"
    );
    let statements: Vec<Value> = [&cq, &sc, &cd]
        .iter()
        .map(|n| n.get("/v1/settlement/statements?region=cq"))
        .collect();
    assert!(
        statements.iter().all(|s| *s == statements[0]),
        "{statements:?}"
    );
    let statement = &statements[0]["records"][0];
    assert_eq!(statement["status"], "paid");
    assert_eq!(statement["signatures"].as_array().unwrap().len(), 2);
    let net: i128 = positions[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["amount_minor"].as_i64().unwrap() as i128)
        .sum();
    assert_eq!(net, 0, "positions net to zero once the statement is paid");

    // The three archives verify together, every cross-region decision decided again.
    for node in [&mut cq, &mut sc, &mut cd] {
        node.stop();
    }
    let archives: Vec<_> = ["cq", "sc", "cd"]
        .iter()
        .map(|r| dir.path().join(format!("{r}.archive")))
        .collect();
    for (node, archive) in [&cq, &sc, &cd].iter().zip(&archives) {
        node.export(archive);
    }
    let paths: Vec<&Path> = archives.iter().map(|p| p.as_path()).collect();
    let (code, text) = verify(&paths);
    assert_eq!(code, 0, "{text}");
}
