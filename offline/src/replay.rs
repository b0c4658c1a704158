//! Replay: re-derives the state from the log alone, checking every entry on the way: its index,
//! the hash chain, the envelope's signature, and that the state machine produces exactly the
//! events the entry recorded. The same code serves `vledger rebuild` and offline verification.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use vledger_domain::federation::{load_adopted, VIEW_PREFIX};
use vledger_domain::types::{LogIndex, RegionId};
use vledger_domain::{
    self as domain, ApplyContext, ApplyError, Command, MemoryState, Rejection, ScannedRecords,
    StateError, StateRead, StateWrite,
};
use vledger_tlog::keys::PublicKey;
use vledger_tlog::merkle::{leaf_hash, Hash};
use vledger_wire::entry::{Entry, EntryError};
use vledger_wire::envelope::{EnvelopeError, VerifiedEnvelope};

/// Why an entry failed replay, named by its index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {index}: {failure}")]
pub struct ReplayError {
    pub index: LogIndex,
    pub failure: ReplayFailure,
}

/// What was wrong with the entry a replay stopped at. The verifier reports each kind under a
/// rule of its own ([`ReplayFailure::rule`]); the messages are for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayFailure {
    #[error("does not decode: {0}")]
    Undecodable(EntryError),
    #[error("envelope: {0}")]
    Envelope(EnvelopeError),
    #[error("command: {0}")]
    Command(Rejection),
    #[error("says it is entry {0}")]
    WrongIndex(LogIndex),
    #[error("its previous-leaf hash does not match the entry before it")]
    BrokenChain,
    #[error("its node time goes backwards")]
    TimeBackwards,
    #[error("the log does not start with region.genesis")]
    NoGenesis,
    #[error("command is for region `{command}`, the log's region is `{log}`")]
    OtherRegion { command: RegionId, log: RegionId },
    #[error("signer {signer} used nonce `{nonce}` before")]
    NonceReused { signer: PublicKey, nonce: String },
    #[error("the state machine refuses it: {0}")]
    Refused(Rejection),
    #[error("the recorded events differ from the events the state machine produces")]
    EventsDiffer,
    #[error("its recorded events do not parse: {0}")]
    UnreadableEvents(String),
    #[error("state: {0}")]
    State(StateError),
}

impl ReplayFailure {
    /// The verifier's rule for this failure (docs/FORMAT.md, "Verification report").
    pub fn rule(&self) -> &'static str {
        match self {
            ReplayFailure::BrokenChain => "chain",
            ReplayFailure::WrongIndex(_) => "sequence",
            ReplayFailure::EventsDiffer => "events",
            ReplayFailure::TimeBackwards => "time",
            ReplayFailure::Undecodable(_)
            | ReplayFailure::Envelope(_)
            | ReplayFailure::Command(_)
            | ReplayFailure::NoGenesis
            | ReplayFailure::OtherRegion { .. }
            | ReplayFailure::NonceReused { .. }
            | ReplayFailure::Refused(_)
            | ReplayFailure::UnreadableEvents(_)
            | ReplayFailure::State(_) => "replay",
        }
    }
}

/// What a replay keeps: the state records, and the (signer ‖ nonce) pairs already used (the
/// same pair never applies twice).
pub trait ReplayState: StateRead + StateWrite {
    fn nonce_used(&self, key: &[u8]) -> Result<bool, StateError>;
    fn record_nonce(&mut self, key: Vec<u8>);
    /// Called after each applied entry: a state on disk writes its buffered changes out here.
    fn entry_applied(&mut self) -> Result<(), StateError> {
        Ok(())
    }
}

/// A replay's state in memory: for `vledger rebuild`, tests and small logs.
/// [`crate::scratch::ScratchState`] keeps it on disk instead.
#[derive(Debug, Default, Clone)]
pub struct MemoryReplay {
    pub state: MemoryState,
    pub nonces: HashSet<Vec<u8>>,
}

