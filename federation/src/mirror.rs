//! The mirror of one other region's log: pulls its checkpoint and entries, verifies everything
//! before using any of it, and adopts each newer verified state through this node's log.
//!
//! One step ([`Mirror::step`]):
//! 1. the peer's latest checkpoint, its signature checked under the key the federation map
//!    pins, its origin the key's name;
//! 2. compared with the size adopted before: a smaller or equal size must have the root this
//!    node's copy of the tree has there, or the two checkpoints are equivocation evidence;
//! 3. a larger one (at most [`MAX_MIRROR_STEP_ENTRIES`] ahead: further behind, an older signed
//!    checkpoint is the step's target) must be consistent with the one adopted (a consistency
//!    proof from the peer, checked; a proof that shows another history is evidence);
//! 4. the entries from the size adopted to the target, from the peer's entry bundles: each
//!    envelope's signature, the chain, the index and the node time checked, each decision
//!    replayed by the same state machine onto this node's view of the region, and the tree
//!    they complete must have the checkpoint's root;
//! 5. `federation.adopt` with the checkpoint and the proof, committed with the entries, tree
//!    nodes and view changes in one synced write.
//!
//! Nothing past the size adopted is ever used, so a step that fails anywhere leaves nothing
//! behind, and a restarted node resumes from its adoption record with no gap and no duplicate.
//! Two validly signed checkpoints that cannot both be true stop the mirror for good: the
//! evidence is written beside the store (the `verify-evidence` format) and reported.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;
use vledger_domain::federation::{load_adopted, AdoptBody};
use vledger_domain::limits::MAX_MIRROR_STEP_ENTRIES;
use vledger_domain::types::RegionId;
use vledger_domain::Event;
use vledger_node::node::Node;
use vledger_node::store::PeerLogStep;
use vledger_node::writer::{wall_clock_ms, MirrorStep};
use vledger_offline::replay::{PrecheckedEntry, ReplayPosition, Replayer};
use vledger_tlog::evidence::{implied_old_root, Evidence};
use vledger_tlog::merkle::{self, leaf_hash, verify_consistency, Frontier, Hash};
use vledger_tlog::note::{Checkpoint, NoteVerifier, SignedNote};
use vledger_tlog::tiles::{decode_entry_bundle, TilePath, TILE_WIDTH};
use vledger_wire::entry::Entry;

use crate::source::{PeerSource, SourceError};
use crate::view::RegionView;

/// The longest checkpoint note a mirror adopts: the adoption's envelope carries it, within
/// its bound (`MAX_ENVELOPE_BYTES`) with room for the proof. A node's own notes are a few
/// hundred bytes; cosignatures add about a hundred each.
pub const MAX_ADOPTED_CHECKPOINT_BYTES: usize = 16 * 1024;

/// One other region of the federation, as the map names it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub region: RegionId,
    /// Its node's base URL.
    pub url: String,
    /// Its node's key, pinned: its checkpoints must verify under it.
    pub verifier: NoteVerifier,
}

impl Peer {
    /// Parses `<region>=<verifier key>@<url>`, a region of the federation map as the
    /// configuration gives it: the key's name is the region's checkpoint origin.
    pub fn parse(text: &str) -> Result<Self, String> {
        let shape = || format!("`{text}`: expected <region>=<verifier key>@<url>");
        let (region, rest) = text.split_once('=').ok_or_else(shape)?;
        let (key, url) = rest.split_once('@').ok_or_else(shape)?;
        let region = RegionId::try_from(region).map_err(|e| format!("`{text}`: region: {e}"))?;
        let verifier =
            NoteVerifier::parse(key).map_err(|e| format!("`{text}`: verifier key: {e}"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "`{text}`: the URL must start with http:// or https://"
            ));
        }
        Ok(Self {
            region,
            url: url.trim_end_matches('/').to_string(),
            verifier,
        })
    }
}

