//! The `vledger-load` binary as a benchmark script runs it: every phase against real durable
//! nodes, and the http phase against a node served elsewhere.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use vledger_domain::GenesisBody;
use vledger_node::node::{Node, NodeConfig};
use vledger_tlog::keys::SigningKey;

const BIN: &str = env!("CARGO_BIN_EXE_vledger-load");

fn load(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// A node of region `cq` served over HTTP by this process until the test ends, and the file
/// holding its admin's key.
struct Served {
    url: String,
    admin: PathBuf,
    _dir: tempfile::TempDir,
}

fn serve_node() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let admin = SigningKey::generate(&mut rand::rngs::OsRng);
    let admin_path = dir.path().join("admin.pem");
    std::fs::write(&admin_path, admin.to_pkcs8_pem()).unwrap();
    let node = Node::open(NodeConfig {
        data_dir: dir.path().join("db"),
        region: "cq".try_into().unwrap(),
        origin: "vledger.test/cq".into(),
        node_key: SigningKey::generate(&mut rand::rngs::OsRng),
        max_batch_commands: vledger_domain::limits::MAX_BATCH_COMMANDS,
        genesis: Some(GenesisBody {
            region_name: "Chongqing Science and Technology Bureau".into(),
            admin_key: admin.public_key(),
            admin_name: "CQ admin".into(),
            time_zone: "Asia/Shanghai".into(),
        }),
    })
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            vledger_api::serve(listener, Arc::clone(&node), std::future::pending()).await
        })
    });
    Served {
        url,
        admin: admin_path,
        _dir: dir,
    }
}

/// `vledger-load` drives every command of a mix into real nodes and all of them are accepted,
/// whether signed before the phase or in chunks during it; the report has latencies and the
/// process's memory. (The lifecycle mix goes through the writer phase, whose single submitter
/// keeps the order its stages depend on; registrations also go through the checking threads.)
#[test]
fn the_mixes_are_driven_signed_ahead_or_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    for (mix, phases) in [
        ("voucher.lifecycle", "writer"),
        ("party.register", "writer,inproc"),
    ] {
        for chunked in [false, true] {
            let mut command = Command::new(BIN);
            command.args([
                "--mix",
                mix,
                "--phases",
                phases,
                "--commands",
                "140",
                "--json",
            ]);
            command.arg("--dir").arg(dir.path());
            if chunked {
                // A window of 3 makes the submitting threads wait for answers.
                command.args(["--sign-chunk", "32", "--window", "3"]);
            } else {
                command.args(["--max-batch", "7"]);
            }
            let out = command.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "vledger-load failed: {stderr}");
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            for phase in phases.split(',') {
                let result = &report["phases"][phase];
                let what = format!("{mix} {phase} (chunked: {chunked}): {result}");
                assert_eq!(result["sent"], 140, "{what}");
                assert_eq!(result["accepted"], 140, "{what}");
                let latency = &result["latency_ms"];
                let (p50, max) = (
                    latency["p50"].as_f64().unwrap(),
                    latency["max"].as_f64().unwrap(),
                );
                // A synced commit takes more than a microsecond; the maximum is the largest.
                assert!(p50 > 0.001 && max >= p50, "{what}");
                let memory = &result["resident_memory_mib"];
                let at_end = memory["at_end"].as_f64().unwrap();
                assert!(at_end > 1.0, "{what}");
                assert!(
                    memory["peak_of_process"].as_f64().unwrap() >= at_end,
                    "{what}"
                );
                let label = result["label"].as_str().unwrap();
                assert_eq!(label.contains("signed in chunks of 32"), chunked, "{what}");
                let writer = &result["writer"];
                if !chunked {
                    // 140 commands in batches of at most 7 (and the set-up's before them).
                    assert_eq!(report["max_batch_commands"], 7, "{what}");
                    assert!(writer["batches"].as_u64().unwrap() >= 20, "{what}");
                    assert!(
                        writer["mean_batch_commands"].as_f64().unwrap() <= 7.0,
                        "{what}"
                    );
                }
                for thread in ["writer", "commit"] {
                    let cpu = writer[format!("{thread}_thread_cpu_us_per_command")]
                        .as_f64()
                        .unwrap();
                    assert!(cpu > 0.0 && cpu < 1e6, "{what}");
                }
            }
        }
    }
    let out = Command::new(BIN)
        .args(["--phases", "writer", "--max-batch", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--max-batch"), "{stderr}");
    let out = Command::new(BIN)
        .args(["--phases", "http", "--commands", "10", "--sign-chunk", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--sign-chunk applies to the writer and inproc phases"),
        "{stderr}"
    );
}

/// `vledger-load --target` drives a node running in another process: it sets up its parties,
/// program and listings there as the region's admin, under ids and nonces of its own run, so a
/// second run against the same node is accepted too.
#[test]
fn a_running_node_is_driven_twice() {
    let server = serve_node();
    let admin = server.admin.as_path();
    for mix in ["voucher.lifecycle", "voucher.lifecycle", "party.register"] {
        let out = load(&[
            "--phases",
            "http",
            "--mix",
            mix,
            "--commands",
            "70",
            // One client: a voucher's next stage is only 10 commands later here, and
            // concurrent clients could send it before the stage it needs is written.
            "--clients",
            "1",
            "--target",
            &server.url,
            "--admin-key",
            admin.to_str().unwrap(),
            "--json",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "vledger-load failed: {stderr}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let result = &report["phases"]["http"];
        assert_eq!(result["sent"], 70, "{mix}: {result}");
        assert_eq!(result["accepted"], 70, "{mix}: {result}");
        // The node's batches and memory are another process's.
        assert!(result["writer"].is_null(), "{result}");
        assert!(result["resident_memory_mib"].is_null(), "{result}");
        assert!(
            result["label"].as_str().unwrap().ends_with(&server.url),
            "{result}"
        );
    }
    let out = load(&[
        "--phases",
        "writer,http",
        "--target",
        &server.url,
        "--admin-key",
        admin.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--target drives the http phase"),
        "{stderr}"
    );
    let out = load(&["--target", &server.url]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--admin-key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
