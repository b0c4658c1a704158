//! Request parameters that take exactly what the OpenAPI document says they take: integers
//! within the document's `int64`, and key filters that accept any well-formed key.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Deserializer};
use vledger_tlog::keys::{PublicKey, PUBLIC_KEY_LEN};

/// Largest integer a query parameter takes: the document declares query integers `int64`.
pub const MAX_QUERY_INTEGER: u64 = i64::MAX as u64;

fn within_int64<E: serde::de::Error>(value: u64) -> Result<u64, E> {
    if value > MAX_QUERY_INTEGER {
        return Err(E::custom(format!(
            "{value} is over the largest query integer, {MAX_QUERY_INTEGER}"
        )));
    }
    Ok(value)
}

/// Deserializes a query integer of at most [`MAX_QUERY_INTEGER`].
pub(crate) fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    within_int64(u64::deserialize(d)?)
}

/// Deserializes an optional query integer of at most [`MAX_QUERY_INTEGER`].
pub(crate) fn opt_int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(d)?.map(within_int64).transpose()
}

/// A key named by a read (a filter, a path): 32 bytes in standard base64, as the document's
/// `PublicKey` pattern says. A well-formed key that fails the key rule (not a curve point, small
/// order, ...) is no party's key, so it matches nothing rather than being refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFilter {
    text: String,
    key: Option<PublicKey>,
}

/// Why a key parameter is not a key at all.
#[derive(Debug)]
pub struct NotAKey;

impl std::fmt::Display for NotAKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a key is {PUBLIC_KEY_LEN} bytes in standard base64 (44 characters ending in `=`)"
        )
    }
}

impl KeyFilter {
    pub fn parse(text: &str) -> Result<Self, NotAKey> {
        let bytes = B64.decode(text).map_err(|_| NotAKey)?;
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(NotAKey);
        }
        Ok(Self {
            text: text.to_string(),
            key: PublicKey::from_base64(text).ok(),
        })
    }

    /// The key, if it passes the key rule; `None` names no party.
    pub fn key(&self) -> Option<&PublicKey> {
        self.key.as_ref()
    }

    /// Whether `key` is this one.
    pub fn matches(&self, key: &PublicKey) -> bool {
        self.key.as_ref() == Some(key)
    }

    /// The key's base64, as given (canonical: base64 decoding refused any other spelling).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl<'de> Deserialize<'de> for KeyFilter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        KeyFilter::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_key_off_the_curve_matches_nothing_and_a_malformed_one_is_refused() {
        // 32 bytes that do not decode to a curve point.
        let off_curve = format!("{}=", "0".repeat(43));
        assert!(PublicKey::from_base64(&off_curve).is_err());
        let filter = KeyFilter::parse(&off_curve).unwrap();
        assert!(filter.key().is_none());

        let real = vledger_tlog::keys::SigningKey::generate(&mut rand::rngs::OsRng).public_key();
        let filter = KeyFilter::parse(&real.to_base64()).unwrap();
        assert!(filter.matches(&real));

        for bad in ["", "abc", &format!("{}1=", "0".repeat(42)), &"A".repeat(44)] {
            assert!(KeyFilter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_integers_stop_at_the_documents_int64() {
        let parse =
            |n: u64| int64(serde::de::value::U64Deserializer::<serde::de::value::Error>::new(n));
        assert_eq!(parse(MAX_QUERY_INTEGER).unwrap(), MAX_QUERY_INTEGER);
        assert!(parse(MAX_QUERY_INTEGER + 1).is_err());
    }
}