/// What the mirror of one region knows, for `/v1/federation` and `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MirrorStatus {
    /// The size of the region's log adopted (verified and in use).
    pub adopted_size: u64,
    /// The size of the region's log verified: the size adopted, or more when the entries past
    /// it are only the region's own adoptions of others, which are not adopted on their own (see
    /// [`Mirror::step`]).
    pub verified_size: u64,
    /// The largest size of a valid checkpoint the region served.
    pub latest_seen_size: u64,
    /// Since when (ms since the Unix epoch) the region has had entries not adopted yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behind_since_ms: Option<u64>,
    /// When the region last answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_contact_ms: Option<u64>,
    /// The last step's failure, until a step succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Steps that failed.
    pub errors: u64,
    /// Adoptions made by this process.
    pub adoptions: u64,
    /// Entries of the region whose decisions read a third region's records, folded from their
    /// recorded events (signatures, chain and tree checked) rather than decided again.
    pub folded_entries: u64,
    /// Equivocation evidence against the region: adoption from it has stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equivocation: Option<Evidence>,
}

impl MirrorStatus {
    /// Entries the region has that are not adopted yet.
    pub fn lag_entries(&self) -> u64 {
        self.latest_seen_size
            .saturating_sub(self.adopted_size.max(self.verified_size))
    }

    /// Seconds since the oldest entry not adopted was first seen, at `now_ms`.
    pub fn lag_seconds(&self, now_ms: u64) -> f64 {
        self.behind_since_ms
            .map_or(0.0, |since| now_ms.saturating_sub(since) as f64 / 1000.0)
    }
}

/// What one step did.
#[derive(Debug)]
pub enum StepOutcome {
    /// The region has nothing newer than what is adopted.
    UpToDate,
    /// A newer state was verified and adopted.
    Adopted { size: u64 },
    /// Nothing was adopted; the next step tries again.
    Failed(MirrorError),
    /// The region equivocated: nothing more is adopted from it.
    Halted,
}

/// What a step found, when nothing failed.
enum Progress {
    UpToDate,
    Adopted(u64),
    Equivocated(Box<Evidence>),
}

/// Why a step adopted nothing.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("reading the region's node: {0}")]
    Source(#[from] SourceError),
    /// The region's node served something that does not verify.
    #[error("the region's node served {0}")]
    Invalid(String),
    #[error("this node's store: {0}")]
    Store(String),
    #[error("the adoption was not recorded: {0}")]
    Refused(String),
}

/// The mirror of one region.
pub struct Mirror {
    node: Arc<Node>,
    peer: Peer,
    status: Arc<RwLock<MirrorStatus>>,
    evidence_path: Option<PathBuf>,
    /// The region's latest checkpoint (size, root), verified but not adopted because only
    /// adoptions followed the size adopted.
    verified_tail: Option<(u64, Hash)>,
}

impl Mirror {
    /// A mirror of `peer` adopting into `node`. Evidence is kept in `evidence_dir` (as
    /// `<region>.json`); a mirror whose region has evidence there starts halted.
    pub fn new(node: Arc<Node>, peer: Peer, evidence_dir: Option<PathBuf>) -> Self {
        let evidence_path = evidence_dir.map(|dir| dir.join(format!("{}.json", peer.region)));
        let mut status = MirrorStatus::default();
        if let Ok(Some(adopted)) = load_adopted(&node.state(), &peer.region) {
            status.adopted_size = adopted.size;
            status.verified_size = adopted.size;
            status.latest_seen_size = adopted.size;
        }
        if let Some(path) = &evidence_path {
            if let Ok(text) = std::fs::read_to_string(path) {
                status.equivocation = serde_json::from_str(&text).ok();
            }
        }
        Self {
            node,
            peer,
            status: Arc::new(RwLock::new(status)),
            evidence_path,
            verified_tail: None,
        }
    }

    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The status, shared: readers see each step's outcome.
    pub fn status(&self) -> Arc<RwLock<MirrorStatus>> {
        self.status.clone()
    }

