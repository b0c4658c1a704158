//! The node's RocksDB store: entries, perfect-subtree hashes, state records, nonces and
//! checkpoints, each in its own column family. Everything one batch of commands changes is
//! written in one synced `WriteBatch`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

use vledger_domain::limits::{
    STORE_BLOCK_CACHE_BYTES, STORE_INFO_LOGS_KEPT, STORE_MEMTABLES_BYTES,
};
use vledger_domain::types::{LogIndex, RegionId};
use vledger_domain::{ScannedRecords, StateError, StateRead, STATE_RECORD_ENCODING};
use vledger_tlog::merkle::{Hash, SubtreeSource};

const CF_ENTRIES: &str = "entries";
const CF_TREE: &str = "tree";
const CF_STATE: &str = "state";
const CF_NONCES: &str = "nonces";
const CF_CHECKPOINTS: &str = "checkpoints";
const CF_META: &str = "meta";
/// Other regions' logs as mirrored and verified: entries, tree nodes and the checkpoints
/// adopted, each keyed by `<region>/` and then as the node's own families are.
const CF_PEER_ENTRIES: &str = "peer_entries";
const CF_PEER_TREE: &str = "peer_tree";
const CF_PEER_CHECKPOINTS: &str = "peer_checkpoints";
const COLUMN_FAMILIES: [&str; 9] = [
    CF_ENTRIES,
    CF_TREE,
    CF_STATE,
    CF_NONCES,
    CF_CHECKPOINTS,
    CF_META,
    CF_PEER_ENTRIES,
    CF_PEER_TREE,
    CF_PEER_CHECKPOINTS,
];

const META_TREE_SIZE: &[u8] = b"tree_size";
const META_LATEST_CHECKPOINT: &[u8] = b"latest_checkpoint_size";
/// The encoding of the state records ([`vledger_domain::STATE_RECORD_ENCODING`]): written when
/// the store is created and when a rebuild writes the whole state.
const META_STATE_ENCODING: &[u8] = b"state_record_encoding";

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

/// The database of a [`Store`], read-locked for one operation.
struct Db<'a>(RwLockReadGuard<'a, DB>);

impl std::ops::Deref for Db<'_> {
    type Target = DB;
    fn deref(&self) -> &DB {
        &self.0
    }
}

impl Db<'_> {
    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.0
            .cf_handle(name)
            .expect("column family created at open")
    }
}

/// Opens (creating if needed) the database in `dir` for reading and writing.
fn open_writable(dir: &Path) -> Result<DB, StoreError> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.increase_parallelism(2);
    // Each opening starts a new info log; a node that reopens its store while its disk is full
    // keeps only the latest few.
    options.set_keep_log_file_num(STORE_INFO_LOGS_KEPT);
    // Memory is bounded whatever the log's length: memtables together, and one block cache
    // that also holds the table files' index and filter blocks.
    options.set_db_write_buffer_size(STORE_MEMTABLES_BYTES);
    let block_cache = rocksdb::Cache::new_lru_cache(STORE_BLOCK_CACHE_BYTES);
    let families = COLUMN_FAMILIES.iter().map(|name| {
        let mut cf_options = Options::default();
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&block_cache);
        // Index and filter blocks are partitioned: a lookup loads (and checksums) one small
        // partition into the cache, not a table file's whole index or filter, and only the
        // partitions' own small indexes stay pinned.
        table.set_cache_index_and_filter_blocks(true);
        table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
        table.set_pin_top_level_index_and_filter(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        if *name == CF_TREE || *name == CF_PEER_TREE {
            // Hashes do not compress; decompressing blocks only slows proofs down.
            cf_options.set_compression_type(rocksdb::DBCompressionType::None);
        }
        if *name == CF_NONCES || *name == CF_STATE {
            // Most lookups of a new command's nonce, and many of state records (ids not
            // used yet), find nothing: Bloom filters answer those without a search, in
            // the memtable and in each table file.
            table.set_bloom_filter(10.0, false);
            table.set_partition_filters(true);
            cf_options.set_memtable_prefix_bloom_ratio(0.02);
            cf_options.set_memtable_whole_key_filtering(true);
        }
        cf_options.set_block_based_table_factory(&table);
        ColumnFamilyDescriptor::new(*name, cf_options)
    });
    DB::open_cf_descriptors(&options, dir, families).map_err(ctx("open"))
}

