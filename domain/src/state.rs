//! How the state machine reads and writes its records: a key-value view, an overlay that holds a
//! batch's changes until they are committed, and an in-memory store for tests and replay.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// State could not be read or a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state store: {0}")]
    Store(String),
    #[error("state record `{key}` is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    /// A decision read another region's record (`fed/...`) where no view of that region as
    /// of the entry is kept: a mirror replaying a third region's log, or a log replayed alone.
    #[error("the decision reads region `{region}`'s records, which are not available here")]
    ForeignView { region: String },
}

/// The encoding of state records, kept in the store's metadata: a store whose records are in
/// another encoding is refused until it is rebuilt from its log.
pub const STATE_RECORD_ENCODING: &str = "postcard-1";

/// Encodes a state record: [postcard] (fields in declaration order, integers as varints, keys as
/// their 32 bytes), the same bytes on every machine, so the state digest over records is
/// reproducible by anyone replaying the log. The API and the audit report show records as JSON;
/// only the stored bytes are binary.
///
/// [postcard]: https://postcard.jamesmunns.com/wire-format
pub fn encode_record<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("state records serialize")
}

/// Decodes a state record written by [`encode_record`]; trailing bytes are refused. Records are
/// the node's own (every key in them passed the whole key rule before it was written), so keys
/// are decoded on the trusted path ([`vledger_tlog::keys::decode_stored`]).
pub fn decode_record<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StateError> {
    let corrupt = |reason: String| StateError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    let (value, rest) = vledger_tlog::keys::decode_stored(|| postcard::take_from_bytes::<T>(bytes))
        .map_err(|e| corrupt(e.to_string()))?;
    if !rest.is_empty() {
        return Err(corrupt(format!("{} bytes after the record", rest.len())));
    }
    Ok(value)
}

/// Records as a scan returns them: (key, value) pairs in key order.
pub type ScannedRecords = Vec<(Vec<u8>, Vec<u8>)>;

/// Read access to state records.
pub trait StateRead {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;

    /// Records whose key starts with `prefix` and is at or after `start`, in key order, at most
    /// `limit` of them: a query resumes a scan from just after the last key it saw.
    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<ScannedRecords, StateError>;

    /// Records whose key starts with `prefix`, in key order, at most `limit` of them.
    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<ScannedRecords, StateError> {
        self.scan_prefix_from(prefix, prefix, limit)
    }

    /// Reads and decodes one record (see [`decode_record`]).
    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StateError>
    where
        Self: Sized,
    {
        match self.get_raw(key)? {
            None => Ok(None),
            Some(bytes) => decode_record(key, &bytes).map(Some),
        }
    }
}

/// Write access to state records.
pub trait StateWrite {
    fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>);
    fn delete(&mut self, key: Vec<u8>);

    /// Encodes and writes one record.
    fn put<T: Serialize>(&mut self, key: Vec<u8>, value: &T)
    where
        Self: Sized,
    {
        self.put_raw(key, encode_record(value));
    }
}

/// Pending changes over a base store: reads see the changes first.
pub struct Overlay<'a, B: StateRead> {
    base: &'a B,
    changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a, B: StateRead> Overlay<'a, B> {
    pub fn new(base: &'a B) -> Self {
        Self {
            base,
            changes: BTreeMap::new(),
        }
    }

    /// The changes, in key order; `None` deletes.
    pub fn into_changes(self) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        self.changes
    }
}

impl<B: StateRead> StateRead for Overlay<'_, B> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.changes.get(key) {
            Some(change) => Ok(change.clone()),
            None => self.base.get_raw(key),
        }
    }

    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<ScannedRecords, StateError> {
        merged_scan(&self.changes, prefix, start, limit, |from, limit| {
            self.base.scan_prefix_from(prefix, from, limit)
        })
    }
}

