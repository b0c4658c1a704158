//! Replay: re-derives the state from the log alone, checking every entry on the way: its index,
//! the hash chain, the envelope's signature, and that the state machine produces exactly the
//! events the entry recorded. The same code serves `vledger rebuild` and offline verification.

use crate::domain::{self, ApplyContext, ApplyError, Command, MemoryState, StateRead, StateWrite};
use crate::entry::Entry;
use crate::envelope::VerifiedEnvelope;
use crate::keys::PublicKey;
use crate::merkle::{leaf_hash, Hash};
use crate::types::{LogIndex, RegionId};

/// Why an entry failed replay, named by its index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {index}: {reason}")]
pub struct ReplayError {
    pub index: LogIndex,
    pub reason: String,
}

/// Replays entries in order onto a state.
#[derive(Clone)]
pub struct Replayer<S> {
    state: S,
    next_index: LogIndex,
    prev_leaf: Hash,
    last_time_ms: u64,
    origin: Option<(RegionId, PublicKey)>,
    /// (signer, nonce) pairs seen: the same pair never applies twice.
    nonces: std::collections::HashSet<Vec<u8>>,
}

impl Replayer<MemoryState> {
    /// A replayer onto empty in-memory state.
    pub fn in_memory() -> Self {
        Self::new(MemoryState::default())
    }
}

/// Everything a [`Replayer`] carries from one entry to the next, for saving a verifier's
/// progress and resuming it later (`vledger verify --save-state` / `--from-checkpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayerSnapshot<S> {
    pub state: S,
    pub next_index: LogIndex,
    pub prev_leaf: Hash,
    pub last_time_ms: u64,
    pub origin: Option<(RegionId, PublicKey)>,
    /// (signer ‖ nonce) of every entry replayed, in no particular order.
    pub nonces: Vec<Vec<u8>>,
}

impl<S> Replayer<S> {
    /// The replayer's whole progress.
    pub fn snapshot(&self) -> ReplayerSnapshot<S>
    where
        S: Clone,
    {
        ReplayerSnapshot {
            state: self.state.clone(),
            next_index: self.next_index,
            prev_leaf: self.prev_leaf,
            last_time_ms: self.last_time_ms,
            origin: self.origin.clone(),
            nonces: self.nonces.iter().cloned().collect(),
        }
    }

    /// A replayer that continues where `snapshot` stopped.
    pub fn from_snapshot(snapshot: ReplayerSnapshot<S>) -> Self {
        Self {
            state: snapshot.state,
            next_index: snapshot.next_index,
            prev_leaf: snapshot.prev_leaf,
            last_time_ms: snapshot.last_time_ms,
            origin: snapshot.origin,
            nonces: snapshot.nonces.into_iter().collect(),
        }
    }

    /// The leaf hash of the last entry replayed (zeros before the first).
    pub fn prev_leaf(&self) -> Hash {
        self.prev_leaf
    }

    /// The region and node key the log was founded with, once genesis is replayed.
    pub fn origin(&self) -> Option<&(RegionId, PublicKey)> {
        self.origin.as_ref()
    }
}

impl<S: StateRead + StateWrite> Replayer<S> {
    pub fn new(state: S) -> Self {
        Self {
            state,
            next_index: 0,
            prev_leaf: [0; 32],
            last_time_ms: 0,
            origin: None,
            nonces: std::collections::HashSet::new(),
        }
    }

    /// The state after the entries replayed so far.
    pub fn state(&self) -> &S {
        &self.state
    }

    pub fn into_state(self) -> S {
        self.state
    }

    /// The number of entries replayed.
    pub fn size(&self) -> u64 {
        self.next_index
    }

    /// Checks and applies the next entry's canonical bytes.
    pub fn apply_entry(&mut self, bytes: &[u8]) -> Result<(), ReplayError> {
        let index = self.next_index;
        let fail = |reason: String| ReplayError { index, reason };
        let entry = Entry::decode(bytes).map_err(|e| fail(format!("does not decode: {e}")))?;
        let envelope = VerifiedEnvelope::parse_and_verify(&entry.envelope)
            .map_err(|e| fail(format!("envelope: {e}")))?;
        self.apply_checked(bytes, &entry, &envelope)
    }

