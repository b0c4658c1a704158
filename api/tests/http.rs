//! The public interface over real HTTP on loopback, against a real node with a temporary store.

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::fresh_key;
use serde_json::{json, Value};
use vledger_tlog::keys::SigningKey;
use vledger_tlog::merkle;
use vledger_tlog::note::{Checkpoint, NoteVerifier, SignedNote};
use vledger_wire::envelope::{seal, CommandPayload};
use vledger_wire::http::{CommandAccepted, InclusionProof, NodeInfo, Problem};

struct TestApp {
    base: String,
    client: reqwest::Client,
    admin: SigningKey,
    _dir: tempfile::TempDir,
}

async fn spawn_app() -> TestApp {
    let admin = fresh_key();
    let served = common::serve_node(&admin).await;
    TestApp {
        base: served.base,
        client: reqwest::Client::new(),
        admin,
        _dir: served.dir,
    }
}

fn payload(signer: &SigningKey, command_type: &str, nonce: &str, body: Value) -> CommandPayload {
    CommandPayload {
        v: 1,
        command_type: command_type.into(),
        region: "cq".try_into().unwrap(),
        signer: signer.public_key(),
        nonce: nonce.into(),
        body,
    }
}

fn register_body(key: &SigningKey, role: &str) -> Value {
    json!({ "key": key.public_key().to_base64(), "role": role, "home_region": "cq", "name": "Party" })
}

