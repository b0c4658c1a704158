//! The federation as the state machine sees it: adoptions of other regions' checkpoints, and
//! the records of other regions as of the size adopted.
//!
//! A node mirrors every other region's log and verifies it (the node's mirror); when it starts
//! using a newer verified state of a region, it appends `federation.adopt`, naming that region's
//! signed checkpoint and proving it consistent with the one adopted before. The entry that
//! records the adoption also writes the region's records as of that checkpoint under
//! [`VIEW_PREFIX`] (`fed/<region>/<key>`): the node's writer adds them to the entry's state
//! changes, since they come from the other region's log, not from this one's events. Every later
//! decision that reads another region's record (a party's standing, a listing) reads it there, so
//! a replay that holds the regions' archives reads what the node read.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::parties::{load_party, party_key, PartyRecord};
use super::state::{StateError, StateRead, StateWrite};
use super::{ApplyContext, ApplyError, Event, Rejection};
use crate::limits::MAX_FEDERATION_REGIONS;
use crate::types::{LogIndex, RegionId, TimeMs};
use vledger_tlog::merkle::{hash_from_slice, verify_consistency};
use vledger_tlog::note::{Checkpoint, NoteVerifier, SignedNote};

/// Where the records of other regions live in this region's state: `fed/<region>/<their key>`.
/// Only the writer writes here, with the adoption entry that makes them current; the domain's
/// own events never do.
pub const VIEW_PREFIX: &[u8] = b"fed/";
/// Within a region's view, the (signer ‖ nonce) pairs that region used, each an empty record
/// `fed/<region>/\0nonce/<signer ‖ nonce>`: after a byte no record key of the domain starts
/// with, so that no scan of the region's records meets them.
pub const VIEW_NONCE_PREFIX: &[u8] = b"\0nonce/";
/// Prefix of the adoption records, one per region: `adopted/<region>`.
pub const ADOPTED_PREFIX: &[u8] = b"adopted/";

/// The key of another region's record `key` in this region's state.
pub fn view_key(region: &RegionId, key: &[u8]) -> Vec<u8> {
    let mut out = view_prefix(region);
    out.extend_from_slice(key);
    out
}

/// The prefix of every record of `region`'s view.
pub fn view_prefix(region: &RegionId) -> Vec<u8> {
    let mut out = VIEW_PREFIX.to_vec();
    out.extend_from_slice(region.as_str().as_bytes());
    out.push(b'/');
    out
}

fn adopted_key(region: &RegionId) -> Vec<u8> {
    let mut out = ADOPTED_PREFIX.to_vec();
    out.extend_from_slice(region.as_str().as_bytes());
    out
}

/// Body of `federation.adopt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdoptBody {
    /// The region whose state is adopted.
    pub region: RegionId,
    /// That region's node key as a C2SP verifier key (`<name>+<id>+<key>`), as the federation
    /// map pins it; the first adoption of a region records it, and every later one must name the
    /// same.
    pub verifier_key: String,
    /// The region's signed checkpoint, as its node served it.
    pub checkpoint: String,
    /// An RFC 9162 consistency proof (standard base64 hashes) from the size adopted before to
    /// this checkpoint's; empty for a region's first adoption.
    #[serde(default)]
    pub consistency: Vec<String>,
}

/// What this region adopted of another, as of its latest adoption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdoptedRecord {
    pub region: RegionId,
    /// The region's checkpoint origin.
    pub origin: String,
    /// The region's node key as a C2SP verifier key.
    pub verifier_key: String,
    /// The size of the region's log adopted: its records are read as of this many entries.
    pub size: u64,
    /// That tree's root hash, standard base64.
    pub root_hash: String,
    /// The entry of this log that adopted it.
    pub adopted_at: LogIndex,
    /// The node time of that entry.
    pub adopted_time_ms: TimeMs,
}

/// The adoption record of `region`, if this region adopted any state of it.
pub fn load_adopted<S: StateRead>(
    state: &S,
    region: &RegionId,
) -> Result<Option<AdoptedRecord>, StateError> {
    state.get(&adopted_key(region))
}

