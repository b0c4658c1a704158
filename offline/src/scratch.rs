//! A replay's state on disk: the records and the used (signer ‖ nonce) pairs of a log being
//! replayed, in a RocksDB of their own, so that verifying a log of any length takes bounded
//! memory. Changes are buffered in memory for a number of entries, then written without the
//! write-ahead log (the directory is scratch: a crash loses nothing that cannot be replayed
//! again). [`ScratchState::save`] makes a consistent copy that a later run resumes from.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options, WriteBatch, DB};

use crate::replay::{ReplayState, StateDigest};
use vledger_domain::{merged_scan, ScannedRecords, StateError, StateRead, StateWrite};
use vledger_node::record_cache::{CacheBase, RecordCache};
use vledger_tlog::merkle::Hash;

const CF_STATE: &str = "state";
const CF_NONCES: &str = "nonces";

/// Entries whose changes are buffered before they are written to RocksDB.
const FLUSH_EVERY_ENTRIES: usize = 4096;
/// ... or this many bytes of buffered changes, whichever comes first.
const FLUSH_EVERY_BYTES: usize = 16 << 20;
/// RocksDB's memory: the block cache, and each family's memtable.
const BLOCK_CACHE_BYTES: usize = 32 << 20;
const WRITE_BUFFER_BYTES: usize = 16 << 20;
/// Level-0 files that start a compaction into level 1 (RocksDB's default is 4). A replay reads
/// few records back from disk, so fewer, larger compactions cost less than the extra level-0
/// files cost its reads: on a 1M-entry archive 2% less CPU and 2.7% less time (three pairs of
/// runs of `vledger verify`), for a few MiB more of index and filter blocks.
const LEVEL0_COMPACTION_TRIGGER: i32 = 8;

/// Compression of each LSM level, level 0 first.
const SCRATCH_COMPRESSION_PER_LEVEL: [rocksdb::DBCompressionType; 7] = {
    use rocksdb::DBCompressionType::{Lz4, None};
    [None, None, None, Lz4, Lz4, Lz4, Lz4]
};

fn storage(what: &str) -> impl Fn(rocksdb::Error) -> StateError + '_ {
    move |e| StateError::Store(format!("replay state: {what}: {e}"))
}

/// Replayed state in a scratch RocksDB directory. See the module documentation.
pub struct ScratchState {
    db: Database,
    /// Records written out recently or read from the database (the region, the parties and
    /// programs most entries read).
    cache: RefCell<RecordCache>,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pending_nonces: HashSet<Vec<u8>>,
    pending_bytes: usize,
    pending_entries: usize,
}

impl ScratchState {
    /// Creates an empty state in `dir`, which must not hold a database yet.
    pub fn create(dir: &Path) -> Result<Self, StateError> {
        if dir.join("CURRENT").exists() {
            return Err(StateError::Store(format!(
                "{} already holds a database",
                dir.display()
            )));
        }
        Self::open(dir)
    }

