//! One region's node as a real process of the `vledger` binary, for the tests of a federation:
//! its data directory and node key made first (so that the others can pin it), started with
//! `serve --demo` and its peers, killed with SIGKILL or stopped with SIGTERM, exported.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vledger_client::Client;
use vledger_tlog::keys::SigningKey;
use vledger_tlog::note::NoteVerifier;

const BIN: &str = env!("CARGO_BIN_EXE_vledger");

/// One region's node process.
pub struct RegionNode {
    pub region: &'static str,
    pub data: PathBuf,
    pub port: u16,
    /// `--peer` arguments: `<region>=<verifier key>@<url>`.
    pub peers: Vec<String>,
    child: Option<Child>,
}

impl RegionNode {
    /// Creates the region's data directory and node key under `base`.
    pub fn prepare(base: &Path, region: &'static str) -> Self {
        let data = base.join(region);
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        vledger_node::key_file::write_new_key(&data.join("keys/node.pem"), &key).unwrap();
        Self {
            region,
            data,
            port: super::free_port(),
            peers: Vec::new(),
            child: None,
        }
    }

    /// Makes every node of `nodes` a peer of every other.
    pub fn connect_all(nodes: &mut [&mut RegionNode]) {
        let maps: Vec<String> = nodes.iter().map(|n| n.peer_argument()).collect();
        for (i, node) in nodes.iter_mut().enumerate() {
            node.peers = maps
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, m)| m.clone())
                .collect();
        }
    }

    /// This node as another node's `--peer` names it.
    pub fn peer_argument(&self) -> String {
        format!("{}={}@{}", self.region, self.verifier_key(), self.url())
    }

    pub fn verifier_key(&self) -> String {
        let pem = std::fs::read_to_string(self.data.join("keys/node.pem")).unwrap();
        let key = SigningKey::from_pkcs8_pem(&pem).unwrap().public_key();
        NoteVerifier::new(format!("vledger.local/{}", self.region), key)
            .unwrap()
            .to_verifier_key()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the node and waits until it answers.
    pub fn start(&mut self) {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--demo", "--region", self.region, "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data")
            .arg(&self.data);
        for peer in &self.peers {
            command.args(["--peer", peer]);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.join("node.log"))
            .unwrap();
        self.child = Some(command.stdout(Stdio::null()).stderr(log).spawn().unwrap());
        super::wait_until_healthy(&self.url());
    }

    /// Kills the process with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the node with SIGTERM and waits for it to shut down.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = child.wait();
        }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url())
    }

    /// The admin key the demo region made.
    pub fn admin(&self) -> SigningKey {
        super::demo_admin(&self.data)
    }

    pub fn get(&self, path: &str) -> Value {
        self.client().get_json(path, &[]).unwrap()
    }

    pub fn tree_size(&self) -> u64 {
        self.client().node().unwrap().tree_size
    }

    /// Waits until this node adopted what matters of the first `size` entries of `other`'s log:
    /// it adopted at least `size` entries, or verified them and found only `other`'s adoptions
    /// past what it adopted (which a mirror does not adopt: see the mirror's step).
    pub fn wait_adopted(&self, other: &RegionNode, size: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let federation = self.get("/v1/federation");
            let peer = federation["peers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["region"] == other.region)
                .cloned()
                .unwrap_or_default();
            let adopted = peer["adopted"]["size"].as_u64().unwrap_or(0);
            let seen = peer["mirror"]["latest_seen_size"].as_u64().unwrap_or(0);
            let lag = peer["mirror"]["lag_entries"].as_u64().unwrap_or(u64::MAX);
            if adopted >= size || (adopted > 0 && seen >= size && lag == 0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting until {} adopts {size} entries of {} (its view: {peer}); \
                 the end of its log:\n{}",
                self.region,
                other.region,
                self.log_tail(),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines the node wrote to its log file.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.data.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `vledger export --data` of the stopped node to `out`.
    pub fn export(&self, out: &Path) {
        let status = Command::new(BIN)
            .args(["export", "--data"])
            .arg(&self.data)
            .arg("--out")
            .arg(out)
            .status()
            .unwrap();
        assert!(status.success(), "export of {}", self.region);
    }
}

impl Drop for RegionNode {
    fn drop(&mut self) {
        self.kill();
    }
}
