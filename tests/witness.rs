//! The witness over real HTTP on loopback (C2SP tlog-witness `add-checkpoint`): it cosigns a
//! consistent checkpoint, answers a stale old size with its own size, refuses a bad proof and
//! a fork (saving evidence that `vledger verify-evidence` accepts), and remembers its view
//! across a restart. And a node started with `--witness` publishes the cosigned checkpoint.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use vledger_offline::witness::Witness;
use vledger_tlog::cosignature::{CosignatureVerifier, Cosigner};
use vledger_tlog::keys::SigningKey;
use vledger_tlog::merkle::{consistency_proof, Hash, MemoryTree};
use vledger_tlog::note::{Checkpoint, NoteSigner, NoteVerifier, SignedNote};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_vledger");
const ORIGIN: &str = "example.test/log";
const WITNESS_NAME: &str = "witness.test/w1";

/// A witness served by the real router on a loopback port, in this process.
struct WitnessServer {
    url: String,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl WitnessServer {
    fn start(dir: &Path, logs: Vec<NoteVerifier>) -> Self {
        let witness = Witness::open(dir, cosigner(), logs).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = vledger_api::witness_service::witness_router(Arc::new(witness));
        runtime.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            url,
            runtime: Some(runtime),
            stop: Some(stop),
        }
    }

    fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.runtime
            .take()
            .unwrap()
            .shutdown_timeout(Duration::from_secs(5));
    }

    /// POSTs an add-checkpoint body; returns the status, content type and body.
    fn add(&self, old: u64, proof: &[Hash], note: &str) -> (u16, String, String) {
        let mut body = format!("old {old}\n");
        for hash in proof {
            body.push_str(&B64.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        let response = reqwest::blocking::Client::new()
            .post(format!("{}/add-checkpoint", self.url))
            .body(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, content_type, response.text().unwrap())
    }
}

impl Drop for WitnessServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn cosigner() -> Cosigner {
    Cosigner::new(WITNESS_NAME, SigningKey::from_bytes(&[21; 32])).unwrap()
}

fn log_signer() -> NoteSigner {
    NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[3; 32])).unwrap()
}

/// A tree of `size` leaves; `fork` gives other leaves from index 2 on.
fn tree(size: u64, fork: bool) -> MemoryTree {
    let mut tree = MemoryTree::new();
    for i in 0..size {
        let leaf = if fork && i >= 2 {
            format!("forked leaf {i}")
        } else {
            format!("leaf {i}")
        };
        tree.append(leaf.as_bytes());
    }
    tree
}

/// The log's signed checkpoint of `tree`.
fn checkpoint(tree: &MemoryTree) -> String {
    let text = Checkpoint {
        origin: ORIGIN.into(),
        size: tree.size(),
        root_hash: tree.root(),
        extensions: Vec::new(),
    }
    .to_text();
    log_signer().sign(&text).unwrap()
}

