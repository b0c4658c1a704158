//! The index as a projection of the log: built from the state's listings, then kept up with
//! every committed batch by one thread that reads the new entries, finds the listings their
//! events touched (and, for an adoption, the listings the adopted region's new entries
//! touched), and writes their current records. Each tantivy commit records, in its payload,
//! the log size it reflects and each adopted region's size, so a restarted node resumes from
//! what was committed (updates are idempotent: a listing is written again whole).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use vledger_domain::catalog::{load_listing, ListingRecord, ListingStatus, LISTING_PREFIX};
use vledger_domain::federation::{adopted_regions, RegionRecords};
use vledger_domain::types::{RecordId, RegionId};
use vledger_domain::StateRead;
use vledger_node::node::Node;
use vledger_node::store::Store;
use vledger_wire::entry::Entry;

use crate::schema::{document_key, Fields, SCHEMA_VERSION};
use crate::tokenizer::{CatalogTokenizer, CATALOG_TOKENIZER};

/// Most entries of this log read for one index commit while catching up.
pub const CATCH_UP_ENTRIES: u64 = 20_000;
/// The indexing thread's memory budget (tantivy's arena, split among its threads).
const WRITER_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// How long the indexer waits for a commit before it looks at the log again by itself.
const IDLE_POLL: Duration = Duration::from_millis(500);
/// The shortest time between the starts of two rounds of indexing: under a steady ingest, each
/// index commit then takes the entries of a few hundred milliseconds rather than of one batch,
/// making fewer segments to flush and merge (the lag stays well under a second).
const MIN_ROUND: Duration = Duration::from_millis(250);
/// How many records one scan of the state reads at a time.
const SCAN_CHUNK: usize = 1024;

/// Why the index could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index directory: {0}")]
    Directory(String),
    #[error("store: {0}")]
    Store(String),
    #[error("entry {index} does not decode: {reason}")]
    Entry { index: u64, reason: String },
}

impl From<vledger_domain::StateError> for SearchError {
    fn from(e: vledger_domain::StateError) -> Self {
        SearchError::Store(e.to_string())
    }
}

impl From<vledger_node::store::StoreError> for SearchError {
    fn from(e: vledger_node::store::StoreError) -> Self {
        SearchError::Store(e.to_string())
    }
}

pub use vledger_wire::http::CatalogFreshness as Freshness;

/// The payload of every commit of the index.
#[derive(Serialize, Deserialize)]
struct Payload {
    schema: u32,
    #[serde(flatten)]
    freshness: Freshness,
}

/// The catalog's search index, open and followed.
pub struct CatalogIndex {
    pub(crate) reader: IndexReader,
    pub(crate) fields: Fields,
    pub(crate) own: RegionId,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    /// What the reader's searcher reflects, with the condition tests and benchmarks wait on.
    freshness: (Mutex<Freshness>, Condvar),
    /// Set when the index was created empty and must first be built from the state.
    needs_build: Mutex<bool>,
    last_error: Mutex<Option<String>>,
}