impl StateRead for MemoryReplay {
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

impl StateWrite for MemoryReplay {
    fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.state.put_raw(key, value);
    }
    fn delete(&mut self, key: Vec<u8>) {
        self.state.delete(key);
    }
}

impl ReplayState for MemoryReplay {
    fn nonce_used(&self, key: &[u8]) -> Result<bool, StateError> {
        Ok(self.nonces.contains(key))
    }
    fn record_nonce(&mut self, key: Vec<u8>) {
        self.nonces.insert(key);
    }
}

/// What a replay checks of an entry without its state, so that it can run ahead on another
/// thread: the entry's leaf hash, the entry decoded, its envelope with the signature checked and
/// its command parsed (or why the command does not parse); or why the entry or its envelope is
/// unusable.
pub struct PrecheckedEntry(Result<PrecheckedParts, ReplayFailure>);

type PrecheckedParts = (Hash, Entry, VerifiedEnvelope, Result<Command, Rejection>);

impl PrecheckedEntry {
    /// Decodes `bytes`, checks the envelope's signature and parses its command.
    pub fn check(bytes: &[u8]) -> Self {
        let parts = Entry::decode(bytes)
            .map_err(ReplayFailure::Undecodable)
            .and_then(|entry| {
                let envelope = VerifiedEnvelope::parse_and_verify(&entry.envelope)
                    .map_err(ReplayFailure::Envelope)?;
                let command =
                    Command::parse(&envelope.payload.command_type, &envelope.payload.body);
                Ok((leaf_hash(bytes), entry, envelope, command))
            });
        Self(parts)
    }
}

/// Where a replay stands in the log, apart from its state: what a resumed replay needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayPosition {
    pub next_index: LogIndex,
    pub prev_leaf: Hash,
    pub last_time_ms: u64,
    /// The region and node key the log was founded with, once genesis is replayed.
    pub origin: Option<(RegionId, PublicKey)>,
}

impl ReplayPosition {
    /// Before the first entry.
    pub fn start() -> Self {
        Self {
            next_index: 0,
            prev_leaf: [0; 32],
            last_time_ms: 0,
            origin: None,
        }
    }
}

/// Which views of other regions (`fed/<region>/...`) a replay's decisions may read.
#[derive(Debug, Clone, Default)]
enum ViewReads {
    /// Whatever the state holds (a node's own store, or a state that raises
    /// [`StateError::ForeignView`] itself, as the mirror's view of a region does).
    #[default]
    AsStored,
    /// Only these regions' views, which the replay keeps as the node kept them; a decision that
    /// reads the view of another region this log adopted fails with
    /// [`StateError::ForeignView`]. The view of a region never adopted is empty at the node
    /// too, and reads as empty.
    Only(BTreeSet<RegionId>),
}

/// How many decisions of a log read one other region's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrossRegionDecisions {
    /// Decided again on the region's view, as of the size adopted.
    pub decided: u64,
    /// Folded from their recorded events: the replay does not hold the region's view.
    pub folded: u64,
}

/// Replays entries in order onto a state.
#[derive(Clone)]
pub struct Replayer<S> {
    state: S,
    position: ReplayPosition,
    /// Whether an entry whose decision reads another region's view that the state does not
    /// hold ([`StateError::ForeignView`]) has its recorded events folded instead of failing.
    fold_foreign: bool,
    /// Entries folded so, since the replayer was made.
    folded: u64,
    views: ViewReads,
    /// Per other region, the decisions that read its records, since the replayer was made.
    cross_region: BTreeMap<RegionId, CrossRegionDecisions>,
}

impl Replayer<MemoryReplay> {
    /// A replayer onto empty in-memory state.
    pub fn in_memory() -> Self {
        Self::new(MemoryReplay::default())
    }
}

