//! Tamper tests of `vledger verify` on an archive exported from a real node holding several
//! signed commands: each change is detected and named by entry index (or checkpoint size) and
//! the rule it breaks, with exit code 1.

use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use vledger_tlog::keys::SigningKey;
use vledger_wire::envelope::{pae, DsseEnvelope, COMMAND_PAYLOAD_TYPE};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_vledger");
/// Parties the demo admin registers before the export: entries 1..=PARTIES.
const PARTIES: u64 = 4;

/// A demo node running on a free loopback port; killed when dropped.
struct DemoNode {
    child: std::process::Child,
    url: String,
    admin: SigningKey,
    registered: u64,
}

impl DemoNode {
    fn start(dir: &std::path::Path) -> Self {
        let port = common::free_port();
        let data = dir.join("data");
        let child = Command::new(BIN)
            .args([
                "serve",
                "--demo",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        common::wait_until_healthy(&url);
        let admin = common::demo_admin(&data);
        Self {
            child,
            url,
            admin,
            registered: 0,
        }
    }

    /// Registers `count` more agencies (signed by the demo admin).
    fn register(&mut self, count: u64) {
        let client = vledger_client::Client::new(&self.url);
        for _ in 0..count {
            let n = self.registered;
            let party = SigningKey::from_bytes(&[n as u8 + 40; 32]).public_key();
            let body = serde_json::json!({
                "key": party.to_base64(),
                "role": "agency",
                "home_region": "cq",
                "name": format!("Testing Lab {n}"),
            });
            client.submit(&self.admin, "party.register", &body).unwrap();
            self.registered += 1;
        }
    }

    /// `vledger export --url` of the node now, as lines; with `all`, every checkpoint the node
    /// signed, else only the latest.
    fn export(&self, out: &std::path::Path, all: bool) -> Vec<String> {
        let checkpoints = if all { "all" } else { "latest" };
        let status = Command::new(BIN)
            .args([
                "export",
                "--url",
                &self.url,
                "--checkpoints",
                checkpoints,
                "--out",
            ])
            .arg(out)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read_to_string(out)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }
}

impl Drop for DemoNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The archive of a demo node holding genesis and [`PARTIES`] `party.register` commands signed
/// by the demo admin key, as lines: header, entries 0..=PARTIES, one checkpoint, the end line.
fn exported_archive(dir: &std::path::Path) -> Vec<String> {
    let mut node = DemoNode::start(dir);
    node.register(PARTIES);
    let lines = node.export(&dir.join("archive.jsonl"), false);
    assert_eq!(
        lines.len() as u64,
        PARTIES + 4,
        "header, entries, checkpoint, end"
    );
    lines
}

/// Entry `index`'s line of an archive holding only the latest checkpoint.
fn entry_line(index: u64) -> usize {
    index as usize + 1
}

/// Entry `index`'s line of any archive.
fn find_entry_line(lines: &[String], index: u64) -> usize {
    lines
        .iter()
        .position(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["type"] == "entry" && value["index"] == index
        })
        .unwrap_or_else(|| panic!("no line holds entry {index}"))
}

/// The canonical bytes of the entry on `line`.
fn entry_bytes(line: &str) -> Vec<u8> {
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    B64.decode(value["entry"].as_str().unwrap()).unwrap()
}

/// The same entry line holding other bytes.
fn with_entry_bytes(line: &str, bytes: &[u8]) -> String {
    let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
    value["entry"] = B64.encode(bytes).into();
    value.to_string()
}

/// (start, end) of the envelope and of the events inside canonical entry bytes
/// (docs/FORMAT.md: 49 header bytes, u32 BE length, envelope, u32 BE length, events).
fn sections(bytes: &[u8]) -> ((usize, usize), (usize, usize)) {
    let len = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let envelope = (53, 53 + len(49));
    let events = (envelope.1 + 4, envelope.1 + 4 + len(envelope.1));
    assert_eq!(events.1, bytes.len());
    (envelope, events)
}

/// Entry bytes whose envelope is replaced by `envelope` (lengths adjusted).
fn with_envelope(bytes: &[u8], envelope: &DsseEnvelope) -> Vec<u8> {
    let ((start, end), _) = sections(bytes);
    let new = serde_json::to_vec(envelope).unwrap();
    let mut out = bytes[..49].to_vec();
    out.extend_from_slice(&(new.len() as u32).to_be_bytes());
    out.extend_from_slice(&new);
    out.extend_from_slice(&bytes[end..]);
    let _ = start;
    out
}

fn envelope_of(bytes: &[u8]) -> DsseEnvelope {
    let ((start, end), _) = sections(bytes);
    serde_json::from_slice(&bytes[start..end]).unwrap()
}

fn verify(dir: &std::path::Path, lines: &[String]) -> (i32, serde_json::Value) {
    verify_with(dir, lines, &[])
}

/// `vledger verify --json <lines> <extra...>`: the exit code and the report.
fn verify_with(
    dir: &std::path::Path,
    lines: &[String],
    extra: &[&std::ffi::OsStr],
) -> (i32, serde_json::Value) {
    let path = dir.join("tampered.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = Command::new(BIN)
        .arg("verify")
        .arg(&path)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(
        |_| serde_json::json!({ "stderr": String::from_utf8_lossy(&out.stderr).to_string() }),
    );
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

/// The failures of a report, for messages.
fn failures(report: &serde_json::Value) -> String {
    serde_json::to_string_pretty(&report["failures"]).unwrap()
}

/// Asserts that `lines` fail verification with `rule` named at entry `index`.
fn assert_fails(dir: &std::path::Path, lines: &[String], rule: &str, index: u64, what: &str) {
    let (code, report) = verify(dir, lines);
    assert_eq!(code, 1, "{what}: verify must exit 1; report: {report}");
    assert!(
        has_failure(&report, rule, Some(index), None),
        "{what}: expected a `{rule}` failure at entry {index}; got {}",
        failures(&report)
    );
}

#[test]
fn tampering_is_detected_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let lines = exported_archive(dir);
    let (code, report) = verify(dir, &lines);
    assert_eq!(code, 0, "the untouched archive must verify: {report}");
    assert_eq!(report["replayed"], PARTIES + 1, "{report}");
    let checkpoint_line = entry_line(PARTIES) + 1;

    // Two entry lines swapped: entry 3 comes where entry 2 belongs.
    let mut swapped = lines.clone();
    swapped.swap(entry_line(2), entry_line(3));
    assert_fails(dir, &swapped, "sequence", 2, "entry lines swapped");

    // Two entries' bytes swapped under unchanged line indexes: the bytes say which entry
    // they are, and the chain links them.
    let mut relabelled = lines.clone();
    let (two, three) = (
        entry_bytes(&lines[entry_line(2)]),
        entry_bytes(&lines[entry_line(3)]),
    );
    relabelled[entry_line(2)] = with_entry_bytes(&lines[entry_line(2)], &three);
    relabelled[entry_line(3)] = with_entry_bytes(&lines[entry_line(3)], &two);
    assert_fails(dir, &relabelled, "sequence", 2, "entry bytes swapped");
    let (_, report) = verify(dir, &relabelled);
    assert!(
        has_failure(&report, "checkpoint-root", None, Some(PARTIES + 1)),
        "the checkpoint no longer matches the reordered leaves: {}",
        failures(&report)
    );

    // One flipped byte inside entry 2's signed payload (the party's name), signature kept.
    let bytes = entry_bytes(&lines[entry_line(2)]);
    let mut envelope = envelope_of(&bytes);
    let mut payload = B64.decode(&envelope.payload).unwrap();
    let at = payload
        .windows(11)
        .position(|w| w == b"Testing Lab")
        .unwrap();
    payload[at] = b'R';
    envelope.payload = B64.encode(&payload);
    let mut flipped = lines.clone();
    flipped[entry_line(2)] =
        with_entry_bytes(&lines[entry_line(2)], &with_envelope(&bytes, &envelope));
    assert_fails(dir, &flipped, "signature", 2, "payload byte flipped");

    // One flipped byte inside entry 3's recorded events: the envelope still verifies, the
    // replay produces other events.
    let mut bytes = entry_bytes(&lines[entry_line(3)]);
    let (_, (events_start, events_end)) = sections(&bytes);
    let at = events_start
        + bytes[events_start..events_end]
            .windows(11)
            .position(|w| w == b"Testing Lab")
            .expect("the registration event names the party");
    bytes[at] = b'R';
    let mut flipped = lines.clone();
    flipped[entry_line(3)] = with_entry_bytes(&lines[entry_line(3)], &bytes);
    assert_fails(dir, &flipped, "events", 3, "event byte flipped");
    let (_, report) = verify(dir, &flipped);
    assert!(
        !has_failure(&report, "signature", Some(3), None),
        "the envelope was not touched: {}",
        failures(&report)
    );

    // Entry 1's signature replaced by a valid signature of the same payload by another key.
    let bytes = entry_bytes(&lines[entry_line(1)]);
    let mut envelope = envelope_of(&bytes);
    let payload = B64.decode(&envelope.payload).unwrap();
    let other = SigningKey::from_bytes(&[9; 32]);
    envelope.signatures[0].sig = B64.encode(other.sign(&pae(COMMAND_PAYLOAD_TYPE, &payload)));
    let mut resigned = lines.clone();
    resigned[entry_line(1)] =
        with_entry_bytes(&lines[entry_line(1)], &with_envelope(&bytes, &envelope));
    assert_fails(dir, &resigned, "signature", 1, "signature by another key");

    // One flipped byte inside entry 0's signature.
    let mut flipped = lines.clone();
    let mut bytes = entry_bytes(&flipped[entry_line(0)]);
    let sig_at = String::from_utf8_lossy(&bytes).find("\"sig\":\"").unwrap() + 8;
    bytes[sig_at] = if bytes[sig_at] == b'A' { b'B' } else { b'A' };
    flipped[entry_line(0)] = with_entry_bytes(&flipped[entry_line(0)], &bytes);
    assert_fails(dir, &flipped, "signature", 0, "signature byte flipped");
    let (_, report) = verify(dir, &flipped);
    assert!(
        has_failure(&report, "checkpoint-root", None, Some(PARTIES + 1)),
        "{}",
        failures(&report)
    );

    // A dropped entry.
    let mut dropped = lines.clone();
    dropped.remove(entry_line(2));
    assert_fails(dir, &dropped, "sequence", 2, "entry dropped");

    // The checkpoint re-signed with another key.
    let mut resigned = lines.clone();
    let mut cp: serde_json::Value = serde_json::from_str(&resigned[checkpoint_line]).unwrap();
    let note = cp["note"].as_str().unwrap().to_string();
    let text = &note[..note.find("\n\n").unwrap() + 1];
    let other =
        vledger_tlog::note::NoteSigner::new("vledger.local/cq", SigningKey::from_bytes(&[7; 32]))
            .unwrap();
    cp["note"] = other.sign(text).unwrap().into();
    resigned[checkpoint_line] = cp.to_string();
    let (code, report) = verify(dir, &resigned);
    assert_eq!(code, 1);
    assert!(
        has_failure(&report, "checkpoint-signature", None, Some(PARTIES + 1)),
        "{}",
        failures(&report)
    );

    // Not an archive at all: a usage error, not a verification failure.
    let (code, _) = verify(dir, &["{}".to_string()]);
    assert_eq!(code, 2);
}

/// Incremental verification: a state saved after one export lets a later export be checked
/// from where it stopped; a rewrite of the part verified before, or a saved state that no
/// longer matches its digest, is refused.
#[test]
fn incremental_verification_resumes_from_a_saved_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("saved-state");
    let mut node = DemoNode::start(dir.path());
    node.register(2);
    let first = node.export(&dir.path().join("first.jsonl"), true);
    node.register(3);
    let second = node.export(&dir.path().join("second.jsonl"), true);
    drop(node);
    // Every checkpoint the node signed (one per command here), each after its last entry.
    let checkpoint_sizes: Vec<u64> = second
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["type"] == "checkpoint")
        .map(|line| line["size"].as_u64().unwrap())
        .collect();
    assert_eq!(checkpoint_sizes, vec![1, 2, 3, 4, 5, 6], "{second:?}");
    // From the stopped node's data directory: every checkpoint by default, one with `latest`.
    for (choice, want) in [("all", vec![1, 2, 3, 4, 5, 6]), ("latest", vec![6])] {
        let out = dir.path().join(format!("data-{choice}.jsonl"));
        let status = Command::new(BIN)
            .args(["export", "--checkpoints", choice, "--data"])
            .arg(dir.path().join("data"))
            .arg("--out")
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        let sizes: Vec<u64> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["type"] == "checkpoint")
            .map(|line| line["size"].as_u64().unwrap())
            .collect();
        assert_eq!(sizes, want, "--checkpoints {choice}");
    }
    // A store whose records are in an earlier encoding exports its log without a state digest,
    // and says why; after `vledger rebuild --write` the digest is back.
    let export_data = |name: &str| {
        let out = dir.path().join(name);
        let run = Command::new(BIN)
            .args(["export", "--data"])
            .arg(dir.path().join("data"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(run.status.success());
        let text = std::fs::read_to_string(&out).unwrap();
        let end: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        (end, String::from_utf8_lossy(&run.stderr).into_owned())
    };
    assert!(export_data("current.jsonl").0["state_digest"].is_string());
    {
        use vledger_node::store::{families, Store};
        let store = Store::open(&dir.path().join("data").join("db")).unwrap();
        store.damage_for_tests(families::META, families::STATE_ENCODING_KEY, None);
    }
    let (end, stderr) = export_data("older.jsonl");
    assert!(end["state_digest"].is_null(), "{end}");
    assert!(
        stderr.contains("in the JSON encoding") && stderr.contains("no state digest"),
        "{stderr}"
    );
    let rebuilt = Command::new(BIN)
        .args(["rebuild", "--write", "--data"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(rebuilt.status.success(), "{rebuilt:?}");
    assert!(export_data("rebuilt.jsonl").0["state_digest"].is_string());

    let save = [std::ffi::OsStr::new("--save-state"), state.as_os_str()];
    let (code, report) = verify_with(dir.path(), &first, &save);
    assert_eq!(code, 0, "{report}");
    assert!(state.join("verifier-state.json").exists());

    let resume = [std::ffi::OsStr::new("--from-checkpoint"), state.as_os_str()];
    let (code, report) = verify_with(dir.path(), &second, &resume);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["entries"], 6,
        "genesis and five registrations: {report}"
    );
    assert_eq!(report["replayed"], 6, "{report}");
    let full = verify(dir.path(), &second).1;
    assert_eq!(report["state_digest"], full["state_digest"]);

    // The resumed run saves again, over the earlier state: the saved checkpoint is now the
    // second archive's (size 6).
    let both = [save[0], save[1], resume[0], resume[1]];
    assert_eq!(verify_with(dir.path(), &second, &both).0, 0);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("verifier-state.json")).unwrap()).unwrap();
    assert_eq!(saved["next_index"], 6);

    // An entry before the saved checkpoint, changed (and re-signed by another key so that its
    // signature alone would pass): the history the state was saved for was rewritten.
    let mut rewritten = second.clone();
    let other = SigningKey::from_bytes(&[9; 32]);
    let line = find_entry_line(&rewritten, 1);
    let bytes = entry_bytes(&rewritten[line]);
    let mut envelope = envelope_of(&bytes);
    let payload = B64.decode(&envelope.payload).unwrap();
    envelope.signatures[0].sig = B64.encode(other.sign(&pae(COMMAND_PAYLOAD_TYPE, &payload)));
    rewritten[line] = with_entry_bytes(&rewritten[line], &with_envelope(&bytes, &envelope));
    let (code, report) = verify_with(dir.path(), &rewritten, &resume);
    assert_eq!(code, 1, "{report}");
    assert!(
        has_failure(&report, "history-rewritten", None, Some(6)),
        "{}",
        failures(&report)
    );

    // A saved state whose digest no longer matches its records is refused (exit 2).
    let description = state.join("verifier-state.json");
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&description).unwrap()).unwrap();
    saved["state_digest"] = B64.encode([0u8; 32]).into();
    std::fs::write(&description, saved.to_string()).unwrap();
    let (code, report) = verify_with(dir.path(), &second, &resume);
    assert_eq!(code, 2, "{report}");
    assert!(
        report["stderr"]
            .as_str()
            .unwrap()
            .contains("do not match the saved state digest"),
        "{report}"
    );

    // A state saved by an earlier version (JSON records) is refused with what to do instead.
    saved["version"] = 2.into();
    std::fs::write(&description, saved.to_string()).unwrap();
    let (code, report) = verify_with(dir.path(), &second, &resume);
    assert_eq!(code, 2, "{report}");
    let stderr = report["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("of version 2 (this verifier reads version 3)")
            && stderr.contains("from its start"),
        "{report}"
    );
}