impl CatalogIndex {
    /// Opens the index in `dir` (or in memory when `None`) for a node of region `own`, whose
    /// store holds `log_size` entries. An index of another schema version, one that reflects
    /// more than the log holds (a store replaced), or one that does not open is dropped and
    /// built again.
    pub fn open(own: RegionId, dir: Option<&Path>, log_size: u64) -> Result<Self, SearchError> {
        let (schema, fields) = Fields::schema();
        let (index, committed) = match dir {
            None => (Index::create_in_ram(schema), None),
            Some(dir) => match open_existing(dir, log_size) {
                Some(found) => found,
                None => {
                    if dir.exists() {
                        std::fs::remove_dir_all(dir).map_err(|e| {
                            SearchError::Directory(format!("cannot remove {}: {e}", dir.display()))
                        })?;
                    }
                    std::fs::create_dir_all(dir).map_err(|e| {
                        SearchError::Directory(format!("cannot create {}: {e}", dir.display()))
                    })?;
                    let directory = MmapDirectory::open(dir)
                        .map_err(|e| SearchError::Directory(e.to_string()))?;
                    (Index::create(directory, schema, Default::default())?, None)
                }
            },
        };
        index
            .tokenizers()
            .register(CATALOG_TOKENIZER, CatalogTokenizer::default());
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY_BYTES)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let needs_build = committed.is_none();
        Ok(Self {
            reader,
            fields,
            own,
            writer: Mutex::new(writer),
            freshness: (Mutex::new(committed.unwrap_or_default()), Condvar::new()),
            needs_build: Mutex::new(needs_build),
            last_error: Mutex::new(None),
        })
    }

    /// Opens the index for `node` and starts the thread that keeps it up with the log.
    pub fn start(node: &Arc<Node>, dir: Option<PathBuf>) -> Result<Arc<Self>, SearchError> {
        let index = Arc::new(Self::open(
            node.region().clone(),
            dir.as_deref(),
            node.tree_size(),
        )?);
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        node.published().on_commit(Box::new(move |_| {
            let _ = wake.try_send(());
        }));
        let weak_node = Arc::downgrade(node);
        let weak_index = Arc::downgrade(&index);
        std::thread::Builder::new()
            .name("vledger-catalog-index".into())
            .spawn(move || follow(weak_node, weak_index, woken))
            .map_err(|e| SearchError::Directory(format!("cannot start the indexer: {e}")))?;
        Ok(index)
    }

    /// What the index reflects now.
    pub fn freshness(&self) -> Freshness {
        self.freshness.0.lock().expect("freshness lock").clone()
    }

    /// The last indexing failure, if the latest attempt failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("error lock").clone()
    }

    /// Waits until the index reflects at least `log_size` entries of this log, or `timeout`.
    pub fn wait_for(&self, log_size: u64, timeout: Duration) -> bool {
        let (lock, changed) = &self.freshness;
        let guard = lock.lock().expect("freshness lock");
        let (guard, _) = changed
            .wait_timeout_while(guard, timeout, |f| f.log_size < log_size)
            .expect("freshness lock");
        guard.log_size >= log_size
    }

    /// Brings the index up to `store`'s committed log: builds it from the state first if it
    /// is new, then indexes the entries it has not seen, a commit per
    /// [`CATCH_UP_ENTRIES`].
    pub fn catch_up(&self, store: &Store) -> Result<(), SearchError> {
        let target = store.tree_size()?.unwrap_or(0);
        let mut needs_build = self.needs_build.lock().expect("build lock");
        if *needs_build {
            self.build_from_state(store, target)?;
            *needs_build = false;
        }
        drop(needs_build);
        let mut freshness = self.freshness();
        while freshness.log_size < target {
            let end = target.min(freshness.log_size + CATCH_UP_ENTRIES);
            let mut touched = BTreeSet::new();
            for (index, bytes) in store.entries(freshness.log_size, end)? {
                let entry = Entry::decode(&bytes).map_err(|e| SearchError::Entry {
                    index,
                    reason: e.to_string(),
                })?;
                for touch in touches(index, &entry.events)? {
                    match touch {
                        Touch::Listing(id) => {
                            touched.insert((self.own.clone(), id));
                        }
                        Touch::Adopted { region, size } => {
                            let from = freshness.regions.get(&region).copied().unwrap_or(0);
                            touched.extend(
                                peer_listings(store, &region, from, size)?
                                    .into_iter()
                                    .map(|id| (region.clone(), id)),
                            );
                            freshness.regions.insert(region, size.max(from));
                        }
                    }
                }
            }
            freshness.log_size = end;
            let writer = self.writer.lock().expect("writer lock");
            for (region, id) in &touched {
                let records = RegionRecords::new(store, &self.own, region);
                let listing = load_listing(&records, id)?;
                self.write_listing(&writer, region, id, listing.as_ref())?;
            }
            drop(writer);
            self.commit(&freshness)?;
        }
        Ok(())
    }

    /// Builds the index from the listings the state holds now (this region's and every
    /// adopted region's), recorded as reflecting `log_size` entries and the adopted sizes.
    fn build_from_state(&self, store: &Store, log_size: u64) -> Result<(), SearchError> {
        let mut freshness = Freshness {
            log_size,
            regions: BTreeMap::new(),
        };
        let mut regions = vec![self.own.clone()];
        for adopted in adopted_regions(store)? {
            freshness
                .regions
                .insert(adopted.region.clone(), adopted.size);
            regions.push(adopted.region);
        }
        let writer = self.writer.lock().expect("writer lock");
        writer.delete_all_documents()?;
        for region in &regions {
            let records = RegionRecords::new(store, &self.own, region);
            let mut start = LISTING_PREFIX.to_vec();
            loop {
                let rows = records.scan_prefix_from(LISTING_PREFIX, &start, SCAN_CHUNK)?;
                for (key, value) in &rows {
                    let listing: ListingRecord = vledger_domain::decode_record(key, value)?;
                    if listing.status == ListingStatus::Active {
                        writer.add_document(self.fields.document(region, &listing))?;
                    }
                }
                match rows.last() {
                    Some((key, _)) if rows.len() == SCAN_CHUNK => {
                        start = key.clone();
                        start.push(0);
                    }
                    _ => break,
                }
            }
        }
        drop(writer);
        self.commit(&freshness)
    }

    /// Writes a listing's current record: its document replaced, or removed when it is
    /// withdrawn or missing.
    fn write_listing(
        &self,
        writer: &IndexWriter<TantivyDocument>,
        region: &RegionId,
        id: &RecordId,
        listing: Option<&ListingRecord>,
    ) -> Result<(), SearchError> {
        let key = document_key(region, id);
        writer.delete_term(Term::from_field_text(self.fields.key, &key));
        if let Some(listing) = listing.filter(|l| l.status == ListingStatus::Active) {
            writer.add_document(self.fields.document(region, listing))?;
        }
        Ok(())
    }

    /// Commits what was written with `freshness` as its payload, then serves it.
    fn commit(&self, freshness: &Freshness) -> Result<(), SearchError> {
        let payload = serde_json::to_string(&Payload {
            schema: SCHEMA_VERSION,
            freshness: freshness.clone(),
        })
        .expect("the payload serializes");
        let mut writer = self.writer.lock().expect("writer lock");
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
        drop(writer);
        self.reader.reload()?;
        let (lock, changed) = &self.freshness;
        *lock.lock().expect("freshness lock") = freshness.clone();
        changed.notify_all();
        Ok(())
    }
}