impl<S> Replayer<S> {
    /// A replayer that continues from `position` with the state replayed up to it.
    pub fn resume(state: S, position: ReplayPosition) -> Self {
        Self {
            state,
            position,
            fold_foreign: false,
            folded: 0,
            views: ViewReads::AsStored,
            cross_region: BTreeMap::new(),
        }
    }

    /// Folds the recorded events of an entry whose decision reads a region's view this state
    /// does not hold, instead of failing it: the mirror of one region cannot decide again what
    /// that region decided on a third region's records (the federation's verification does,
    /// with every region's archive). The rest of the entry is checked as always.
    pub fn folding_foreign_decisions(mut self) -> Self {
        self.fold_foreign = true;
        self
    }

    /// The entries whose events were folded without deciding them again.
    pub fn folded(&self) -> u64 {
        self.folded
    }

    /// Lets decisions read the views of `regions` only (`fed/<region>/...`, which the caller
    /// keeps in the state as the node kept them: see [`crate::peer_views`]); a decision that
    /// reads the view of another region this log adopted fails with
    /// [`StateError::ForeignView`], and is folded with [`Self::folding_foreign_decisions`].
    /// Without this, decisions read whatever the state holds.
    pub fn reading_views_of(mut self, regions: impl IntoIterator<Item = RegionId>) -> Self {
        self.views = ViewReads::Only(regions.into_iter().collect());
        self
    }

    /// No longer reads `region`'s view (it could not be kept as the node kept it): later
    /// decisions that read it are folded, if folding.
    pub fn stop_reading_view_of(&mut self, region: &RegionId) {
        if let ViewReads::Only(regions) = &mut self.views {
            regions.remove(region);
        }
    }

    /// Per other region, the decisions that read its records: decided again or folded.
    pub fn cross_region_decisions(&self) -> &BTreeMap<RegionId, CrossRegionDecisions> {
        &self.cross_region
    }

    /// Where the replay stands.
    pub fn position(&self) -> &ReplayPosition {
        &self.position
    }

    /// The leaf hash of the last entry replayed (zeros before the first).
    pub fn prev_leaf(&self) -> Hash {
        self.position.prev_leaf
    }

    /// The region and node key the log was founded with, once genesis is replayed.
    pub fn origin(&self) -> Option<&(RegionId, PublicKey)> {
        self.position.origin.as_ref()
    }

    /// The state after the entries replayed so far.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The state, to read it whole (e.g. its digest) or save it.
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.state
    }

    pub fn into_state(self) -> S {
        self.state
    }

    /// The number of entries replayed.
    pub fn size(&self) -> u64 {
        self.position.next_index
    }
}

impl<S: ReplayState> Replayer<S> {
    pub fn new(state: S) -> Self {
        Self::resume(state, ReplayPosition::start())
    }

    /// Checks and applies the next entry's canonical bytes.
    pub fn apply_entry(&mut self, bytes: &[u8]) -> Result<(), ReplayError> {
        self.apply_prechecked(PrecheckedEntry::check(bytes))
    }

    /// Applies the next entry, decoded and its signature checked by [`PrecheckedEntry::check`]
    /// (e.g. on another thread).
    pub fn apply_prechecked(&mut self, entry: PrecheckedEntry) -> Result<(), ReplayError> {
        let index = self.position.next_index;
        let (leaf, entry, envelope, command) =
            entry.0.map_err(|failure| ReplayError { index, failure })?;
        self.apply_parsed(leaf, &entry, &envelope, command)
    }

