//! Offline verification of a whole log, streaming: every envelope signature, the entry
//! encoding and hash chain, every checkpoint's signature and root (recomputed from a Merkle
//! [`Frontier`] over the same leaves, which also proves successive checkpoints consistent), and
//! a full replay of the state machine that must reproduce every recorded event.
//!
//! The work runs as a pipeline: one thread reads the source, a pool checks signatures (the
//! costly part), and the calling thread puts the results back in order, grows the tree,
//! checks checkpoints and replays. Memory holds a bounded number of lines in flight and the
//! replayed state; entries are dropped once applied.
//!
//! Each problem is a [`Failure`] naming the entry index (or checkpoint size) and the reason.
//! After the first replay failure the replay stops (the state would be meaningless), but
//! signatures, order and checkpoint roots are still checked to the end.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::archive::{ArchiveHeader, ArchiveLine};
use crate::peer_views::PeerArchive;
use crate::replay::{CrossRegionDecisions, ReplayPosition, Replayer};
use crate::scratch::ScratchState;
use vledger_domain::federation::{adopted_checkpoint, adopted_regions, AdoptBody};
use vledger_domain::types::RegionId;
use vledger_domain::{Command, Rejection, StateWrite};
use vledger_tlog::merkle::{leaf_hash, Frontier, Hash};
use vledger_tlog::note::{Checkpoint, NoteVerifier, SignedNote};
use vledger_wire::entry::Entry;
use vledger_wire::envelope::{EnvelopeError, VerifiedEnvelope};

/// Items handed from the reader to the signature pool at once.
pub const VERIFY_CHUNK_ITEMS: usize = 256;
/// Chunks waiting for the pool; bounds the memory in flight with [`VERIFY_CHUNK_ITEMS`].
pub const VERIFY_QUEUE_CHUNKS: usize = 8;
pub use vledger_domain::limits::MAX_REPORTED_FAILURES;
pub use vledger_domain::limits::MAX_VERIFY_THREADS;

/// One item of a log to verify, in the order of the source.
#[derive(Debug, Clone)]
pub enum SourceItem {
    /// An archive line (`line` is its 1-based line number, or 0 for a source without lines).
    Line { line: u64, item: ArchiveLine },
    /// A line that is not a valid archive line.
    Malformed { line: u64, reason: String },
}

/// A source of items: an archive file, or pages fetched from a node.
pub type Source = Box<dyn Iterator<Item = Result<SourceItem, String>> + Send>;

/// What verification found wrong, named by entry index or checkpoint size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The entry concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// The checkpoint concerned (its tree size), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_size: Option<u64>,
    /// The archive line concerned, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// A stable name of the rule broken (see docs/FORMAT.md, "Verification failures").
    pub rule: String,
    /// What is wrong, in words.
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.index, self.checkpoint_size) {
            (Some(i), _) => write!(f, "entry {i}: ")?,
            (None, Some(s)) => write!(f, "checkpoint {s}: ")?,
            (None, None) => {}
        }
        write!(f, "[{}] {}", self.rule, self.reason)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// A previously verified position to continue from (`--from-checkpoint`).
pub struct Resume {
    /// The last checkpoint verified, as signed.
    pub checkpoint_note: String,
    /// The replayed state at that checkpoint's size (a working copy of the saved one).
    pub state: ScratchState,
    /// Where the replay stopped: at that checkpoint's size.
    pub position: ReplayPosition,
}

/// Where the replay starts.
pub enum Start {
    /// From the first entry, onto an empty state.
    Fresh(ScratchState),
    /// From a saved position: earlier entries are only hashed.
    Resume(Resume),
}

/// How to verify.
pub struct VerifyOptions {
    /// Signature-checking threads (0: one per core).
    pub threads: usize,
    pub start: Start,
    /// Tree sizes at which to record the root, e.g. to compare with a served checkpoint.
    pub roots_at: BTreeSet<u64>,
    /// Report entries after the last verified checkpoint as an unverified tail
    /// ([`VerifyReport::uncovered`]) instead of an `uncovered` failure. They are still
    /// checked and replayed, but nothing the node signed vouches for them, so a report with
    /// such a tail never [`passed`](VerifyReport::passed).
    pub accept_uncovered_tail: bool,
    /// The archives of other regions, read as the log adopts them: each adoption of one is
    /// checked against it, and its view is kept so that every decision that reads it is
    /// decided again. A decision that reads a region adopted but not given is folded from its
    /// recorded events ([`VerifyReport::peers`] counts both).
    pub peers: Vec<PeerArchive>,
}

impl VerifyOptions {
    /// From the first entry, with the replayed state kept in `state`, a thread per core.
    pub fn fresh(state: ScratchState) -> Self {
        Self {
            threads: 0,
            start: Start::Fresh(state),
            roots_at: BTreeSet::new(),
            accept_uncovered_tail: false,
            peers: Vec::new(),
        }
    }
}

