//! The catalog's search index of a real node process survives SIGKILL: killed again and again
//! while listings pour in and the index follows them, the restarted node's index finds exactly
//! the listings its state holds (every acknowledged one among them), and says it reflects the
//! whole log. An index whose files are damaged is built again at start; `vledger reindex`
//! builds it afresh for a stopped node.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use vledger_client::Client;
use vledger_tlog::keys::SigningKey;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_vledger");

struct NodeProcess {
    data: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl NodeProcess {
    fn start(&mut self) {
        let log = std::fs::File::create(self.data.join("node.log")).unwrap();
        self.child = Some(
            Command::new(BIN)
                .args(["serve", "--demo", "--listen"])
                .arg(format!("127.0.0.1:{}", self.port))
                .arg("--data")
                .arg(&self.data)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        common::wait_until_healthy(&self.url());
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = child.wait();
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every listing id a paged query of `path` finds, following `cursor_field` into `cursor_param`.
fn all_ids(client: &Client, path: &str, base: &[(&str, String)], scan: bool) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query: Vec<(&str, String)> = base.to_vec();
        query.push(("limit", "100".into()));
        if let Some(c) = &cursor {
            query.push((if scan { "after" } else { "cursor" }, c.clone()));
        }
        let page: Value = client.get_json(path, &query).unwrap();
        let (items, next) = if scan {
            (&page["listings"], &page["next_after"])
        } else {
            (&page["hits"], &page["next_cursor"])
        };
        for item in items.as_array().unwrap() {
            let listing = if scan { item } else { &item["listing"] };
            ids.insert(listing["listing_id"].as_str().unwrap().to_string());
        }
        match next.as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return ids,
        }
    }
}

/// What the restarted node's search finds equals what its state holds.
fn check_index_matches_state(node: &NodeProcess, acknowledged: &BTreeSet<String>) {
    let client = Client::new(&node.url());
    let size = client.node().unwrap().tree_size;
    let search = all_ids(
        &client,
        "/v1/catalog/search",
        &[
            ("q", "crashproof".into()),
            ("min_log_size", size.to_string()),
        ],
        false,
    );
    let state = all_ids(
        &client,
        "/v1/catalog/listings",
        &[("q", "crashproof".into())],
        true,
    );
    assert_eq!(search, state, "the index and the state disagree");
    let missing: Vec<_> = acknowledged.difference(&search).collect();
    assert!(
        missing.is_empty(),
        "acknowledged listings lost: {missing:?}"
    );
    let page: Value = client
        .get_json("/v1/catalog/search", &[("limit", "1".to_string())])
        .unwrap();
    assert!(page["indexed"]["log_size"].as_u64().unwrap() >= size);
}

fn register_agency(client: &Client, admin: &SigningKey) -> SigningKey {
    let agency = SigningKey::generate(&mut rand::rngs::OsRng);
    client
        .submit(
            admin,
            "party.register",
            &json!({ "key": agency.public_key().to_base64(), "role": "agency",
                     "home_region": "cq", "name": "检测实验室" }),
        )
        .unwrap();
    agency
}

/// Lists from four threads until `stop`, recording the acknowledged ids.
fn pour(
    url: String,
    agency: SigningKey,
    round: usize,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<BTreeSet<String>>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..4)
        .map(|t| {
            let (url, agency, stop, acknowledged) = (
                url.clone(),
                agency.clone(),
                stop.clone(),
                acknowledged.clone(),
            );
            std::thread::spawn(move || {
                let client = Client::new(&url);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("r{round}-t{t}-{i}");
                    let body = json!({ "listing_id": id, "pool": "instruments_equipment",
                        "category": "testing", "title": format!("crashproof 检测 {i}"),
                        "description": "高分辨质谱 mass spectrometry", "price_minor": 1000 + i,
                        "currency": "CNY" });
                    if client.submit(&agency, "catalog.list", &body).is_ok() {
                        acknowledged.lock().unwrap().insert(id);
                    }
                    i += 1;
                }
            })
        })
        .collect()
}

fn reindex(data: &Path) -> String {
    let out = Command::new(BIN)
        .args(["reindex", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_search_index_survives_sigkill_and_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess {
        data: dir.path().join("node"),
        port: common::free_port(),
        child: None,
    };
    std::fs::create_dir_all(&node.data).unwrap();
    node.start();
    let admin = common::demo_admin(&node.data);
    let agency = register_agency(&Client::new(&node.url()), &admin);
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = pour(
            node.url(),
            agency.clone(),
            round,
            stop.clone(),
            acknowledged.clone(),
        );
        // Kill while listings pour in and the index follows them.
        std::thread::sleep(Duration::from_millis(1500 + 500 * round as u64));
        node.kill();
        stop.store(true, Ordering::Relaxed);
        for thread in threads {
            thread.join().unwrap();
        }
        node.start();
        check_index_matches_state(&node, &acknowledged.lock().unwrap());
    }
    let listed = acknowledged.lock().unwrap().len();
    assert!(listed > 100, "only {listed} listings were acknowledged");

    // Damaged index files: the index is built again at start.
    node.stop();
    std::fs::write(node.data.join("catalog-index/meta.json"), b"{").unwrap();
    node.start();
    check_index_matches_state(&node, &acknowledged.lock().unwrap());

    // Built afresh for a stopped node.
    node.stop();
    let report = reindex(&node.data);
    let indexed: usize = report
        .strip_prefix("indexed ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    // Every acknowledged listing, and those committed whose answer the kill cut off.
    assert!(indexed >= listed, "{report}");
    node.start();
    check_index_matches_state(&node, &acknowledged.lock().unwrap());
}