/// `dir/data` copied to `to` (the node stopped): the same log and keys, frozen at this size.
fn copy_data(dir: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(dir.join("data"))
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// An archive's lines with the header's `tree_size` and the end line's counts set to what the
/// lines hold, and no state digest: what someone who edits an archive would write.
fn with_counts_fixed(lines: &[String]) -> Vec<String> {
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |kind: &str| parsed.iter().filter(|v| v["type"] == kind).count();
    let (entries, checkpoints) = (count("entry"), count("checkpoint"));
    let mut out = Vec::with_capacity(lines.len());
    for (i, mut value) in parsed.into_iter().enumerate() {
        if i == 0 {
            value["tree_size"] = entries.into();
        } else if value["type"] == "end" {
            value =
                serde_json::json!({"type": "end", "entries": entries, "checkpoints": checkpoints});
        }
        out.push(value.to_string());
    }
    out
}

/// Lines without the checkpoint of `size` and without the entries from `from` on.
fn without(lines: &[String], checkpoints: &[u64], entries_from: u64) -> Vec<String> {
    lines
        .iter()
        .filter(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let dropped_checkpoint = value["type"] == "checkpoint"
                && checkpoints.contains(&value["size"].as_u64().unwrap());
            let dropped_entry =
                value["type"] == "entry" && value["index"].as_u64().unwrap() >= entries_from;
            !dropped_checkpoint && !dropped_entry
        })
        .cloned()
        .collect()
}

