//! The canonical bytes of a log entry (docs/FORMAT.md, "Entry"), their encoder and decoder.
//!
//! ```text
//! u8      format version (1)
//! u64 BE  index
//! u64 BE  node time, ms since the Unix epoch
//! [32]    leaf hash of the previous entry (32 zero bytes for index 0)
//! u32 BE  length of the envelope, then the envelope bytes exactly as received
//! u32 BE  length of the events, then the events as RFC 8785 (JCS) JSON
//! ```
//! The Merkle leaf is SHA-256(0x00 ‖ these bytes).

use vledger_domain::limits::{
    ENTRY_HEADER_BYTES, MAX_ENTRY_BYTES, MAX_ENVELOPE_BYTES, MAX_EVENTS_BYTES,
};
use vledger_domain::types::{LogIndex, TimeMs};
use vledger_tlog::merkle::Hash;

/// The entry format version this code writes and reads.
pub const ENTRY_FORMAT_VERSION: u8 = 1;

/// One decoded entry. `envelope` and `events` are kept as bytes: they are hashed as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub index: LogIndex,
    pub node_time_ms: TimeMs,
    pub prev_leaf_hash: Hash,
    pub envelope: Vec<u8>,
    pub events: Vec<u8>,
}

/// Why bytes are not a valid entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("entry is {len} bytes; shorter than the {min}-byte minimum")]
    TooShort { len: usize, min: usize },
    #[error("entry is {len} bytes; the limit is {MAX_ENTRY_BYTES}")]
    TooLong { len: usize },
    #[error("entry format version {0} is unknown")]
    UnknownVersion(u8),
    #[error("{section} length {len} runs past the end of the entry or over its limit")]
    BadLength { section: &'static str, len: usize },
    #[error("{0} bytes follow the events section")]
    TrailingBytes(usize),
}

impl Entry {
    /// The canonical bytes of this entry.
    pub fn encode(&self) -> Vec<u8> {
        assert!(
            self.envelope.len() <= MAX_ENVELOPE_BYTES,
            "envelope over its limit"
        );
        assert!(
            self.events.len() <= MAX_EVENTS_BYTES,
            "events over their limit"
        );
        let mut out =
            Vec::with_capacity(ENTRY_HEADER_BYTES + 8 + self.envelope.len() + self.events.len());
        out.push(ENTRY_FORMAT_VERSION);
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.node_time_ms.to_be_bytes());
        out.extend_from_slice(&self.prev_leaf_hash);
        out.extend_from_slice(&(self.envelope.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.envelope);
        out.extend_from_slice(&(self.events.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.events);
        out
    }

    /// Decodes canonical entry bytes; refuses anything `encode` would not produce.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        let min = ENTRY_HEADER_BYTES + 8;
        if bytes.len() < min {
            return Err(EntryError::TooShort {
                len: bytes.len(),
                min,
            });
        }
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(EntryError::TooLong { len: bytes.len() });
        }
        if bytes[0] != ENTRY_FORMAT_VERSION {
            return Err(EntryError::UnknownVersion(bytes[0]));
        }
        let index = u64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes"));
        let node_time_ms = u64::from_be_bytes(bytes[9..17].try_into().expect("8 bytes"));
        let prev_leaf_hash: Hash = bytes[17..49].try_into().expect("32 bytes");
        let mut rest = &bytes[ENTRY_HEADER_BYTES..];
        let envelope = take_section(&mut rest, "envelope", MAX_ENVELOPE_BYTES)?;
        let events = take_section(&mut rest, "events", MAX_EVENTS_BYTES)?;
        if !rest.is_empty() {
            return Err(EntryError::TrailingBytes(rest.len()));
        }
        Ok(Self {
            index,
            node_time_ms,
            prev_leaf_hash,
            envelope,
            events,
        })
    }
}

fn take_section(
    rest: &mut &[u8],
    section: &'static str,
    max: usize,
) -> Result<Vec<u8>, EntryError> {
    if rest.len() < 4 {
        return Err(EntryError::BadLength {
            section,
            len: rest.len(),
        });
    }
    let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    if len > max || rest.len() - 4 < len {
        return Err(EntryError::BadLength { section, len });
    }
    let out = rest[4..4 + len].to_vec();
    *rest = &rest[4 + len..];
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        Entry {
            index: 7,
            node_time_ms: 1_700_000_000_123,
            prev_leaf_hash: [9; 32],
            envelope: br#"{"payloadType":"x"}"#.to_vec(),
            events: br#"[]"#.to_vec(),
        }
    }

    #[test]
    fn round_trips() {
        let e = sample();
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn refuses_trailing_bytes_and_bad_lengths() {
        let mut bytes = sample().encode();
        bytes.push(0);
        assert_eq!(Entry::decode(&bytes), Err(EntryError::TrailingBytes(1)));
        let mut bytes = sample().encode();
        bytes[ENTRY_HEADER_BYTES] = 0xff;
        assert!(matches!(
            Entry::decode(&bytes),
            Err(EntryError::BadLength {
                section: "envelope",
                ..
            })
        ));
        let mut bytes = sample().encode();
        bytes[0] = 2;
        assert_eq!(Entry::decode(&bytes), Err(EntryError::UnknownVersion(2)));
        assert!(matches!(
            Entry::decode(&bytes[..10]),
            Err(EntryError::TooShort { .. })
        ));
    }

    #[test]
    fn the_largest_entry_fits_an_entry_bundle_and_a_longer_section_is_refused() {
        use vledger_tlog::tiles::{decode_entry_bundle, encode_entry_bundle};
        let largest = Entry {
            envelope: vec![b' '; MAX_ENVELOPE_BYTES],
            events: vec![b' '; MAX_EVENTS_BYTES],
            ..sample()
        };
        let bytes = largest.encode();
        assert_eq!(bytes.len(), MAX_ENTRY_BYTES);
        assert_eq!(MAX_ENTRY_BYTES, usize::from(u16::MAX));
        assert_eq!(Entry::decode(&bytes).unwrap(), largest);
        let bundle = encode_entry_bundle([bytes.as_slice()]).unwrap();
        assert_eq!(
            decode_entry_bundle(&bundle, 1).unwrap(),
            vec![bytes.as_slice()]
        );

        // A section one byte over its bound is refused, even when the other leaves room.
        for (envelope, events, section) in [
            (MAX_ENVELOPE_BYTES + 1, 2, "envelope"),
            (2, MAX_EVENTS_BYTES + 1, "events"),
        ] {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&sample().encode()[..ENTRY_HEADER_BYTES]);
            bytes.extend_from_slice(&(envelope as u32).to_be_bytes());
            bytes.extend(std::iter::repeat_n(b' ', envelope));
            bytes.extend_from_slice(&(events as u32).to_be_bytes());
            bytes.extend(std::iter::repeat_n(b' ', events));
            assert!(
                matches!(
                    Entry::decode(&bytes),
                    Err(EntryError::BadLength { section: s, .. }) if s == section
                ),
                "{section}"
            );
        }
        let mut over = bytes.clone();
        over.push(b' ');
        assert_eq!(
            Entry::decode(&over),
            Err(EntryError::TooLong {
                len: MAX_ENTRY_BYTES + 1
            })
        );
    }
}
