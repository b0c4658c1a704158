//! The writer's cache of committed state records: the records most commands read (the region,
//! the signer's party, the program, the voucher and order a lifecycle step touches) are kept
//! decoded from RocksDB once instead of being looked up again for every command.
//!
//! It holds only committed values: misses are filled from the store, and the writer updates it
//! with a batch's changes after that batch's synced write returns. Two generations bound it: when
//! the current one is full it becomes the previous one, and a hit there moves the record back.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::store::Store;
use vledger_domain::limits::RECORD_CACHE_GENERATION;
use vledger_domain::{ScannedRecords, StateError, StateRead};

type Record = Option<Vec<u8>>;

/// See the module documentation.
#[derive(Default)]
pub struct RecordCache {
    current: HashMap<Vec<u8>, Record>,
    previous: HashMap<Vec<u8>, Record>,
}

impl RecordCache {
    fn get(&mut self, key: &[u8]) -> Option<Record> {
        if let Some(record) = self.current.get(key) {
            return Some(record.clone());
        }
        let (key, record) = self.previous.remove_entry(key)?;
        self.insert(key, record.clone());
        Some(record)
    }

    fn insert(&mut self, key: Vec<u8>, record: Record) {
        if self.current.len() >= RECORD_CACHE_GENERATION && !self.current.contains_key(&key) {
            // The full generation becomes the previous one, and the table of the one before,
            // emptied, takes the new records: a table of a generation's size (megabytes) is not
            // given back and grown again from nothing, page by fresh page, at every turnover.
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        self.previous.remove(&key);
        self.current.insert(key, record);
    }

    /// Records the changes of a batch whose synced write has returned.
    pub fn committed(&mut self, changes: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>) {
        for (key, value) in changes {
            self.insert(key, value);
        }
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The state under a cache: the records written out so far (a node's store, a replay's scratch
/// database).
pub trait CacheBase {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
}

impl CacheBase for Store {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.get_raw(key)
    }
}

impl RecordCache {
    /// The record under `key`: from the cache, or read from `base` and remembered.
    pub fn get_or_read(
        cache: &RefCell<RecordCache>,
        base: &impl CacheBase,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(record) = cache.borrow_mut().get(key) {
            return Ok(record);
        }
        let record = base.read(key)?;
        cache.borrow_mut().insert(key.to_vec(), record.clone());
        Ok(record)
    }
}

/// The committed state as the writer reads it: the cache, then the store.
pub struct CachedStore<'a> {
    pub store: &'a Store,
    pub cache: &'a RefCell<RecordCache>,
}

impl StateRead for CachedStore<'_> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        RecordCache::get_or_read(self.cache, self.store, key)
    }

    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<ScannedRecords, StateError> {
        self.store.scan_prefix_from(prefix, start, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_two_generations_and_promotes_hits() {
        let mut cache = RecordCache::default();
        for i in 0..RECORD_CACHE_GENERATION {
            cache.insert(format!("k{i}").into_bytes(), Some(vec![1]));
        }
        assert_eq!(cache.len(), RECORD_CACHE_GENERATION);
        // The next new key starts a generation; the old one is still readable.
        cache.insert(b"new".to_vec(), None);
        assert_eq!(cache.get(b"k0"), Some(Some(vec![1])));
        assert_eq!(cache.get(b"new"), Some(None));
        // A second turnover drops what was not read again.
        for i in 0..RECORD_CACHE_GENERATION {
            cache.insert(format!("m{i}").into_bytes(), Some(vec![2]));
        }
        assert!(cache.len() <= 2 * RECORD_CACHE_GENERATION);
        assert_eq!(cache.get(b"k1"), None);
    }

    #[test]
    fn a_new_generation_reuses_the_table_of_the_one_it_drops() {
        let mut cache = RecordCache::default();
        for i in 0..3 * RECORD_CACHE_GENERATION {
            cache.insert(format!("k{i}").into_bytes(), Some(vec![1]));
        }
        // Two turnovers later, the generation being filled holds a few records in a table
        // already sized for a whole generation.
        cache.insert(b"new".to_vec(), None);
        assert!(cache.current.len() < RECORD_CACHE_GENERATION);
        assert!(
            cache.current.capacity() >= RECORD_CACHE_GENERATION,
            "capacity {}",
            cache.current.capacity()
        );
        assert_eq!(cache.get(b"new"), Some(None));
        assert_eq!(cache.get(b"k0"), None);
    }

    /// The writer's view through the cache sees committed changes, including deletions.
    #[test]
    fn reads_through_and_sees_committed_changes() {
        use crate::store::CommitBatch;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = RefCell::new(RecordCache::default());
        let view = CachedStore {
            store: &store,
            cache: &cache,
        };
        assert_eq!(view.get_raw(b"a").unwrap(), None);
        let changes = std::collections::BTreeMap::from([
            (b"a".to_vec(), Some(b"1".to_vec())),
            (b"b".to_vec(), Some(b"2".to_vec())),
        ]);
        store
            .commit(&CommitBatch {
                state_changes: std::sync::Arc::new(changes.clone()),
                ..CommitBatch::default()
            })
            .unwrap();
        cache.borrow_mut().committed(changes);
        assert_eq!(view.get_raw(b"a").unwrap(), Some(b"1".to_vec()));
        let deletion = std::collections::BTreeMap::from([(b"a".to_vec(), None)]);
        store
            .commit(&CommitBatch {
                state_changes: std::sync::Arc::new(deletion.clone()),
                ..CommitBatch::default()
            })
            .unwrap();
        cache.borrow_mut().committed(deletion);
        assert_eq!(view.get_raw(b"a").unwrap(), None);
        assert_eq!(store.get_raw(b"a").unwrap(), None);
    }
}