    /// Opens (or creates) the state in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        let family = |name: &str| {
            let mut options = Options::default();
            options.set_block_based_table_factory(&table);
            options.set_write_buffer_size(WRITE_BUFFER_BYTES);
            options.set_level_zero_file_num_compaction_trigger(LEVEL0_COMPACTION_TRIGGER);
            options.set_max_write_buffer_number(2);
            // Most records are rewritten by compaction on their way down the levels: only the
            // levels where they settle are compressed, so that compaction's LZ4 work is paid
            // once rather than at every level.
            options.set_compression_per_level(&SCRATCH_COMPRESSION_PER_LEVEL);
            // A new nonce is looked up and found absent: Bloom filters answer without a search.
            options.set_memtable_prefix_bloom_ratio(0.02);
            options.set_memtable_whole_key_filtering(true);
            ColumnFamilyDescriptor::new(name, options)
        };
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_max_open_files(256);
        let db = DB::open_cf_descriptors(&options, dir, [family(CF_STATE), family(CF_NONCES)])
            .map_err(storage("open"))?;
        Ok(Self {
            db: Database(db),
            cache: RefCell::default(),
            pending: BTreeMap::new(),
            pending_nonces: HashSet::new(),
            pending_bytes: 0,
            pending_entries: 0,
        })
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf(name)
    }

    /// Writes the buffered changes to RocksDB.
    pub fn flush(&mut self) -> Result<(), StateError> {
        if self.pending.is_empty() && self.pending_nonces.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        let pending = std::mem::take(&mut self.pending);
        for (key, value) in &pending {
            match value {
                Some(value) => batch.put_cf(self.cf(CF_STATE), key, value),
                None => batch.delete_cf(self.cf(CF_STATE), key),
            }
        }
        for key in std::mem::take(&mut self.pending_nonces) {
            batch.put_cf(self.cf(CF_NONCES), key, []);
        }
        let mut options = rocksdb::WriteOptions::default();
        options.disable_wal(true);
        self.db
            .0
            .write_opt(batch, &options)
            .map_err(storage("write"))?;
        self.cache.borrow_mut().committed(pending);
        self.pending_bytes = 0;
        self.pending_entries = 0;
        Ok(())
    }

    /// Every record in key order, `visit`ed one at a time (the buffer is written out first).
    pub fn for_each_record(
        &mut self,
        mut visit: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), StateError> {
        self.flush()?;
        for item in self
            .db
            .0
            .iterator_cf(self.cf(CF_STATE), rocksdb::IteratorMode::Start)
        {
            let (key, value) = item.map_err(storage("scan"))?;
            visit(&key, &value);
        }
        Ok(())
    }

    /// The state digest (docs/FORMAT.md, "State digest") of the records.
    pub fn digest(&mut self) -> Result<Hash, StateError> {
        let mut digest = StateDigest::default();
        self.for_each_record(|key, value| digest.update(key, value))?;
        Ok(digest.finish())
    }

    /// The number of records.
    pub fn record_count(&mut self) -> Result<u64, StateError> {
        let mut count = 0;
        self.for_each_record(|_, _| count += 1)?;
        Ok(count)
    }

    /// Writes a consistent copy of the state to `dir` (which must not exist), for a later
    /// [`ScratchState::resume`].
    pub fn save(&mut self, dir: &Path) -> Result<(), StateError> {
        self.flush()?;
        for name in [CF_STATE, CF_NONCES] {
            self.db
                .0
                .flush_cf(self.cf(name))
                .map_err(storage("flush"))?;
        }
        rocksdb::checkpoint::Checkpoint::new(&self.db.0)
            .and_then(|checkpoint| checkpoint.create_checkpoint(dir))
            .map_err(storage("save"))
    }

    /// Opens a working copy, in `work` (which must not exist), of a state saved in `saved`; the
    /// saved copy is never changed. Table files are immutable and are linked (or copied where
    /// links are impossible); the small files RocksDB rewrites are copied.
    pub fn resume(saved: &Path, work: &Path) -> Result<Self, StateError> {
        let io =
            |what: &str, e: std::io::Error| StateError::Store(format!("replay state: {what}: {e}"));
        std::fs::create_dir(work).map_err(|e| io("create the working copy", e))?;
        for item in std::fs::read_dir(saved).map_err(|e| io("read the saved state", e))? {
            let path = item.map_err(|e| io("read the saved state", e))?.path();
            let Some(name) = path.file_name() else {
                continue;
            };
            let target = work.join(name);
            let is_table = path.extension().is_some_and(|ext| ext == "sst");
            if !(is_table && std::fs::hard_link(&path, &target).is_ok()) {
                std::fs::copy(&path, &target).map_err(|e| io("copy the saved state", e))?;
            }
        }
        Self::open(work)
    }
}

/// The scratch RocksDB database.
struct Database(DB);

impl Database {
    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.0.cf_handle(name).expect("column family made at open")
    }
}

impl CacheBase for Database {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.0
            .get_cf(self.cf(CF_STATE), key)
            .map_err(storage("read"))
    }
}

impl StateRead for ScratchState {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.pending.get(key) {
            Some(change) => Ok(change.clone()),
            None => RecordCache::get_or_read(&self.cache, &self.db, key),
        }
    }

    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<ScannedRecords, StateError> {
        merged_scan(&self.pending, prefix, start, limit, |from, limit| {
            let mut out = Vec::new();
            let iter = self.db.0.iterator_cf(
                self.cf(CF_STATE),
                rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward),
            );
            for item in iter.take(limit) {
                let (key, value) = item.map_err(storage("scan"))?;
                if !key.starts_with(prefix) {
                    break;
                }
                out.push((key.into_vec(), value.into_vec()));
            }
            Ok(out)
        })
    }
}

