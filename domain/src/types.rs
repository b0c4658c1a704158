//! Small value types parsed once at the edge, so the core never re-checks them.

use serde::de::{Error as _, Unexpected};
use serde::{Deserialize, Deserializer, Serialize};

use crate::limits::{MAX_DURATION_MS, MAX_REGION_ID_BYTES, MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};

/// A region's identifier, e.g. `cq` (Chongqing) or `sc` (Sichuan): 1 to 32 bytes of lowercase
/// ASCII letters, digits and `-`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
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

impl std::str::FromStr for RegionId {
    type Err = RegionIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s)
    }
}

impl<'de> Deserialize<'de> for RegionId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        refuse_invalid_string(deserializer, REGION_ID_EXPECTED)
    }
}

const REGION_ID_EXPECTED: &str =
    "a region id of 1 to 32 bytes of a-z, 0-9 and '-', starting with a letter";

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

/// Decodes a string into `T` through its `TryFrom<String>`; a string that `T` refuses is an
/// invalid value (serde's "invalid value: …, expected …", which `Command::parse` answers with
/// `invalid-field`), not a malformed body.
pub(crate) fn refuse_invalid_string<'de, D, T>(
    deserializer: D,
    expected: &'static str,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<String>,
{
    let s = String::deserialize(deserializer)?;
    let unexpected = s.clone();
    T::try_from(s).map_err(|_| D::Error::invalid_value(Unexpected::Str(&unexpected), &expected))
}

/// An instant a command names (an expiry, a deadline, a due date), in milliseconds since the
/// Unix epoch, from 2000-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z
/// ([`MIN_TIMESTAMP_MS`] to [`MAX_TIMESTAMP_MS`]): far below 2^53, so that every reader of the
/// JSON gets it exactly, and any such instant plus a [`DurationMs`] still is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "u64")]
pub struct TimestampMs(u64);

/// An instant outside [`MIN_TIMESTAMP_MS`]..=[`MAX_TIMESTAMP_MS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} ms is outside {TIMESTAMP_EXPECTED}")]
pub struct TimestampOutOfRange(pub u64);

const TIMESTAMP_EXPECTED: &str = "a time from 2000-01-01T00:00:00Z (946684800000) to \
    9999-12-31T23:59:59.999Z (253402300799999), in ms since the Unix epoch";

impl TimestampMs {
    pub fn new(ms: u64) -> Result<Self, TimestampOutOfRange> {
        if (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
            Ok(Self(ms))
        } else {
            Err(TimestampOutOfRange(ms))
        }
    }
    pub fn get(self) -> TimeMs {
        self.0
    }
}

impl TryFrom<u64> for TimestampMs {
    type Error = TimestampOutOfRange;
    fn try_from(ms: u64) -> Result<Self, Self::Error> {
        Self::new(ms)
    }
}

impl From<TimestampMs> for u64 {
    fn from(t: TimestampMs) -> u64 {
        t.0
    }
}

impl<'de> Deserialize<'de> for TimestampMs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let ms = u64::deserialize(deserializer)?;
        Self::new(ms)
            .map_err(|_| D::Error::invalid_value(Unexpected::Unsigned(ms), &TIMESTAMP_EXPECTED))
    }
}

impl std::fmt::Display for TimestampMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A length of time a command names (a notice period, a confirmation period), in milliseconds,
/// from 0 to [`MAX_DURATION_MS`] (ten years of 366 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
#[serde(into = "u64")]
pub struct DurationMs(u64);

/// A duration over [`MAX_DURATION_MS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} ms is over {DURATION_EXPECTED}")]
pub struct DurationTooLong(pub u64);

const DURATION_EXPECTED: &str = "a duration from 0 to 316224000000 ms (ten years of 366 days)";

