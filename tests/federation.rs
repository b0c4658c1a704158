//! A federation of three real node processes on loopback (Chongqing `cq`, Sichuan `sc`, Chengdu
//! `cd`), each mirroring the two others: parties and listings of each region known in the
//! others; a partition between two nodes (a proxy this test controls) that heals; a node killed
//! with SIGKILL in the middle of catching up that resumes with no gap and no duplicate; and a
//! forked Sichuan (a second node from a copy of its store, with other later entries under the
//! same key) caught, with evidence that `vledger verify-evidence` accepts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
    peers: Vec<String>,
    child: Option<Child>,
}

impl RegionNode {
    /// Creates the region's data directory and node key (so that the others can pin it).
    fn prepare(base: &Path, region: &'static str) -> Self {
        let data = base.join(region);
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        vledger_node::key_file::write_new_key(&data.join("keys/node.pem"), &key).unwrap();
        Self {
            region,
            data,
            port: common::free_port(),
            peers: Vec::new(),
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

    fn start(&mut self) {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--demo", "--region", self.region, "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data")
            .arg(&self.data);
        for peer in &self.peers {
            command.args(["--peer", peer]);
        }
        let log = std::fs::File::create(self.data.join("node.log")).unwrap();
        self.child = Some(command.stdout(Stdio::null()).stderr(log).spawn().unwrap());
        common::wait_until_healthy(&self.url());
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    /// Stops the node with SIGTERM and waits for it to shut down.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = child.wait();
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.url())
    }

    fn admin(&self) -> SigningKey {
        common::demo_admin(&self.data)
    }

    fn federation(&self) -> Value {
        self.client().get_json("/v1/federation", &[]).unwrap()
    }

    fn peer(&self, region: &str) -> Value {
        let federation = self.federation();
        federation["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["region"] == region)
            .cloned()
            .unwrap()
    }

    fn adopted_size(&self, region: &str) -> u64 {
        self.peer(region)["adopted"]["size"].as_u64().unwrap_or(0)
    }

    fn tree_size(&self) -> u64 {
        self.client().node().unwrap().tree_size
    }
}

impl Drop for RegionNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy the test controls: forwards to an upstream, or, cut, closes every connection.
struct Proxy {
    port: u16,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    /// Changes whenever the upstream does: connections of an older generation close.
    generation: Arc<AtomicU64>,
}

impl Proxy {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let generation = Arc::new(AtomicU64::new(0));
        let (up, generations) = (upstream.clone(), generation.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let target = *up.lock().unwrap();
                let born = generations.load(Ordering::SeqCst);
                let Some(target) = target else { continue };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let generations = generations.clone();
                    std::thread::spawn(move || pump(from, to, born, &generations));
                }
            }
        });
        Self {
            port,
            upstream,
            generation,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn route_to(&self, port: Option<u16>) {
        *self.upstream.lock().unwrap() = port.map(|p| SocketAddr::from(([127, 0, 0, 1], p)));
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, born: u64, generation: &AtomicU64) {
    from.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if generation.load(Ordering::SeqCst) != born {
            break;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Registers `count` enterprises in `node`'s region, from 8 threads; returns the keys.
fn register_many(node: &RegionNode, count: usize, tag: &str) {
    let (url, admin, region) = (node.url(), node.admin(), node.region);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (url, admin, tag) = (url.clone(), admin.clone(), tag.to_string());
            std::thread::spawn(move || {
                let client = Client::new(&url);
                for i in (t..count).step_by(8) {
                    let key = SigningKey::generate(&mut rand::rngs::OsRng).public_key();
                    let body = json!({ "key": key.to_base64(), "role": "enterprise",
                                       "home_region": region, "name": format!("{tag} {i}") });
                    client.submit(&admin, "party.register", &body).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

fn status_of(url: &str) -> u16 {
    reqwest::blocking::get(url).unwrap().status().as_u16()
}

#[test]
fn three_regions_mirror_each_other_through_partitions_crashes_and_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let mut cq = RegionNode::prepare(dir.path(), "cq");
    let mut sc = RegionNode::prepare(dir.path(), "sc");
    let mut cd = RegionNode::prepare(dir.path(), "cd");
    // Chongqing reads Sichuan through the proxy; every other pair talks directly.
    let proxy = Proxy::start();
    proxy.route_to(Some(sc.port));
    cq.peers = vec![
        format!("sc={}@{}", sc.verifier_key(), proxy.url()),
        format!("cd={}@{}", cd.verifier_key(), cd.url()),
    ];
    sc.peers = vec![
        format!("cq={}@{}", cq.verifier_key(), cq.url()),
        format!("cd={}@{}", cd.verifier_key(), cd.url()),
    ];
    cd.peers = vec![
        format!("cq={}@{}", cq.verifier_key(), cq.url()),
        format!("sc={}@{}", sc.verifier_key(), sc.url()),
    ];
    for node in [&mut cq, &mut sc, &mut cd] {
        node.start();
    }

    // 1. A lab and its listing in each region, known in the two others after adoption.
    let mut labs = Vec::new();
    for node in [&cq, &sc, &cd] {
        let lab = SigningKey::generate(&mut rand::rngs::OsRng);
        let client = node.client();
        let body = json!({ "key": lab.public_key().to_base64(), "role": "agency",
                           "home_region": node.region, "name": format!("lab of {}", node.region) });
        client
            .submit(&node.admin(), "party.register", &body)
            .unwrap();
        let listing = json!({ "listing_id": format!("l-{}", node.region),
            "pool": "instruments_equipment", "category": "testing", "title": "材料检测",
            "description": "Material testing", "price_minor": 100_000, "currency": "CNY" });
        client.submit(&lab, "catalog.list", &listing).unwrap();
        labs.push((node.region, lab.public_key()));
    }
    for node in [&cq, &sc, &cd] {
        for (home, lab) in &labs {
            let party = format!(
                "{}/v1/parties/{}",
                node.url(),
                path_segment(&lab.to_base64())
            );
            let listing = format!("{}/v1/catalog/listings/l-{home}?region={home}", node.url());
            wait_for(
                &format!("{} knows the lab and the listing of {home}", node.region),
                Duration::from_secs(30),
                || status_of(&party) == 200 && status_of(&listing) == 200,
            );
            let known: Value = reqwest::blocking::get(&party).unwrap().json().unwrap();
            assert_eq!(known["log_region"], *home);
            assert_eq!(known["home_region"], *home);
            assert_eq!(known["as_of_size"].is_u64(), node.region != *home);
        }
    }
    let search: Value = cq
        .client()
        .get_json("/v1/catalog/listings?region=cd", &[])
        .unwrap();
    assert_eq!(search["listings"][0]["listing_id"], "l-cd");
    // The search engine of every node finds the listings of all three regions, each with the
    // region whose log holds it, and counts them by region.
    for node in [&cq, &sc, &cd] {
        let size = node.tree_size().to_string();
        let found: Value = node
            .client()
            .get_json(
                "/v1/catalog/search",
                &[
                    ("q", "材料检测".to_string()),
                    ("min_log_size", size),
                    ("sort", "price_asc".to_string()),
                ],
            )
            .unwrap();
        let mut regions: Vec<(String, String)> = found["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["log_region"].as_str().unwrap().to_string(),
                    h["listing"]["listing_id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        regions.sort();
        let expected: Vec<(String, String)> = ["cd", "cq", "sc"]
            .iter()
            .map(|r| (r.to_string(), format!("l-{r}")))
            .collect();
        assert_eq!(regions, expected, "{}: {found}", node.region);
        assert_eq!(found["facets"]["region"].as_array().unwrap().len(), 3);
        let adopted = &found["indexed"]["regions"];
        assert_eq!(adopted.as_object().unwrap().len(), 2, "{found}");
    }

    // 2. A partition between Chongqing and Sichuan: Chengdu keeps up, Chongqing falls behind,
    // then both converge when it heals.
    proxy.route_to(None);
    register_many(&sc, 50, "during the partition");
    let written = sc.tree_size();
    wait_for("cd adopts what sc wrote", Duration::from_secs(30), || {
        cd.adopted_size("sc") >= written
    });
    wait_for("cq sees sc unreachable", Duration::from_secs(30), || {
        cq.peer("sc")["mirror"]["state"] == "failing"
    });
    assert!(cq.adopted_size("sc") < written);
    proxy.route_to(Some(sc.port));
    wait_for(
        "cq converges after the partition",
        Duration::from_secs(60),
        || cq.adopted_size("sc") >= written,
    );

    // 3. SIGKILL in the middle of catching up three mirror steps' worth.
    proxy.route_to(None);
    let before = cq.adopted_size("sc");
    register_many(&sc, 9_000, "behind");
    let written = sc.tree_size();
    proxy.route_to(Some(sc.port));
    wait_for("cq is part way", Duration::from_secs(120), || {
        cq.adopted_size("sc") > before
    });
    let part_way = cq.adopted_size("sc");
    assert!(part_way < written, "the catch-up ended before the kill");
    cq.kill();
    cq.start();
    wait_for(
        "cq converges after the kill",
        Duration::from_secs(120),
        || cq.adopted_size("sc") >= written,
    );
    // No gap, no duplicate: every adoption of sc in cq's log is larger than the one before,
    // and what cq adopted is sc's tree at that size.
    let adopted = cq.peer("sc")["adopted"].clone();
    let size = adopted["size"].as_u64().unwrap();
    let theirs = sc.client().checkpoints(size, 1).unwrap();
    let theirs = &theirs.checkpoints[0];
    assert_eq!(theirs.size, size);
    assert_eq!(adopted["checkpoint"].as_str().unwrap(), theirs.note);
    let mut sizes = Vec::new();
    let cq_size = cq.tree_size();
    let mut start = 0;
    while start < cq_size {
        let page = cq.client().entries(start, cq_size).unwrap();
        for view in &page.entries {
            let bytes = base64_decode(&view.entry);
            let entry = vledger_wire::entry::Entry::decode(&bytes).unwrap();
            let envelope =
                vledger_wire::envelope::VerifiedEnvelope::parse_and_verify(&entry.envelope)
                    .unwrap();
            if envelope.payload.command_type == "federation.adopt"
                && envelope.payload.body["region"] == "sc"
            {
                let note = envelope.payload.body["checkpoint"].as_str().unwrap();
                sizes.push(note.lines().nth(1).unwrap().parse::<u64>().unwrap());
            }
        }
        start += page.entries.len() as u64;
    }
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    assert!(sizes.contains(&part_way));

    // 4. A fork of Sichuan under the same key, served to Chongqing through the proxy.
    sc.stop();
    let fork_dir = dir.path().join("sc-fork");
    copy_dir(&sc.data, &fork_dir);
    sc.start();
    register_many(&sc, 5, "honest");
    // The fork's evidence is a consistency proof from the size adopted, which proves another
    // history only from a size that is not a power of two.
    let adopted = loop {
        let honest = sc.tree_size();
        wait_for("cq adopts the honest sc", Duration::from_secs(60), || {
            let peer = cq.peer("sc");
            peer["adopted"]["size"].as_u64().unwrap_or(0) >= honest
                && peer["mirror"]["lag_entries"] == 0
        });
        let adopted = cq.adopted_size("sc");
        if !adopted.is_power_of_two() {
            break adopted;
        }
        register_many(&sc, 1, "one more");
    };
    let mut fork = RegionNode {
        region: "sc",
        data: fork_dir,
        port: common::free_port(),
        peers: Vec::new(),
        child: None,
    };
    fork.start();
    register_many(&fork, 30, "forked");
    assert!(fork.tree_size() > adopted);
    proxy.route_to(Some(fork.port));
    wait_for("cq catches the fork", Duration::from_secs(60), || {
        cq.peer("sc")["mirror"]["state"] == "halted"
    });
    let evidence = cq.peer("sc")["mirror"]["equivocation"].clone();
    let file = dir.path().join("evidence.json");
    std::fs::write(&file, serde_json::to_string(&evidence).unwrap()).unwrap();
    let checked = Command::new(BIN)
        .arg("verify-evidence")
        .arg(&file)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");
    assert!(cq.data.join("evidence/sc.json").exists());
    assert_eq!(cq.adopted_size("sc"), adopted);
    let metrics = cq.client().get_text("/metrics").unwrap();
    assert!(
        metrics.contains("vledger_federation_equivocation{region=\"sc\"} 1"),
        "{metrics}"
    );
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