    /// One step (see the module's documentation), at `now_ms` on the node's clock.
    pub fn step(&mut self, source: &mut dyn PeerSource, now_ms: u64) -> StepOutcome {
        if self.read_status().equivocation.is_some() {
            return StepOutcome::Halted;
        }
        match self.try_step(source, now_ms) {
            Ok(Progress::UpToDate) => StepOutcome::UpToDate,
            Ok(Progress::Adopted(size)) => StepOutcome::Adopted { size },
            Ok(Progress::Equivocated(evidence)) => {
                tracing::error!(
                    region = %self.peer.region,
                    "region equivocated: two signed checkpoints that cannot both be true; adoption from it stops"
                );
                if let Some(path) = &self.evidence_path {
                    let text =
                        serde_json::to_string_pretty(&evidence).expect("evidence serializes");
                    if let Err(e) = write_atomically(path, &text) {
                        tracing::error!(error = %e, path = %path.display(), "the evidence could not be written");
                    }
                }
                self.update(|s| s.equivocation = Some(*evidence));
                StepOutcome::Halted
            }
            Err(e) => {
                self.update(|s| {
                    s.errors += 1;
                    s.last_error = Some(e.to_string());
                });
                StepOutcome::Failed(e)
            }
        }
    }

    fn read_status(&self) -> MirrorStatus {
        self.status.read().expect("mirror status lock").clone()
    }

    fn update(&self, f: impl FnOnce(&mut MirrorStatus)) {
        f(&mut self.status.write().expect("mirror status lock"));
    }

    fn try_step(
        &mut self,
        source: &mut dyn PeerSource,
        now_ms: u64,
    ) -> Result<Progress, MirrorError> {
        let region = self.peer.region.clone();
        let latest_note = source.checkpoint()?;
        let latest = self.verify_note(&latest_note)?;
        if self.verified_tail == Some((latest.size, latest.root_hash)) {
            self.update(|s| {
                s.last_contact_ms = Some(now_ms);
                s.last_error = None;
                if s.latest_seen_size <= latest.size {
                    s.behind_since_ms = None;
                }
            });
            return Ok(Progress::UpToDate);
        }
        let state = self.node.state();
        let adopted =
            load_adopted(&state, &region).map_err(|e| MirrorError::Store(e.to_string()))?;
        let (adopted_size, adopted_root) = match &adopted {
            Some(a) => (a.size, decode_root(&a.root_hash)?),
            None => (0, merkle::empty_root()),
        };
        self.update(|s| {
            s.last_contact_ms = Some(now_ms);
            s.adopted_size = adopted_size;
            s.latest_seen_size = s.latest_seen_size.max(latest.size);
            // Behind when entries past those adopted or verified (a tail of adoptions) wait.
            if s.latest_seen_size > adopted_size.max(s.verified_size) {
                s.behind_since_ms.get_or_insert(now_ms);
            }
        });
        if latest.size <= adopted_size {
            self.update(|s| {
                s.last_error = None;
                if s.latest_seen_size <= adopted_size.max(s.verified_size) {
                    s.behind_since_ms = None;
                }
            });
            return self.check_not_newer(&latest_note, &latest, adopted_size, adopted_root);
        }

        let latest_size = latest.size;
        let (target_note, target) = if latest.size - adopted_size <= MAX_MIRROR_STEP_ENTRIES {
            (latest_note, latest)
        } else {
            self.intermediate_target(source, adopted_size)?
                .unwrap_or((latest_note, latest))
        };

        let proof = if adopted_size == 0 {
            Vec::new()
        } else {
            source.consistency_proof(adopted_size, target.size)?
        };
        if adopted_size > 0 {
            if let Err(e) = verify_consistency(
                adopted_size,
                target.size,
                &adopted_root,
                &target.root_hash,
                &proof,
            ) {
                if let Some(implied) =
                    implied_old_root(adopted_size, target.size, &target.root_hash, &proof)
                {
                    if implied != adopted_root {
                        let smaller = self.adopted_note(adopted_size)?;
                        return Ok(Progress::Equivocated(Box::new(Evidence::diverging(
                            &self.peer.verifier,
                            &smaller,
                            &target_note,
                            &proof,
                            implied,
                            &self.observer(),
                        ))));
                    }
                }
                return Err(MirrorError::Invalid(format!(
                    "a consistency proof from size {adopted_size} to {} that does not verify: {e}",
                    target.size
                )));
            }
        }

        let entries = fetch_entries(source, adopted_size, target.size)?;
        let (position, mut frontier) = self.resume_point(adopted_size)?;
        let view = RegionView::new(&state, region.clone());
        let mut replayer = Replayer::resume(view, position).folding_foreign_decisions();
        let mut tree_nodes = Vec::new();
        let mut indexed = Vec::with_capacity(entries.len());
        let prechecked = precheck(&entries);
        for (offset, (bytes, checked)) in entries.into_iter().zip(prechecked).enumerate() {
            let index = adopted_size + offset as u64;
            replayer
                .apply_prechecked(checked)
                .map_err(|e| MirrorError::Invalid(format!("an entry that fails replay: {e}")))?;
            tree_nodes.extend(frontier.append(leaf_hash(&bytes)));
            indexed.push((index, bytes));
        }
        match replayer.origin() {
            Some((origin_region, key))
                if *origin_region == region && *key == self.peer.verifier.key => {}
            _ => {
                return Err(MirrorError::Invalid(format!(
                    "a log that is not region `{region}`'s, founded by its pinned key"
                )))
            }
        }
        if frontier.root() != target.root_hash {
            return Err(MirrorError::Invalid(format!(
                "entries {adopted_size}..{} that do not hash to the checkpoint's root",
                target.size
            )));
        }
        if target.size == latest_size && indexed.iter().all(|(_, bytes)| only_adoptions(bytes)) {
            // The region only adopted others since: nothing a decision here reads changed.
            // Adopting it would add an entry here that the region would adopt in turn, and so
            // on for ever; it is adopted with the next entry that matters.
            self.verified_tail = Some((target.size, target.root_hash));
            self.update(|s| {
                s.verified_size = target.size;
                s.last_error = None;
                s.behind_since_ms = None;
            });
            return Ok(Progress::UpToDate);
        }
        let folded = replayer.folded();
        let view_changes = replayer.into_state().into_view_changes();
        let body = AdoptBody {
            region: region.clone(),
            verifier_key: self.peer.verifier.to_verifier_key(),
            checkpoint: target_note.clone(),
            consistency: proof.iter().map(|h| B64.encode(h)).collect(),
        };
        let step = MirrorStep {
            log: PeerLogStep {
                region,
                entries: indexed,
                tree_nodes,
                checkpoint: (target.size, target_note),
            },
            view_changes,
        };
        self.node
            .adopt(&body, step)
            .map_err(|e| MirrorError::Refused(e.to_string()))?;
        self.verified_tail = None;
        self.update(|s| {
            s.adopted_size = target.size;
            s.verified_size = target.size;
            s.adoptions += 1;
            s.folded_entries += folded;
            s.last_error = None;
            s.behind_since_ms = if s.latest_seen_size > target.size {
                Some(now_ms)
            } else {
                None
            };
        });
        Ok(Progress::Adopted(target.size))
    }

