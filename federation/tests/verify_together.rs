//! The offline verification of several regions' archives together, against real nodes and
//! mirrors in one process: with the archive of every region a log adopts, each adoption is
//! checked against it and every cross-region decision is decided again (none folded), and the
//! replayed state, views included, is the node's stored one; without it, those decisions are
//! folded and counted; a peer archive truncated below a size adopted, tampered with, or of
//! another history than the one adopted (a fork) fails, naming the adopting entry and the region.

mod common;

use std::io::Cursor;

use common::{key, Region};
use serde_json::json;
use vledger_domain::federation::load_adopted;
use vledger_domain::types::RegionId;
use vledger_federation::source::LocalSource;
use vledger_federation::{Mirror, StepOutcome};
use vledger_offline::archive::{ArchiveHeader, ArchiveReader, ArchiveWriter};
use vledger_offline::peer_views::PeerArchive;
use vledger_offline::replay::StateDigest;
use vledger_offline::scratch::ScratchState;
use vledger_offline::verify::{verify, Source, SourceItem, VerifyOptions, VerifyReport};
use vledger_tlog::note::NoteVerifier;
use vledger_wire::entry::Entry;
use vledger_wire::envelope::VerifiedEnvelope;

/// Steps the mirror of `of` into `into` until it is up to date.
fn catch_up(of: &Region, into: &Region) {
    let mut mirror = Mirror::new(into.node.clone(), of.as_peer(), None);
    let mut source = LocalSource {
        node: of.node.clone(),
    };
    loop {
        match mirror.step(&mut source, 1_000) {
            StepOutcome::Adopted { .. } => {}
            StepOutcome::UpToDate => return,
            other => panic!("mirror step: {other:?}"),
        }
    }
}

/// A demand posted in `region` by `enterprise` (of any region).
fn post_demand(region: &Region, enterprise: &vledger_tlog::keys::SigningKey, id: &str) {
    let body = json!({ "demand_id": id, "category": "testing", "title": "T",
                       "description": "D", "currency": "CNY" });
    region.submit(enterprise, "demand.post", body).unwrap();
}

