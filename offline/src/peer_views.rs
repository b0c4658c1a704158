//! Other regions' logs as views for the verification of one region's log: each peer region's
//! archive replayed forward, exactly to each size the verified log adopts of it, so that the
//! verifier keeps that region's view (`fed/<region>/...`) as the node kept it and decides every
//! cross-region decision again.
//!
//! A node's view of a region is the region's records as of the size adopted (its own views of
//! third regions excluded: only its writer writes those) and the (signer ‖ nonce) pairs it used
//! ([`VIEW_NONCE_PREFIX`]); the adoption entry's batch writes the changes since the size
//! adopted before. [`PeerArchive::view_changes_to`] gives the same changes: the region's
//! entries from the size reached before to the size adopted, replayed onto a scratch state
//! that notes every key they change. The region's own decisions that read a third region are
//! folded here (the region's own verification decides them again, with that region's
//! archive): only the records they leave matter for its view.

use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::archive::{ArchiveHeader, ArchiveLine};
use crate::replay::{ReplayState, Replayer};
use crate::scratch::ScratchState;
use crate::verify::{Source, SourceItem};
use vledger_domain::federation::{view_key, VIEW_NONCE_PREFIX};
use vledger_domain::types::RegionId;
use vledger_domain::{ScannedRecords, StateError, StateRead, StateWrite};
use vledger_tlog::merkle::{leaf_hash, Frontier, Hash};
use vledger_tlog::note::NoteVerifier;

/// Changes of a view: keys of the verified log's state (`fed/<region>/...`), each with its new
/// value or `None` when the record is gone.
pub type ViewChanges = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A replay's state that notes the keys changed and the nonces used since they were last
/// taken, so that a view is carried forward by its changes only. What it notes is bounded by
/// the entries between two adoptions.
struct ChangeNoting {
    state: ScratchState,
    changed: BTreeSet<Vec<u8>>,
    nonces: Vec<Vec<u8>>,
}

impl StateRead for ChangeNoting {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.state.get_raw(key)
    }
    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<ScannedRecords, StateError> {
        self.state.scan_prefix_from(prefix, start, limit)
    }
}

impl StateWrite for ChangeNoting {
    fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.changed.insert(key.clone());
        self.state.put_raw(key, value);
    }
    fn delete(&mut self, key: Vec<u8>) {
        self.changed.insert(key.clone());
        self.state.delete(key);
    }
}

impl ReplayState for ChangeNoting {
    fn nonce_used(&self, key: &[u8]) -> Result<bool, StateError> {
        self.state.nonce_used(key)
    }
    fn record_nonce(&mut self, key: Vec<u8>) {
        self.nonces.push(key.clone());
        self.state.record_nonce(key);
    }
    fn entry_applied(&mut self) -> Result<(), StateError> {
        self.state.entry_applied()
    }
}

/// One peer region's archive (or node), read forward as the verified log adopts it.
pub struct PeerArchive {
    region: RegionId,
    node_key: String,
    verifier: NoteVerifier,
    source: Source,
    frontier: Frontier,
    replayer: Replayer<ChangeNoting>,
    /// The first entry of the region that failed replay, and why.
    replay_failure: Option<String>,
    /// Why the archive cannot be read further, once it cannot.
    unreadable: Option<String>,
}

/// What a peer region's archive holds at a size adopted of it.
pub struct PeerAt {
    /// The root of the region's tree of that size, from the archive's entries.
    pub root: Hash,
    /// The view's changes since the size reached before, if every entry up to that size
    /// replayed; otherwise why one did not.
    pub view_changes: Result<ViewChanges, String>,
}

