//! Small value types parsed once at the edge, so the core never re-checks them.

use serde::{Deserialize, Serialize};

use crate::limits::MAX_REGION_ID_BYTES;

/// A region's identifier, e.g. `cq` (Chongqing) or `sc` (Sichuan): 1 to 32 bytes of lowercase
/// ASCII letters, digits and `-`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegionId(String);

/// Why a region identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("region id `{0}` must be 1 to {MAX_REGION_ID_BYTES} bytes of a-z, 0-9 and '-', starting with a letter")]
pub struct RegionIdError(pub String);

impl RegionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RegionId {
    type Error = RegionIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let ok = !s.is_empty()
            && s.len() <= MAX_REGION_ID_BYTES
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s))
        } else {
            Err(RegionIdError(s))
        }
    }
}

impl TryFrom<&str> for RegionId {
    type Error = RegionIdError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::try_from(s.to_string())
    }
}

impl From<RegionId> for String {
    fn from(r: RegionId) -> String {
        r.0
    }
}

impl std::fmt::Display for RegionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Milliseconds since the Unix epoch, as recorded by the node in an entry.
pub type TimeMs = u64;

/// Position of an entry in the log, from 0.
pub type LogIndex = u64;

/// Longest client-chosen record identifier (program, voucher, order ids), in bytes.
pub const MAX_RECORD_ID_BYTES: usize = 64;

/// A client-chosen identifier of a program, voucher or other record: 1 to 64 bytes of ASCII
/// letters, digits, `.`, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecordId(String);

/// Why a record identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("id `{0}` must be 1 to {MAX_RECORD_ID_BYTES} bytes of A-Z, a-z, 0-9, '.', '_' and '-'")]
pub struct RecordIdError(pub String);

impl RecordId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RecordId {
    type Error = RecordIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let ok = !s.is_empty()
            && s.len() <= MAX_RECORD_ID_BYTES
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s))
        } else {
            Err(RecordIdError(s))
        }
    }
}

impl TryFrom<&str> for RecordId {
    type Error = RecordIdError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::try_from(s.to_string())
    }
}

impl From<RecordId> for String {
    fn from(r: RecordId) -> String {
        r.0
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