    /// Applies the next entry already decoded into `entry`, whose leaf hash is `leaf`, whose
    /// envelope was already checked (signature and key rule) into `envelope` and whose command
    /// was parsed from it (or the reason it does not parse), e.g. by a pool of threads ahead of
    /// the replay. Checks everything else: index, chain, time, region, nonce and the events the
    /// state machine produces.
    pub fn apply_parsed(
        &mut self,
        leaf: Hash,
        entry: &Entry,
        envelope: &VerifiedEnvelope,
        command: Result<Command, Rejection>,
    ) -> Result<(), ReplayError> {
        let index = self.position.next_index;
        let fail = |failure: ReplayFailure| ReplayError { index, failure };
        if entry.index != index {
            return Err(fail(ReplayFailure::WrongIndex(entry.index)));
        }
        if entry.prev_leaf_hash != self.position.prev_leaf {
            return Err(fail(ReplayFailure::BrokenChain));
        }
        if entry.node_time_ms < self.position.last_time_ms {
            return Err(fail(ReplayFailure::TimeBackwards));
        }
        let payload = &envelope.payload;
        let (region, node_key) = match &self.position.origin {
            Some(origin) => origin.clone(),
            None if payload.command_type == domain::CommandType::Genesis.name() => {
                (payload.region.clone(), payload.signer)
            }
            None => return Err(fail(ReplayFailure::NoGenesis)),
        };
        if payload.region != region {
            return Err(fail(ReplayFailure::OtherRegion {
                command: payload.region.clone(),
                log: region,
            }));
        }
        let nonce_key = payload.nonce_key();
        let state_error = |e: StateError| ReplayError {
            index,
            failure: ReplayFailure::State(e),
        };
        if self.state.nonce_used(&nonce_key).map_err(state_error)? {
            return Err(fail(ReplayFailure::NonceReused {
                signer: payload.signer,
                nonce: payload.nonce.clone(),
            }));
        }
        let command = command.map_err(|r| fail(ReplayFailure::Command(r)))?;
        let ctx = ApplyContext {
            index,
            node_time_ms: entry.node_time_ms,
            region: region.clone(),
            node_key,
        };
        let (decided, views_read) = match &self.views {
            ViewReads::AsStored => (
                domain::decide(&self.state, &ctx, &payload.signer, &command),
                BTreeSet::new(),
            ),
            ViewReads::Only(readable) => {
                let gate = ViewGate {
                    state: &self.state,
                    readable,
                    read: RefCell::default(),
                };
                let decided = domain::decide(&gate, &ctx, &payload.signer, &command);
                (decided, gate.read.into_inner())
            }
        };
        match decided {
            Ok(events) => {
                // Refused as the writer refuses it, if its events do not fit an entry.
                let encoded =
                    domain::encode_decided(&events).map_err(|r| fail(ReplayFailure::Refused(r)))?;
                if encoded != entry.events {
                    return Err(fail(ReplayFailure::EventsDiffer));
                }
                for event in &events {
                    domain::evolve(&mut self.state, &ctx, event).map_err(state_error)?;
                }
                for region in views_read {
                    self.cross_region.entry(region).or_default().decided += 1;
                }
            }
            Err(ApplyError::Rejected(r)) => return Err(fail(ReplayFailure::Refused(r))),
            Err(ApplyError::State(StateError::ForeignView { region })) if self.fold_foreign => {
                let events: Vec<domain::Event> = serde_json::from_slice(&entry.events)
                    .map_err(|e| fail(ReplayFailure::UnreadableEvents(e.to_string())))?;
                for event in &events {
                    domain::evolve(&mut self.state, &ctx, event).map_err(state_error)?;
                }
                self.folded += 1;
                if let Ok(region) = RegionId::try_from(region.as_str()) {
                    self.cross_region.entry(region).or_default().folded += 1;
                }
            }
            Err(ApplyError::State(e)) => return Err(fail(ReplayFailure::State(e))),
        }
        self.state.record_nonce(nonce_key);
        self.state.entry_applied().map_err(state_error)?;
        self.position = ReplayPosition {
            next_index: index + 1,
            prev_leaf: leaf,
            last_time_ms: entry.node_time_ms,
            origin: Some((region, node_key)),
        };
        Ok(())
    }
}

/// A decision's reads of a state whose views of other regions are only partly kept
/// ([`ViewReads::Only`]): a read of the view of a region adopted but not kept is
/// [`StateError::ForeignView`]; the regions whose views were read are noted.
struct ViewGate<'a, S> {
    state: &'a S,
    readable: &'a BTreeSet<RegionId>,
    read: RefCell<BTreeSet<RegionId>>,
}

