//! A node on a small real file system (an 8 MiB tmpfs) whose disk fills up: commands are refused
//! with `storage-failure` and `/healthz` and `/metrics` say the node cannot write; once space is
//! freed the node takes commands again without a restart, and after a restart every command it
//! acknowledged is in the log, each once.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fresh_key;
use serde_json::{json, Value};
use vledger_domain::GenesisBody;
use vledger_node::node::{Node, NodeConfig};
use vledger_tlog::keys::SigningKey;
use vledger_tlog::merkle::leaf_hash;
use vledger_wire::entry::Entry;
use vledger_wire::envelope::{seal, CommandPayload};

/// A tmpfs mounted for the test, unmounted when it ends.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when this machine does not let the test mount one.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Self { dir }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs here ({}); the full-disk test needs root",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount ({e}); the full-disk test needs root");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn open_node(dir: &Path, node_key: &SigningKey, admin: &SigningKey) -> Arc<Node> {
    Node::open(NodeConfig {
        data_dir: dir.join("db"),
        region: "cq".try_into().unwrap(),
        origin: "vledger.test/cq".into(),
        node_key: node_key.clone(),
        max_batch_commands: vledger_domain::limits::MAX_BATCH_COMMANDS,
        genesis: Some(GenesisBody {
            region_name: "重庆市科学技术局".into(),
            admin_key: admin.public_key(),
            admin_name: "CQ admin".into(),
            time_zone: "Asia/Shanghai".into(),
        }),
    })
    .unwrap()
}

/// A `party.register` of a new agency, signed by `admin` with `nonce`; large, so that the disk
/// fills in a few hundred commands.
fn register(admin: &SigningKey, nonce: &str) -> String {
    let payload = CommandPayload {
        v: 1,
        command_type: "party.register".into(),
        region: "cq".try_into().unwrap(),
        signer: admin.public_key(),
        nonce: nonce.into(),
        body: json!({
            "key": fresh_key().public_key().to_base64(),
            "role": "agency",
            "home_region": "cq",
            "name": format!("{nonce} {}", "x".repeat(200)),
        }),
    };
    String::from_utf8(seal(&payload, admin)).unwrap()
}

async fn post(client: &reqwest::Client, base: &str, envelope: &str) -> (u16, Value) {
    let response = client
        .post(format!("{base}/v1/commands"))
        .body(envelope.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn get(client: &reqwest::Client, url: String) -> (u16, String, String) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// Records an acknowledged command: its envelope, index and leaf hash.
fn ack(acknowledged: &mut Vec<(String, u64, String)>, envelope: &str, answer: &Value) {
    acknowledged.push((
        envelope.to_string(),
        answer["receipt"]["index"].as_u64().unwrap(),
        answer["receipt"]["leaf_hash"].as_str().unwrap().to_string(),
    ));
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no metric {name}"))
        .parse()
        .unwrap()
}

/// Fills the file system at `path` with a file, up to the last byte it takes.
fn fill(path: &Path) -> PathBuf {
    use std::io::Write;
    let filler = path.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0xa5u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let mut byte = [0u8; 1];
    while file.write_all(&byte).is_ok() {
        byte[0] = byte[0].wrapping_add(1);
    }
    let _ = file.sync_all();
    filler
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_full_disk_the_node_resumes_by_itself_and_loses_nothing() {
    let Some(tmpfs) = Tmpfs::mount("8m") else {
        return;
    };
    let (admin, node_key) = (fresh_key(), fresh_key());
    let node = open_node(tmpfs.path(), &node_key, &admin);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(vledger_api::serve(listener, node, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    // Acknowledged commands: (envelope, index, leaf hash).
    let mut acknowledged: Vec<(String, u64, String)> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    let mut n = 0;
    for _ in 0..5 {
        n += 1;
        let envelope = register(&admin, &format!("before-{n}"));
        let (status, answer) = post(&client, &base, &envelope).await;
        assert_eq!(status, 201, "{answer}");
        ack(&mut acknowledged, &envelope, &answer);
    }

    let filler = fill(tmpfs.path());
    // The last pages the store's files hold may take a few more commands.
    for _ in 0..2000 {
        n += 1;
        let envelope = register(&admin, &format!("full-{n}"));
        let (status, answer) = post(&client, &base, &envelope).await;
        match status {
            201 => ack(&mut acknowledged, &envelope, &answer),
            500 => {
                assert_eq!(
                    answer["type"], "urn:vledger:problem:storage-failure",
                    "{answer}"
                );
                refused.push(envelope);
                if refused.len() == 3 {
                    break;
                }
            }
            _ => panic!("unexpected answer {status}: {answer}"),
        }
    }
    assert_eq!(refused.len(), 3, "the full disk never refused a command");

    let (status, content_type, body) = get(&client, format!("{base}/healthz")).await;
    assert_eq!(status, 503, "healthz while the disk is full: {body}");
    assert_eq!(content_type, "application/problem+json");
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        problem["type"], "urn:vledger:problem:storage-failure",
        "{problem}"
    );
    let (_, _, metrics) = get(&client, format!("{base}/metrics")).await;
    assert_eq!(metric(&metrics, "vledger_storage_writable"), 0);
    assert!(metric(&metrics, "vledger_writer_failed_batches_total") >= 1);
    // Reads go on while the node cannot write.
    let (status, _, _) = get(&client, format!("{base}/v1/entries/0")).await;
    assert_eq!(status, 200);

    // Space is freed: the node finds out by itself, without a command or a restart.
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    loop {
        let (status, _, body) = get(&client, format!("{base}/healthz")).await;
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still unhealthy 10 s after space was freed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, _, metrics) = get(&client, format!("{base}/metrics")).await;
    assert_eq!(metric(&metrics, "vledger_storage_writable"), 1);
    for i in 0..3 {
        let envelope = register(&admin, &format!("after-{i}"));
        let (status, answer) = post(&client, &base, &envelope).await;
        assert_eq!(status, 201, "a command after space was freed: {answer}");
        ack(&mut acknowledged, &envelope, &answer);
    }
    // The refused commands, sent again, are recorded once (or, had a refused write reached
    // the disk after all, answered as repeats of the entry it made).
    for envelope in &refused {
        let (status, answer) = post(&client, &base, envelope).await;
        assert!(status == 201 || status == 200, "{status}: {answer}");
        ack(&mut acknowledged, envelope, &answer);
    }

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    // Every acknowledged command is in the log after a restart, at its index, once.
    let node = open_node(tmpfs.path(), &node_key, &admin);
    let size = node.tree_size();
    let entries = node.entries(0, size).unwrap();
    assert_eq!(entries.len() as u64, size);
    let mut indices: Vec<u64> = acknowledged.iter().map(|(_, i, _)| *i).collect();
    indices.sort_unstable();
    indices.dedup();
    assert_eq!(indices.len(), acknowledged.len(), "no index answered twice");
    assert_eq!(
        size,
        1 + acknowledged.len() as u64,
        "the log holds genesis and the acknowledged commands, nothing else"
    );
    for (envelope, index, leaf) in &acknowledged {
        let (_, bytes) = &entries[*index as usize];
        use base64::Engine;
        let expected = base64::engine::general_purpose::STANDARD.encode(leaf_hash(bytes));
        assert_eq!(&expected, leaf, "entry {index}");
        let entry = Entry::decode(bytes).unwrap();
        assert_eq!(entry.envelope, envelope.as_bytes(), "entry {index}");
    }
    node.shutdown();
}
