//! The lists and single reads over real HTTP: filters and cursor paging, parties by key, one
//! entry with a proof that checks against its signed checkpoint, the OpenAPI document, request
//! ids and the writer's queue-depth gauge.

mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use vledger_node::writer::wall_clock_ms;
use vledger_tlog::keys::SigningKey;
use vledger_tlog::merkle::{hash_from_slice, verify_inclusion};
use vledger_tlog::note::{Checkpoint, NoteVerifier, SignedNote};

use common::Api;

const DAY_MS: u64 = 86_400_000;

fn b64(k: &SigningKey) -> String {
    k.public_key().to_base64()
}

fn url_encode(s: &str) -> String {
    s.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

fn ids(page: &Value, field: &str) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[field].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn lists_filter_and_page_with_a_cursor() {
    let admin = common::fresh_key();
    let api = Api::start(&admin).await;
    let (alpha, beta) = (common::fresh_key(), common::fresh_key());
    for (k, name) in [(&alpha, "Alpha"), (&beta, "Beta")] {
        api.ok(
            &admin,
            "party.register",
            json!({"key": b64(k), "role": "enterprise", "home_region": "cq", "name": name}),
        )
        .await;
    }
    let now = wall_clock_ms();
    for program in ["p-a", "p-b"] {
        api.ok(&admin, "program.create", json!({
            "program_id": program, "name": program, "kind": "resource_sharing", "currency": "CNY",
            "budget_minor": 10_000_000, "subsidy_ratio_bps": 5000,
            "caps": { "per_voucher_minor": 1_000_000, "per_order_minor": 500_000,
                      "per_enterprise_year_minor": 3_000_000, "per_group_year_minor": 5_000_000 },
            "eligible_categories": ["testing"], "valid_from_ms": now - DAY_MS, "valid_until_ms": now + 90 * DAY_MS,
            "claim_deadline_ms": now + 120 * DAY_MS, "spend_regions": ["cq"], "cross_region_payer": "agency_region",
            "use_mode": "multi", "review_levels": 1, "notice_period_ms": 0
        })).await;
        for k in [&alpha, &beta] {
            api.ok(
                &admin,
                "enterprise.qualify",
                json!({"program_id": program, "enterprise": b64(k), "expires_at_ms": now + 90 * DAY_MS}),
            )
            .await;
        }
    }
    for (voucher, program, holder) in [
        ("v1", "p-a", &alpha),
        ("v2", "p-a", &beta),
        ("v3", "p-b", &alpha),
        ("v4", "p-a", &alpha),
    ] {
        api.ok(
            &admin,
            "voucher.issue",
            json!({"voucher_id": voucher, "program_id": program, "holder": b64(holder), "face_value_minor": 100_000}),
        )
        .await;
    }

    let alpha_q = url_encode(&b64(&alpha));
    let (status, page) = api
        .get_with_status(&format!("/v1/vouchers?holder={alpha_q}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page, "voucher_id"), ["v1", "v3", "v4"]);
    assert_eq!(page["next_after"], Value::Null);

    let (_, page) = api
        .get_with_status(&format!("/v1/vouchers?holder={alpha_q}&program=p-a"))
        .await;
    assert_eq!(ids(&page, "voucher_id"), ["v1", "v4"]);

    // Paging: one at a time, following the cursor, gives the same list.
    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let (_, page) = api
            .get_with_status(&format!("/v1/vouchers?holder={alpha_q}&limit=1{after}"))
            .await;
        paged.extend(ids(&page, "voucher_id"));
        match page["next_after"].as_str() {
            Some(cursor) => after = format!("&after={cursor}"),
            None => break,
        }
    }
    assert_eq!(paged, ["v1", "v3", "v4"]);

    let (_, page) = api.get_with_status("/v1/programs").await;
    let programs: Vec<_> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["terms"]["program_id"].as_str().unwrap())
        .collect();
    assert_eq!(programs, ["p-a", "p-b"]);
    assert_eq!(page["records"][0]["buckets"]["outstanding_minor"], 300_000);
    let (_, page) = api.get_with_status("/v1/programs?region=cd").await;
    assert_eq!(page["records"], json!([]));

    let (_, page) = api.get_with_status("/v1/vouchers?status=revoked").await;
    assert_eq!(ids(&page, "voucher_id"), Vec::<String>::new());
    let (_, page) = api.get_with_status("/v1/orders").await;
    assert_eq!(page["records"], json!([]));
    let (_, page) = api.get_with_status("/v1/claims?status=paid").await;
    assert_eq!(page["records"], json!([]));

    for bad in [
        "/v1/vouchers?limit=0",
        "/v1/vouchers?limit=201",
        "/v1/vouchers?holder=AAAA",
        "/v1/vouchers?status=lost",
        "/v1/orders?colour=red",
        "/v1/claims?after=a%20b",
    ] {
        let (status, problem) = api.get_with_status(bad).await;
        assert_eq!(status, 400, "{bad}: {problem}");
        assert_eq!(problem["code"], "invalid-query", "{bad}: {problem}");
    }

    let (status, party) = api.get_with_status(&format!("/v1/parties/{alpha_q}")).await;
    assert_eq!(status, 200);
    assert_eq!(party["name"], "Alpha");
    assert_eq!(party["role"], "enterprise");
    let stranger = url_encode(&b64(&common::fresh_key()));
    let (status, problem) = api
        .get_with_status(&format!("/v1/parties/{stranger}"))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("party-not-found"))
    );
    let (status, problem) = api.get_with_status("/v1/parties/not-a-key").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid-path"))
    );
}