    /// A checkpoint no larger than what is adopted must agree with this node's copy of the
    /// region's tree, or it and the adopted checkpoint are evidence.
    fn check_not_newer(
        &self,
        note: &str,
        checkpoint: &Checkpoint,
        adopted_size: u64,
        adopted_root: Hash,
    ) -> Result<Progress, MirrorError> {
        if checkpoint.size == adopted_size {
            if checkpoint.root_hash == adopted_root {
                return Ok(Progress::UpToDate);
            }
            let adopted_note = self.adopted_note(adopted_size)?;
            return Ok(Progress::Equivocated(Box::new(Evidence::same_size(
                &self.peer.verifier,
                &adopted_note,
                note,
                &self.observer(),
            ))));
        }
        let store = self.node.store();
        let tree = store.peer_tree(&self.peer.region);
        let ours =
            merkle::root(&tree, checkpoint.size).map_err(|e| MirrorError::Store(e.to_string()))?;
        if ours == checkpoint.root_hash || checkpoint.size == 0 {
            return Ok(Progress::UpToDate);
        }
        let proof = merkle::consistency_proof(&tree, checkpoint.size, adopted_size)
            .map_err(|e| MirrorError::Store(e.to_string()))?;
        let adopted_note = self.adopted_note(adopted_size)?;
        Ok(Progress::Equivocated(Box::new(Evidence::diverging(
            &self.peer.verifier,
            note,
            &adopted_note,
            &proof,
            ours,
            &self.observer(),
        ))))
    }

