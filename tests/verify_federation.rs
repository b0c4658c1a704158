//! `vledger verify` of several regions' archives together, end to end: two real node processes
//! (Chongqing `cq`, Sichuan `sc`) that mirror each other, a Sichuan enterprise posting a demand
//! on Chongqing's node, both stopped and exported with `vledger export`. Together, every
//! cross-region decision is decided again (none folded); Chongqing's archive alone verifies with
//! that decision folded and said so; a Sichuan archive cut below the size Chongqing adopted
//! fails, naming Chongqing's adoption entry and the region.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vledger_client::{path_segment, Client};
use vledger_tlog::keys::SigningKey;
use vledger_tlog::note::NoteVerifier;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_vledger");

/// One region's node process.
struct RegionNode {
    region: &'static str,
    data: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl RegionNode {
    /// The region's data directory and node key, so that the other can pin it.
    fn prepare(base: &Path, region: &'static str) -> Self {
        let data = base.join(region);
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        vledger_node::key_file::write_new_key(&data.join("keys/node.pem"), &key).unwrap();
        Self {
            region,
            data,
            port: common::free_port(),
            child: None,
        }
    }

    fn verifier_key(&self) -> String {
        let pem = std::fs::read_to_string(self.data.join("keys/node.pem")).unwrap();
        let key = SigningKey::from_pkcs8_pem(&pem).unwrap().public_key();
        NoteVerifier::new(format!("vledger.local/{}", self.region), key)
            .unwrap()
            .to_verifier_key()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self, peer: &RegionNode) {
        let log = std::fs::File::create(self.data.join("node.log")).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--demo", "--region", self.region, "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data")
            .arg(&self.data)
            .arg("--peer")
            .arg(format!(
                "{}={}@{}",
                peer.region,
                peer.verifier_key(),
                peer.url()
            ))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        common::wait_until_healthy(&self.url());
    }

    /// Stops the node with SIGTERM and waits for it to shut down.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = child.wait();
        }
    }

    fn adopted_size(&self, region: &str) -> u64 {
        let federation: Value = Client::new(&self.url())
            .get_json("/v1/federation", &[])
            .unwrap();
        federation["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["region"] == region)
            .and_then(|p| p["adopted"]["size"].as_u64())
            .unwrap_or(0)
    }

    /// `vledger export --data` of the stopped node.
    fn export(&self, out: &Path) {
        let status = Command::new(BIN)
            .args(["export", "--data"])
            .arg(&self.data)
            .arg("--out")
            .arg(out)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for RegionNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `vledger verify` of the archives `args` with `flags`: the exit code, and standard output
/// followed by standard error.
fn verify(args: &[&Path], flags: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("verify")
        .args(args)
        .args(flags)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn peer<'a>(report: &'a Value, region: &str) -> &'a Value {
    report["federation"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["region"] == region)
        .unwrap_or_else(|| panic!("no peer {region} in {report}"))
}

#[test]
fn archives_of_two_regions_verify_together_with_every_cross_region_decision_decided_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut cq = RegionNode::prepare(dir.path(), "cq");
    let mut sc = RegionNode::prepare(dir.path(), "sc");
    cq.start(&sc);
    sc.start(&cq);

    // A Sichuan enterprise, known in Chongqing once adopted, posts a demand there.
    let enterprise = SigningKey::generate(&mut rand::rngs::OsRng);
    let body = json!({ "key": enterprise.public_key().to_base64(), "role": "enterprise",
                       "home_region": "sc", "name": "enterprise of sc" });
    Client::new(&sc.url())
        .submit(&common::demo_admin(&sc.data), "party.register", &body)
        .unwrap();
    let party = format!(
        "{}/v1/parties/{}",
        cq.url(),
        path_segment(&enterprise.public_key().to_base64())
    );
    wait_for("cq knows the enterprise of sc", || {
        reqwest::blocking::get(&party).is_ok_and(|r| r.status().is_success())
    });
    let demand = json!({ "demand_id": "d1", "category": "testing", "title": "材料检测",
                         "description": "D", "currency": "CNY" });
    Client::new(&cq.url())
        .submit(&enterprise, "demand.post", &demand)
        .unwrap();
    let adopted = cq.adopted_size("sc");
    assert!(adopted > 0);
    cq.stop();
    sc.stop();
    let (cq_archive, sc_archive) = (dir.path().join("cq.archive"), dir.path().join("sc.archive"));
    cq.export(&cq_archive);
    sc.export(&sc_archive);

    // Together: each verified with the other as its peer, nothing folded.
    let (code, out) = verify(&[&cq_archive, &sc_archive], &["--json"]);
    assert_eq!(code, 0, "{out}");
    let together: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(together["passed"], true);
    let reports = together["regions"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    let cq_report = &reports[0];
    assert_eq!(cq_report["region"], "cq");
    assert_eq!(
        cq_report["federation"]["cross_region_decisions_replayed"],
        1
    );
    assert_eq!(cq_report["federation"]["cross_region_decisions_folded"], 0);
    let sc_seen = peer(cq_report, "sc");
    assert_eq!(sc_seen["archive_given"], true);
    assert!(sc_seen["adoptions"].as_u64().unwrap() >= 1);
    assert_eq!(sc_seen["adoptions_checked"], sc_seen["adoptions"]);
    assert_eq!(sc_seen["decisions_replayed"], 1);
    assert_eq!(cq_report["federation"]["views_not_kept"], json!([]));
    assert_eq!(reports[1]["region"], "sc");
    assert_eq!(reports[1]["passed"], true);

    let (code, out) = verify(&[&cq_archive, &sc_archive], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("region sc: ") && out.contains("1 replayed, 0 folded"),
        "{out}"
    );
    assert!(out.contains("VERIFIED"), "{out}");

    // Alone: verified, the decision folded, and the report says from which region.
    let (code, out) = verify(&[&cq_archive], &["--json"]);
    assert_eq!(code, 0, "{out}");
    let alone: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(alone["passed"], true);
    assert_eq!(alone["federation"]["cross_region_decisions_replayed"], 0);
    assert_eq!(alone["federation"]["cross_region_decisions_folded"], 1);
    assert_eq!(peer(&alone, "sc")["archive_given"], false);
    assert_eq!(peer(&alone, "sc")["decisions_folded"], 1);
    assert_eq!(alone["federation"]["views_not_kept"], json!(["sc"]));
    let (code, out) = verify(&[&cq_archive], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("1 cross-region decision(s) folded") && out.contains("region(s) sc"),
        "{out}"
    );

    // Sichuan's archive cut below the size Chongqing adopted: its header and genesis only.
    let lines: Vec<String> = std::fs::read_to_string(&sc_archive)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let cut = dir.path().join("sc-cut.archive");
    std::fs::write(&cut, lines[..2].join("\n") + "\n").unwrap();
    let (code, out) = verify(&[&cq_archive, &cut], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[adoption] adopts region `sc` at size")
            && out.contains("region `sc`: its archive holds only 1 entries"),
        "{out}"
    );

    // Usage: one archive per region; the flags of one source refused with several.
    let (code, out) = verify(&[&cq_archive, &cq_archive], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("both logs of region `cq`"), "{out}");
    let state = dir.path().join("state");
    let (code, out) = verify(
        &[&cq_archive, &sc_archive],
        &["--save-state", state.to_str().unwrap()],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--save-state applies to one source"), "{out}");
}