impl TestApp {
    async fn post_raw(&self, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(format!("{}/v1/commands", self.base))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn submit(
        &self,
        signer: &SigningKey,
        command_type: &str,
        nonce: &str,
        body: Value,
    ) -> reqwest::Response {
        self.post_raw(seal(&payload(signer, command_type, nonce, body), signer))
            .await
    }

    async fn tree_size(&self) -> u64 {
        self.node_info().await.tree_size
    }

    async fn node_info(&self) -> NodeInfo {
        self.client
            .get(format!("{}/v1/node", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn register(&self, key: &SigningKey, role: &str) -> CommandAccepted {
        let nonce = key.public_key().to_base64();
        let response = self
            .submit(
                &self.admin,
                "party.register",
                &nonce,
                register_body(key, role),
            )
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    /// Posts bad input and checks it gets the problem `code` with `status`, and writes nothing.
    async fn expect_problem(
        &self,
        response: reqwest::Response,
        status: u16,
        code: &str,
    ) -> Problem {
        assert_eq!(response.status(), status);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Problem = response.json().await.unwrap();
        assert_eq!(
            problem.problem_type,
            format!("urn:vledger:problem:{code}"),
            "{problem:?}"
        );
        assert_eq!(problem.status, status);
        problem
    }
}

#[tokio::test]
async fn accepted_command_gets_a_verifiable_receipt_and_checkpoint() {
    let app = spawn_app().await;
    let info = app.node_info().await;
    assert_eq!(info.tree_size, 1, "genesis is entry 0");
    let verifier = NoteVerifier::parse(&info.verifier_key).unwrap();

    let accepted = app.register(&fresh_key(), "agency").await;
    assert_eq!(accepted.receipt.index, 1);
    assert!(!accepted.replayed);
    let facts = accepted
        .receipt
        .verify(&verifier, "vledger.test/cq")
        .unwrap();
    assert_eq!(facts.index, 1);
    let receipts = SignedNote::parse(&accepted.receipt.note).unwrap();
    assert!(receipts
        .text
        .starts_with("vledger/receipts/v1\nvledger.test/cq\n1\n1\n"));

    let note_text: String = app
        .client
        .get(format!("{}/v1/checkpoint", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let note = SignedNote::parse(&note_text).unwrap();
    note.verify(std::slice::from_ref(&verifier)).unwrap();
    let checkpoint = Checkpoint::parse(&note.text).unwrap();
    assert_eq!(checkpoint.size, 2);

    let proof: InclusionProof = app
        .client
        .get(format!("{}/v1/proofs/inclusion?index=1&size=2", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let leaf: merkle::Hash = B64
        .decode(&accepted.receipt.leaf_hash)
        .unwrap()
        .try_into()
        .unwrap();
    let hashes: Vec<merkle::Hash> = proof
        .proof
        .iter()
        .map(|h| B64.decode(h).unwrap().try_into().unwrap())
        .collect();
    merkle::verify_inclusion(&leaf, 1, 2, &hashes, &checkpoint.root_hash).unwrap();
}

#[tokio::test]
async fn entries_page_holds_exact_bytes_and_decoded_form() {
    let app = spawn_app().await;
    app.register(&fresh_key(), "enterprise").await;
    let page: Value = app
        .client
        .get(format!("{}/v1/entries?start=0&end=10", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for (i, entry) in entries.iter().enumerate() {
        let bytes = B64.decode(entry["entry"].as_str().unwrap()).unwrap();
        assert_eq!(
            B64.encode(merkle::leaf_hash(&bytes)),
            entry["leaf_hash"].as_str().unwrap()
        );
        assert_eq!(entry["index"], i as u64);
    }
    assert_eq!(entries[0]["decoded"]["command"]["type"], "region.genesis");
    assert_eq!(
        entries[1]["decoded"]["events"][0]["type"],
        "party.registered"
    );
}

#[tokio::test]
async fn a_retry_returns_the_original_receipt_and_a_reused_nonce_is_refused() {
    let app = spawn_app().await;
    let key = fresh_key();
    let envelope = seal(
        &payload(
            &app.admin,
            "party.register",
            "n-1",
            register_body(&key, "agency"),
        ),
        &app.admin,
    );
    let first = app.post_raw(envelope.clone()).await;
    assert_eq!(first.status(), 201);
    let first: CommandAccepted = first.json().await.unwrap();
    let again = app.post_raw(envelope).await;
    assert_eq!(again.status(), 200);
    let again: CommandAccepted = again.json().await.unwrap();
    assert!(again.replayed);
    // The same facts, in a receipt signed on its own.
    let verifier = NoteVerifier::parse(&app.node_info().await.verifier_key).unwrap();
    assert_eq!(
        again.receipt.verify(&verifier, "vledger.test/cq").unwrap(),
        first.receipt.verify(&verifier, "vledger.test/cq").unwrap()
    );
    assert_eq!(app.tree_size().await, 2);

    let other = app
        .submit(
            &app.admin,
            "party.register",
            "n-1",
            register_body(&fresh_key(), "agency"),
        )
        .await;
    app.expect_problem(other, 409, "nonce-reused").await;
    assert_eq!(app.tree_size().await, 2);
}

#[tokio::test]
async fn every_kind_of_bad_input_has_its_own_problem_and_writes_nothing() {
    let app = spawn_app().await;
    let before = app.tree_size().await;
    let good = |nonce: &str| {
        payload(
            &app.admin,
            "party.register",
            nonce,
            register_body(&fresh_key(), "agency"),
        )
    };

    app.expect_problem(
        app.post_raw(b"{not json".to_vec()).await,
        400,
        "malformed-json",
    )
    .await;

    let mut envelope: Value = serde_json::from_slice(&seal(&good("b64"), &app.admin)).unwrap();
    envelope["payload"] = json!("%%% not base64 %%%");
    app.expect_problem(
        app.post_raw(serde_json::to_vec(&envelope).unwrap()).await,
        400,
        "bad-base64",
    )
    .await;

    let mut envelope: Value = serde_json::from_slice(&seal(&good("pt"), &app.admin)).unwrap();
    envelope["payloadType"] = json!("application/json");
    app.expect_problem(
        app.post_raw(serde_json::to_vec(&envelope).unwrap()).await,
        415,
        "wrong-payload-type",
    )
    .await;

    let stranger = fresh_key();
    let response = app
        .submit(
            &stranger,
            "party.register",
            "s",
            register_body(&fresh_key(), "agency"),
        )
        .await;
    app.expect_problem(response, 403, "unknown-signer").await;

    let mut envelope: Value = serde_json::from_slice(&seal(&good("sig"), &app.admin)).unwrap();
    let mut sig = B64
        .decode(envelope["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    sig[10] ^= 1;
    envelope["signatures"][0]["sig"] = json!(B64.encode(sig));
    app.expect_problem(
        app.post_raw(serde_json::to_vec(&envelope).unwrap()).await,
        401,
        "bad-signature",
    )
    .await;

    let mut big = good("big");
    big.body["name"] = json!("x".repeat(70 * 1024));
    app.expect_problem(
        app.post_raw(seal(&big, &app.admin)).await,
        413,
        "body-too-large",
    )
    .await;

    let mut elsewhere = good("region");
    elsewhere.region = "sc".try_into().unwrap();
    app.expect_problem(
        app.post_raw(seal(&elsewhere, &app.admin)).await,
        421,
        "wrong-region",
    )
    .await;

    let response = app
        .submit(&app.admin, "voucher.print_money", "t", json!({}))
        .await;
    app.expect_problem(response, 400, "unknown-command-type")
        .await;

    let response = app
        .submit(&app.admin, "party.register", "body", json!({ "key": 5 }))
        .await;
    app.expect_problem(response, 400, "malformed-body").await;

    let mut future = good("v");
    future.v = 2;
    app.expect_problem(
        app.post_raw(seal(&future, &app.admin)).await,
        400,
        "unsupported-version",
    )
    .await;

    // The identity point: small order, refused at registration.
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let body =
        json!({ "key": B64.encode(weak), "role": "agency", "home_region": "cq", "name": "Weak" });
    let response = app.submit(&app.admin, "party.register", "weak", body).await;
    app.expect_problem(response, 422, "weak-key").await;

    // Two `signer` members: the first another key, the last the key that signed. A parser
    // that keeps the first would read another signer than one that keeps the last.
    let other = fresh_key().public_key().to_base64();
    let signer = app.admin.public_key().to_base64();
    let body = register_body(&fresh_key(), "agency");
    let text = format!(
        r#"{{"v":1,"type":"party.register","region":"cq","signer":"{other}","nonce":"dup","body":{body},"signer":"{signer}"}}"#
    );
    let sig = app.admin.sign(&vledger_wire::envelope::pae(
        vledger_wire::envelope::COMMAND_PAYLOAD_TYPE,
        text.as_bytes(),
    ));
    let envelope = json!({
        "payloadType": vledger_wire::envelope::COMMAND_PAYLOAD_TYPE,
        "payload": B64.encode(&text),
        "signatures": [{ "sig": B64.encode(sig) }],
    });
    let problem = app
        .expect_problem(
            app.post_raw(serde_json::to_vec(&envelope).unwrap()).await,
            400,
            "duplicate-key",
        )
        .await;
    assert!(problem.detail.contains("`signer`"), "{problem:?}");

    assert_eq!(
        app.tree_size().await,
        before,
        "refused input must write nothing"
    );
}

#[tokio::test]
async fn roles_revocation_and_the_last_admin_rule() {
    let app = spawn_app().await;
    let agency = fresh_key();
    app.register(&agency, "agency").await;

    let response = app
        .submit(
            &agency,
            "party.register",
            "a1",
            register_body(&fresh_key(), "agency"),
        )
        .await;
    app.expect_problem(response, 403, "not-authorized").await;

    let revoke_self = json!({ "key": app.admin.public_key().to_base64(), "reason": "leaving" });
    let response = app
        .submit(&app.admin, "party.revoke_key", "r0", revoke_self)
        .await;
    app.expect_problem(response, 422, "last-admin").await;

    let revoke = json!({ "key": agency.public_key().to_base64(), "reason": "laptop stolen" });
    assert_eq!(
        app.submit(&app.admin, "party.revoke_key", "r1", revoke.clone())
            .await
            .status(),
        201
    );
    let response = app
        .submit(&app.admin, "party.revoke_key", "r2", revoke)
        .await;
    app.expect_problem(response, 409, "key-already-revoked")
        .await;

    let response = app
        .submit(
            &agency,
            "party.register",
            "a2",
            register_body(&fresh_key(), "agency"),
        )
        .await;
    app.expect_problem(response, 403, "signer-revoked").await;

    let response = app
        .submit(
            &app.admin,
            "party.register",
            "dup",
            register_body(&app.admin, "agency"),
        )
        .await;
    app.expect_problem(response, 409, "party-exists").await;

    let mut other_home = register_body(&fresh_key(), "agency");
    other_home["home_region"] = json!("sc");
    let response = app
        .submit(&app.admin, "party.register", "home", other_home)
        .await;
    app.expect_problem(response, 422, "home-region-mismatch")
        .await;
}

#[tokio::test]
async fn proofs_and_queries_refuse_bad_ranges_with_problems() {
    let app = spawn_app().await;
    for _ in 0..5 {
        app.register(&fresh_key(), "enterprise").await;
    }
    let get = |path: &str| app.client.get(format!("{}{path}", app.base)).send();
    // A tree size not published yet, or an index or size the other one rules out: nothing is
    // there (404), as the document allows for any two integers.
    for path in [
        "/v1/proofs/inclusion?index=9&size=3",
        "/v1/proofs/inclusion?index=0&size=99",
        "/v1/proofs/consistency?from=1&to=99",
        "/v1/proofs/consistency?from=3&to=2",
    ] {
        app.expect_problem(get(path).await.unwrap(), 404, "out-of-range")
            .await;
    }
    app.expect_problem(
        get("/v1/proofs/inclusion?index=0&size=9223372036854775808")
            .await
            .unwrap(),
        400,
        "invalid-query",
    )
    .await;
    app.expect_problem(
        get("/v1/entries?start=abc&end=2").await.unwrap(),
        400,
        "invalid-query",
    )
    .await;
    // A range past the tree, or an empty one, holds no entries.
    for path in ["/v1/entries?start=50&end=60", "/v1/entries?start=3&end=2"] {
        let page: Value = get(path).await.unwrap().json().await.unwrap();
        assert_eq!(page["entries"], json!([]), "{path}");
        assert_eq!(page["tree_size"], 6, "{path}");
    }
    app.expect_problem(get("/v1/nope").await.unwrap(), 404, "not-found")
        .await;

    let proof: Value = get("/v1/proofs/consistency?from=2&to=6")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hashes: Vec<merkle::Hash> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| B64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect();
    let root_at = |size: u64| async move {
        let p: Value = get(&format!("/v1/proofs/inclusion?index=0&size={size}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let root: merkle::Hash = B64
            .decode(p["root_hash"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        root
    };
    merkle::verify_consistency(2, 6, &root_at(2).await, &root_at(6).await, &hashes).unwrap();

    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("vledger_tree_size 6"), "{metrics}");
    assert!(metrics.contains("route=\"/v1/commands\",status=\"201\""));
}

#[tokio::test]
async fn a_program_is_created_and_a_voucher_issued_and_read_back() {
    let app = spawn_app().await;
    let enterprise = fresh_key();
    app.register(&enterprise, "enterprise").await;
    let now = vledger_node::writer::wall_clock_ms();
    let program = json!({
        "program_id": "cq-2026-rs", "name": "重庆市科技资源共享服务创新券", "kind": "resource_sharing",
        "currency": "CNY", "budget_minor": 10_000_000, "subsidy_ratio_bps": 5000,
        "caps": { "per_voucher_minor": 2_000_000, "per_order_minor": 1_000_000,
                  "per_enterprise_year_minor": 3_000_000, "per_group_year_minor": 5_000_000 },
        "eligible_categories": ["testing"], "valid_from_ms": now - 1000, "valid_until_ms": now + 86_400_000,
        "claim_deadline_ms": now + 2 * 86_400_000, "spend_regions": ["cq", "sc"],
        "cross_region_payer": "agency_region", "use_mode": "multi", "review_levels": 2, "notice_period_ms": 1000
    });
    assert_eq!(
        app.submit(&app.admin, "program.create", "p1", program)
            .await
            .status(),
        201
    );
    let e64 = enterprise.public_key().to_base64();
    let qualify =
        json!({ "program_id": "cq-2026-rs", "enterprise": e64, "expires_at_ms": now + 86_400_000 });
    assert_eq!(
        app.submit(&app.admin, "enterprise.qualify", "q1", qualify)
            .await
            .status(),
        201
    );
    let issue = json!({ "voucher_id": "CQ-0001", "program_id": "cq-2026-rs", "holder": e64, "face_value_minor": 2_000_000 });
    assert_eq!(
        app.submit(&app.admin, "voucher.issue", "i1", issue)
            .await
            .status(),
        201
    );

    let over = json!({ "voucher_id": "CQ-0002", "program_id": "cq-2026-rs", "holder": e64, "face_value_minor": 2_000_001 });
    let problem = app
        .expect_problem(
            app.submit(&app.admin, "voucher.issue", "i2", over).await,
            422,
            "cap-exceeded",
        )
        .await;
    assert!(problem.detail.contains("per_voucher"), "{}", problem.detail);

    let get = |path: String| app.client.get(format!("{}{path}", app.base)).send();
    let voucher: Value = get("/v1/vouchers/CQ-0001".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(voucher["balance_minor"], 2_000_000);
    assert_eq!(voucher["funding_region"], "cq");
    assert_eq!(voucher["status"], "active");
    let program: Value = get("/v1/programs/cq-2026-rs".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(program["buckets"]["unissued_minor"], 8_000_000);
    assert_eq!(program["buckets"]["outstanding_minor"], 2_000_000);
    app.expect_problem(
        get("/v1/vouchers/nope".into()).await.unwrap(),
        404,
        "voucher-not-found",
    )
    .await;
    app.expect_problem(
        get("/v1/programs/bad%20id".into()).await.unwrap(),
        400,
        "invalid-path",
    )
    .await;
}

#[tokio::test]
async fn the_server_sends_answers_without_nagle_delay() {
    use axum::serve::Listener;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut listener = vledger_api::without_delay(listener);
    let _client = tokio::net::TcpStream::connect(address).await.unwrap();
    let (accepted, _) = listener.accept().await;
    assert!(
        accepted.nodelay().unwrap(),
        "TCP_NODELAY on accepted connections"
    );
}

/// The kernel's count of connections dropped because a listening socket's queue was full
/// (`TcpExt: ListenOverflows` of this network namespace).
fn listen_overflows() -> u64 {
    let netstat = std::fs::read_to_string("/proc/net/netstat").unwrap();
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")
        .unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_burst_of_connections_waits_in_the_backlog_instead_of_being_dropped() {
    // More connections at once than tokio's default backlog of 128, none accepted yet: the
    // kernel must queue each one rather than drop its SYN (which the client would retry only a
    // second later). Counted by the kernel, not timed, so a loaded machine cannot fail it; the
    // kernel caps every backlog at `net.core.somaxconn`, so the burst stays below that too.
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let connections = 400.min(somaxconn - 1);
    let listener = vledger_api::listen("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let overflows_before = listen_overflows();
    let connects: Vec<_> = (0..connections)
        .map(|_| {
            tokio::spawn(async move {
                // A dropped SYN is retried after 1, 3, 7 s...: far beyond a queued connection.
                let wait = std::time::Duration::from_secs(15);
                tokio::time::timeout(wait, tokio::net::TcpStream::connect(address)).await
            })
        })
        .collect();
    let mut connected = Vec::new();
    for connect in connects {
        let stream = connect
            .await
            .unwrap()
            .expect("a connection that was never queued");
        connected.push(stream.unwrap());
    }
    assert_eq!(connected.len(), connections);
    assert_eq!(
        listen_overflows(),
        overflows_before,
        "connections dropped from a full accept queue"
    );
    drop(listener);
}

#[tokio::test]
async fn listening_on_a_port_in_use_is_refused() {
    let first = vledger_api::listen("127.0.0.1:0").await.unwrap();
    let address = first.local_addr().unwrap().to_string();
    let error = vledger_api::listen(&address).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{error}");
}