    /// Far behind: the largest signed checkpoint at most [`MAX_MIRROR_STEP_ENTRIES`] past the
    /// size adopted (or the smallest past it, if the region committed a larger batch).
    fn intermediate_target(
        &self,
        source: &mut dyn PeerSource,
        adopted_size: u64,
    ) -> Result<Option<(String, Checkpoint)>, MirrorError> {
        let notes = source.checkpoints_from(adopted_size + 1, 1000)?;
        let mut best: Option<(String, Checkpoint)> = None;
        for note in notes {
            let checkpoint = self.verify_note(&note)?;
            if checkpoint.size <= adopted_size {
                continue;
            }
            let within = checkpoint.size - adopted_size <= MAX_MIRROR_STEP_ENTRIES;
            let better = match &best {
                None => true,
                Some((_, b)) => within && checkpoint.size > b.size,
            };
            if better {
                best = Some((note, checkpoint));
            }
            if !within {
                break;
            }
        }
        Ok(best)
    }

    /// Where the replay of the region resumes: after its last adopted entry, with the tree's
    /// right edge at that size.
    fn resume_point(&self, adopted_size: u64) -> Result<(ReplayPosition, Frontier), MirrorError> {
        if adopted_size == 0 {
            return Ok((ReplayPosition::start(), Frontier::empty()));
        }
        let store = self.node.store();
        let region = &self.peer.region;
        let store_error = |e: String| MirrorError::Store(e);
        let frontier = Frontier::load(&store.peer_tree(region), adopted_size)
            .map_err(|e| store_error(format!("region `{region}`'s tree at {adopted_size}: {e}")))?;
        let last = store
            .peer_entry(region, adopted_size - 1)
            .map_err(|e| store_error(e.to_string()))?
            .ok_or_else(|| {
                store_error(format!(
                    "entry {} of `{region}` is missing",
                    adopted_size - 1
                ))
            })?;
        let entry = Entry::decode(&last).map_err(|e| store_error(e.to_string()))?;
        let position = ReplayPosition {
            next_index: adopted_size,
            prev_leaf: leaf_hash(&last),
            last_time_ms: entry.node_time_ms,
            origin: Some((region.clone(), self.peer.verifier.key)),
        };
        Ok((position, frontier))
    }

    /// The signed note this node adopted at `size`.
    fn adopted_note(&self, size: u64) -> Result<String, MirrorError> {
        self.node
            .store()
            .peer_checkpoint(&self.peer.region, size)
            .map_err(|e| MirrorError::Store(e.to_string()))?
            .ok_or_else(|| {
                MirrorError::Store(format!("the adopted checkpoint of size {size} is missing"))
            })
    }

    /// A checkpoint of the region: signed under its pinned key, of its origin.
    fn verify_note(&self, note: &str) -> Result<Checkpoint, MirrorError> {
        let invalid = |e: String| MirrorError::Invalid(format!("a checkpoint that {e}"));
        if note.len() > MAX_ADOPTED_CHECKPOINT_BYTES {
            return Err(invalid(format!(
                "is {} bytes long; an adoption carries at most {MAX_ADOPTED_CHECKPOINT_BYTES}",
                note.len()
            )));
        }
        let signed =
            SignedNote::parse(note).map_err(|e| invalid(format!("does not parse: {e}")))?;
        signed
            .verify(std::slice::from_ref(&self.peer.verifier))
            .map_err(|e| invalid(format!("does not verify: {e}")))?;
        let checkpoint =
            Checkpoint::parse(&signed.text).map_err(|e| invalid(format!("does not parse: {e}")))?;
        if checkpoint.origin != self.peer.verifier.name {
            return Err(invalid(format!(
                "names origin `{}`, not `{}`",
                checkpoint.origin, self.peer.verifier.name
            )));
        }
        Ok(checkpoint)
    }

    fn observer(&self) -> String {
        format!(
            "the mirror of region `{}` on the node of region `{}`",
            self.peer.region,
            self.node.region()
        )
    }
}

/// Decodes the entries and checks their envelopes' signatures on every core, ahead of the
/// replay, which applies them in order.
fn precheck(entries: &[Vec<u8>]) -> Vec<PrecheckedEntry> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = entries.len().div_ceil(threads).max(64);
    std::thread::scope(|scope| {
        let parts: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|bytes| PrecheckedEntry::check(bytes))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|part| part.join().expect("precheck thread"))
            .collect()
    })
}