/// What the verified log did with one other region's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerFindings {
    /// Whether that region's archive was given ([`VerifyOptions::peers`]).
    pub archive_given: bool,
    /// `federation.adopt` entries of that region replayed.
    pub adoptions: u64,
    /// Of those, the ones checked against the region's archive (its tree has the adopted root
    /// at the adopted size, the checkpoint verifies under the archive's key) whose view was
    /// then kept.
    pub adoptions_checked: u64,
    /// The largest size of that region adopted.
    pub adopted_size: u64,
    /// The decisions that read the region's records: decided again, or folded.
    pub decisions: CrossRegionDecisions,
}

/// The outcome of a verification.
pub struct VerifyReport {
    /// Entry lines read.
    pub entries: u64,
    /// Entries replayed through the state machine (all, if nothing failed).
    pub replayed: u64,
    /// Checkpoints whose signature and root verified.
    pub checkpoints_verified: u64,
    /// The size and root of the tree of every entry read.
    pub tree_size: u64,
    pub root: Hash,
    /// The latest checkpoint that verified, with nothing failing before it.
    pub last_good_checkpoint: Option<String>,
    /// The largest tree size a checkpoint in the source (or the saved state resumed from)
    /// signs: the entries below it are what the node's signature covers.
    pub covered_size: u64,
    /// Entries `[from, to)` after the last verified checkpoint, when the options accepted such
    /// a tail instead of failing it.
    pub uncovered: Option<(u64, u64)>,
    /// Digest of the replayed state, when the whole log replayed.
    pub state_digest: Option<Hash>,
    /// Roots recorded at the sizes asked for in [`VerifyOptions::roots_at`].
    pub roots_at: BTreeMap<u64, Hash>,
    /// Every failure, up to [`MAX_REPORTED_FAILURES`].
    pub failures: Vec<Failure>,
    /// How many failures there were in all.
    pub failure_count: u64,
    /// The replayer at the end (its state is the replayed state) if the replay did not stop.
    pub replayer: Option<Replayer<ScratchState>>,
    /// Per other region the log adopted or read, what the log did with its records.
    pub peers: BTreeMap<RegionId, PeerFindings>,
    /// The regions adopted whose views the replay does not hold (no archive given, or one that
    /// did not match an adoption): the stored state holds them, so its digest was not compared.
    pub views_not_kept: Vec<RegionId>,
}

impl VerifyReport {
    /// True when nothing failed and a verified checkpoint covers every entry.
    pub fn passed(&self) -> bool {
        self.failure_count == 0 && self.uncovered.is_none()
    }

    /// True when nothing failed but entries after the last verified checkpoint were accepted
    /// as an unverified tail ([`VerifyOptions::accept_uncovered_tail`]).
    pub fn passed_with_uncovered_tail(&self) -> bool {
        self.failure_count == 0 && self.uncovered.is_some()
    }

    /// Cross-region decisions decided again and folded, over every region.
    pub fn cross_region_decisions(&self) -> CrossRegionDecisions {
        self.peers
            .values()
            .fold(CrossRegionDecisions::default(), |sum, p| {
                CrossRegionDecisions {
                    decided: sum.decided + p.decisions.decided,
                    folded: sum.folded + p.decisions.folded,
                }
            })
    }

    /// The report as JSON (without the state).
    pub fn to_json(&self, header: &ArchiveHeader) -> serde_json::Value {
        let total = self.cross_region_decisions();
        let peers: Vec<_> = self
            .peers
            .iter()
            .map(|(region, p)| {
                serde_json::json!({
                    "region": region,
                    "archive_given": p.archive_given,
                    "adoptions": p.adoptions,
                    "adoptions_checked": p.adoptions_checked,
                    "adopted_size": p.adopted_size,
                    "decisions_replayed": p.decisions.decided,
                    "decisions_folded": p.decisions.folded,
                })
            })
            .collect();
        serde_json::json!({
            "passed": self.passed(),
            "origin": header.origin,
            "region": header.region,
            "node_key": header.node_key,
            "entries": self.entries,
            "replayed": self.replayed,
            "checkpoints_verified": self.checkpoints_verified,
            "tree_size": self.tree_size,
            "covered_size": self.covered_size,
            "uncovered": self.uncovered.map(|(from, to)| serde_json::json!({"from": from, "to": to})),
            "root": B64.encode(self.root),
            "state_digest": self.state_digest.map(|d| B64.encode(d)),
            "failure_count": self.failure_count,
            "failures": self.failures,
            "federation": {
                "cross_region_decisions_replayed": total.decided,
                "cross_region_decisions_folded": total.folded,
                "views_not_kept": self.views_not_kept,
                "peers": peers,
            },
        })
    }
}

/// An entry as the pool leaves it for the replay.
type DecodedEntry = (Entry, VerifiedEnvelope, Result<Command, Rejection>);