/// Every adoption record, in region order (at most [`MAX_FEDERATION_REGIONS`]).
pub fn adopted_regions<S: StateRead>(state: &S) -> Result<Vec<AdoptedRecord>, StateError> {
    state
        .scan_prefix(ADOPTED_PREFIX, MAX_FEDERATION_REGIONS)?
        .into_iter()
        .map(|(key, value)| super::decode_record(&key, &value))
        .collect()
}

/// A party as the federation knows it: registered here, or in a region this one adopted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownParty {
    pub party: PartyRecord,
    /// `None` for a party of this region's own log; for another region's, what was adopted of
    /// it (the party is as of `size` entries of that region's log).
    pub adopted: Option<AdoptedRecord>,
}

/// Finds a party by key in this region's records, then in the views of the regions adopted.
pub fn find_party<S: StateRead>(
    state: &S,
    key: &vledger_tlog::keys::PublicKey,
) -> Result<Option<KnownParty>, StateError> {
    if let Some(party) = load_party(state, key)? {
        return Ok(Some(KnownParty {
            party,
            adopted: None,
        }));
    }
    for adopted in adopted_regions(state)? {
        let view = view_key(&adopted.region, &party_key(key));
        if let Some(party) = state.get::<PartyRecord>(&view)? {
            return Ok(Some(KnownParty {
                party,
                adopted: Some(adopted),
            }));
        }
    }
    Ok(None)
}

/// The checkpoint a `federation.adopt` body names, checked on its own: the signature under the
/// verifier key it names, and the note's form.
pub fn adopted_checkpoint(body: &AdoptBody) -> Result<(NoteVerifier, Checkpoint), Rejection> {
    let invalid = |reason: String| Rejection::InvalidAdoption(reason);
    let verifier = NoteVerifier::parse(&body.verifier_key)
        .map_err(|e| invalid(format!("verifier_key: {e}")))?;
    let note =
        SignedNote::parse(&body.checkpoint).map_err(|e| invalid(format!("checkpoint: {e}")))?;
    note.verify(std::slice::from_ref(&verifier)).map_err(|e| {
        invalid(format!(
            "the checkpoint is not signed by {}: {e}",
            verifier.name
        ))
    })?;
    let checkpoint =
        Checkpoint::parse(&note.text).map_err(|e| invalid(format!("checkpoint: {e}")))?;
    if checkpoint.size == 0 {
        return Err(invalid("an empty log has nothing to adopt".into()));
    }
    Ok((verifier, checkpoint))
}

