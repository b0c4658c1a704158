//! The `vledger` binary as a user runs it: a real node process, keygen, submit, readable errors.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{free_port, wait_until_healthy};

const BIN: &str = env!("CARGO_BIN_EXE_vledger");

struct Server {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// Kills the node process and waits for it, keeping the data directory.
    fn child_kill(&mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo_node() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = Command::new(BIN)
        .args([
            "serve",
            "--demo",
            "--region",
            "cq",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
        ])
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_until_healthy(&url);
    Server { child, url, dir }
}

fn vledger(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

#[test]
fn keygen_then_submit_prints_a_receipt_and_a_retry_repeats_it() {
    let server = start_demo_node();
    let admin = server.dir.path().join("data/keys/admin.pem");
    let agency_pem = server.dir.path().join("agency.pem");
    let out = vledger(&["keygen", "--out", agency_pem.to_str().unwrap()], None);
    assert!(out.status.success());
    let agency_key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let out = vledger(&["pubkey", "--key", agency_pem.to_str().unwrap()], None);
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), agency_key);

    let body =
        format!(r#"{{"key":"{agency_key}","role":"agency","home_region":"cq","name":"Demo Lab"}}"#);
    let args = [
        "submit",
        "party.register",
        "--body",
        "-",
        "--key",
        admin.to_str().unwrap(),
        "--url",
        &server.url,
        "--nonce",
        "first",
    ];
    let out = vledger(&args, Some(&body));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(first["receipt"]["index"], 1);
    let again: serde_json::Value =
        serde_json::from_slice(&vledger(&args, Some(&body)).stdout).unwrap();
    for fact in ["index", "leaf_hash", "node_time_ms", "command_hash"] {
        assert_eq!(again["receipt"][fact], first["receipt"][fact], "{fact}");
    }
    assert_eq!(again["replayed"], true);
}

#[test]
fn errors_say_what_to_fix() {
    let server = start_demo_node();
    let admin = server.dir.path().join("data/keys/admin.pem");
    let out = vledger(
        &[
            "submit",
            "party.register",
            "--body",
            "-",
            "--key",
            admin.to_str().unwrap(),
            "--url",
            &server.url,
        ],
        Some("{nope"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the command body is not valid JSON"));

    let body = r#"{"key":"AAAA","role":"agency","home_region":"cq","name":"X"}"#;
    let out = vledger(
        &[
            "submit",
            "party.register",
            "--body",
            "-",
            "--key",
            admin.to_str().unwrap(),
            "--url",
            &server.url,
        ],
        Some(body),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("urn:vledger:problem:weak-key"), "{stderr}");

    let out = vledger(&["pubkey", "--key", "/nonexistent/key.pem"], None);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read key file /nonexistent/key.pem")
    );

    let existing = admin.to_str().unwrap();
    let out = vledger(&["keygen", "--out", existing], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("an existing key is never overwritten"));
}

#[test]
fn serve_refuses_an_empty_store_without_an_admin_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--admin-key"));
}

#[test]
fn rebuild_reports_identical_state_after_a_stopped_node() {
    let mut server = start_demo_node();
    let dir = server.child_kill();
    let data = dir.path().join("data");
    let out = vledger(&["rebuild", "--data", data.to_str().unwrap()], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("replayed 1 entries"), "{stdout}");
    assert!(stdout.contains("identical"), "{stdout}");
}

#[test]
fn tail_follows_the_events_and_query_reads_records() {
    let server = start_demo_node();
    let out = vledger(
        &[
            "tail",
            "--url",
            &server.url,
            "--from",
            "0",
            "--count",
            "2",
            "--json",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["event"]["type"], "region.founded");
    assert_eq!(lines[1]["event"]["type"], "party.registered");
    assert_eq!(lines[1]["position"], 1);

    let out = vledger(&["query", "node", "--url", &server.url], None);
    let node: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(node["region"], "cq");

    let out = vledger(&["query", "voucher", "nope", "--url", &server.url], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("voucher-not-found"), "{stderr}");

    let out = vledger(&["query", "node", "--url", "http://127.0.0.1:1"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is the node running?"), "{stderr}");
}

#[test]
fn serve_takes_a_config_file_and_the_environment_wins_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("vledger.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nregion = \"cd\"\ndemo = true\ndata = \"{}\"\nlog_format = \"json\"\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("VLEDGER_REGION", "cq")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let node: serde_json::Value = loop {
        if let Ok(r) = reqwest::blocking::get(format!("{url}/v1/node")) {
            break r.json().unwrap();
        }
        assert!(Instant::now() < deadline, "node did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(node["region"], "cq", "the environment wins over the file");

    std::fs::write(&config, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let out = vledger(&["serve", "--config", config.to_str().unwrap()], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lisen"), "{stderr}");
}