/// What a worker made of one item.
enum Checked {
    Entry {
        line: u64,
        index: u64,
        leaf: Hash,
        /// The decoded entry, its checked envelope and its command (or why it does not parse),
        /// or the failure (rule, reason).
        decoded: Result<Box<DecodedEntry>, (&'static str, String)>,
    },
    /// An entry before the resume point: only its leaf hash matters.
    Hashed {
        line: u64,
        index: u64,
        leaf: Hash,
    },
    Other(SourceItem),
}

/// Verifies a log read from `source`, whose header is `header`. `progress` is called with the
/// number of entries processed so far. Fails only when the source cannot be read.
pub fn verify(
    header: &ArchiveHeader,
    source: Source,
    options: VerifyOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<VerifyReport, String> {
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
    .clamp(1, MAX_VERIFY_THREADS);
    let skip_below = match &options.start {
        Start::Fresh(_) => 0,
        Start::Resume(r) => r.position.next_index,
    };
    let mut check = Checker::new(header, options);
    std::thread::scope(|scope| {
        let (work_tx, work_rx) = sync_channel::<(u64, Vec<SourceItem>)>(VERIFY_QUEUE_CHUNKS);
        let (done_tx, done_rx) = sync_channel::<(u64, Vec<Checked>)>(VERIFY_QUEUE_CHUNKS);
        let (err_tx, err_rx) = std::sync::mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("verify-read".into())
            .spawn_scoped(scope, move || read_chunks(source, work_tx, err_tx))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        let work_rx = Arc::new(Mutex::new(work_rx));
        for _ in 0..threads {
            let work_rx = Arc::clone(&work_rx);
            let done_tx = done_tx.clone();
            std::thread::Builder::new()
                .name("verify-check".into())
                .spawn_scoped(scope, move || check_chunks(&work_rx, &done_tx, skip_below))
                .map_err(|e| format!("cannot start a thread: {e}"))?;
        }
        drop(done_tx);
        let mut pending: BTreeMap<u64, Vec<Checked>> = BTreeMap::new();
        let mut next_seq = 0u64;
        for (seq, chunk) in done_rx {
            pending.insert(seq, chunk);
            while let Some(chunk) = pending.remove(&next_seq) {
                for item in chunk {
                    check.apply(item);
                }
                next_seq += 1;
                progress(check.entries);
            }
        }
        match err_rx.try_recv() {
            Ok(e) => Err(e),
            Err(_) => Ok(()),
        }
    })?;
    check.finish()
}

fn read_chunks(
    source: Source,
    work: std::sync::mpsc::SyncSender<(u64, Vec<SourceItem>)>,
    errors: std::sync::mpsc::Sender<String>,
) {
    let mut seq = 0u64;
    let mut chunk = Vec::with_capacity(VERIFY_CHUNK_ITEMS);
    for item in source {
        match item {
            Ok(item) => chunk.push(item),
            Err(e) => {
                let _ = errors.send(e);
                break;
            }
        }
        if chunk.len() == VERIFY_CHUNK_ITEMS {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(VERIFY_CHUNK_ITEMS));
            if work.send((seq, full)).is_err() {
                return;
            }
            seq += 1;
        }
    }
    if !chunk.is_empty() {
        let _ = work.send((seq, chunk));
    }
}

fn check_chunks(
    work: &Mutex<Receiver<(u64, Vec<SourceItem>)>>,
    done: &std::sync::mpsc::SyncSender<(u64, Vec<Checked>)>,
    skip_below: u64,
) {
    loop {
        let next = work.lock().expect("work queue lock").recv();
        let Ok((seq, items)) = next else { return };
        let checked = items
            .into_iter()
            .map(|item| check_item(item, skip_below))
            .collect();
        if done.send((seq, checked)).is_err() {
            return;
        }
    }
}

/// The signature pool's work on one item: decode, hash, and check the envelope.
fn check_item(item: SourceItem, skip_below: u64) -> Checked {
    let SourceItem::Line {
        line,
        item: ArchiveLine::Entry { index, entry },
    } = item
    else {
        return Checked::Other(item);
    };
    let bytes = match B64.decode(entry.as_bytes()) {
        Ok(bytes) => bytes,
        Err(_) => {
            return Checked::Other(SourceItem::Malformed {
                line,
                reason: format!("entry {index} is not standard base64"),
            })
        }
    };
    let leaf = leaf_hash(&bytes);
    if index < skip_below {
        return Checked::Hashed { line, index, leaf };
    }
    let decoded = match Entry::decode(&bytes) {
        Err(e) => Err(("encoding", format!("does not decode: {e}"))),
        Ok(entry) => match VerifiedEnvelope::parse_and_verify(&entry.envelope) {
            Ok(envelope) => {
                let command =
                    Command::parse(&envelope.payload.command_type, &envelope.payload.body);
                Ok(Box::new((entry, envelope, command)))
            }
            Err(e @ (EnvelopeError::BadSignature(_) | EnvelopeError::BadSignerKey(_))) => {
                Err(("signature", format!("envelope: {e}")))
            }
            Err(e) => Err(("envelope", format!("envelope: {e}"))),
        },
    };
    Checked::Entry {
        line,
        index,
        leaf,
        decoded,
    }
}

/// The in-order part of verification.
struct Checker {
    origin: String,
    region: String,
    header_tree_size: u64,
    verifier: Result<NoteVerifier, String>,
    frontier: Frontier,
    replayer: Option<Replayer<ScratchState>>,
    resume: Option<(u64, Hash)>,
    roots_wanted: BTreeSet<u64>,
    roots_at: BTreeMap<u64, Hash>,
    next_index: u64,
    entries: u64,
    checkpoints_verified: u64,
    checkpoints_seen: u64,
    last_checkpoint_size: Option<u64>,
    last_good_checkpoint: Option<String>,
    covered_size: u64,
    accept_uncovered_tail: bool,
    end: Option<(u64, u64, Option<String>)>,
    failures: Vec<Failure>,
    failure_count: u64,
    /// The other regions' archives given, by region.
    peers: BTreeMap<RegionId, PeerArchive>,
    /// What the log did with each other region's records (the decisions' counts are taken
    /// from the replayer when it ends or stops).
    peer_findings: BTreeMap<RegionId, PeerFindings>,
    /// Regions whose adoption did not match their archive: their views are not kept.
    views_lost: BTreeSet<RegionId>,
}

impl Checker {
    fn new(header: &ArchiveHeader, options: VerifyOptions) -> Self {
        let verifier = NoteVerifier::parse(&header.node_key).map_err(|e| {
            format!(
                "the archive's node key `{}` is unusable: {e}",
                header.node_key
            )
        });
        let covered_size = match &options.start {
            Start::Fresh(_) => 0,
            Start::Resume(r) => r.position.next_index,
        };
        let peers: BTreeMap<RegionId, PeerArchive> = options
            .peers
            .into_iter()
            .map(|peer| (peer.region().clone(), peer))
            .collect();
        let peer_findings = peers
            .keys()
            .map(|region| {
                let findings = PeerFindings {
                    archive_given: true,
                    ..PeerFindings::default()
                };
                (region.clone(), findings)
            })
            .collect();
        // Decisions read the views of the regions given only; the others' are folded.
        let replaying = |replayer: Replayer<ScratchState>| {
            replayer
                .folding_foreign_decisions()
                .reading_views_of(peers.keys().cloned())
        };
        let (replayer, resume, last_good) = match options.start {
            Start::Fresh(state) => (Some(replaying(Replayer::new(state))), None, None),
            Start::Resume(r) => {
                let root = SignedNote::parse(&r.checkpoint_note)
                    .ok()
                    .and_then(|n| Checkpoint::parse(&n.text).ok())
                    .map_or([0; 32], |c| c.root_hash);
                let size = r.position.next_index;
                (
                    Some(replaying(Replayer::resume(r.state, r.position))),
                    Some((size, root)),
                    Some(r.checkpoint_note),
                )
            }
        };
        let mut checker = Self {
            origin: header.origin.clone(),
            region: header.region.clone(),
            header_tree_size: header.tree_size,
            verifier,
            frontier: Frontier::empty(),
            replayer,
            resume,
            roots_wanted: options.roots_at,
            roots_at: BTreeMap::new(),
            next_index: 0,
            entries: 0,
            checkpoints_verified: 0,
            checkpoints_seen: 0,
            last_checkpoint_size: None,
            last_good_checkpoint: last_good,
            covered_size,
            accept_uncovered_tail: options.accept_uncovered_tail,
            end: None,
            failures: Vec::new(),
            failure_count: 0,
            peers,
            peer_findings,
            views_lost: BTreeSet::new(),
        };
        if let Err(e) = &checker.verifier {
            let reason = e.clone();
            checker.fail(None, None, Some(1), "node-key", reason);
        }
        if RegionId::try_from(header.region.as_str()).is_err() {
            let reason = format!(
                "the archive's region `{}` is not a region id",
                header.region
            );
            checker.fail(None, None, Some(1), "header", reason);
        }
        checker.record_root();
        checker
    }

