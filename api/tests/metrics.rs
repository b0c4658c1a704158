//! `/metrics` over real HTTP: every metric the node has always exposed, by the same name, type
//! and labels, in the Prometheus text format.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use common::{fresh_key, Api};

/// The metric families of `/metrics` and their types, as the `# TYPE` lines name them.
const FAMILIES: &[(&str, &str)] = &[
    ("vledger_http_requests_total", "counter"),
    ("vledger_http_request_duration_seconds", "histogram"),
    ("vledger_http_connections_open", "gauge"),
    ("vledger_http_connections_refusing", "gauge"),
    ("vledger_http_connections_refused_total", "counter"),
    ("vledger_tree_size", "gauge"),
    ("vledger_writer_batches_total", "counter"),
    ("vledger_commands_accepted_total", "counter"),
    ("vledger_commands_rejected_total", "counter"),
    ("vledger_writer_last_batch_size", "gauge"),
    ("vledger_writer_queue_depth", "gauge"),
    ("vledger_writer_commit_microseconds_total", "counter"),
    ("vledger_writer_failed_batches_total", "counter"),
    ("vledger_storage_writable", "gauge"),
    ("vledger_writer_longest_commit_microseconds", "gauge"),
    ("vledger_catalog_index_log_size", "gauge"),
    ("vledger_catalog_index_lag_entries", "gauge"),
    ("vledger_catalog_index_failing", "gauge"),
];

/// The value of the one sample `line_start` begins (a name, with its labels if it has any).
fn sample(text: &str, line_start: &str) -> f64 {
    let values: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(values.len(), 1, "{line_start} in {text}");
    values[0]
}

#[tokio::test]
async fn every_metric_keeps_its_name_type_and_labels() {
    let admin = fresh_key();
    let api = Api::start(&admin).await;
    let agency = fresh_key();
    let body = json!({"key": agency.public_key().to_base64(), "role": "agency",
                      "home_region": "cq", "name": "Lab"});
    api.ok(&admin, "party.register", body.clone()).await;
    api.refused(&admin, "party.register", body, 409, "party-exists")
        .await;
    api.get("/v1/entries/1").await;
    let response = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();

    let types: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
        .collect();
    let expected: BTreeMap<&str, &str> = FAMILIES.iter().copied().collect();
    assert_eq!(types, expected, "{text}");
    let helps: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP ")?.split_once(' '))
        .map(|(name, help)| {
            assert!(
                help.ends_with('.') && !help.ends_with(".."),
                "{name}: {help}"
            );
            name
        })
        .collect();
    assert_eq!(helps, expected.keys().copied().collect(), "{text}");

    // Every sample belongs to a family, under its name or a histogram's suffixed names.
    let names: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap())
        .collect();
    let mut allowed: BTreeSet<String> = FAMILIES.iter().map(|f| f.0.to_string()).collect();
    for suffix in ["_bucket", "_sum", "_count"] {
        allowed.insert(format!("vledger_http_request_duration_seconds{suffix}"));
    }
    allowed.remove("vledger_http_request_duration_seconds");
    assert_eq!(
        names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>(),
        allowed,
        "{text}"
    );

    // Labels as before: route and status, route and le.
    let route = "route=\"/v1/commands\"";
    assert_eq!(
        sample(
            &text,
            &format!("vledger_http_requests_total{{{route},status=\"201\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            &format!("vledger_http_requests_total{{{route},status=\"409\"}}")
        ),
        1.0
    );
    let buckets: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix(&format!(
                "vledger_http_request_duration_seconds_bucket{{{route},le=\""
            ))
        })
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(
        buckets,
        [
            "0.0005", "0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1",
            "5", "+Inf"
        ]
    );
    assert_eq!(
        sample(
            &text,
            &format!("vledger_http_request_duration_seconds_count{{{route}}}")
        ),
        2.0
    );
    assert!(
        sample(
            &text,
            &format!("vledger_http_request_duration_seconds_sum{{{route}}}")
        ) > 0.0
    );

    // The node's figures, read at the scrape.
    assert_eq!(sample(&text, "vledger_tree_size"), 2.0);
    // The genesis entry and the registration.
    assert_eq!(sample(&text, "vledger_commands_accepted_total"), 2.0);
    assert_eq!(sample(&text, "vledger_commands_rejected_total"), 1.0);
    assert_eq!(sample(&text, "vledger_storage_writable"), 1.0);
    assert_eq!(sample(&text, "vledger_writer_failed_batches_total"), 0.0);
    assert_eq!(sample(&text, "vledger_writer_queue_depth"), 0.0);
    assert!(sample(&text, "vledger_writer_batches_total") >= 1.0);
    assert!(sample(&text, "vledger_http_connections_open") >= 1.0);
    assert_eq!(sample(&text, "vledger_http_connections_refusing"), 0.0);
    assert_eq!(sample(&text, "vledger_http_connections_refused_total"), 0.0);
}