pub(super) fn decide_adopt<S: StateRead>(
    state: &S,
    ctx: &ApplyContext,
    body: &AdoptBody,
) -> Result<Vec<Event>, ApplyError> {
    let invalid = |reason: String| Rejection::InvalidAdoption(reason);
    if body.region == ctx.region {
        return Err(invalid(format!("region `{}` is this log's own region", body.region)).into());
    }
    let (_, checkpoint) = adopted_checkpoint(body)?;
    let proof = body
        .consistency
        .iter()
        .enumerate()
        .map(|(i, hash)| {
            B64.decode(hash)
                .ok()
                .and_then(|bytes| hash_from_slice(&bytes).ok())
                .ok_or_else(|| invalid(format!("consistency[{i}] is not a base64 SHA-256 hash")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match load_adopted(state, &body.region)? {
        None => {
            if !proof.is_empty() {
                return Err(
                    invalid("a region's first adoption has no consistency proof".into()).into(),
                );
            }
        }
        Some(before) => {
            if body.verifier_key != before.verifier_key {
                return Err(invalid(format!(
                    "region `{}` was adopted under the key {}; this checkpoint names {}",
                    body.region, before.verifier_key, body.verifier_key
                ))
                .into());
            }
            if checkpoint.origin != before.origin {
                return Err(invalid(format!(
                    "region `{}` was adopted with origin `{}`; this checkpoint's is `{}`",
                    body.region, before.origin, checkpoint.origin
                ))
                .into());
            }
            if checkpoint.size <= before.size {
                return Err(invalid(format!(
                    "size {} of region `{}` is adopted already; this checkpoint's size is {}",
                    before.size, body.region, checkpoint.size
                ))
                .into());
            }
            let before_root = B64
                .decode(&before.root_hash)
                .ok()
                .and_then(|bytes| hash_from_slice(&bytes).ok())
                .ok_or_else(|| StateError::Corrupt {
                    key: format!("adopted/{}", body.region),
                    reason: "root hash".into(),
                })?;
            verify_consistency(
                before.size,
                checkpoint.size,
                &before_root,
                &checkpoint.root_hash,
                &proof,
            )
            .map_err(|e| {
                invalid(format!(
                    "the checkpoint does not extend size {} adopted before: {e}",
                    before.size
                ))
            })?;
        }
    }
    Ok(vec![Event::RegionAdopted {
        region: body.region.clone(),
        origin: checkpoint.origin,
        verifier_key: body.verifier_key.clone(),
        size: checkpoint.size,
        root_hash: B64.encode(checkpoint.root_hash),
    }])
}

pub(super) fn evolve<S: StateRead + StateWrite>(
    state: &mut S,
    ctx: &ApplyContext,
    event: &Event,
) -> Result<(), StateError> {
    if let Event::RegionAdopted {
        region,
        origin,
        verifier_key,
        size,
        root_hash,
    } = event
    {
        state.put(
            adopted_key(region),
            &AdoptedRecord {
                region: region.clone(),
                origin: origin.clone(),
                verifier_key: verifier_key.clone(),
                size: *size,
                root_hash: root_hash.clone(),
                adopted_at: ctx.index,
                adopted_time_ms: ctx.node_time_ms,
            },
        );
    }
    Ok(())
}

/// Another region's records as of the size adopted, read as that region keys them, for the
/// queries that read a region's records (the catalog's search, one listing): the view under
/// `fed/<region>/`, or this region's own records when `region` is this region.
pub struct RegionRecords<'a, S: StateRead> {
    state: &'a S,
    prefix: Option<Vec<u8>>,
}

impl<'a, S: StateRead> RegionRecords<'a, S> {
    /// The records of `region` in `state`, whose own region is `own`.
    pub fn new(state: &'a S, own: &RegionId, region: &RegionId) -> Self {
        Self {
            state,
            prefix: (region != own).then(|| view_prefix(region)),
        }
    }

    fn key(&self, key: &[u8]) -> Vec<u8> {
        match &self.prefix {
            Some(prefix) => [prefix.as_slice(), key].concat(),
            None => key.to_vec(),
        }
    }
}

impl<S: StateRead> StateRead for RegionRecords<'_, S> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.state.get_raw(&self.key(key))
    }

    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<super::ScannedRecords, StateError> {
        let page = self
            .state
            .scan_prefix_from(&self.key(prefix), &self.key(start), limit)?;
        let cut = self.prefix.as_ref().map_or(0, Vec::len);
        Ok(page
            .into_iter()
            .map(|(key, value)| (key[cut..].to_vec(), value))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryState;

    #[test]
    fn a_regions_records_are_read_under_its_view_and_only_there() {
        let mut state = MemoryState::default();
        let (cq, sc) = (
            RegionId::try_from("cq").unwrap(),
            RegionId::try_from("sc").unwrap(),
        );
        state.put_raw(b"listing/a".to_vec(), b"own".to_vec());
        state.put_raw(view_key(&sc, b"listing/a"), b"theirs".to_vec());
        state.put_raw(view_key(&sc, b"listing/b"), b"theirs b".to_vec());
        state.put_raw(b"fed/scx/listing/c".to_vec(), b"another region".to_vec());
        let own = RegionRecords::new(&state, &cq, &cq);
        assert_eq!(own.get_raw(b"listing/a").unwrap(), Some(b"own".to_vec()));
        let theirs = RegionRecords::new(&state, &cq, &sc);
        assert_eq!(
            theirs.get_raw(b"listing/a").unwrap(),
            Some(b"theirs".to_vec())
        );
        let scanned = theirs.scan_prefix(b"listing/", 10).unwrap();
        assert_eq!(
            scanned,
            vec![
                (b"listing/a".to_vec(), b"theirs".to_vec()),
                (b"listing/b".to_vec(), b"theirs b".to_vec())
            ]
        );
        let from_b = theirs
            .scan_prefix_from(b"listing/", b"listing/b", 10)
            .unwrap();
        assert_eq!(from_b.len(), 1);
    }
}