/// Opens the database in `dir` read-only.
fn open_read_only(dir: &Path) -> Result<DB, StoreError> {
    let options = Options::default();
    DB::open_cf_for_read_only(&options, dir, COLUMN_FAMILIES, false).map_err(ctx("open read-only"))
}

/// What a recorded nonce points at: the entry that used it and the hash of its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceRecord {
    pub index: LogIndex,
    pub command_hash: [u8; 32],
}

/// The lowest tree level kept in memory: every stored perfect subtree of `2^TREE_CACHE_MIN_LEVEL`
/// leaves or more. That is `32 × n / 2^(TREE_CACHE_MIN_LEVEL - 1)` bytes for `n` leaves (4 bytes
/// a leaf: 40 MB at 10M leaves, 400 MB at 100M), and a proof reads at most about
/// `2 × TREE_CACHE_MIN_LEVEL` nodes from RocksDB (each about 8 µs when the tree no longer fits
/// the block cache). Level 7 (0.5 byte a leaf) gave 57 µs inclusion proofs at 10M leaves,
/// level 4 is what brings them under 50 µs.
pub const TREE_CACHE_MIN_LEVEL: u8 = 4;

/// The stored perfect-subtree hashes of levels `TREE_CACHE_MIN_LEVEL` and up, in memory:
/// `levels[l - TREE_CACHE_MIN_LEVEL][i]` is the node (l, i). Each level holds a gap-free prefix
/// of what RocksDB holds, so a node is either here with the stored value or read from RocksDB.
#[derive(Default)]
struct TreeCache {
    levels: Vec<Vec<Hash>>,
}

impl TreeCache {
    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        let row = self
            .levels
            .get(level.checked_sub(TREE_CACHE_MIN_LEVEL)? as usize)?;
        row.get(usize::try_from(index).ok()?).copied()
    }

    /// Records a node that was just written (or read at open). Nodes come level by level in
    /// index order; a node past the end of its level's prefix is left to RocksDB.
    fn record(&mut self, level: u8, index: u64, hash: Hash) {
        let Some(row) = level.checked_sub(TREE_CACHE_MIN_LEVEL) else {
            return;
        };
        let row = row as usize;
        if self.levels.len() <= row {
            self.levels.resize_with(row + 1, Vec::new);
        }
        let level_nodes = &mut self.levels[row];
        match usize::try_from(index) {
            Ok(i) if i == level_nodes.len() => level_nodes.push(hash),
            Ok(i) if i < level_nodes.len() => {
                // Rewritten (only damage tests do this): keep the prefix up to it.
                level_nodes.truncate(i);
                level_nodes.push(hash);
            }
            _ => {}
        }
    }

    fn bytes(&self) -> usize {
        self.levels.iter().map(|row| row.len() * 32).sum()
    }
}

/// The RocksDB database of one node.
pub struct Store {
    /// Replaced by [`Store::reopen`] after a failed write; every access holds its read lock
    /// for the length of one operation.
    db: RwLock<DB>,
    dir: PathBuf,
    /// Why the last write failed, until a write succeeds again (see [`Store::write_failure`]).
    write_failure: RwLock<Option<String>>,
    tree_cache: RwLock<TreeCache>,
    /// Tests only: while set, [`Store::commit`] fails without writing anything.
    #[cfg(test)]
    pub(crate) fail_commits: std::sync::atomic::AtomicBool,
    /// Tests only: while set, [`Store::commit`] first waits at it.
    #[cfg(test)]
    pub(crate) commit_gate: std::sync::Mutex<Option<CommitGate>>,
}

/// Tests only: holds each commit back until it is let through.
#[cfg(test)]
pub(crate) struct CommitGate {
    /// Told when a commit arrives at the gate.
    pub arrived: std::sync::mpsc::Sender<()>,
    /// One permit lets one commit through; without a sender, every commit goes through.
    pub permits: std::sync::mpsc::Receiver<()>,
}

