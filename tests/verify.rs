//! Tamper tests of `vledger verify` on an archive exported from a real node: each change is
//! detected and named by entry index (or checkpoint size) and reason, with exit code 1.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

const BIN: &str = env!("CARGO_BIN_EXE_vledger");

/// A stopped demo node's archive, as lines.
fn exported_archive(dir: &std::path::Path) -> Vec<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
        ])
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz")).is_err() {
        assert!(Instant::now() < deadline, "the node did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = dir.join("archive.jsonl");
    let status = Command::new(BIN)
        .args([
            "export",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(status.success());
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn verify(dir: &std::path::Path, lines: &[String]) -> (i32, serde_json::Value) {
    let path = dir.join("tampered.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = Command::new(BIN)
        .arg("verify")
        .arg(&path)
        .arg("--json")
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap(), json)
}

fn has_failure(
    report: &serde_json::Value,
    rule: &str,
    index: Option<u64>,
    size: Option<u64>,
) -> bool {
    report["failures"].as_array().unwrap().iter().any(|f| {
        f["rule"] == rule
            && index.is_none_or(|i| f["index"] == i)
            && size.is_none_or(|s| f["checkpoint_size"] == s)
    })
}

#[test]
fn tampering_is_detected_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let lines = exported_archive(dir.path());
    let (code, report) = verify(dir.path(), &lines);
    assert_eq!(code, 0, "{report}");

    // One flipped byte inside entry 0's signature.
    let mut flipped = lines.clone();
    let mut entry: serde_json::Value = serde_json::from_str(&flipped[1]).unwrap();
    let mut bytes = B64.decode(entry["entry"].as_str().unwrap()).unwrap();
    let sig_at = String::from_utf8_lossy(&bytes).find("\"sig\":\"").unwrap() + 8;
    bytes[sig_at] = if bytes[sig_at] == b'A' { b'B' } else { b'A' };
    entry["entry"] = B64.encode(&bytes).into();
    flipped[1] = entry.to_string();
    let (code, report) = verify(dir.path(), &flipped);
    assert_eq!(code, 1);
    assert!(has_failure(&report, "signature", Some(0), None), "{report}");
    assert!(
        has_failure(&report, "checkpoint-root", None, Some(1)),
        "{report}"
    );

    // A dropped entry.
    let mut dropped = lines.clone();
    dropped.remove(1);
    let (code, report) = verify(dir.path(), &dropped);
    assert_eq!(code, 1);
    assert!(has_failure(&report, "truncated", Some(0), None), "{report}");

    // The checkpoint re-signed with another key.
    let mut resigned = lines.clone();
    let mut cp: serde_json::Value = serde_json::from_str(&resigned[2]).unwrap();
    let note = cp["note"].as_str().unwrap().to_string();
    let text = &note[..note.find("\n\n").unwrap() + 1];
    let other = vledger_ledger::note::NoteSigner::new(
        "vledger.local/cq",
        vledger_ledger::keys::SigningKey::from_bytes(&[7; 32]),
    )
    .unwrap();
    cp["note"] = other.sign(text).unwrap().into();
    resigned[2] = cp.to_string();
    let (code, report) = verify(dir.path(), &resigned);
    assert_eq!(code, 1);
    assert!(
        has_failure(&report, "checkpoint-signature", None, Some(1)),
        "{report}"
    );

    // Not an archive at all: a usage error, not a verification failure.
    let (code, _) = verify(dir.path(), &["{}".to_string()]);
    assert_eq!(code, 2);
}
