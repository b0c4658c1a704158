//! The node issues `voucher.expire` itself when a voucher's expiry passes, signed with its own
//! key, and the unspent value returns to the program's budget.

use std::time::{Duration, Instant};

use serde_json::json;
use vledger_domain::programs::load_program;
use vledger_domain::vouchers::{load_voucher, VoucherStatus};
use vledger_domain::GenesisBody;
use vledger_node::node::{Node, NodeConfig};
use vledger_node::writer::wall_clock_ms;
use vledger_tlog::keys::SigningKey;
use vledger_wire::entry::Entry;
use vledger_wire::envelope::{seal, CommandPayload, DsseEnvelope, VerifiedEnvelope};

fn submit(
    node: &Node,
    signer: &SigningKey,
    command_type: &str,
    nonce: &str,
    body: serde_json::Value,
) {
    let payload = CommandPayload {
        v: 1,
        command_type: command_type.into(),
        region: "cq".try_into().unwrap(),
        signer: signer.public_key(),
        nonce: nonce.into(),
        body,
    };
    let envelope = VerifiedEnvelope::parse_and_verify(&seal(&payload, signer)).unwrap();
    node.submit_and_wait(envelope)
        .unwrap_or_else(|e| panic!("{command_type}: {e}"));
}

#[test]
fn an_expired_voucher_is_expired_by_the_node_and_its_value_returns() {
    let dir = tempfile::tempdir().unwrap();
    let admin = SigningKey::generate(&mut rand::rngs::OsRng);
    let node_key = SigningKey::generate(&mut rand::rngs::OsRng);
    let node = Node::open(NodeConfig {
        data_dir: dir.path().join("db"),
        region: "cq".try_into().unwrap(),
        origin: "vledger.test/cq".into(),
        node_key: node_key.clone(),
        max_batch_commands: vledger_domain::limits::MAX_BATCH_COMMANDS,
        genesis: Some(GenesisBody {
            region_name: "CQ".into(),
            admin_key: admin.public_key(),
            admin_name: "admin".into(),
            time_zone: "Asia/Shanghai".into(),
        }),
    })
    .unwrap();
    let now = wall_clock_ms();
    let enterprise = SigningKey::generate(&mut rand::rngs::OsRng);
    let e64 = enterprise.public_key().to_base64();
    submit(
        &node,
        &admin,
        "party.register",
        "1",
        json!({ "key": e64, "role": "enterprise", "home_region": "cq", "name": "SME" }),
    );
    submit(
        &node,
        &admin,
        "program.create",
        "2",
        json!({
        "program_id": "p", "name": "P", "kind": "sci_tech", "currency": "CNY", "budget_minor": 1000,
        "subsidy_ratio_bps": 5000,
        "caps": { "per_voucher_minor": 500, "per_order_minor": 500, "per_enterprise_year_minor": 1000, "per_group_year_minor": 1000 },
        "eligible_categories": ["testing"], "valid_from_ms": now - 1000, "valid_until_ms": now + 3_600_000,
        "claim_deadline_ms": now + 7_200_000, "spend_regions": ["cq"], "cross_region_payer": "issuing_region",
        "use_mode": "single", "review_levels": 1, "notice_period_ms": 0 }),
    );
    submit(
        &node,
        &admin,
        "enterprise.qualify",
        "3",
        json!({ "program_id": "p", "enterprise": e64, "expires_at_ms": now + 3_600_000 }),
    );
    submit(
        &node,
        &admin,
        "voucher.issue",
        "4",
        json!({
        "voucher_id": "soon", "program_id": "p", "holder": e64, "face_value_minor": 400, "expires_at_ms": now + 1500 }),
    );
    submit(
        &node,
        &admin,
        "voucher.issue",
        "5",
        json!({ "voucher_id": "later", "program_id": "p", "holder": e64, "face_value_minor": 300 }),
    );

    let id = "soon".try_into().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while load_voucher(node.store(), &id).unwrap().unwrap().status != VoucherStatus::Expired {
        assert!(
            Instant::now() < deadline,
            "the node never expired the voucher"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let buckets = load_program(node.store(), &"p".try_into().unwrap())
        .unwrap()
        .unwrap()
        .buckets;
    assert_eq!(
        (
            buckets.unissued_minor,
            buckets.outstanding_minor,
            buckets.expired_minor
        ),
        (300, 300, 400)
    );
    let later = load_voucher(node.store(), &"later".try_into().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(later.status, VoucherStatus::Active);

    let size = node.tree_size();
    let (_, bytes) = node.entries(size - 1, size).unwrap().pop().unwrap();
    let entry = Entry::decode(&bytes).unwrap();
    let envelope: DsseEnvelope = serde_json::from_slice(&entry.envelope).unwrap();
    let verified = VerifiedEnvelope::parse_and_verify(&entry.envelope).unwrap();
    assert_eq!(verified.payload.command_type, "voucher.expire");
    assert_eq!(verified.payload.signer, node_key.public_key());
    assert_eq!(envelope.signatures.len(), 1);
    assert!(entry.node_time_ms >= now + 1500);
    // Later sweeps do not write the same expiry twice.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(node.tree_size(), size);
}