/// The index committed in `dir`, if it opens, is of this schema version and reflects no more
/// than the `log_size` entries the store holds.
fn open_existing(dir: &Path, log_size: u64) -> Option<(Index, Option<Freshness>)> {
    if !dir.join("meta.json").exists() {
        return None;
    }
    let index = Index::open_in_dir(dir)
        .map_err(|e| tracing::warn!(error = %e, "the search index does not open: rebuilding it"))
        .ok()?;
    let metas = index.load_metas().ok()?;
    let payload: Payload = serde_json::from_str(metas.payload.as_deref()?).ok()?;
    if payload.schema != SCHEMA_VERSION || payload.freshness.log_size > log_size {
        tracing::warn!(
            schema = payload.schema,
            indexed = payload.freshness.log_size,
            log_size,
            "the search index is of another schema or ahead of the log: rebuilding it"
        );
        return None;
    }
    Some((index, Some(payload.freshness)))
}

/// The thread that keeps the index up with the log until the node or the index is dropped.
fn follow(node: Weak<Node>, index: Weak<CatalogIndex>, woken: std::sync::mpsc::Receiver<()>) {
    let mut backoff = IDLE_POLL;
    loop {
        let (Some(node), Some(index)) = (node.upgrade(), index.upgrade()) else {
            return;
        };
        let round = std::time::Instant::now();
        match index.catch_up(node.store()) {
            Ok(()) => {
                *index.last_error.lock().expect("error lock") = None;
                backoff = IDLE_POLL;
            }
            Err(e) => {
                tracing::error!(error = %e, "indexing the catalog failed; trying again");
                *index.last_error.lock().expect("error lock") = Some(e.to_string());
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
        drop((node, index));
        if let Some(rest) = MIN_ROUND.checked_sub(round.elapsed()) {
            std::thread::sleep(rest);
        }
        match woken.recv_timeout(backoff) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// What an entry's events change of the catalog.
enum Touch {
    Listing(RecordId),
    Adopted { region: RegionId, size: u64 },
}

/// The fields of an event the index needs; the others are skipped unread.
#[derive(Deserialize)]
struct EventFields {
    #[serde(rename = "type")]
    kind: String,
    listing_id: Option<RecordId>,
    listing: Option<ListingIdOnly>,
    update: Option<ListingIdOnly>,
    region: Option<RegionId>,
    size: Option<u64>,
}

#[derive(Deserialize)]
struct ListingIdOnly {
    listing_id: RecordId,
}

fn touches(index: u64, events: &[u8]) -> Result<Vec<Touch>, SearchError> {
    let events: Vec<EventFields> =
        serde_json::from_slice(events).map_err(|e| SearchError::Entry {
            index,
            reason: format!("events: {e}"),
        })?;
    Ok(events
        .into_iter()
        .filter_map(|event| match event.kind.as_str() {
            "catalog.listed" => event.listing.map(|l| Touch::Listing(l.listing_id)),
            "catalog.updated" => event.update.map(|u| Touch::Listing(u.listing_id)),
            "catalog.withdrawn" => event.listing_id.map(Touch::Listing),
            "federation.adopted" => Some(Touch::Adopted {
                region: event.region?,
                size: event.size?,
            }),
            _ => None,
        })
        .collect())
}

/// The listings that `region`'s entries `from..to` (mirrored in `store`) touched.
fn peer_listings(
    store: &Store,
    region: &RegionId,
    from: u64,
    to: u64,
) -> Result<BTreeSet<RecordId>, SearchError> {
    let mut out = BTreeSet::new();
    let mut next = from;
    while next < to {
        let limit = (to - next).min(CATCH_UP_ENTRIES) as usize;
        let entries = store.peer_entries(region, next, limit)?;
        if entries.is_empty() {
            return Err(SearchError::Store(format!(
                "entry {next} of region {region} is not mirrored"
            )));
        }
        for (index, bytes) in entries {
            if index >= to {
                break;
            }
            let entry = Entry::decode(&bytes).map_err(|e| SearchError::Entry {
                index,
                reason: e.to_string(),
            })?;
            for touch in touches(index, &entry.events)? {
                if let Touch::Listing(id) = touch {
                    out.insert(id);
                }
            }
            next = index + 1;
        }
    }
    Ok(out)
}

/// What [`rebuild_in`] built.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    /// Active listings indexed.
    pub listings: u64,
    pub freshness: Freshness,
}

/// Builds the index of `store` afresh beside `dir`, then puts it in `dir`'s place: for a
/// stopped node (`vledger reindex`).
pub fn rebuild_in(dir: &Path, store: &Store) -> Result<RebuildReport, SearchError> {
    let own = founding_region(store)?;
    let mut building = dir.as_os_str().to_owned();
    building.push(".building");
    let building = PathBuf::from(building);
    let remove = |path: &Path| {
        if path.exists() {
            std::fs::remove_dir_all(path).map_err(|e| {
                SearchError::Directory(format!("cannot remove {}: {e}", path.display()))
            })?;
        }
        Ok::<_, SearchError>(())
    };
    remove(&building)?;
    let index = CatalogIndex::open(own, Some(&building), 0)?;
    index.catch_up(store)?;
    let report = RebuildReport {
        listings: index.reader.searcher().num_docs(),
        freshness: index.freshness(),
    };
    drop(index);
    remove(dir)?;
    std::fs::rename(&building, dir).map_err(|e| {
        SearchError::Directory(format!(
            "cannot move {} to {}: {e}",
            building.display(),
            dir.display()
        ))
    })?;
    Ok(report)
}

/// The region a store's log founded (its first entry's `region.founded`).
fn founding_region(store: &Store) -> Result<RegionId, SearchError> {
    #[derive(Deserialize)]
    struct Founded {
        #[serde(rename = "type")]
        kind: String,
        region: Option<RegionId>,
    }
    let bytes = store
        .entry(0)?
        .ok_or_else(|| SearchError::Store("the store holds no log".into()))?;
    let entry = Entry::decode(&bytes).map_err(|e| SearchError::Entry {
        index: 0,
        reason: e.to_string(),
    })?;
    let events: Vec<Founded> =
        serde_json::from_slice(&entry.events).map_err(|e| SearchError::Entry {
            index: 0,
            reason: e.to_string(),
        })?;
    events
        .into_iter()
        .find(|e| e.kind == "region.founded")
        .and_then(|e| e.region)
        .ok_or_else(|| SearchError::Store("the log's first entry founds no region".into()))
}