/// The region's log as `vledger export --checkpoints latest` writes it from its data
/// directory: every entry, the latest checkpoint, and the digest of the stored state.
fn archive(region: &Region) -> Vec<String> {
    let store = region.node.store();
    let size = store.tree_size().unwrap().unwrap();
    let latest = store.latest_checkpoint_size().unwrap().unwrap();
    assert_eq!(latest, size, "every entry is checkpointed");
    let note = store.checkpoint(latest).unwrap().unwrap();
    let verifier = NoteVerifier::new(common::origin(region.id.as_str()), region.node.node_key())
        .unwrap()
        .to_verifier_key();
    let header = ArchiveHeader::new(
        &common::origin(region.id.as_str()),
        region.id.as_str(),
        &verifier,
        size,
        0,
    );
    let mut writer = ArchiveWriter::new(Vec::new(), &header).unwrap();
    for (index, bytes) in store.entries(0, size).unwrap() {
        writer.entry(index, &bytes).unwrap();
    }
    writer.checkpoint(latest, &note).unwrap();
    let mut digest = StateDigest::default();
    for (key, value) in store.scan_state_from(b"", b"", usize::MAX).unwrap() {
        digest.update(&key, &value);
    }
    let (bytes, _) = writer.finish(Some(digest.finish())).unwrap();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn open(lines: &[String]) -> (ArchiveHeader, Source) {
    let text = lines.join("\n") + "\n";
    let (header, reader) = ArchiveReader::open(Cursor::new(text.into_bytes())).unwrap();
    let items = reader.map(|line| match line {
        Ok((line, Ok(item))) => Ok(SourceItem::Line { line, item }),
        Ok((line, Err(reason))) => Ok(SourceItem::Malformed { line, reason }),
        Err(e) => Err(e.to_string()),
    });
    (header, Box::new(items))
}

/// Verifies `subject` with the archives `peers` of other regions.
fn verify_with(subject: &[String], peers: &[&[String]]) -> VerifyReport {
    let dir = tempfile::tempdir().unwrap();
    let peers = peers
        .iter()
        .enumerate()
        .map(|(i, lines)| {
            let (header, source) = open(lines);
            let state = ScratchState::create(&dir.path().join(format!("peer-{i}"))).unwrap();
            PeerArchive::new(&header, source, state).unwrap()
        })
        .collect();
    let (header, source) = open(subject);
    let mut options = VerifyOptions::fresh(ScratchState::create(&dir.path().join("x")).unwrap());
    options.threads = 2;
    options.peers = peers;
    let mut report = verify(&header, source, options, &mut |_| {}).unwrap();
    report.replayer = None;
    report
}

/// The indexes of the log's `federation.adopt` entries.
fn adoption_entries(region: &Region) -> Vec<u64> {
    let size = region.node.tree_size();
    region
        .node
        .store()
        .entries(0, size)
        .unwrap()
        .into_iter()
        .filter(|(_, bytes)| {
            let entry = Entry::decode(bytes).unwrap();
            let envelope = VerifiedEnvelope::parse_and_verify(&entry.envelope).unwrap();
            envelope.payload.command_type == "federation.adopt"
        })
        .map(|(index, _)| index)
        .collect()
}

fn failures(report: &VerifyReport) -> String {
    report
        .failures
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn region(id: &str) -> RegionId {
    RegionId::try_from(id).unwrap()
}

/// Chongqing and Sichuan adopt each other; enterprises of each post demands in the other.
/// Also the size of Sichuan that Chongqing adopted first.
fn two_regions() -> (Region, Region, u64) {
    let cq = Region::found("cq", 1);
    let sc = Region::found("sc", 2);
    let (sc_enterprise, cq_enterprise) = (key(50), key(51));
    sc.register(&sc_enterprise, "enterprise");
    cq.register(&cq_enterprise, "enterprise");
    catch_up(&sc, &cq);
    let first_adopted = load_adopted(&cq.node.state(), &sc.id)
        .unwrap()
        .unwrap()
        .size;
    catch_up(&cq, &sc);
    post_demand(&cq, &sc_enterprise, "d1");
    post_demand(&sc, &cq_enterprise, "d1");
    // Sichuan grows; Chongqing adopts its newer state and reads it again.
    sc.register_many(&[key(60), key(61), key(62)], "agency");
    catch_up(&sc, &cq);
    post_demand(&cq, &sc_enterprise, "d2");
    (cq, sc, first_adopted)
}

#[test]
fn regions_verified_together_decide_every_cross_region_decision_again() {
    let (cq, sc, _) = two_regions();
    let (cq_log, sc_log) = (archive(&cq), archive(&sc));

    let together = verify_with(&cq_log, &[&sc_log]);
    assert!(together.passed(), "{}", failures(&together));
    let peer = &together.peers[&region("sc")];
    assert!(peer.archive_given);
    assert_eq!(peer.adoptions, 2);
    assert_eq!(peer.adoptions_checked, 2);
    assert_eq!(peer.adopted_size, sc.node.tree_size());
    assert_eq!(
        peer.decisions.decided, 2,
        "both demands of Sichuan's enterprise"
    );
    assert_eq!(peer.decisions.folded, 0);
    // The stored state digest, the node's view of Sichuan included, was compared and agrees.
    assert!(together.views_not_kept.is_empty());

    let sc_together = verify_with(&sc_log, &[&cq_log]);
    assert!(sc_together.passed(), "{}", failures(&sc_together));
    assert_eq!(sc_together.cross_region_decisions().decided, 1);
    assert_eq!(sc_together.cross_region_decisions().folded, 0);

    let alone = verify_with(&cq_log, &[]);
    assert!(alone.passed(), "{}", failures(&alone));
    let peer = &alone.peers[&region("sc")];
    assert!(!peer.archive_given);
    assert_eq!((peer.adoptions, peer.adoptions_checked), (2, 0));
    assert_eq!((peer.decisions.decided, peer.decisions.folded), (0, 2));
    assert_eq!(alone.views_not_kept, vec![region("sc")]);
}

#[test]
fn a_peer_archive_that_is_not_the_history_adopted_fails_naming_the_adoption_and_the_region() {
    let (cq, sc, first_adopted) = two_regions();
    let (cq_log, sc_log) = (archive(&cq), archive(&sc));
    let adoptions = adoption_entries(&cq);
    assert_eq!(adoptions.len(), 2);
    assert!(first_adopted >= 2 && first_adopted < sc.node.tree_size());

    // Truncated below the size first adopted: lines of the header and one entry.
    let truncated: Vec<String> = sc_log[..2].to_vec();
    let report = verify_with(&cq_log, &[&truncated]);
    assert!(!report.passed());
    let failure = report
        .failures
        .iter()
        .find(|f| f.rule == "adoption")
        .unwrap_or_else(|| panic!("no adoption failure: {}", failures(&report)));
    assert_eq!(failure.index, Some(adoptions[0]));
    assert!(
        failure.reason.contains("region `sc`") && failure.reason.contains("holds only 1 entries"),
        "{failure}"
    );
    // Its decisions are folded rather than decided on a view that is not the node's.
    assert_eq!(report.peers[&region("sc")].decisions.folded, 2);

    // Truncated between the two sizes adopted (the header, then entries): the first adoption
    // checks, the second fails.
    let between: Vec<String> = sc_log[..=first_adopted as usize].to_vec();
    let report = verify_with(&cq_log, &[&between]);
    let adoption_failures: Vec<_> = report
        .failures
        .iter()
        .filter(|f| f.rule == "adoption")
        .collect();
    assert_eq!(adoption_failures.len(), 1, "{}", failures(&report));
    assert_eq!(adoption_failures[0].index, Some(adoptions[1]));
    assert_eq!(report.peers[&region("sc")].adoptions_checked, 1);

    // One entry's bytes changed: its tree no longer has the root adopted.
    let mut tampered = sc_log.clone();
    let line: serde_json::Value = serde_json::from_str(&tampered[2]).unwrap();
    let mut bytes = base64_decode(line["entry"].as_str().unwrap());
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    tampered[2] =
        json!({ "type": "entry", "index": 1, "entry": base64_encode(&bytes) }).to_string();
    let report = verify_with(&cq_log, &[&tampered]);
    let failure = report
        .failures
        .iter()
        .find(|f| f.rule == "adoption")
        .unwrap_or_else(|| panic!("no adoption failure: {}", failures(&report)));
    assert_eq!(failure.index, Some(adoptions[0]));
    assert!(
        failure.reason.contains("region `sc`") && failure.reason.contains("have the root"),
        "{failure}"
    );
}

#[test]
fn an_adoption_of_a_forked_region_fails_against_the_regions_archive() {
    let cq = Region::found("cq", 1);
    let sc = Region::found("sc", 2);
    let enterprise = key(50);
    sc.register(&enterprise, "enterprise");
    catch_up(&sc, &cq);
    post_demand(&cq, &enterprise, "d1");
    // Sichuan forks: the fork's next entry is not the region's.
    let (sc, fork) = sc.fork(2);
    sc.register(&key(70), "agency");
    fork.register(&key(71), "agency");
    catch_up(&fork, &cq);
    post_demand(&cq, &enterprise, "d2");
    let adoptions = adoption_entries(&cq);
    let adopted = load_adopted(&cq.node.state(), &sc.id).unwrap().unwrap();
    assert_eq!(adopted.size, sc.node.tree_size(), "a fork of the same size");

    let report = verify_with(&archive(&cq), &[&archive(&sc)]);
    assert!(!report.passed());
    let failure = report
        .failures
        .iter()
        .find(|f| f.rule == "adoption")
        .unwrap_or_else(|| panic!("no adoption failure: {}", failures(&report)));
    assert_eq!(failure.index, Some(adoptions[1]));
    assert!(
        failure
            .reason
            .contains(&format!("adopts region `sc` at size {}", adopted.size))
            && failure.reason.contains(&adopted.root_hash),
        "{failure}"
    );
    // The first adoption checked; the decision after the forked one is folded.
    let peer = &report.peers[&region("sc")];
    assert_eq!(peer.adoptions_checked, 1);
    assert_eq!((peer.decisions.decided, peer.decisions.folded), (1, 1));
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