impl<S: StateRead> ViewGate<'_, S> {
    /// Whether a read of `key` (or of the keys it prefixes) may go to the state.
    fn check(&self, key: &[u8]) -> Result<(), StateError> {
        let Some(rest) = key.strip_prefix(VIEW_PREFIX) else {
            return Ok(());
        };
        // `<region>/...`; a prefix that ends inside a region's name spans several views.
        let (name, one_region) = match rest.iter().position(|b| *b == b'/') {
            Some(end) => (&rest[..end], true),
            None => (rest, false),
        };
        let foreign = || StateError::ForeignView {
            region: String::from_utf8_lossy(name).into_owned(),
        };
        let region = std::str::from_utf8(name)
            .ok()
            .and_then(|name| RegionId::try_from(name).ok());
        let region = match (one_region, region) {
            (true, Some(region)) => region,
            _ => return Err(foreign()),
        };
        if self.readable.contains(&region) {
            self.read.borrow_mut().insert(region);
            return Ok(());
        }
        match load_adopted(self.state, &region)? {
            None => Ok(()),
            Some(_) => Err(foreign()),
        }
    }
}

impl<S: StateRead> StateRead for ViewGate<'_, S> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.check(key)?;
        self.state.get_raw(key)
    }

    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<ScannedRecords, StateError> {
        self.check(prefix)?;
        self.state.scan_prefix_from(prefix, start, limit)
    }
}

/// An entry and its recorded events, decoded for [`EventFolder::fold_decoded`], or why they do
/// not decode.
pub struct FoldInput(Result<(Entry, Vec<domain::Event>), ReplayFailure>);

impl FoldInput {
    /// Decodes an entry's canonical bytes and its recorded events.
    pub fn decode(bytes: &[u8]) -> Self {
        Self(
            Entry::decode(bytes)
                .map_err(ReplayFailure::Undecodable)
                .and_then(|entry| {
                    let events = serde_json::from_slice(&entry.events)
                        .map_err(|e| ReplayFailure::UnreadableEvents(e.to_string()))?;
                    Ok((entry, events))
                }),
        )
    }
}

/// Folds entries' recorded events into a state ([`RebuildMode::Events`]): the projections of
/// an event log, built without deciding any command again.
pub struct EventFolder<S = MemoryReplay> {
    pub(crate) state: S,
    pub(crate) next_index: LogIndex,
    origin: Option<(RegionId, PublicKey)>,
}

impl Default for EventFolder<MemoryReplay> {
    fn default() -> Self {
        Self::new(MemoryReplay::default())
    }
}

impl<S: ReplayState> EventFolder<S> {
    /// A folder onto `state` (empty: the first entry folded is genesis).
    pub fn new(state: S) -> Self {
        Self {
            state,
            next_index: 0,
            origin: None,
        }
    }

    /// The state folded so far.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// Folds the next entry's recorded events (its canonical bytes).
    pub fn fold(&mut self, bytes: &[u8]) -> Result<(), ReplayError> {
        self.fold_decoded(FoldInput::decode(bytes))
    }

    /// Folds the next entry, decoded by [`FoldInput::decode`] (e.g. on another thread).
    pub fn fold_decoded(&mut self, input: FoldInput) -> Result<(), ReplayError> {
        let index = self.next_index;
        let fail = |failure: ReplayFailure| ReplayError { index, failure };
        let (entry, events) = input.0.map_err(fail)?;
        if entry.index != index {
            return Err(fail(ReplayFailure::WrongIndex(entry.index)));
        }
        let (region, node_key) = match &self.origin {
            Some(origin) => origin.clone(),
            None => {
                let genesis = VerifiedEnvelope::parse_and_verify(&entry.envelope)
                    .map_err(|e| fail(ReplayFailure::Envelope(e)))?;
                (genesis.payload.region.clone(), genesis.payload.signer)
            }
        };
        let ctx = ApplyContext {
            index,
            node_time_ms: entry.node_time_ms,
            region: region.clone(),
            node_key,
        };
        for event in &events {
            domain::evolve(&mut self.state, &ctx, event)
                .map_err(|e| fail(ReplayFailure::State(e)))?;
        }
        self.state
            .entry_applied()
            .map_err(|e| fail(ReplayFailure::State(e)))?;
        self.origin = Some((region, node_key));
        self.next_index += 1;
        Ok(())
    }
}