#[tokio::test]
async fn one_entry_comes_with_a_proof_that_checks_against_its_signed_checkpoint() {
    let admin = common::fresh_key();
    let api = Api::start(&admin).await;
    for n in 0..4 {
        let k = common::fresh_key();
        api.ok(
            &admin,
            "party.register",
            json!({"key": b64(&k), "role": "agency", "home_region": "cq", "name": format!("Lab {n}")}),
        )
        .await;
    }
    let (_, node) = api.get_with_status("/v1/node").await;
    let verifier = NoteVerifier::parse(node["verifier_key"].as_str().unwrap()).unwrap();
    for index in 0..5u64 {
        let (status, answer) = api.get_with_status(&format!("/v1/entries/{index}")).await;
        assert_eq!(status, 200, "{answer}");
        let note = SignedNote::parse(answer["checkpoint"].as_str().unwrap()).unwrap();
        note.verify(std::slice::from_ref(&verifier)).unwrap();
        let checkpoint = Checkpoint::parse(&note.text).unwrap();
        let proof = &answer["inclusion"];
        assert_eq!(proof["size"], checkpoint.size);
        assert_eq!(
            proof["root_hash"].as_str().unwrap(),
            B64.encode(checkpoint.root_hash)
        );
        let entry_bytes = B64
            .decode(answer["entry"]["entry"].as_str().unwrap())
            .unwrap();
        let leaf = vledger_tlog::merkle::leaf_hash(&entry_bytes);
        let path: Vec<_> = proof["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| hash_from_slice(&B64.decode(h.as_str().unwrap()).unwrap()).unwrap())
            .collect();
        verify_inclusion(&leaf, index, checkpoint.size, &path, &checkpoint.root_hash).unwrap();
        assert_eq!(answer["entry"]["index"], index);
    }
    // The checkpoint history: one signed checkpoint per batch (one per command here), in size
    // order, paged; each verifies and the sizes are 1..=5.
    let mut sizes = Vec::new();
    let mut from = 0;
    loop {
        let page = api
            .get(&format!("/v1/checkpoints?from={from}&limit=2"))
            .await;
        for checkpoint in page["checkpoints"].as_array().unwrap() {
            let note = SignedNote::parse(checkpoint["note"].as_str().unwrap()).unwrap();
            note.verify(std::slice::from_ref(&verifier)).unwrap();
            assert_eq!(
                Checkpoint::parse(&note.text).unwrap().size,
                checkpoint["size"]
            );
            sizes.push(checkpoint["size"].as_u64().unwrap());
        }
        match page["next"].as_u64() {
            Some(next) => from = next,
            None => break,
        }
    }
    assert_eq!(sizes, vec![1, 2, 3, 4, 5]);
    for bad in ["limit=0", "limit=1001", "from=-1", "size=3"] {
        let (status, problem) = api.get_with_status(&format!("/v1/checkpoints?{bad}")).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (400, Some("invalid-query")),
            "{bad}: {problem}"
        );
    }
    let (status, problem) = api.get_with_status("/v1/entries/5").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("entry-not-found"))
    );
    let (status, problem) = api.get_with_status("/v1/entries/minus-one").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("invalid-path"))
    );
}

