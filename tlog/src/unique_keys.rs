//! Refusing JSON objects that repeat a key. RFC 8259 leaves the meaning of a repeated key to
//! the parser: serde_json keeps the last value, many other parsers keep the first, so a
//! payload with two `signer` (or two `body`) members would read as one command to the node and
//! as another to a verifier. Signed payloads, envelopes and archive lines are therefore
//! checked with [`find_duplicate_key`] before anything else reads them.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A key that appears twice in one JSON object, and where that object is (a JSON Pointer,
/// RFC 6901: `""` for the top level, `/body` for the member `body`, `/signatures/0` for an
/// array's first item).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the key `{key}` appears twice in the object at `{pointer}`")]
pub struct DuplicateKey {
    pub pointer: String,
    pub key: String,
}

/// The first repeated key of `json`, depth first, if any. Text that is not JSON gives `None`:
/// the caller's own parser reports that, in its words.
pub fn find_duplicate_key(json: &[u8]) -> Option<DuplicateKey> {
    let found = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let _ = Walk {
        at: &Location::Root,
        found: &found,
    }
    .deserialize(&mut deserializer);
    found.into_inner()
}

/// Where a value is, as a chain of its parents; written out only when a duplicate is found.
enum Location<'a> {
    Root,
    Member(&'a Location<'a>, &'a str),
    Item(&'a Location<'a>, usize),
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Root => Ok(()),
            Location::Member(parent, key) => {
                write!(f, "{parent}/{}", key.replace('~', "~0").replace('/', "~1"))
            }
            Location::Item(parent, index) => write!(f, "{parent}/{index}"),
        }
    }
}

/// Visits every value, failing at the first object with a repeated key (recorded in `found`).
struct Walk<'a> {
    at: &'a Location<'a>,
    found: &'a RefCell<Option<DuplicateKey>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let mut index = 0;
        while items
            .next_element_seed(Walk {
                at: &Location::Item(self.at, index),
                found: self.found,
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<(), A::Error> {
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = members.next_key::<String>()? {
            if seen.contains(&key) {
                *self.found.borrow_mut() = Some(DuplicateKey {
                    pointer: self.at.to_string(),
                    key,
                });
                return Err(de::Error::custom("duplicate key"));
            }
            members.next_value_seed(Walk {
                at: &Location::Member(self.at, &key),
                found: self.found,
            })?;
            seen.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(json: &str) -> Option<(String, String)> {
        find_duplicate_key(json.as_bytes()).map(|d| (d.pointer, d.key))
    }

    #[test]
    fn a_repeated_key_is_found_at_any_depth() {
        assert_eq!(duplicate(r#"{"a":1,"b":2}"#), None);
        assert_eq!(
            duplicate(r#"{"signer":"x","v":1,"signer":"y"}"#),
            Some(("".into(), "signer".into()))
        );
        assert_eq!(
            duplicate(r#"{"body":{"id":"a","n":{"x":[1,{"k":1,"k":2}]}}}"#),
            Some(("/body/n/x/1".into(), "k".into()))
        );
        // Keys are compared after unescaping: `\u0061` is `a`.
        assert_eq!(
            duplicate(r#"{"a":1,"\u0061":2}"#),
            Some(("".into(), "a".into()))
        );
        // The same key in sibling objects is not a repetition.
        assert_eq!(duplicate(r#"[{"a":1},{"a":2}]"#), None);
        // Pointer escaping (RFC 6901).
        assert_eq!(
            duplicate(r#"{"a/b~":{"c":1,"c":1}}"#),
            Some(("/a~1b~0".into(), "c".into()))
        );
    }

    #[test]
    fn text_that_is_not_json_is_left_to_the_caller() {
        assert_eq!(duplicate(r#"{"a":1,"#), None);
        assert_eq!(duplicate("not json"), None);
    }
}