/// The digest of a whole state: SHA-256 over every record in key order, each as
/// `u32 BE key length ‖ key ‖ u32 BE value length ‖ value`. Two states are equal exactly when
/// their digests are (docs/FORMAT.md, "State digest").
pub fn state_digest<'a>(records: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Hash {
    let mut digest = StateDigest::default();
    for (key, value) in records {
        digest.update(key, value);
    }
    digest.finish()
}

/// [`state_digest`] fed one record at a time, in key order.
#[derive(Default)]
pub struct StateDigest(sha2::Sha256);

impl StateDigest {
    /// Adds the next record (keys must come in increasing order).
    pub fn update(&mut self, key: &[u8], value: &[u8]) {
        use sha2::Digest;
        self.0.update((key.len() as u32).to_be_bytes());
        self.0.update(key);
        self.0.update((value.len() as u32).to_be_bytes());
        self.0.update(value);
    }

    /// The digest of the records added.
    pub fn finish(self) -> Hash {
        use sha2::Digest;
        self.0.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vledger_domain::federation::view_key;
    use vledger_domain::Event;
    use vledger_tlog::keys::SigningKey;

    fn region(id: &str) -> RegionId {
        RegionId::try_from(id).unwrap()
    }

    /// A state of region `cq` that adopted `adopted`.
    fn adopting(adopted: &[&str]) -> MemoryState {
        let mut state = MemoryState::default();
        let ctx = ApplyContext {
            index: 1,
            node_time_ms: 0,
            region: region("cq"),
            node_key: SigningKey::from_bytes(&[1; 32]).public_key(),
        };
        for id in adopted {
            let event = Event::RegionAdopted {
                region: region(id),
                origin: format!("vledger.example/{id}"),
                verifier_key: String::new(),
                size: 3,
                root_hash: String::new(),
            };
            domain::evolve(&mut state, &ctx, &event).unwrap();
        }
        state
    }

    #[test]
    fn decisions_read_the_views_kept_and_the_empty_views_of_regions_never_adopted() {
        let mut state = adopting(&["sc", "cd"]);
        state.put_raw(view_key(&region("sc"), b"party/a"), b"kept".to_vec());
        let readable: BTreeSet<RegionId> = [region("sc")].into();
        let gate = ViewGate {
            state: &state,
            readable: &readable,
            read: RefCell::default(),
        };
        let read = |key: &[u8]| gate.get_raw(key);
        assert_eq!(
            read(&view_key(&region("sc"), b"party/a")).unwrap(),
            Some(b"kept".to_vec())
        );
        assert!(matches!(
            read(&view_key(&region("cd"), b"party/a")),
            Err(StateError::ForeignView { region }) if region == "cd"
        ));
        // Never adopted: empty at the node too.
        assert_eq!(read(&view_key(&region("zj"), b"party/a")).unwrap(), None);
        // A scan across the views of several regions holds some not kept.
        assert!(matches!(
            gate.scan_prefix(VIEW_PREFIX, 10),
            Err(StateError::ForeignView { .. })
        ));
        assert!(matches!(
            gate.scan_prefix(b"fed/s", 10),
            Err(StateError::ForeignView { .. })
        ));
        assert_eq!(read(b"party/a").unwrap(), None);
        assert_eq!(gate.read.into_inner(), readable);
    }
}