    fn fail(
        &mut self,
        index: Option<u64>,
        checkpoint_size: Option<u64>,
        line: Option<u64>,
        rule: &str,
        reason: String,
    ) {
        self.failure_count += 1;
        if self.failures.len() < MAX_REPORTED_FAILURES {
            self.failures.push(Failure {
                index,
                checkpoint_size,
                line,
                rule: rule.to_string(),
                reason,
            });
        }
    }

    /// Stops the replay after a failure at `index`.
    fn stop_replay(&mut self) {
        if let Some(replayer) = self.replayer.take() {
            self.take_decision_counts(&replayer);
        }
    }

    /// The replayer's counts of cross-region decisions, into the findings per region.
    fn take_decision_counts(&mut self, replayer: &Replayer<ScratchState>) {
        for (region, decisions) in replayer.cross_region_decisions() {
            self.peer_findings
                .entry(region.clone())
                .or_default()
                .decisions = *decisions;
        }
    }

    fn record_root(&mut self) {
        let size = self.frontier.size();
        if self.roots_wanted.contains(&size) {
            self.roots_at.insert(size, self.frontier.root());
        }
        if let Some((resume_size, resume_root)) = self.resume {
            if size == resume_size {
                self.resume = None;
                if self.frontier.root() != resume_root {
                    self.fail(
                        None,
                        Some(size),
                        None,
                        "history-rewritten",
                        "the entries before the previously verified checkpoint no longer give its root: the log was rewritten".into(),
                    );
                    self.stop_replay();
                }
            }
        }
    }