impl PeerArchive {
    /// The archive whose header is `header` and whose lines come from `source`, replayed onto
    /// `state` (empty).
    pub fn new(
        header: &ArchiveHeader,
        source: Source,
        state: ScratchState,
    ) -> Result<Self, String> {
        let region = RegionId::try_from(header.region.as_str())
            .map_err(|e| format!("the archive's region `{}`: {e}", header.region))?;
        let verifier = NoteVerifier::parse(&header.node_key)
            .map_err(|e| format!("the archive's node key `{}`: {e}", header.node_key))?;
        let state = ChangeNoting {
            state,
            changed: BTreeSet::new(),
            nonces: Vec::new(),
        };
        Ok(Self {
            region,
            node_key: header.node_key.clone(),
            verifier,
            source,
            frontier: Frontier::empty(),
            // This region's reads of third regions are decided in its own verification.
            replayer: Replayer::new(state)
                .folding_foreign_decisions()
                .reading_views_of([]),
            replay_failure: None,
            unreadable: None,
        })
    }

    pub fn region(&self) -> &RegionId {
        &self.region
    }

    /// The node key (C2SP verifier key) the archive names.
    pub fn node_key(&self) -> &str {
        &self.node_key
    }

    /// That key, parsed: the region's checkpoints must verify under it.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The entries read so far.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Reads the archive up to `size` entries (at least the size reached before) and gives
    /// the root of that tree and the view's changes since the size reached before; or why the
    /// archive does not reach that size.
    pub fn view_changes_to(&mut self, size: u64) -> Result<PeerAt, String> {
        if size < self.frontier.size() {
            return Err(format!(
                "it was adopted at size {} before; its entries are read forward only",
                self.frontier.size()
            ));
        }
        while self.frontier.size() < size {
            if let Some(why) = &self.unreadable {
                return Err(why.clone());
            }
            let why = match self.read_next_entry() {
                Ok(true) => continue,
                Ok(false) => format!("its archive holds only {} entries", self.frontier.size()),
                Err(why) => format!(
                    "its archive cannot be read past its first {} entries: {why}",
                    self.frontier.size()
                ),
            };
            self.unreadable = Some(why.clone());
            return Err(why);
        }
        let view_changes = match &self.replay_failure {
            Some(why) => Err(why.clone()),
            None => self.take_view_changes().map_err(|e| e.to_string()),
        };
        Ok(PeerAt {
            root: self.frontier.root(),
            view_changes,
        })
    }

    /// Reads lines up to the next entry, adds it to the tree and replays it (unless an entry
    /// failed before); `false` when the archive ends first.
    fn read_next_entry(&mut self) -> Result<bool, String> {
        loop {
            let item = match self.source.next() {
                None => return Ok(false),
                Some(Err(e)) => return Err(e),
                Some(Ok(item)) => item,
            };
            let (line, index, entry) = match item {
                SourceItem::Malformed { line, reason } => {
                    return Err(format!("line {line} is malformed: {reason}"))
                }
                SourceItem::Line {
                    line,
                    item: ArchiveLine::Entry { index, entry },
                } => (line, index, entry),
                SourceItem::Line { .. } => continue,
            };
            let expected = self.frontier.size();
            if index != expected {
                return Err(format!(
                    "line {line} holds entry {index} where entry {expected} belongs"
                ));
            }
            let bytes = B64
                .decode(entry.as_bytes())
                .map_err(|_| format!("entry {index} (line {line}) is not standard base64"))?;
            self.frontier.append(leaf_hash(&bytes));
            if self.replay_failure.is_none() {
                if let Err(e) = self.replayer.apply_entry(&bytes) {
                    self.replay_failure = Some(format!("its {e}"));
                }
            }
            return Ok(true);
        }
    }

    /// The view's changes noted since they were last taken.
    fn take_view_changes(&mut self) -> Result<ViewChanges, StateError> {
        let noted = self.replayer.state_mut();
        let changed = std::mem::take(&mut noted.changed);
        let nonces = std::mem::take(&mut noted.nonces);
        let mut changes = Vec::with_capacity(changed.len() + nonces.len());
        for key in changed {
            let value = noted.state.get_raw(&key)?;
            changes.push((view_key(&self.region, &key), value));
        }
        for nonce in nonces {
            let key = [VIEW_NONCE_PREFIX, nonce.as_slice()].concat();
            changes.push((view_key(&self.region, &key), Some(Vec::new())));
        }
        Ok(changes)
    }
}
