//! The node's RocksDB store: entries, perfect-subtree hashes, state records, nonces and
//! checkpoints, each in its own column family. Everything one batch of commands changes is
//! written in one synced `WriteBatch`.

use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

use crate::domain::{ScannedRecords, StateError, StateRead};
use crate::merkle::{Hash, SubtreeSource};
use crate::types::LogIndex;

const CF_ENTRIES: &str = "entries";
const CF_TREE: &str = "tree";
const CF_STATE: &str = "state";
const CF_NONCES: &str = "nonces";
const CF_CHECKPOINTS: &str = "checkpoints";
const CF_META: &str = "meta";
const COLUMN_FAMILIES: [&str; 6] = [
    CF_ENTRIES,
    CF_TREE,
    CF_STATE,
    CF_NONCES,
    CF_CHECKPOINTS,
    CF_META,
];

const META_TREE_SIZE: &[u8] = b"tree_size";
const META_LATEST_CHECKPOINT: &[u8] = b"latest_checkpoint_size";

/// A storage failure, with the operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("store: {context}: {source}")]
pub struct StoreError {
    pub context: &'static str,
    #[source]
    pub source: rocksdb::Error,
}

fn ctx(context: &'static str) -> impl FnOnce(rocksdb::Error) -> StoreError {
    move |source| StoreError { context, source }
}

/// What a recorded nonce points at: the entry that used it and the hash of its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceRecord {
    pub index: LogIndex,
    pub command_hash: [u8; 32],
}

/// The RocksDB database of one node.
pub struct Store {
    db: DB,
}

/// Everything one batch of commands writes, committed at once by [`Store::commit`].
#[derive(Default)]
pub struct CommitBatch {
    pub entries: Vec<(LogIndex, Vec<u8>)>,
    pub tree_nodes: Vec<(u8, u64, Hash)>,
    pub state_changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub nonces: Vec<(Vec<u8>, NonceRecord)>,
    pub new_tree_size: u64,
    pub checkpoint: Option<(u64, String)>,
}