    /// Checks the position of an entry and grows the tree with it.
    fn place(&mut self, line: u64, index: u64, leaf: Hash) {
        if self.end.is_some() {
            self.fail(
                Some(index),
                None,
                Some(line),
                "archive",
                "appears after the end line".into(),
            );
        }
        if index != self.next_index {
            let expected = self.next_index;
            let reason = if index > expected && expected == 0 {
                format!("missing: the archive starts at entry {index}")
            } else if index > expected {
                format!(
                    "missing: the archive goes from entry {} to entry {index}",
                    expected - 1
                )
            } else {
                format!("out of order: entry {index} appears where entry {expected} belongs")
            };
            let named = if index > expected { expected } else { index };
            self.fail(Some(named), None, Some(line), "sequence", reason);
            self.stop_replay();
        }
        self.next_index = index.max(self.next_index) + 1;
        self.entries += 1;
        self.frontier.append(leaf);
        self.record_root();
    }

    fn apply(&mut self, item: Checked) {
        match item {
            Checked::Hashed { line, index, leaf } => self.place(line, index, leaf),
            Checked::Entry {
                line,
                index,
                leaf,
                decoded,
            } => {
                let in_place = index == self.next_index;
                self.place(line, index, leaf);
                match decoded {
                    Err((rule, reason)) => {
                        self.fail(Some(index), None, Some(line), rule, reason);
                        self.stop_replay();
                    }
                    Ok(checked) if in_place => {
                        let (entry, envelope, command) = *checked;
                        if index == 0 {
                            self.check_genesis_key(line, &envelope);
                        }
                        let adoption = match &command {
                            Ok(Command::Adopt(body)) => Some(body.clone()),
                            _ => None,
                        };
                        if let Some(replayer) = &mut self.replayer {
                            match replayer.apply_parsed(leaf, &entry, &envelope, command) {
                                Err(e) => {
                                    let rule = e.failure.rule();
                                    let reason = e.failure.to_string();
                                    self.fail(Some(e.index), None, Some(line), rule, reason);
                                    self.stop_replay();
                                }
                                Ok(()) => {
                                    if let Some(body) = adoption {
                                        self.adoption(index, line, &body);
                                    }
                                }
                            }
                        }
                    }
                    Ok(_) => {}
                }
            }
            Checked::Other(SourceItem::Malformed { line, reason }) => {
                self.fail(None, None, Some(line), "archive", reason);
                self.stop_replay();
            }
            Checked::Other(SourceItem::Line { line, item }) => match item {
                ArchiveLine::Entry { .. } => unreachable!("entries are checked by the pool"),
                ArchiveLine::Checkpoint { size, note } => self.checkpoint(line, size, &note),
                ArchiveLine::End {
                    entries,
                    checkpoints,
                    state_digest,
                } => {
                    if self.end.is_some() {
                        self.fail(
                            None,
                            None,
                            Some(line),
                            "archive",
                            "a second end line".into(),
                        );
                    }
                    self.end = Some((entries, checkpoints, state_digest));
                }
            },
        }
    }

    /// After the replay of entry `index`, which adopted `body`'s checkpoint: with the region's
    /// archive, the archive must hold the adopted tree (the same root at the same size) under
    /// the key the adoption pins, and the region's view becomes its records at that size, as
    /// the node's writer made it with this entry.
    fn adoption(&mut self, index: u64, line: u64, body: &AdoptBody) {
        let Ok((_, checkpoint)) = adopted_checkpoint(body) else {
            return; // the replay decided it: it parses
        };
        let region = &body.region;
        let findings = self.peer_findings.entry(region.clone()).or_default();
        findings.adoptions += 1;
        findings.adopted_size = checkpoint.size;
        let Some(peer) = self.peers.get_mut(region) else {
            return;
        };
        if self.views_lost.contains(region) {
            return;
        }
        let size = checkpoint.size;
        let signed_by_archive_key = SignedNote::parse(&body.checkpoint)
            .is_ok_and(|note| note.verify(std::slice::from_ref(peer.verifier())).is_ok());
        let problem = if body.verifier_key != peer.node_key() {
            Some(format!(
                "it pins the key {}, but region `{region}`'s archive is signed by {}",
                body.verifier_key,
                peer.node_key()
            ))
        } else if !signed_by_archive_key {
            Some(format!(
                "its checkpoint does not verify under the key of region `{region}`'s archive"
            ))
        } else {
            match peer.view_changes_to(size) {
                Err(why) => Some(format!("region `{region}`: {why}")),
                Ok(at) if at.root != checkpoint.root_hash => Some(format!(
                    "the first {size} entries of region `{region}`'s archive have the root {}",
                    B64.encode(at.root)
                )),
                Ok(at) => match at.view_changes {
                    Err(why) => Some(format!("region `{region}`: {why}")),
                    Ok(changes) => {
                        if let Some(replayer) = &mut self.replayer {
                            let state = replayer.state_mut();
                            for (key, value) in changes {
                                match value {
                                    Some(value) => state.put_raw(key, value),
                                    None => state.delete(key),
                                }
                            }
                        }
                        findings.adoptions_checked += 1;
                        None
                    }
                },
            }
        };
        if let Some(why) = problem {
            let reason = format!(
                "adopts region `{region}` at size {size} with the root {}, but {why}",
                B64.encode(checkpoint.root_hash)
            );
            let region = region.clone();
            if let Some(replayer) = &mut self.replayer {
                replayer.stop_reading_view_of(&region);
            }
            self.views_lost.insert(region);
            self.fail(Some(index), None, Some(line), "adoption", reason);
        }
    }