/// Whether an entry (verified) records only the adoption of another region.
fn only_adoptions(bytes: &[u8]) -> bool {
    Entry::decode(bytes)
        .ok()
        .and_then(|entry| serde_json::from_slice::<Vec<Event>>(&entry.events).ok())
        .is_some_and(|events| {
            !events.is_empty()
                && events
                    .iter()
                    .all(|event| matches!(event, Event::RegionAdopted { .. }))
        })
}

fn decode_root(text: &str) -> Result<Hash, MirrorError> {
    B64.decode(text)
        .ok()
        .and_then(|bytes| merkle::hash_from_slice(&bytes).ok())
        .ok_or_else(|| MirrorError::Store(format!("adopted root `{text}` is not a hash")))
}

/// Entries `from..to` from the region's entry bundles. A partial bundle the region no longer
/// serves (its tree grew past it) is read from the full bundle.
pub fn fetch_entries(
    source: &mut dyn PeerSource,
    from: u64,
    to: u64,
) -> Result<Vec<Vec<u8>>, MirrorError> {
    let mut entries = Vec::with_capacity((to - from) as usize);
    let mut next = from;
    while next < to {
        let bundle = next / TILE_WIDTH;
        let start = bundle * TILE_WIDTH;
        let width = (to - start).min(TILE_WIDTH);
        let tile = TilePath::Entries {
            index: bundle,
            width: width as u16,
        };
        let (bytes, served_width) = match source.entry_bundle(tile) {
            Err(SourceError::NotFound(_)) if width < TILE_WIDTH => {
                let full = TilePath::Entries {
                    index: bundle,
                    width: TILE_WIDTH as u16,
                };
                (source.entry_bundle(full)?, TILE_WIDTH)
            }
            other => (other?, width),
        };
        let bundled = decode_entry_bundle(&bytes, served_width as usize)
            .map_err(|e| MirrorError::Invalid(format!("entry bundle {}: {e}", tile.to_path())))?;
        for (offset, entry) in bundled.into_iter().take(width as usize).enumerate() {
            if start + offset as u64 >= next {
                entries.push(entry.to_vec());
            }
        }
        next = start + width;
    }
    Ok(entries)
}

fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// How often an up-to-date mirror asks its region for a newer checkpoint.
pub const MIRROR_POLL: Duration = Duration::from_millis(200);
/// The longest wait between failed steps (the wait doubles from [`MIRROR_POLL`] per failure).
pub const MIRROR_MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Runs `mirror` on its own thread until `stop` is set: steps back to back while catching up,
/// every [`MIRROR_POLL`] when up to date, backing off (with jitter) after failures.
pub fn spawn(
    mut mirror: Mirror,
    mut source: Box<dyn PeerSource + Send>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("vledger-mirror-{}", mirror.peer.region))
        .spawn(move || {
            let mut failures: u32 = 0;
            while !stop.load(Ordering::Relaxed) {
                let wait = match mirror.step(source.as_mut(), wall_clock_ms()) {
                    StepOutcome::Adopted { .. } => {
                        failures = 0;
                        Duration::ZERO
                    }
                    StepOutcome::UpToDate => {
                        failures = 0;
                        MIRROR_POLL
                    }
                    StepOutcome::Failed(e) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(region = %mirror.peer.region, error = %e, failures, "mirror step failed");
                        backoff(failures)
                    }
                    StepOutcome::Halted => MIRROR_MAX_BACKOFF,
                };
                sleep_unless_stopped(wait, &stop);
            }
        })
        .expect("spawn mirror thread")
}

/// The wait after `failures` failed steps in a row: doubling from the poll interval up to the
/// maximum, less up to a quarter at random so that mirrors of one region do not retry together.
fn backoff(failures: u32) -> Duration {
    let doubled = MIRROR_POLL.saturating_mul(1u32 << failures.min(16));
    let wait = doubled.min(MIRROR_MAX_BACKOFF);
    let jitter = wall_clock_ms() % 1000; // the clock's low digits: spread enough for retries
    wait - wait.mul_f64(jitter as f64 / 4000.0)
}

fn sleep_unless_stopped(wait: Duration, stop: &AtomicBool) {
    let slice = Duration::from_millis(50);
    let mut left = wait;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let now = left.min(slice);
        std::thread::sleep(now);
        left -= now;
    }
}