    /// Applies the next entry whose bytes were already decoded into `entry` and whose envelope
    /// was already checked (signature and key rule) into `envelope`, e.g. by a pool of threads
    /// ahead of the replay. Checks everything else: index, chain, time, region, nonce and the
    /// events the state machine produces.
    pub fn apply_checked(
        &mut self,
        bytes: &[u8],
        entry: &Entry,
        envelope: &VerifiedEnvelope,
    ) -> Result<(), ReplayError> {
        let index = self.next_index;
        let fail = |reason: String| ReplayError { index, reason };
        if entry.index != index {
            return Err(fail(format!("says it is entry {}", entry.index)));
        }
        if entry.prev_leaf_hash != self.prev_leaf {
            return Err(fail(
                "its previous-leaf hash does not match the entry before it".into(),
            ));
        }
        if entry.node_time_ms < self.last_time_ms {
            return Err(fail("its node time goes backwards".into()));
        }
        let payload = &envelope.payload;
        let (region, node_key) = match &self.origin {
            Some(origin) => origin.clone(),
            None if payload.command_type == "region.genesis" => {
                (payload.region.clone(), payload.signer)
            }
            None => return Err(fail("the log does not start with region.genesis".into())),
        };
        if payload.region != region {
            return Err(fail(format!(
                "command is for region `{}`, the log's region is `{region}`",
                payload.region
            )));
        }
        let mut nonce_key = payload.signer.as_bytes().to_vec();
        nonce_key.extend_from_slice(payload.nonce.as_bytes());
        if self.nonces.contains(&nonce_key) {
            return Err(fail(format!(
                "signer {} used nonce `{}` before",
                payload.signer, payload.nonce
            )));
        }
        let command = Command::parse(&payload.command_type, &payload.body)
            .map_err(|e| fail(format!("command: {e}")))?;
        let ctx = ApplyContext {
            index,
            node_time_ms: entry.node_time_ms,
            region: region.clone(),
            node_key,
        };
        let events = match domain::apply(&mut self.state, &ctx, &payload.signer, &command) {
            Ok(events) => events,
            Err(ApplyError::Rejected(r)) => {
                return Err(fail(format!("the state machine refuses it: {r}")))
            }
            Err(ApplyError::State(e)) => return Err(fail(format!("state: {e}"))),
        };
        if domain::encode_events(&events) != entry.events {
            return Err(fail(
                "the recorded events differ from the events the state machine produces".into(),
            ));
        }
        self.nonces.insert(nonce_key);
        self.origin = Some((region, node_key));
        self.prev_leaf = leaf_hash(bytes);
        self.last_time_ms = entry.node_time_ms;
        self.next_index += 1;
        Ok(())
    }
}

/// The outcome of rebuilding a store's state from its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub entries: u64,
    pub records: usize,
    /// Keys whose stored value differs from the replayed one (missing on either side included).
    pub differing_keys: Vec<Vec<u8>>,
}

/// Replays a store's whole log in memory and compares the result with the stored state; with
/// `write`, replaces the stored state with the replayed one. The node must not be running.
pub fn rebuild(store: &crate::store::Store, write: bool) -> Result<RebuildReport, ReplayError> {
    let storage = |e: crate::store::StoreError| ReplayError {
        index: 0,
        reason: e.to_string(),
    };
    let size = store.tree_size().map_err(storage)?.unwrap_or(0);
    let mut replayer = Replayer::in_memory();
    let mut start = 0;
    while start < size {
        let end = size.min(start + 1000);
        for (_, bytes) in store.entries(start, end).map_err(storage)? {
            replayer.apply_entry(&bytes)?;
        }
        start = end;
    }
    if replayer.size() != size {
        return Err(ReplayError {
            index: replayer.size(),
            reason: format!("missing; the tree size is {size}"),
        });
    }
    let replayed = replayer.into_state().records;
    let stored: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = store
        .scan_state(b"", usize::MAX)
        .map_err(storage)?
        .into_iter()
        .collect();
    let mut differing_keys: Vec<Vec<u8>> = replayed
        .iter()
        .filter(|(k, v)| stored.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .collect();
    differing_keys.extend(
        stored
            .keys()
            .filter(|k| !replayed.contains_key(*k))
            .cloned(),
    );
    if write && !differing_keys.is_empty() {
        store.replace_state(&replayed).map_err(storage)?;
    }
    Ok(RebuildReport {
        entries: size,
        records: replayed.len(),
        differing_keys,
    })
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