    fn check_genesis_key(&mut self, line: u64, envelope: &VerifiedEnvelope) {
        let Ok(verifier) = &self.verifier else { return };
        if envelope.payload.signer != verifier.key {
            let reason = format!(
                "genesis is signed by {}, not by the archive's node key {}",
                envelope.payload.signer, verifier.key
            );
            self.fail(Some(0), None, Some(line), "node-key", reason);
        }
        if envelope.payload.region.as_str() != self.region {
            let reason = format!(
                "genesis founds region `{}`, the archive says `{}`",
                envelope.payload.region, self.region
            );
            self.fail(Some(0), None, Some(line), "header", reason);
        }
    }

    fn checkpoint(&mut self, line: u64, size: u64, note: &str) {
        self.checkpoints_seen += 1;
        let at = Some(size);
        let failures_before = self.failure_count;
        let signed = match SignedNote::parse(note) {
            Ok(n) => n,
            Err(e) => {
                self.fail(
                    None,
                    at,
                    Some(line),
                    "checkpoint-format",
                    format!("not a signed note: {e}"),
                );
                return;
            }
        };
        let checkpoint = match Checkpoint::parse(&signed.text) {
            Ok(c) => c,
            Err(e) => {
                self.fail(
                    None,
                    at,
                    Some(line),
                    "checkpoint-format",
                    format!("not a checkpoint: {e}"),
                );
                return;
            }
        };
        if let Ok(verifier) = &self.verifier {
            if let Err(e) = signed.verify(std::slice::from_ref(verifier)) {
                let reason = format!("not validly signed by the node key {verifier}: {e}");
                self.fail(None, at, Some(line), "checkpoint-signature", reason);
            }
        }
        if checkpoint.origin != self.origin {
            let reason = format!(
                "origin `{}` is not the archive's `{}`",
                checkpoint.origin, self.origin
            );
            self.fail(None, at, Some(line), "checkpoint-origin", reason);
        }
        if checkpoint.size != size {
            let reason = format!(
                "the line says size {size}, the note says {}",
                checkpoint.size
            );
            self.fail(None, at, Some(line), "checkpoint-format", reason);
        }
        if let Some(previous) = self.last_checkpoint_size {
            if checkpoint.size < previous {
                let reason = format!("the tree shrinks from {previous} to {}", checkpoint.size);
                self.fail(None, at, Some(line), "checkpoint-order", reason);
            }
        }
        self.last_checkpoint_size = Some(checkpoint.size);
        if checkpoint.size != self.frontier.size() {
            let reason = format!(
                "appears after {} entries; it belongs right after entry {}",
                self.frontier.size(),
                checkpoint.size as i128 - 1
            );
            self.fail(None, at, Some(line), "checkpoint-order", reason);
        } else if checkpoint.root_hash != self.frontier.root() {
            let reason = format!(
                "its root {} is not the root of the archive's first {} entries ({})",
                B64.encode(checkpoint.root_hash),
                checkpoint.size,
                B64.encode(self.frontier.root())
            );
            self.fail(None, at, Some(line), "checkpoint-root", reason);
        }
        if self.failure_count == failures_before {
            self.checkpoints_verified += 1;
            self.covered_size = self.covered_size.max(checkpoint.size);
            if self.failure_count == 0 {
                self.last_good_checkpoint = Some(note.to_string());
            }
        }
    }