#[tokio::test]
async fn the_openapi_document_request_ids_and_queue_depth() {
    let admin = common::fresh_key();
    let api = Api::start(&admin).await;
    let (status, doc) = api.get_with_status("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/v1/commands"));
    assert!(paths.contains_key("/v1/events"));
    assert!(paths.contains_key("/v1/entries/{index}"));
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Command",
        "Event",
        "Problem",
        "OrderRecord",
        "VoucherRecord",
    ] {
        assert!(schemas.contains_key(name), "{name} missing");
    }
    // The document states the bounds of body values.
    let bound = |schema: &str, side: &str| schemas[schema][side].as_f64().unwrap() as u64;
    assert_eq!(bound("TimestampMs", "minimum"), 946_684_800_000);
    assert_eq!(bound("TimestampMs", "maximum"), 253_402_300_799_999);
    assert_eq!(bound("DurationMs", "maximum"), 316_224_000_000);
    assert_eq!(bound("AmountMinor", "maximum"), (1 << 53) - 1);
    assert_eq!(
        schemas["RecordId"]["pattern"],
        "^[A-Za-z0-9][A-Za-z0-9._-]*$"
    );

    let response = api
        .client
        .get(format!("{}/healthz", api.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    let response = api
        .client
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .unwrap();
    let made = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(made.len(), 36, "a UUID: {made}");

    let k = common::fresh_key();
    api.ok(
        &admin,
        "party.register",
        json!({"key": b64(&k), "role": "agency", "home_region": "cq", "name": "Lab"}),
    )
    .await;
    let metrics = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("\nvledger_writer_queue_depth 0\n"),
        "every queued command was taken: {metrics}"
    );
    let longest: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("vledger_writer_longest_commit_microseconds "))
        .expect("the longest commit is reported")
        .parse()
        .unwrap();
    assert!(longest > 0, "commands were committed: {metrics}");
}

/// Sends `GET <path>` byte for byte, as no URL library would (they resolve `..` first), and
/// returns the status and the JSON body.
async fn raw_get(base: &str, path: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.strip_prefix("http://").unwrap();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_id_of_dots_cannot_be_created_nor_read_and_numbers_past_their_bound_are_refused() {
    let admin = common::fresh_key();
    let api = Api::start(&admin).await;
    let enterprise = common::fresh_key();
    api.ok(
        &admin,
        "party.register",
        json!({"key": b64(&enterprise), "role": "enterprise", "home_region": "cq", "name": "重庆某科技有限公司"}),
    )
    .await;
    let now = wall_clock_ms();
    let program = |valid_until_ms: u64| {
        json!({
            "program_id": "p", "name": "创新券", "kind": "resource_sharing", "currency": "CNY",
            "budget_minor": 10_000_000, "subsidy_ratio_bps": 5000,
            "caps": { "per_voucher_minor": 1_000_000, "per_order_minor": 500_000,
                      "per_enterprise_year_minor": 3_000_000, "per_group_year_minor": 5_000_000 },
            "eligible_categories": ["testing"], "valid_from_ms": now - DAY_MS, "valid_until_ms": valid_until_ms,
            "claim_deadline_ms": now + 120 * DAY_MS, "spend_regions": ["cq"], "cross_region_payer": "agency_region",
            "use_mode": "multi", "review_levels": 1, "notice_period_ms": 0
        })
    };
    let (status, problem) = api
        .send(&admin, "program.create", program((1 << 53) + 1))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["type"], "urn:vledger:problem:invalid-field");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("valid_until_ms") && detail.contains("9999-12-31"),
        "{detail}"
    );
    api.ok(&admin, "program.create", program(now + 90 * DAY_MS))
        .await;
    api.ok(
        &admin,
        "enterprise.qualify",
        json!({"program_id": "p", "enterprise": b64(&enterprise), "expires_at_ms": now + 90 * DAY_MS}),
    )
    .await;
    let issue = |id: &str| json!({"voucher_id": id, "program_id": "p", "holder": b64(&enterprise), "face_value_minor": 100_000});
    for id in ["..", ".", ".x"] {
        let (status, problem) = api.send(&admin, "voucher.issue", issue(id)).await;
        assert_eq!(status, 422, "{id}: {problem}");
        assert_eq!(problem["type"], "urn:vledger:problem:invalid-field");
        assert!(problem["detail"].as_str().unwrap().contains("voucher_id"));
    }
    api.ok(&admin, "voucher.issue", issue("v.1")).await;

    // `/v1/vouchers/..` is refused as a path, not read as `/v1/` nor as a voucher.
    let (status, problem) = raw_get(&api.base, "/v1/vouchers/..").await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["type"], "urn:vledger:problem:invalid-path");
    let (status, voucher) = raw_get(&api.base, "/v1/vouchers/v.1").await;
    assert_eq!((status, &voucher["voucher_id"]), (200, &json!("v.1")));
    let (_, page) = api.get_with_status("/v1/vouchers").await;
    assert_eq!(ids(&page, "voucher_id"), ["v.1"]);
}