/// A batch's state changes in key order; `None` deletes the record.
pub type StateChanges = std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Everything one batch of commands writes, committed at once by [`Store::commit`].
#[derive(Default)]
pub struct CommitBatch {
    pub entries: Vec<(LogIndex, Vec<u8>)>,
    pub tree_nodes: Vec<(u8, u64, Hash)>,
    /// Shared with the writer, which reads them as the state of the batch in flight.
    pub state_changes: Arc<StateChanges>,
    pub nonces: Vec<(Vec<u8>, NonceRecord)>,
    pub new_tree_size: u64,
    pub checkpoint: Option<(u64, String)>,
    /// Other regions' log steps adopted by this batch's entries.
    pub peer_logs: Vec<PeerLogStep>,
}

/// What a step of the mirror of another region's log stores, in the batch of the adoption
/// entry that makes it current: the entries verified since the size adopted before, the tree
/// nodes they complete, and the checkpoint adopted.
#[derive(Debug, Clone)]
pub struct PeerLogStep {
    pub region: RegionId,
    pub entries: Vec<(LogIndex, Vec<u8>)>,
    pub tree_nodes: Vec<(u8, u64, Hash)>,
    /// The adopted checkpoint's size and signed note.
    pub checkpoint: (u64, String),
}

impl Store {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let store = Self::with_db(open_writable(dir)?, dir);
        store.load_tree_cache()?;
        if store.tree_size()?.is_none() && store.state_record_encoding()?.is_none() {
            let db = store.db();
            db.put_cf(db.cf(CF_META), META_STATE_ENCODING, STATE_RECORD_ENCODING)
                .map_err(ctx("record the state encoding"))?;
        }
        Ok(store)
    }

    fn with_db(db: DB, dir: &Path) -> Self {
        Self {
            db: RwLock::new(db),
            dir: dir.to_path_buf(),
            write_failure: RwLock::new(None),
            tree_cache: RwLock::new(TreeCache::default()),
            #[cfg(test)]
            fail_commits: Default::default(),
            #[cfg(test)]
            commit_gate: Default::default(),
        }
    }

    /// The database, for one operation.
    fn db(&self) -> Db<'_> {
        Db(self.db.read().expect("store lock"))
    }

    /// Why the last write failed, while no write has succeeded since; `None` when the store
    /// writes.
    pub fn write_failure(&self) -> Option<String> {
        self.write_failure.read().expect("store lock").clone()
    }

    /// Records that the store cannot write, for a reason found outside a write.
    pub fn set_write_failure(&self, reason: String) {
        *self.write_failure.write().expect("store lock") = Some(reason);
    }

    /// Closes the database and opens it again, which clears the error state RocksDB enters
    /// after a failed write (after a full disk, it refuses every write until reopened). Reads
    /// go on meanwhile: the files are first opened read-only, and stay so if the database
    /// cannot be opened for writing (the disk is still full); the error names why. Must not
    /// run during a [`Store::commit`] (the writer calls it between batches).
    pub fn reopen(&self) -> Result<(), StoreError> {
        let mut db = self.db.write().expect("store lock");
        // Read-only first: the writable database holds the directory's lock until it is
        // closed, and readers must find a database whatever happens next.
        *db = open_read_only(&self.dir)?;
        *db = open_writable(&self.dir)?;
        drop(db);
        // A write reported failed may have reached the disk: the tree nodes are read anew.
        self.load_tree_cache()?;
        *self.write_failure.write().expect("store lock") = None;
        Ok(())
    }

    /// The encoding the stored state records are in; `None` for a store written before the
    /// encoding was recorded (JSON records).
    pub fn state_record_encoding(&self) -> Result<Option<String>, StoreError> {
        let db = self.db();
        Ok(db
            .get_cf(db.cf(CF_META), META_STATE_ENCODING)
            .map_err(ctx("read the state encoding"))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Reads every stored node of level `TREE_CACHE_MIN_LEVEL` and up into memory (they are the
    /// last keys of the tree family: the key is the level, then the index).
    fn load_tree_cache(&self) -> Result<(), StoreError> {
        let db = self.db();
        let mut cache = TreeCache::default();
        let iter = db.iterator_cf(
            db.cf(CF_TREE),
            rocksdb::IteratorMode::From(
                &tree_key(TREE_CACHE_MIN_LEVEL, 0),
                rocksdb::Direction::Forward,
            ),
        );
        for item in iter {
            let (key, value) = item.map_err(ctx("load tree cache"))?;
            if let (Ok(hash), 9) = (Hash::try_from(value.as_ref()), key.len()) {
                cache.record(key[0], be_u64(&key[1..]), hash);
            }
        }
        *self.tree_cache.write().expect("tree cache lock") = cache;
        Ok(())
    }

    /// Bytes of tree hashes held in memory.
    pub fn tree_cache_bytes(&self) -> usize {
        self.tree_cache.read().expect("tree cache lock").bytes()
    }

    /// Opens the database in `dir` read-only: it must exist. Works while the node runs (the view
    /// is the one at opening) and never changes the files.
    pub fn open_read_only(dir: &Path) -> Result<Self, StoreError> {
        let store = Self::with_db(open_read_only(dir)?, dir);
        store.load_tree_cache()?;
        Ok(store)
    }

    /// Stored checkpoints of tree size at least `from`, in size order, at most `limit`.
    pub fn checkpoints_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let db = self.db();
        let iter = db.iterator_cf(
            db.cf(CF_CHECKPOINTS),
            rocksdb::IteratorMode::From(&from.to_be_bytes(), rocksdb::Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter.take(limit) {
            let (key, value) = item.map_err(ctx("scan checkpoints"))?;
            out.push((be_u64(&key), String::from_utf8_lossy(&value).into_owned()));
        }
        Ok(out)
    }

    /// The committed tree size, if one was ever recorded.
    pub fn tree_size(&self) -> Result<Option<u64>, StoreError> {
        let db = self.db();
        Ok(db
            .get_cf(db.cf(CF_META), META_TREE_SIZE)
            .map_err(ctx("read tree size"))?
            .map(|v| be_u64(&v)))
    }

    /// The size of the latest stored checkpoint.
    pub fn latest_checkpoint_size(&self) -> Result<Option<u64>, StoreError> {
        let db = self.db();
        Ok(db
            .get_cf(db.cf(CF_META), META_LATEST_CHECKPOINT)
            .map_err(ctx("read latest checkpoint size"))?
            .map(|v| be_u64(&v)))
    }

    /// The signed checkpoint note stored for a tree size.
    pub fn checkpoint(&self, size: u64) -> Result<Option<String>, StoreError> {
        let db = self.db();
        Ok(db
            .get_cf(db.cf(CF_CHECKPOINTS), size.to_be_bytes())
            .map_err(ctx("read checkpoint"))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The canonical bytes of one entry.
    pub fn entry(&self, index: LogIndex) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.db();
        db.get_cf(db.cf(CF_ENTRIES), index.to_be_bytes())
            .map_err(ctx("read entry"))
    }

    /// Entries in `[start, end)`, in order; stops early at the first missing one.
    pub fn entries(
        &self,
        start: LogIndex,
        end: LogIndex,
    ) -> Result<Vec<(LogIndex, Vec<u8>)>, StoreError> {
        let db = self.db();
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        let iter = db.iterator_cf(
            db.cf(CF_ENTRIES),
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
        let db = self.db();
        let mut iter = db.iterator_cf(
            db.cf(CF_ENTRIES),
            rocksdb::IteratorMode::From(&from.to_be_bytes(), rocksdb::Direction::Forward),
        );
        match iter.next() {
            None => Ok(None),
            Some(item) => Ok(Some(be_u64(&item.map_err(ctx("scan entries"))?.0))),
        }
    }

    /// The entry that used `(signer, nonce)`, if any.
    pub fn nonce(&self, key: &[u8]) -> Result<Option<NonceRecord>, StoreError> {
        let db = self.db();
        Ok(db
            .get_cf(db.cf(CF_NONCES), key)
            .map_err(ctx("read nonce"))?
            .map(|v| NonceRecord {
                index: be_u64(&v[..8]),
                command_hash: v[8..40].try_into().expect("nonce records are 40 bytes"),
            }))
    }

    /// Writes a whole batch in one synced write: after this returns, it survives power loss.
    pub fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        let db = self.db();
        let mut wb = WriteBatch::default();
        for (index, bytes) in &batch.entries {
            wb.put_cf(db.cf(CF_ENTRIES), index.to_be_bytes(), bytes);
        }
        for (level, index, hash) in &batch.tree_nodes {
            wb.put_cf(db.cf(CF_TREE), tree_key(*level, *index), hash);
        }
        for (key, value) in batch.state_changes.iter() {
            match value {
                Some(v) => wb.put_cf(db.cf(CF_STATE), key, v),
                None => wb.delete_cf(db.cf(CF_STATE), key),
            }
        }
        for (key, record) in &batch.nonces {
            let mut value = record.index.to_be_bytes().to_vec();
            value.extend_from_slice(&record.command_hash);
            wb.put_cf(db.cf(CF_NONCES), key, value);
        }
        for step in &batch.peer_logs {
            for (index, bytes) in &step.entries {
                wb.put_cf(
                    db.cf(CF_PEER_ENTRIES),
                    peer_key(&step.region, &index.to_be_bytes()),
                    bytes,
                );
            }
            for (level, index, hash) in &step.tree_nodes {
                wb.put_cf(
                    db.cf(CF_PEER_TREE),
                    peer_key(&step.region, &tree_key(*level, *index)),
                    hash,
                );
            }
            let (size, note) = &step.checkpoint;
            wb.put_cf(
                db.cf(CF_PEER_CHECKPOINTS),
                peer_key(&step.region, &size.to_be_bytes()),
                note.as_bytes(),
            );
        }
        wb.put_cf(
            db.cf(CF_META),
            META_TREE_SIZE,
            batch.new_tree_size.to_be_bytes(),
        );
        if let Some((size, note)) = &batch.checkpoint {
            wb.put_cf(db.cf(CF_CHECKPOINTS), size.to_be_bytes(), note.as_bytes());
            wb.put_cf(db.cf(CF_META), META_LATEST_CHECKPOINT, size.to_be_bytes());
        }
        #[cfg(test)]
        if let Some(gate) = &*self.commit_gate.lock().expect("gate lock") {
            let _ = gate.arrived.send(());
            let _ = gate.permits.recv();
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        // Tests make the write fail for real: RocksDB refuses a synced write without its WAL.
        #[cfg(test)]
        options.disable_wal(self.fail_commits.load(std::sync::atomic::Ordering::SeqCst));
        if let Err(e) = db.write_opt(wb, &options) {
            let e = ctx("commit batch")(e);
            *self.write_failure.write().expect("store lock") = Some(e.to_string());
            return Err(e);
        }
        if self.write_failure.read().expect("store lock").is_some() {
            *self.write_failure.write().expect("store lock") = None;
        }
        // Only nodes that are on disk enter the cache.
        let mut cache = self.tree_cache.write().expect("tree cache lock");
        for (level, index, hash) in &batch.tree_nodes {
            cache.record(*level, *index, *hash);
        }
        Ok(())
    }

    /// The stored perfect subtrees `(level, start)` to `(level, start + count - 1)`, in index
    /// order (the hashes of a tile): from memory for the cached levels, else from one scan of
    /// the `tree` family. A node missing among them is an error.
    pub fn subtree_run(
        &self,
        level: u8,
        start: u64,
        count: usize,
    ) -> Result<Vec<Hash>, TreeReadError> {
        let mut out = Vec::with_capacity(count);
        if level >= TREE_CACHE_MIN_LEVEL {
            for index in (start..).take(count) {
                out.push(self.perfect_subtree(level, index)?);
            }
            return Ok(out);
        }
        let db = self.db();
        let iter = db.iterator_cf(
            db.cf(CF_TREE),
            rocksdb::IteratorMode::From(&tree_key(level, start), rocksdb::Direction::Forward),
        );
        for item in iter.take(count) {
            let (key, value) = item.map_err(ctx("scan tree nodes"))?;
            let index = start + out.len() as u64;
            let missing = TreeReadError::Missing { level, index };
            if key.as_ref() != tree_key(level, index) {
                return Err(missing);
            }
            out.push(value.as_ref().try_into().map_err(|_| missing)?);
        }
        if out.len() < count {
            return Err(TreeReadError::Missing {
                level,
                index: start + out.len() as u64,
            });
        }
        Ok(out)
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
        let db = self.db();
        let mut out = Vec::new();
        let start = start.max(prefix);
        let iter = db.iterator_cf(
            db.cf(CF_STATE),
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

    /// Writes (`Some`) or deletes (`None`) state records in one synced write (rebuild's repairs),
    /// which leaves the whole state in this version's record encoding.
    pub fn repair_state(&self, changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<(), StoreError> {
        let db = self.db();
        let mut wb = WriteBatch::default();
        wb.put_cf(db.cf(CF_META), META_STATE_ENCODING, STATE_RECORD_ENCODING);
        for (key, value) in changes {
            match value {
                Some(value) => wb.put_cf(db.cf(CF_STATE), key, value),
                None => wb.delete_cf(db.cf(CF_STATE), key),
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        db.write_opt(wb, &options).map_err(ctx("repair state"))
    }

    /// Low-level access for recovery tests that simulate damage.
    #[doc(hidden)]
    pub fn damage_for_tests(&self, family: &str, key: &[u8], value: Option<&[u8]>) {
        let db = self.db();
        let cf = db.cf(family);
        match value {
            Some(v) => db.put_cf(cf, key, v).expect("test write"),
            None => db.delete_cf(cf, key).expect("test delete"),
        }
        drop(db);
        if family == CF_TREE {
            self.load_tree_cache().expect("reload tree cache");
        }
    }
}

/// Other regions' mirrored logs, as the adoptions of this node's log stored them.
impl Store {
    /// Entry `index` of `region`'s log, if mirrored.
    pub fn peer_entry(
        &self,
        region: &RegionId,
        index: LogIndex,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.db();
        db.get_cf(
            db.cf(CF_PEER_ENTRIES),
            peer_key(region, &index.to_be_bytes()),
        )
        .map_err(ctx("read peer entry"))
    }

    /// Entries of `region`'s log from `from`, in order, at most `limit`.
    pub fn peer_entries(
        &self,
        region: &RegionId,
        from: LogIndex,
        limit: usize,
    ) -> Result<Vec<(LogIndex, Vec<u8>)>, StoreError> {
        let db = self.db();
        let prefix = peer_key(region, &[]);
        let start = peer_key(region, &from.to_be_bytes());
        let mut out = Vec::new();
        let iter = db.iterator_cf(
            db.cf(CF_PEER_ENTRIES),
            rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(ctx("scan peer entries"))?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            out.push((be_u64(&key[prefix.len()..]), value.to_vec()));
        }
        Ok(out)
    }

    /// The checkpoint of `region` of this size that the node adopted, as signed.
    pub fn peer_checkpoint(
        &self,
        region: &RegionId,
        size: u64,
    ) -> Result<Option<String>, StoreError> {
        let db = self.db();
        Ok(db
            .get_cf(
                db.cf(CF_PEER_CHECKPOINTS),
                peer_key(region, &size.to_be_bytes()),
            )
            .map_err(ctx("read peer checkpoint"))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The mirrored tree of `region`'s log, for its roots and proofs.
    pub fn peer_tree<'a>(&'a self, region: &'a RegionId) -> PeerTree<'a> {
        PeerTree {
            store: self,
            region,
        }
    }
}

/// The stored perfect subtrees of another region's mirrored tree.
pub struct PeerTree<'a> {
    store: &'a Store,
    region: &'a RegionId,
}

impl SubtreeSource for PeerTree<'_> {
    type Error = TreeReadError;

    fn perfect_subtree(&self, level: u8, index: u64) -> Result<Hash, TreeReadError> {
        let db = self.store.db();
        let value = db
            .get_cf(
                db.cf(CF_PEER_TREE),
                peer_key(self.region, &tree_key(level, index)),
            )
            .map_err(ctx("read peer tree"))?
            .ok_or(TreeReadError::Missing { level, index })?;
        value
            .as_slice()
            .try_into()
            .map_err(|_| TreeReadError::Missing { level, index })
    }
}

/// `<region>/` then `tail`: regions cannot hold `/`, so no region's keys run into another's.
fn peer_key(region: &RegionId, tail: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(region.as_str().len() + 1 + tail.len());
    key.extend_from_slice(region.as_str().as_bytes());
    key.push(b'/');
    key.extend_from_slice(tail);
    key
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
        if level >= TREE_CACHE_MIN_LEVEL {
            if let Some(hash) = self
                .tree_cache
                .read()
                .expect("tree cache lock")
                .get(level, index)
            {
                return Ok(hash);
            }
        }
        let db = self.db();
        let value = db
            .get_pinned_cf(db.cf(CF_TREE), tree_key(level, index))
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
        let db = self.db();
        db.get_cf(db.cf(CF_STATE), key)
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
    pub const STATE_ENCODING_KEY: &[u8] = super::META_STATE_ENCODING;
}

#[cfg(test)]
mod tests {
    use super::*;
    use vledger_tlog::merkle::{inclusion_proof, root, MemoryTree};

    /// Commits `leaves` leaf hashes through the writer's path (frontier nodes in batches).
    fn grow(
        store: &Store,
        tree: &mut MemoryTree,
        frontier: &mut vledger_tlog::merkle::Frontier,
        n: u64,
    ) {
        let mut batch = CommitBatch::default();
        for _ in 0..n {
            let leaf = vledger_tlog::merkle::leaf_hash(&tree.size().to_be_bytes());
            tree.append_leaf_hash(leaf);
            batch.tree_nodes.extend(frontier.append(leaf));
        }
        batch.new_tree_size = frontier.size();
        store.commit(&batch).unwrap();
    }

    #[test]
    fn upper_tree_levels_are_served_from_memory_and_agree_with_rocksdb() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = MemoryTree::new();
        let mut frontier = vledger_tlog::merkle::Frontier::empty();
        let leaves = (1u64 << (TREE_CACHE_MIN_LEVEL + 6)) + 37;
        {
            let store = Store::open(dir.path()).unwrap();
            for chunk in [1, 100, leaves - 101] {
                grow(&store, &mut tree, &mut frontier, chunk);
            }
            // Every node of the cached levels is in memory, kept up by commits.
            assert_eq!(store.tree_cache_bytes(), cached_nodes(leaves) * 32);
            check_against(&store, &tree);
        }
        // Loaded again at open.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.tree_cache_bytes(), cached_nodes(leaves) * 32);
        check_against(&store, &tree);
        // The cache is what serves those levels: a node removed from RocksDB alone is still
        // served from memory until the cache is reloaded.
        let key = tree_key(TREE_CACHE_MIN_LEVEL, 3);
        let db = store.db();
        db.delete_cf(db.cf(CF_TREE), key).unwrap();
        drop(db);
        assert_eq!(
            store.perfect_subtree(TREE_CACHE_MIN_LEVEL, 3).unwrap(),
            tree.perfect_subtree(TREE_CACHE_MIN_LEVEL, 3).unwrap()
        );
        store.load_tree_cache().unwrap();
        assert!(store.perfect_subtree(TREE_CACHE_MIN_LEVEL, 3).is_err());
        assert!(store.perfect_subtree(TREE_CACHE_MIN_LEVEL, 2).is_ok());
    }

    fn cached_nodes(leaves: u64) -> usize {
        (TREE_CACHE_MIN_LEVEL..64)
            .map(|level| (leaves >> level) as usize)
            .sum()
    }

    fn check_against(store: &Store, tree: &MemoryTree) {
        let size = tree.size();
        assert_eq!(root(store, size).unwrap(), tree.root());
        for index in [0, 1, 15, 16, 127, 128, size - 1] {
            assert_eq!(
                inclusion_proof(store, index, size).unwrap(),
                inclusion_proof(tree, index, size).unwrap()
            );
        }
        for level in 0..12 {
            for index in 0..(size >> level) {
                assert_eq!(
                    store.perfect_subtree(level, index).unwrap(),
                    tree.perfect_subtree(level, index).unwrap(),
                    "node ({level}, {index})"
                );
            }
        }
    }
}
