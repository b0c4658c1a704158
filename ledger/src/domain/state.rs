//! How the state machine reads and writes its records: a key-value view, an overlay that holds a
//! batch's changes until they are committed, and an in-memory store for tests and replay.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// State could not be read or a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state store: {0}")]
    Store(String),
    #[error("state record `{key}` is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

/// Read access to state records.
pub trait StateRead {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;

    /// Reads and decodes one record.
    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StateError>
    where
        Self: Sized,
    {
        match self.get_raw(key)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StateError::Corrupt {
                        key: String::from_utf8_lossy(key).into_owned(),
                        reason: e.to_string(),
                    })
            }
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
        self.put_raw(
            key,
            serde_json::to_vec(value).expect("state records serialize"),
        );
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
}

impl StateWrite for MemoryState {
    fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.records.insert(key, value);
    }
    fn delete(&mut self, key: Vec<u8>) {
        self.records.remove(key.as_slice());
    }
}