impl StateWrite for ScratchState {
    fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.pending_bytes += key.len() + value.len();
        self.pending.insert(key, Some(value));
    }
    fn delete(&mut self, key: Vec<u8>) {
        self.pending_bytes += key.len();
        self.pending.insert(key, None);
    }
}

impl ReplayState for ScratchState {
    fn nonce_used(&self, key: &[u8]) -> Result<bool, StateError> {
        if self.pending_nonces.contains(key) {
            return Ok(true);
        }
        Ok(self
            .db
            .0
            .get_pinned_cf(self.cf(CF_NONCES), key)
            .map_err(storage("read a nonce"))?
            .is_some())
    }

    fn record_nonce(&mut self, key: Vec<u8>) {
        self.pending_bytes += key.len();
        self.pending_nonces.insert(key);
    }

    fn entry_applied(&mut self) -> Result<(), StateError> {
        self.pending_entries += 1;
        if self.pending_entries >= FLUSH_EVERY_ENTRIES || self.pending_bytes >= FLUSH_EVERY_BYTES {
            self.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vledger_domain::MemoryState;

    fn sample(n: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                (
                    format!("rec/{:05}", (i * 7919) % n).into_bytes(),
                    format!("value {i}").into_bytes(),
                )
            })
            .collect()
    }

    /// Reads, scans and the digest agree with the in-memory state, across flushes, deletes and
    /// a save and resume.
    #[test]
    fn behaves_like_memory_across_flushes_and_a_resume() {
        let dir = tempfile::tempdir().unwrap();
        let mut disk = ScratchState::create(&dir.path().join("a")).unwrap();
        let mut memory = MemoryState::default();
        for (i, (key, value)) in sample(10_000).into_iter().enumerate() {
            disk.put_raw(key.clone(), value.clone());
            memory.put_raw(key, value);
            if i % 3 == 0 {
                let victim = format!("rec/{:05}", i / 2).into_bytes();
                disk.delete(victim.clone());
                memory.delete(victim);
            }
            if i % 1000 == 999 {
                disk.flush().unwrap();
            }
        }
        let check = |disk: &ScratchState| {
            for start in ["rec/", "rec/00500", "rec/09990"] {
                assert_eq!(
                    disk.scan_prefix_from(b"rec/", start.as_bytes(), 700)
                        .unwrap(),
                    memory
                        .scan_prefix_from(b"rec/", start.as_bytes(), 700)
                        .unwrap()
                );
            }
            assert_eq!(
                disk.get_raw(b"rec/00042").unwrap(),
                memory.get_raw(b"rec/00042").unwrap()
            );
        };
        check(&disk);
        let want = crate::replay::state_digest(
            memory
                .records
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice())),
        );
        assert_eq!(disk.digest().unwrap(), want);

        disk.record_nonce(b"signer-nonce".to_vec());
        disk.save(&dir.path().join("saved")).unwrap();
        disk.put_raw(b"rec/after".to_vec(), b"x".to_vec());
        disk.flush().unwrap();

        let mut resumed =
            ScratchState::resume(&dir.path().join("saved"), &dir.path().join("b")).unwrap();
        check(&resumed);
        assert!(resumed.nonce_used(b"signer-nonce").unwrap());
        assert!(!resumed.nonce_used(b"signer-other").unwrap());
        assert_eq!(resumed.get_raw(b"rec/after").unwrap(), None);
        assert_eq!(resumed.digest().unwrap(), want);
        // The working copy's writes do not reach the saved state.
        resumed.put_raw(b"rec/later".to_vec(), b"y".to_vec());
        resumed.flush().unwrap();
        drop(resumed);
        let mut again =
            ScratchState::resume(&dir.path().join("saved"), &dir.path().join("c")).unwrap();
        assert_eq!(again.digest().unwrap(), want);
    }

    #[test]
    fn create_refuses_an_existing_database() {
        let dir = tempfile::tempdir().unwrap();
        drop(ScratchState::create(dir.path()).unwrap());
        assert!(ScratchState::create(dir.path()).is_err());
    }
}