impl DurationMs {
    pub fn new(ms: u64) -> Result<Self, DurationTooLong> {
        if ms <= MAX_DURATION_MS {
            Ok(Self(ms))
        } else {
            Err(DurationTooLong(ms))
        }
    }
    pub fn get(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for DurationMs {
    type Error = DurationTooLong;
    fn try_from(ms: u64) -> Result<Self, Self::Error> {
        Self::new(ms)
    }
}

impl From<DurationMs> for u64 {
    fn from(d: DurationMs) -> u64 {
        d.0
    }
}

impl<'de> Deserialize<'de> for DurationMs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let ms = u64::deserialize(deserializer)?;
        Self::new(ms)
            .map_err(|_| D::Error::invalid_value(Unexpected::Unsigned(ms), &DURATION_EXPECTED))
    }
}

impl std::fmt::Display for DurationMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Position of an entry in the log, from 0.
pub type LogIndex = u64;

/// Longest client-chosen record identifier (program, voucher, order ids), in bytes.
pub const MAX_RECORD_ID_BYTES: usize = 64;

/// A client-chosen identifier of a program, voucher, order, listing, demand or other record:
/// 1 to 64 bytes of ASCII letters, digits, `.`, `_` and `-`, starting with a letter or a digit
/// (`[A-Za-z0-9][A-Za-z0-9._-]{0,63}`). Ids are path segments of the read endpoints
/// (`/v1/vouchers/{id}`), so the grammar leaves out everything a URL path rewrites or splits:
/// `.` and `..` (and every id made only of dots), `/`, `\`, `%`, `?`, `#`, whitespace and
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct RecordId(String);

/// Why a record identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("id `{}` must be 1 to {MAX_RECORD_ID_BYTES} bytes of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or a digit", .0.escape_debug())]
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
            && s.as_bytes()[0].is_ascii_alphanumeric()
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

impl<'de> Deserialize<'de> for RecordId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        refuse_invalid_string(deserializer, RECORD_ID_EXPECTED)
    }
}

const RECORD_ID_EXPECTED: &str =
    "an id of 1 to 64 bytes of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or a digit";

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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn the_bounds_are_the_documented_dates_and_figures() {
        let first = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
        let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(first.timestamp_millis(), MIN_TIMESTAMP_MS as i64);
        assert_eq!(last.timestamp_millis() + 999, MAX_TIMESTAMP_MS as i64);
        const { assert!(MAX_TIMESTAMP_MS + MAX_DURATION_MS < 1 << 53) };
        for (expected, figure) in [
            (TIMESTAMP_EXPECTED, MIN_TIMESTAMP_MS),
            (TIMESTAMP_EXPECTED, MAX_TIMESTAMP_MS),
            (DURATION_EXPECTED, MAX_DURATION_MS),
        ] {
            assert!(expected.contains(&figure.to_string()), "{expected}");
        }
        assert!(RECORD_ID_EXPECTED.contains(&MAX_RECORD_ID_BYTES.to_string()));
        assert!(REGION_ID_EXPECTED.contains(&MAX_REGION_ID_BYTES.to_string()));
    }

    #[test]
    fn instants_and_durations_are_checked_when_decoded() {
        assert_eq!(
            TimestampMs::new(MIN_TIMESTAMP_MS).unwrap().get(),
            MIN_TIMESTAMP_MS
        );
        assert!(TimestampMs::new(MIN_TIMESTAMP_MS - 1).is_err());
        assert!(TimestampMs::new(MAX_TIMESTAMP_MS + 1).is_err());
        assert!(DurationMs::new(MAX_DURATION_MS + 1).is_err());
        assert!(serde_json::from_str::<TimestampMs>("253402300800000").is_err());
        assert!(serde_json::from_str::<DurationMs>("18446744073709551615").is_err());
        let t: TimestampMs = serde_json::from_str("1767225600000").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "1767225600000");
        // The stored form is the plain integer's.
        assert_eq!(
            postcard::to_stdvec(&t).unwrap(),
            postcard::to_stdvec(&1_767_225_600_000u64).unwrap()
        );
    }
}