impl Store {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        options.increase_parallelism(2);
        let families = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&options, dir, families).map_err(ctx("open"))?;
        Ok(Self { db })
    }

    /// Opens the database in `dir` read-only: it must exist. Works while the node runs (the view
    /// is the one at opening) and never changes the files.
    pub fn open_read_only(dir: &Path) -> Result<Self, StoreError> {
        let options = Options::default();
        let db = DB::open_cf_for_read_only(&options, dir, COLUMN_FAMILIES, false)
            .map_err(ctx("open read-only"))?;
        Ok(Self { db })
    }

    /// Stored checkpoints of tree size at least `from`, in size order, at most `limit`.
    pub fn checkpoints_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let iter = self.db.iterator_cf(
            self.cf(CF_CHECKPOINTS),
            rocksdb::IteratorMode::From(&from.to_be_bytes(), rocksdb::Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter.take(limit) {
            let (key, value) = item.map_err(ctx("scan checkpoints"))?;
            out.push((be_u64(&key), String::from_utf8_lossy(&value).into_owned()));
        }
        Ok(out)
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column family created at open")
    }

    /// The committed tree size, if one was ever recorded.
    pub fn tree_size(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .db
            .get_cf(self.cf(CF_META), META_TREE_SIZE)
            .map_err(ctx("read tree size"))?
            .map(|v| be_u64(&v)))
    }

    /// The size of the latest stored checkpoint.
    pub fn latest_checkpoint_size(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .db
            .get_cf(self.cf(CF_META), META_LATEST_CHECKPOINT)
            .map_err(ctx("read latest checkpoint size"))?
            .map(|v| be_u64(&v)))
    }

    /// The signed checkpoint note stored for a tree size.
    pub fn checkpoint(&self, size: u64) -> Result<Option<String>, StoreError> {
        Ok(self
            .db
            .get_cf(self.cf(CF_CHECKPOINTS), size.to_be_bytes())
            .map_err(ctx("read checkpoint"))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The canonical bytes of one entry.
    pub fn entry(&self, index: LogIndex) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(self.cf(CF_ENTRIES), index.to_be_bytes())
            .map_err(ctx("read entry"))
    }

    /// Entries in `[start, end)`, in order; stops early at the first missing one.
    pub fn entries(
        &self,
        start: LogIndex,
        end: LogIndex,
    ) -> Result<Vec<(LogIndex, Vec<u8>)>, StoreError> {
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        let iter = self.db.iterator_cf(
            self.cf(CF_ENTRIES),
            rocksdb::IteratorMode::From(&start.to_be_bytes(), rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(ctx("scan entries"))?;
            let index = be_u64(&key);
            if index >= end {
                break;
            }
            out.push((index, value.into_vec()));
        }
        Ok(out)
    }

    /// The first entry index at or after `from`, if any (used to detect entries past the tree size).
    pub fn first_entry_at_or_after(&self, from: LogIndex) -> Result<Option<LogIndex>, StoreError> {
        let mut iter = self.db.iterator_cf(
            self.cf(CF_ENTRIES),
            rocksdb::IteratorMode::From(&from.to_be_bytes(), rocksdb::Direction::Forward),
        );
        match iter.next() {
            None => Ok(None),
            Some(item) => Ok(Some(be_u64(&item.map_err(ctx("scan entries"))?.0))),
        }
    }

    /// The entry that used `(signer, nonce)`, if any.
    pub fn nonce(&self, key: &[u8]) -> Result<Option<NonceRecord>, StoreError> {
        Ok(self
            .db
            .get_cf(self.cf(CF_NONCES), key)
            .map_err(ctx("read nonce"))?
            .map(|v| NonceRecord {
                index: be_u64(&v[..8]),
                command_hash: v[8..40].try_into().expect("nonce records are 40 bytes"),
            }))
    }

    /// Writes a whole batch in one synced write: after this returns, it survives power loss.
    pub fn commit(&self, batch: CommitBatch) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        for (index, bytes) in &batch.entries {
            wb.put_cf(self.cf(CF_ENTRIES), index.to_be_bytes(), bytes);
        }
        for (level, index, hash) in &batch.tree_nodes {
            wb.put_cf(self.cf(CF_TREE), tree_key(*level, *index), hash);
        }
        for (key, value) in &batch.state_changes {
            match value {
                Some(v) => wb.put_cf(self.cf(CF_STATE), key, v),
                None => wb.delete_cf(self.cf(CF_STATE), key),
            }
        }
        for (key, record) in &batch.nonces {
            let mut value = record.index.to_be_bytes().to_vec();
            value.extend_from_slice(&record.command_hash);
            wb.put_cf(self.cf(CF_NONCES), key, value);
        }
        wb.put_cf(
            self.cf(CF_META),
            META_TREE_SIZE,
            batch.new_tree_size.to_be_bytes(),
        );
        if let Some((size, note)) = &batch.checkpoint {
            wb.put_cf(self.cf(CF_CHECKPOINTS), size.to_be_bytes(), note.as_bytes());
            wb.put_cf(self.cf(CF_META), META_LATEST_CHECKPOINT, size.to_be_bytes());
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(wb, &options).map_err(ctx("commit batch"))
    }

    /// State records whose key starts with `prefix`, in key order, at most `limit` of them.
    pub fn scan_state(&self, prefix: &[u8], limit: usize) -> Result<ScannedRecords, StoreError> {
        self.scan_state_from(prefix, prefix, limit)
    }

    /// Like [`Store::scan_state`], starting at `start` (at or after `prefix`): for cursor paging.
    pub fn scan_state_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<ScannedRecords, StoreError> {
        let mut out = Vec::new();
        let start = start.max(prefix);
        let iter = self.db.iterator_cf(
            self.cf(CF_STATE),
            rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(ctx("scan state"))?;
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((key.into_vec(), value.into_vec()));
        }
        Ok(out)
    }

    /// Replaces every state record with `records`, in one synced write (used by rebuild).
    pub fn replace_state(
        &self,
        records: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        for (key, _) in self.scan_state(b"", usize::MAX)? {
            wb.delete_cf(self.cf(CF_STATE), key);
        }
        for (key, value) in records {
            wb.put_cf(self.cf(CF_STATE), key, value);
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(wb, &options)
            .map_err(ctx("replace state"))
    }

    /// Low-level access for recovery tests that simulate damage.
    #[doc(hidden)]
    pub fn damage_for_tests(&self, family: &str, key: &[u8], value: Option<&[u8]>) {
        let cf = self.cf(family);
        match value {
            Some(v) => self.db.put_cf(cf, key, v).expect("test write"),
            None => self.db.delete_cf(cf, key).expect("test delete"),
        }
    }
}

fn tree_key(level: u8, index: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = level;
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

fn be_u64(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes[..8].try_into().expect("stored integers are 8 bytes"))
}

/// A stored perfect subtree was missing.
#[derive(Debug, thiserror::Error)]
pub enum TreeReadError {
    #[error("tree node (level {level}, index {index}) is missing from the store")]
    Missing { level: u8, index: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SubtreeSource for Store {
    type Error = TreeReadError;
    fn perfect_subtree(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        let value = self
            .db
            .get_pinned_cf(self.cf(CF_TREE), tree_key(level, index))
            .map_err(ctx("read tree node"))?
            .ok_or(TreeReadError::Missing { level, index })?;
        value
            .as_ref()
            .try_into()
            .map_err(|_| TreeReadError::Missing { level, index })
    }
}

impl StateRead for Store {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.db
            .get_cf(self.cf(CF_STATE), key)
            .map_err(|e| StateError::Store(e.to_string()))
    }

    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StateError> {
        self.scan_state_from(prefix, start, limit)
            .map_err(|e| StateError::Store(e.to_string()))
    }
}

/// Column family names, for recovery tests that damage a store on purpose.
pub mod families {
    pub const ENTRIES: &str = super::CF_ENTRIES;
    pub const TREE: &str = super::CF_TREE;
    pub const CHECKPOINTS: &str = super::CF_CHECKPOINTS;
    pub const META: &str = super::CF_META;
    pub const STATE: &str = super::CF_STATE;
    pub const TREE_SIZE_KEY: &[u8] = super::META_TREE_SIZE;
}