    fn finish(mut self) -> Result<VerifyReport, String> {
        let views_not_kept = self.views_not_kept()?;
        match self.end.take() {
            None => self.fail(
                None,
                None,
                None,
                "truncated",
                format!(
                    "the archive has no end line: it stops after {} entries",
                    self.entries
                ),
            ),
            Some((entries, checkpoints, digest)) => {
                if entries != self.entries || checkpoints != self.checkpoints_seen {
                    let reason = format!(
                        "the end line counts {entries} entries and {checkpoints} checkpoints; the archive holds {} and {}",
                        self.entries, self.checkpoints_seen
                    );
                    self.fail(None, None, None, "archive", reason);
                }
                // The stored state holds the node's views of the regions it adopted; the
                // replayed one holds those kept only.
                let digest = digest.filter(|_| views_not_kept.is_empty());
                if let (Some(expected), Some(actual)) = (digest, self.replayed_digest()?) {
                    if B64.encode(actual) != expected {
                        let reason = format!(
                            "the node's stored state (digest {expected}) differs from the replayed state ({})",
                            B64.encode(actual)
                        );
                        self.fail(None, None, None, "state-digest", reason);
                    }
                }
            }
        }
        if self.next_index < self.header_tree_size {
            let reason = format!(
                "the header announces {} entries; the archive stops at {}",
                self.header_tree_size, self.next_index
            );
            self.fail(Some(self.next_index), None, None, "truncated", reason);
        }
        if self.last_checkpoint_size.is_none() && self.entries > 0 {
            self.fail(
                None,
                None,
                None,
                "no-checkpoint",
                "the archive holds no checkpoint: nothing signs its entries".into(),
            );
        }
        let uncovered = self.uncovered_tail();
        let state_digest = self.replayed_digest()?;
        if let Some(replayer) = self.replayer.take() {
            self.take_decision_counts(&replayer);
            self.replayer = Some(replayer);
        }
        Ok(VerifyReport {
            entries: self.entries,
            replayed: self.replayer.as_ref().map_or(0, |r| r.size()),
            checkpoints_verified: self.checkpoints_verified,
            tree_size: self.frontier.size(),
            root: self.frontier.root(),
            last_good_checkpoint: self.last_good_checkpoint,
            covered_size: self.covered_size,
            uncovered,
            state_digest,
            roots_at: self.roots_at,
            failures: self.failures,
            failure_count: self.failure_count,
            replayer: self.replayer,
            peers: self.peer_findings,
            views_not_kept,
        })
    }

    /// The regions the replayed log adopted whose views the replay does not hold as the node
    /// held them (none when the replay stopped: no digest is compared then).
    fn views_not_kept(&self) -> Result<Vec<RegionId>, String> {
        let Some(replayer) = &self.replayer else {
            return Ok(Vec::new());
        };
        let adopted = adopted_regions(replayer.state()).map_err(|e| e.to_string())?;
        Ok(adopted
            .into_iter()
            .map(|a| a.region)
            .filter(|region| !self.peers.contains_key(region) || self.views_lost.contains(region))
            .collect())
    }

    /// Entries after the last verified checkpoint: an `uncovered` failure naming them, or,
    /// when the options accept such a tail, their range. An archive without any checkpoint
    /// has failed `no-checkpoint` already.
    fn uncovered_tail(&mut self) -> Option<(u64, u64)> {
        let (from, to) = (self.covered_size, self.frontier.size());
        if to <= from || self.last_checkpoint_size.is_none() {
            return None;
        }
        if self.accept_uncovered_tail {
            return Some((from, to));
        }
        let entries = if to - from == 1 {
            format!("entry {from} is")
        } else {
            format!("entries {from} to {} are", to - 1)
        };
        let reason = format!(
            "{entries} not covered by any verified checkpoint (the last one signs {from} \
             entries): nothing the node signed vouches for them"
        );
        self.fail(Some(from), None, None, "uncovered", reason);
        None
    }