fn evidence_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("evidence"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn witness_cosigns_refuses_and_remembers_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("witness");
    let logs = vec![log_signer().verifier()];
    let witness = WitnessServer::start(&state, logs.clone());

    // A first checkpoint (old 0, empty proof) is cosigned, and the cosignature verifies.
    let three = tree(3, false);
    let note = checkpoint(&three);
    let (status, _, body) = witness.add(0, &[], &note);
    assert_eq!(
        status, 200,
        "a consistent first checkpoint is cosigned: {body}"
    );
    let cosigned = SignedNote::parse(&format!("{note}{body}")).unwrap();
    let timestamp = cosigner().verifier().verify(&cosigned).unwrap_or_else(|e| {
        panic!("the witness's answer must carry a cosignature that verifies: {e}\n{body}")
    });
    assert!(
        timestamp > 1_700_000_000,
        "the cosignature carries the time"
    );

    // A stale old size: 409 with the witness's own size as text/x.tlog.size.
    let five = tree(5, false);
    let (status, content_type, body) = witness.add(0, &[], &checkpoint(&five));
    assert_eq!(status, 409, "a stale old size is a conflict: {body}");
    assert_eq!(content_type, "text/x.tlog.size");
    assert_eq!(body, "3\n", "the conflict names the witness's size");

    // A consistency proof that does not verify: 422, nothing cosigned.
    let mut proof = consistency_proof(&five, 3, 5).unwrap();
    proof[0][0] ^= 1;
    let (status, _, body) = witness.add(3, &proof, &checkpoint(&five));
    assert_eq!(status, 422, "a bad consistency proof is refused: {body}");

    // A checkpoint not signed by the log's key: 403.
    let stranger = NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[4; 32])).unwrap();
    let forged = stranger
        .sign(
            &Checkpoint {
                origin: ORIGIN.into(),
                size: 5,
                root_hash: five.root(),
                extensions: Vec::new(),
            }
            .to_text(),
        )
        .unwrap();
    let (status, _, body) = witness.add(3, &proof, &forged);
    assert_eq!(
        status, 403,
        "a checkpoint signed by another key is refused: {body}"
    );

    // The good proof from 3 to 5 is cosigned.
    let proof = consistency_proof(&five, 3, 5).unwrap();
    let (status, _, body) = witness.add(3, &proof, &checkpoint(&five));
    assert_eq!(status, 200, "a consistent extension is cosigned: {body}");
    assert!(evidence_files(&state).is_empty(), "no fork seen yet");

    // A forged tail: a sixth leaf the log never signed, its tree's root and size in the
    // checkpoint text, the log's signature of size 5 kept. The proof from 5 to 6 is valid, but
    // no signature of the log's key covers the text: 403, nothing cosigned.
    let six = tree(6, false);
    let signed_five = checkpoint(&five);
    let signature_lines = &signed_five[signed_five.find("\n\n").unwrap() + 1..];
    let forged_tail = format!(
        "{}{signature_lines}",
        Checkpoint {
            origin: ORIGIN.into(),
            size: 6,
            root_hash: six.root(),
            extensions: Vec::new(),
        }
        .to_text()
    );
    let tail_proof = consistency_proof(&six, 5, 6).unwrap();
    let (status, _, body) = witness.add(5, &tail_proof, &forged_tail);
    assert_eq!(
        status, 403,
        "a checkpoint the log did not sign is refused: {body}"
    );

    // A fork: the log's key signs another tree of the same size. Refused, with evidence.
    let forked = tree(5, true);
    assert_ne!(forked.root(), five.root());
    let (status, _, body) = witness.add(5, &[], &checkpoint(&forked));
    assert_eq!(status, 409, "a second tree of size 5 is a fork: {body}");
    assert!(body.contains("fork"), "{body}");
    let evidence = evidence_files(&state);
    assert_eq!(
        evidence.len(),
        1,
        "the fork's evidence is saved: {evidence:?}"
    );
    let out = Command::new(BIN)
        .arg("verify-evidence")
        .arg(&evidence[0])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify-evidence must accept the witness's evidence: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("PROVEN"));

    // After a restart the witness still knows it cosigned size 5.
    witness.stop();
    let witness = WitnessServer::start(&state, logs);
    let (status, _, body) = witness.add(3, &[], &checkpoint(&six));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body, "5\n", "the restarted witness remembers its view");
    let proof = consistency_proof(&six, 5, 6).unwrap();
    let (status, _, body) = witness.add(5, &proof, &checkpoint(&six));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn node_publishes_the_witness_cosignature() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The node's key is made here, so that the witness can follow its log from the start.
    let node_key = SigningKey::from_bytes(&[17; 32]);
    std::fs::create_dir_all(data.join("keys")).unwrap();
    std::fs::write(data.join("keys/node.pem"), node_key.to_pkcs8_pem()).unwrap();
    let log = NoteVerifier::new("vledger.local/cq", node_key.public_key()).unwrap();
    let witness = WitnessServer::start(&dir.path().join("witness"), vec![log.clone()]);
    let witness_key = cosigner().verifier().to_verifier_key();

    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args(["serve", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--witness")
        .arg(format!("{witness_key}@{}", witness.url))
        .arg("--data")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        common::wait_until_healthy(&url);
        let admin = common::demo_admin(&data);
        let body = serde_json::json!({
            "key": SigningKey::from_bytes(&[40; 32]).public_key().to_base64(),
            "role": "agency",
            "home_region": "cq",
            "name": "Witnessed Lab",
        });
        vledger_client::Client::new(&url)
            .submit(&admin, "party.register", &body)
            .unwrap();

        let verifier = CosignatureVerifier::parse(&witness_key).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = String::new();
        loop {
            let response = reqwest::blocking::get(format!("{url}/v1/checkpoint/cosigned")).unwrap();
            if response.status().is_success() {
                last = response.text().unwrap();
                let note = SignedNote::parse(&last).unwrap();
                let size = Checkpoint::parse(&note.text).unwrap().size;
                if size == 2 {
                    note.verify(std::slice::from_ref(&log))
                        .expect("the node's own signature verifies");
                    verifier
                        .verify(&note)
                        .expect("the witness's cosignature verifies");
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "GET /v1/checkpoint/cosigned did not carry the witness's cosignature of size 2 within 10 s; last: {last:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