/// A loopback HTTP server that answers every GET with what `upstream` answers, and appends
/// `extra` to the entries of every `/v1/entries` page: a node serving an entry that no
/// checkpoint of its signs. Serves until the process ends.
fn entry_injecting_proxy(upstream: String, extra: serde_json::Value) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut header = String::new();
            while reader.read_line(&mut header).unwrap() > 2 {
                header.clear();
            }
            let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
            let answer = reqwest::blocking::get(format!("{upstream}{path}")).unwrap();
            let status = answer.status().as_u16();
            let content_type = answer
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let mut body = answer.text().unwrap();
            if path.starts_with("/v1/entries?") && status == 200 {
                let mut page: serde_json::Value = serde_json::from_str(&body).unwrap();
                page["entries"].as_array_mut().unwrap().push(extra.clone());
                body = page.to_string();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// Nothing the node did not sign verifies: entries after the last checkpoint (appended,
/// left after a dropped checkpoint, or cut mid-way with a new trailer) fail `uncovered` in
/// every path of the verifier (archive, URL, incremental); `--accept-uncovered-tail` reports
/// them as unverified (exit 3), never as VERIFIED; and with `--against`, entries beyond the
/// size the node serves fail `beyond-served`.
#[test]
fn entries_no_checkpoint_covers_never_verify() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let before = dir.join("before");
    let mut node = DemoNode::start(dir);
    node.register(PARTIES);
    let small = node.export(&dir.join("small.jsonl"), false);
    drop(node);
    copy_data(dir, &before);
    // The same node signs one more registration by its admin: a genuine entry, with the right
    // previous leaf hash, node time and events, that the frozen copy never had.
    let mut node = DemoNode::start(dir);
    node.registered = PARTIES;
    node.register(1);
    let all = node.export(&dir.join("all.jsonl"), true);
    let extra_view: serde_json::Value = reqwest::blocking::get(format!(
        "{}/v1/entries?start={}&end={}",
        node.url,
        PARTIES + 1,
        PARTIES + 2
    ))
    .unwrap()
    .json()
    .unwrap();
    drop(node);
    let tail_index = PARTIES + 1;
    let extra_line = all[find_entry_line(&all, tail_index)].clone();

    // The small archive with that entry appended after its last checkpoint, the counts raised.
    let mut appended = small.clone();
    appended.insert(appended.len() - 1, extra_line);
    let appended = with_counts_fixed(&appended);
    assert_fails(dir, &appended, "uncovered", tail_index, "an appended entry");
    let (code, report) = verify(dir, &appended);
    assert_eq!(code, 1);
    assert_eq!(report["passed"], false);
    assert_eq!(report["covered_size"], tail_index, "{report}");

    // Accepted explicitly: exit 3, reported as not verified, the tail named.
    let accept = [std::ffi::OsStr::new("--accept-uncovered-tail")];
    let (code, report) = verify_with(dir, &appended, &accept);
    assert_eq!(code, 3, "{report}");
    assert_eq!(report["passed"], false, "{report}");
    assert_eq!(
        report["uncovered"],
        serde_json::json!({"from": tail_index, "to": tail_index + 1})
    );
    let human = Command::new(BIN)
        .arg("verify")
        .arg(dir.join("tampered.jsonl"))
        .arg("--accept-uncovered-tail")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&human.stdout);
    assert!(
        !said.lines().any(|l| l.starts_with("VERIFIED")) && said.contains("NOT VERIFIED"),
        "{said}"
    );

    // `--save-state` saves nothing and still fails.
    let state = dir.join("state-of-forged");
    let save = [std::ffi::OsStr::new("--save-state"), state.as_os_str()];
    assert_eq!(verify_with(dir, &appended, &save).0, 1);
    assert!(!state.exists(), "no state is saved for an unsigned tail");

    // Every checkpoint kept but the last one: its entry is uncovered.
    let dropped = with_counts_fixed(&without(&all, &[tail_index + 1], u64::MAX));
    assert_fails(
        dir,
        &dropped,
        "uncovered",
        tail_index,
        "last checkpoint dropped",
    );

    // Cut in the middle, with a new trailer: entries 0..=3 and the checkpoints up to size 3.
    let cut = with_counts_fixed(&without(&all, &[4, 5, 6], 4));
    assert_fails(dir, &cut, "uncovered", 3, "cut with a new trailer");

    // Against the frozen copy (tree size 5): the forged entry is not in the log it serves,
    // and neither is the genuine sixth entry of a complete archive.
    let frozen = DemoNode::start(&before);
    let against = [
        std::ffi::OsStr::new("--against"),
        std::ffi::OsStr::new(&frozen.url),
    ];
    let (code, report) = verify_with(dir, &appended, &accept_and(&accept, &against));
    assert_eq!(code, 1, "{report}");
    assert!(
        has_failure(&report, "beyond-served", Some(tail_index), None),
        "{}",
        failures(&report)
    );
    let (code, report) = verify_with(dir, &all, &against);
    assert_eq!(code, 1, "{report}");
    assert!(
        has_failure(&report, "beyond-served", Some(tail_index), None),
        "{}",
        failures(&report)
    );
    assert_eq!(
        verify_with(dir, &small, &against).0,
        0,
        "the genuine small archive"
    );

    // Incremental: a state saved from the small archive, then the forged one from there.
    let saved = dir.join("saved");
    let save = [std::ffi::OsStr::new("--save-state"), saved.as_os_str()];
    assert_eq!(verify_with(dir, &small, &save).0, 0);
    let resume = [std::ffi::OsStr::new("--from-checkpoint"), saved.as_os_str()];
    let (code, report) = verify_with(dir, &appended, &resume);
    assert_eq!(code, 1, "{report}");
    assert!(
        has_failure(&report, "uncovered", Some(tail_index), None),
        "{}",
        failures(&report)
    );

    // A URL whose entry pages carry one entry more than its checkpoint signs.
    let proxy = entry_injecting_proxy(frozen.url.clone(), extra_view["entries"][0].clone());
    let out = Command::new(BIN)
        .args(["verify", "--json", &proxy])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        has_failure(&report, "uncovered", Some(tail_index), None),
        "{}",
        failures(&report)
    );
}

/// Two sets of extra arguments, one after the other.
fn accept_and<'a>(
    a: &[&'a std::ffi::OsStr],
    b: &[&'a std::ffi::OsStr],
) -> Vec<&'a std::ffi::OsStr> {
    a.iter().chain(b).copied().collect()
}