/// A scan of `prefix` from `start` over a base (read a page at a time by `base_page(from,
/// limit)`, which returns the base's records under `prefix` from `from` on) with pending
/// `changes` on top (`None` deletes): at most `limit` records, in key order.
pub fn merged_scan(
    changes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    prefix: &[u8],
    start: &[u8],
    limit: usize,
    mut base_page: impl FnMut(&[u8], usize) -> Result<ScannedRecords, StateError>,
) -> Result<ScannedRecords, StateError> {
    let start = start.max(prefix);
    let mut changes = changes
        .range::<[u8], _>((Bound::Included(start), Bound::Unbounded))
        .take_while(|(key, _)| key.starts_with(prefix))
        .peekable();
    let mut out = Vec::new();
    // The base is read a page at a time, so that deleted records do not shorten the answer.
    let mut base = VecDeque::new();
    let mut base_from = Some(start.to_vec());
    while out.len() < limit {
        if base.is_empty() {
            if let Some(from) = base_from.take() {
                let page = base_page(&from, limit)?;
                if page.len() == limit {
                    base_from = page.last().map(|(key, _)| {
                        let mut next = key.clone();
                        next.push(0);
                        next
                    });
                }
                base.extend(page);
            }
        }
        let change_first = match (base.front(), changes.peek()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some((base_key, _)), Some((change_key, _))) => *change_key <= base_key,
        };
        if change_first {
            let (key, change) = changes.next().expect("a change was peeked");
            if base.front().is_some_and(|(base_key, _)| base_key == key) {
                base.pop_front();
            }
            if let Some(value) = change {
                out.push((key.clone(), value.clone()));
            }
        } else {
            out.push(base.pop_front().expect("a base record was compared"));
        }
    }
    Ok(out)
}

impl<B: StateRead> StateWrite for Overlay<'_, B> {
    fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.changes.insert(key, Some(value));
    }
    fn delete(&mut self, key: Vec<u8>) {
        self.changes.insert(key, None);
    }
}

/// State held in memory: for tests, property tests and offline replay.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemoryState {
    pub records: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl StateRead for MemoryState {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.records.get(key).cloned())
    }

    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<ScannedRecords, StateError> {
        let start = start.max(prefix);
        Ok(self
            .records
            .range::<[u8], _>((Bound::Included(start), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }
}

impl StateWrite for MemoryState {
    fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.records.insert(key, value);
    }
    fn delete(&mut self, key: Vec<u8>) {
        self.records.remove(key.as_slice());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vledger_tlog::keys::{full_key_checks, PublicKey, SigningKey};

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Holding {
        holder: PublicKey,
        amount_minor: u64,
        note: Option<String>,
    }

    fn holding() -> Holding {
        Holding {
            holder: SigningKey::from_bytes(&[7; 32]).public_key(),
            amount_minor: 300,
            note: Some("paid".into()),
        }
    }

    #[test]
    fn records_are_stored_in_binary_with_keys_as_their_bytes() {
        let record = holding();
        let bytes = encode_record(&record);
        // The key's 32 bytes (after their length), then 300 as a varint, then the option.
        assert_eq!(bytes[0], 32);
        assert_eq!(&bytes[1..33], record.holder.as_bytes());
        assert_eq!(&bytes[33..35], &[0xac, 0x02]);
        assert_eq!(&bytes[35..], b"\x01\x04paid");
        assert_eq!(decode_record::<Holding>(b"h/1", &bytes).unwrap(), record);
        // Shown outside the store, the same record is JSON with the key in base64.
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["holder"], record.holder.to_base64());
    }

    #[test]
    fn a_record_with_bytes_missing_or_left_over_is_corrupt() {
        let bytes = encode_record(&holding());
        let mut longer = bytes.clone();
        longer.push(0);
        let error = decode_record::<Holding>(b"h/1", &longer).unwrap_err();
        assert!(
            matches!(&error, StateError::Corrupt { key, reason }
                if key == "h/1" && reason == "1 bytes after the record"),
            "{error}"
        );
        assert!(decode_record::<Holding>(b"h/1", &bytes[..bytes.len() - 1]).is_err());
        assert!(decode_record::<Holding>(b"h/1", &bytes[..20]).is_err());
    }

    #[test]
    fn stored_keys_skip_the_curve_checks_and_other_binary_keys_do_not() {
        let bytes = encode_record(&holding());
        let before = full_key_checks();
        decode_record::<Holding>(b"h/1", &bytes).unwrap();
        assert_eq!(
            full_key_checks(),
            before,
            "a stored record's key is trusted"
        );
        postcard::from_bytes::<Holding>(&bytes).unwrap();
        assert_eq!(
            full_key_checks(),
            before + 1,
            "elsewhere the whole rule runs"
        );
        // A small-order key (the identity) is refused outside the store.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut forged = bytes.clone();
        forged[1..33].copy_from_slice(&identity);
        assert!(postcard::from_bytes::<Holding>(&forged).is_err());
    }
}
