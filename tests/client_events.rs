//! The event stream against a real node over loopback HTTP: every event exactly once and in log
//! order across a dropped connection and a resume with `Last-Event-ID`, and the filters.

use std::sync::Arc;

use serde_json::json;
use vledger_client::{Client, EventsRequest};
use vledger_domain::GenesisBody;
use vledger_node::node::{Node, NodeConfig};
use vledger_tlog::keys::SigningKey;

struct Served {
    base: String,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

fn fresh_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

fn serve_node(admin: &SigningKey) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::open(NodeConfig {
        data_dir: dir.path().join("db"),
        region: "cq".try_into().unwrap(),
        origin: "vledger.test/cq".into(),
        node_key: fresh_key(),
        max_batch_commands: vledger_domain::limits::MAX_BATCH_COMMANDS,
        genesis: Some(GenesisBody {
            region_name: "重庆市科学技术局".into(),
            admin_key: admin.public_key(),
            admin_name: "CQ admin".into(),
            time_zone: "Asia/Shanghai".into(),
        }),
    })
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(vledger_api::serve(
        listener,
        Arc::clone(&node),
        std::future::pending(),
    ));
    Served {
        base,
        _dir: dir,
        _runtime: runtime,
    }
}

fn register(client: &Client, admin: &SigningKey, role: &str, name: &str) -> SigningKey {
    let key = fresh_key();
    client
        .submit(
            admin,
            "party.register",
            &json!({"key": key.public_key().to_base64(), "role": role, "home_region": "cq", "name": name}),
        )
        .unwrap();
    key
}

/// Every event of the log, from the entries themselves: (index, position, type).
fn events_in_log(client: &Client) -> Vec<(u64, u32, String)> {
    let size = client.node().unwrap().tree_size;
    let mut out = Vec::new();
    let page = client.entries(0, size).unwrap();
    for entry in page.entries {
        for (position, event) in entry.decoded.events.as_array().unwrap().iter().enumerate() {
            out.push((
                entry.index,
                position as u32,
                event["type"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

#[test]
fn every_event_arrives_once_and_in_order_across_a_reconnect() {
    let admin = fresh_key();
    let served = serve_node(&admin);
    let client = Client::new(&served.base);
    for n in 0..10 {
        register(&client, &admin, "agency", &format!("Lab {n}"));
    }

    let mut stream = client.events(EventsRequest::default());
    let mut seen = Vec::new();
    for _ in 0..6 {
        let event = stream.next().unwrap().unwrap();
        seen.push((event.data.index, event.data.position, event.event_type));
    }
    // The connection drops; meanwhile more commands commit.
    stream.disconnect();
    for n in 10..25 {
        register(&client, &admin, "enterprise", &format!("Firm {n}"));
    }
    let expected = events_in_log(&client);
    assert!(
        expected
            .iter()
            .any(|(index, position, _)| *index == 0 && *position > 0),
        "genesis records several events, so resuming inside an entry is exercised"
    );
    while seen.len() < expected.len() {
        let event = stream.next().unwrap().unwrap();
        assert_eq!(
            event.id,
            format!("{}.{}", event.data.index, event.data.position)
        );
        seen.push((event.data.index, event.data.position, event.event_type));
        if seen.len() == 15 {
            stream.disconnect();
        }
    }
    assert_eq!(seen, expected);

    // Live: a command committed after the stream caught up arrives next, and nothing else.
    register(&client, &admin, "agency", "Late Lab");
    let event = stream.next().unwrap().unwrap();
    assert_eq!(event.event_type, "party.registered");
    assert_eq!(event.data.index, expected.last().unwrap().0 + 1);
}

#[test]
fn a_resume_inside_an_entry_skips_only_what_was_delivered() {
    let admin = fresh_key();
    let served = serve_node(&admin);
    let client = Client::new(&served.base);
    let expected = events_in_log(&client);
    assert!(expected.len() >= 2, "genesis has several events");
    // Resume after the first event of entry 0: the rest of entry 0 comes next.
    let http = reqwest::blocking::Client::new();
    let mut response = http
        .get(format!("{}/v1/events", served.base))
        .header("last-event-id", "0.0")
        .send()
        .unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.contains("\n\n") {
        let n = std::io::Read::read(&mut response, &mut buf).unwrap();
        assert!(n > 0, "the stream ended early");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.contains("id: 0.1\n"), "{text}");
    assert!(!text.contains("id: 0.0\n"), "{text}");
}

#[test]
fn filters_keep_only_what_the_subscriber_asked_for() {
    let admin = fresh_key();
    let served = serve_node(&admin);
    let client = Client::new(&served.base);
    let lab = register(&client, &admin, "agency", "Lab");
    let _firm = register(&client, &admin, "enterprise", "Firm");
    client
        .submit(
            &admin,
            "agency.accredit",
            &json!({"agency": lab.public_key().to_base64(), "expires_at_ms": 4_102_444_800_000u64}),
        )
        .unwrap();

    let by_party: Vec<_> = client
        .events(EventsRequest {
            party: Some(lab.public_key()),
            ..Default::default()
        })
        .take(2)
        .map(|e| e.unwrap().event_type)
        .collect();
    assert_eq!(by_party, ["party.registered", "agency.accredited"]);

    let by_type = client
        .events(EventsRequest {
            from: Some(1),
            types: vec!["agency.*".into()],
            ..Default::default()
        })
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(by_type.event_type, "agency.accredited");
    assert_eq!(by_type.data.index, 3);
}

#[test]
fn a_malformed_last_event_id_or_filter_is_a_problem() {
    let admin = fresh_key();
    let served = serve_node(&admin);
    let http = reqwest::blocking::Client::new();
    let response = http
        .get(format!("{}/v1/events", served.base))
        .header("last-event-id", "seven")
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: serde_json::Value = response.json().unwrap();
    assert_eq!(problem["code"], "invalid-last-event-id");

    let response = http
        .get(format!("{}/v1/events?type=,", served.base))
        .send()
        .unwrap();
    assert_eq!(response.status(), 400);
}