    /// The digest of the replayed state, if the replay went to the end.
    fn replayed_digest(&mut self) -> Result<Option<Hash>, String> {
        match &mut self.replayer {
            None => Ok(None),
            Some(replayer) => replayer
                .state_mut()
                .digest()
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    }
}

/// The format of a saved verifier state (`--save-state`).
pub const VERIFIER_STATE_FORMAT: &str = "vledger-verifier-state";
/// The saved state's description, inside the directory `--save-state` names.
pub const VERIFIER_STATE_FILE: &str = "verifier-state.json";
/// The saved replayed state (a RocksDB directory), beside [`VERIFIER_STATE_FILE`].
pub const VERIFIER_STATE_RECORDS: &str = "records";
/// The saved-state version this verifier writes and reads: version 3 holds records in the
/// binary encoding ([`vledger_domain::STATE_RECORD_ENCODING`]), version 2 held JSON records.
pub const VERIFIER_STATE_VERSION: u32 = 3;

/// A verifier's saved position: the last verified checkpoint and where the replay stood at its
/// size (docs/FORMAT.md, "Verifier state"); the replayed state itself is saved beside it, in
/// [`VERIFIER_STATE_RECORDS`]. Only the regulator's own files should be loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifierState {
    pub format: String,
    pub version: u32,
    pub origin: String,
    pub node_key: String,
    /// The checkpoint this state belongs to, as signed.
    pub checkpoint: String,
    pub next_index: u64,
    pub prev_leaf: String,
    pub last_time_ms: u64,
    pub region: Option<String>,
    pub genesis_key: Option<String>,
    pub state_digest: String,
}

impl VerifierState {
    /// Saves a replayer stopped at the size of `checkpoint` into the directory `dir`, replacing
    /// an earlier save there only once the new one is complete.
    pub fn save(
        dir: &Path,
        header: &ArchiveHeader,
        checkpoint: &str,
        replayer: &mut Replayer<ScratchState>,
    ) -> Result<(), String> {
        let io = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", dir.display());
        let digest = replayer.state_mut().digest().map_err(|e| e.to_string())?;
        let position = replayer.position().clone();
        let description = Self {
            format: VERIFIER_STATE_FORMAT.into(),
            version: VERIFIER_STATE_VERSION,
            origin: header.origin.clone(),
            node_key: header.node_key.clone(),
            checkpoint: checkpoint.to_string(),
            next_index: position.next_index,
            prev_leaf: B64.encode(position.prev_leaf),
            last_time_ms: position.last_time_ms,
            region: position.origin.as_ref().map(|(r, _)| r.to_string()),
            genesis_key: position.origin.as_ref().map(|(_, k)| k.to_base64()),
            state_digest: B64.encode(digest),
        };
        let sibling = |suffix: &str| {
            let mut name = dir.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        let (saving, replaced) = (sibling(".saving"), sibling(".replaced"));
        for stale in [&saving, &replaced] {
            if stale.exists() {
                std::fs::remove_dir_all(stale).map_err(|e| io("remove a stale copy", e))?;
            }
        }
        std::fs::create_dir_all(&saving).map_err(|e| io("create", e))?;
        replayer
            .state_mut()
            .save(&saving.join(VERIFIER_STATE_RECORDS))
            .map_err(|e| e.to_string())?;
        let json = serde_json::to_vec_pretty(&description).expect("serializes");
        crate::witness::write_atomically(&saving.join(VERIFIER_STATE_FILE), &json)
            .map_err(|e| io("write", e))?;
        if dir.exists() {
            std::fs::rename(dir, &replaced).map_err(|e| io("move the earlier save aside", e))?;
        }
        std::fs::rename(&saving, dir).map_err(|e| io("rename", e))?;
        if replaced.exists() {
            std::fs::remove_dir_all(&replaced).map_err(|e| io("remove the earlier save", e))?;
        }
        Ok(())
    }

    /// Loads the state saved in `dir`, checks it against the archive header and opens a working
    /// copy of its replayed state in `work` (a directory that must not exist yet).
    pub fn load(dir: &Path, header: &ArchiveHeader, work: &Path) -> Result<Resume, String> {
        let file = dir.join(VERIFIER_STATE_FILE);
        let bytes =
            std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let saved: Self = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not a saved verifier state: {e}", file.display()))?;
        saved.into_resume(header, &dir.join(VERIFIER_STATE_RECORDS), work)
    }

    fn into_resume(
        self,
        header: &ArchiveHeader,
        records: &Path,
        work: &Path,
    ) -> Result<Resume, String> {
        if self.format != VERIFIER_STATE_FORMAT {
            return Err(format!("not a {VERIFIER_STATE_FORMAT} state"));
        }
        if self.version != VERIFIER_STATE_VERSION {
            return Err(format!(
                "a {VERIFIER_STATE_FORMAT} of version {} (this verifier reads version \
                 {VERIFIER_STATE_VERSION}): verify the archive again from its start with \
                 --save-state",
                self.version
            ));
        }
        if self.origin != header.origin || self.node_key != header.node_key {
            return Err(format!(
                "the saved state is of log `{}` ({}), the archive is of `{}` ({})",
                self.origin, self.node_key, header.origin, header.node_key
            ));
        }
        let checkpoint = SignedNote::parse(&self.checkpoint)
            .and_then(|n| Checkpoint::parse(&n.text))
            .map_err(|e| format!("the saved checkpoint does not parse: {e}"))?;
        if checkpoint.size != self.next_index {
            return Err(format!(
                "the saved checkpoint has size {}, the saved replay stops at {}",
                checkpoint.size, self.next_index
            ));
        }
        let b64 = |s: &str, what: &str| B64.decode(s).map_err(|_| format!("{what} is not base64"));
        let mut state = ScratchState::resume(records, work).map_err(|e| e.to_string())?;
        let digest = state.digest().map_err(|e| e.to_string())?;
        if B64.encode(digest) != self.state_digest {
            return Err("the saved records do not match the saved state digest".into());
        }
        let origin = match (&self.region, &self.genesis_key) {
            (Some(r), Some(k)) => Some((
                RegionId::try_from(r.as_str()).map_err(|e| e.to_string())?,
                vledger_tlog::keys::PublicKey::from_base64(k).map_err(|e| e.to_string())?,
            )),
            _ => None,
        };
        let prev_leaf: Hash = b64(&self.prev_leaf, "prev_leaf")?
            .try_into()
            .map_err(|_| "prev_leaf is not 32 bytes".to_string())?;
        Ok(Resume {
            checkpoint_note: self.checkpoint,
            state,
            position: ReplayPosition {
                next_index: self.next_index,
                prev_leaf,
                last_time_ms: self.last_time_ms,
                origin,
            },
        })
    }
}
