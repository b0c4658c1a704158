//! The rebuild of a node's state from its log: every entry replayed (or its events folded) onto
//! a scratch state on disk, then compared with the stored state record by record and, on
//! request, repaired in one synced write.

use vledger_domain::federation::VIEW_PREFIX;
use vledger_domain::{StateError, StateRead};
use vledger_node::store::{Store, StoreError};

use crate::replay::{EventFolder, FoldInput, PrecheckedEntry, ReplayError, Replayer};
use crate::scratch::ScratchState;

/// Why a rebuild stopped.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// An entry of the log does not replay (or its events do not fold).
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The node's store could not be read (entries from `index` on) or written.
    #[error("the node's store, at entry {index}: {source}")]
    Store {
        index: u64,
        #[source]
        source: StoreError,
    },
    /// The scratch state the log is replayed onto failed.
    #[error("rebuilt state: {0}")]
    Scratch(#[source] StateError),
    /// The log ends before the stored tree size.
    #[error("entry {replayed}: missing; the tree size is {tree_size}")]
    Missing { replayed: u64, tree_size: u64 },
    #[error("cannot start the reading thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The outcome of rebuilding a store's state from its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub entries: u64,
    pub records: usize,
    /// Keys whose stored value differs from the replayed one (missing on either side included).
    pub differing_keys: Vec<Vec<u8>>,
}

/// How [`rebuild`] derives the state from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildMode {
    /// Replay every entry: check its envelope's signature, decide its command again with the
    /// state machine and require exactly the recorded events.
    Replay,
    /// Fold each entry's recorded events into the state with `evolve` only: the projections
    /// are rebuilt from the event log without deciding any command again. Only the genesis
    /// entry's signature is checked (it names the region and the node key).
    Events,
}

/// Records compared at a time when [`rebuild`] compares the rebuilt state with the stored one.
const REBUILD_COMPARE_PAGE: usize = 10_000;
/// Entries [`rebuild`] reads from the store at a time.
const REBUILD_READ_PAGE: u64 = 1_000;
/// Pages read and prepared ahead of the replay.
const REBUILD_PAGES_AHEAD: usize = 4;

/// Feeds entries `0..size` of `store`, in order, to `apply`, each first turned by `prepare` on a
/// thread of its own (reading and decoding run beside the state machine, on another core).
fn read_ahead<T: Send>(
    store: &Store,
    size: u64,
    prepare: impl Fn(Vec<u8>) -> T + Send,
    mut apply: impl FnMut(T) -> Result<(), ReplayError>,
) -> Result<(), RebuildError> {
    std::thread::scope(|scope| {
        let (pages, pages_read) = std::sync::mpsc::sync_channel(REBUILD_PAGES_AHEAD);
        std::thread::Builder::new()
            .name("rebuild-read".into())
            .spawn_scoped(scope, move || {
                let mut start = 0;
                while start < size {
                    let end = size.min(start + REBUILD_READ_PAGE);
                    let page = store.entries(start, end).map(|entries| {
                        entries
                            .into_iter()
                            .map(|(_, bytes)| prepare(bytes))
                            .collect::<Vec<T>>()
                    });
                    let failed = page.is_err();
                    if pages.send((start, page)).is_err() || failed {
                        return;
                    }
                    start = end;
                }
            })
            .map_err(RebuildError::Thread)?;
        for (start, page) in pages_read {
            let page = page.map_err(|source| RebuildError::Store {
                index: start,
                source,
            })?;
            for item in page {
                apply(item)?;
            }
        }
        Ok(())
    })
}

/// Rebuilds a store's whole state from its log onto a scratch state in `scratch_dir` (a
/// directory that must not hold a database; memory stays bounded however long the log is) and
/// compares it with the stored state, record by record in key order; with `write`, writes the
/// rebuilt value of every differing record (and deletes stored records the rebuild does not
/// have) in one synced batch. The node must not be running.
pub fn rebuild(
    store: &Store,
    mode: RebuildMode,
    write: bool,
    scratch_dir: &std::path::Path,
) -> Result<RebuildReport, RebuildError> {
    let storage = |source: StoreError| RebuildError::Store { index: 0, source };
    let scratch = RebuildError::Scratch;
    let size = store.tree_size().map_err(storage)?.unwrap_or(0);
    let state = ScratchState::create(scratch_dir).map_err(scratch)?;
    let (replayed_count, mut rebuilt) = match mode {
        RebuildMode::Replay => {
            let mut replayer = Replayer::new(state);
            read_ahead(
                store,
                size,
                |bytes| PrecheckedEntry::check(&bytes),
                |entry| replayer.apply_prechecked(entry),
            )?;
            (replayer.size(), replayer.into_state())
        }
        RebuildMode::Events => {
            let mut folder = EventFolder::new(state);
            read_ahead(
                store,
                size,
                |bytes| FoldInput::decode(&bytes),
                |input| folder.fold_decoded(input),
            )?;
            (folder.next_index, folder.state)
        }
    };
    if replayed_count != size {
        return Err(RebuildError::Missing {
            replayed: replayed_count,
            tree_size: size,
        });
    }
    rebuilt.flush().map_err(scratch)?;

    // Both sides in key order, a page at a time.
    let mut repairs: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut records = 0usize;
    let page_after = |last: &[u8]| {
        let mut next = last.to_vec();
        next.push(0);
        next
    };
    let (mut rebuilt_from, mut stored_from) = (Some(Vec::new()), Some(Vec::new()));
    let mut rebuilt_page = std::collections::VecDeque::new();
    let mut stored_page = std::collections::VecDeque::new();
    loop {
        if rebuilt_page.is_empty() {
            if let Some(from) = rebuilt_from.take() {
                let page = rebuilt
                    .scan_prefix_from(b"", &from, REBUILD_COMPARE_PAGE)
                    .map_err(scratch)?;
                if page.len() == REBUILD_COMPARE_PAGE {
                    rebuilt_from = page.last().map(|(key, _)| page_after(key));
                }
                rebuilt_page.extend(page);
            }
        }
        if stored_page.is_empty() {
            if let Some(from) = stored_from.take() {
                let page = store
                    .scan_state_from(b"", &from, REBUILD_COMPARE_PAGE)
                    .map_err(storage)?;
                if page.len() == REBUILD_COMPARE_PAGE {
                    stored_from = page.last().map(|(key, _)| page_after(key));
                }
                // Other regions' records come from their logs, not from this one: a rebuild
                // from this log leaves them as they are.
                stored_page.extend(
                    page.into_iter()
                        .filter(|(key, _)| !key.starts_with(VIEW_PREFIX)),
                );
            }
        }
        let order = match (rebuilt_page.front(), stored_page.front()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        match order {
            std::cmp::Ordering::Less => {
                let (key, value) = rebuilt_page.pop_front().expect("compared");
                records += 1;
                repairs.push((key, Some(value)));
            }
            std::cmp::Ordering::Greater => {
                let (key, _) = stored_page.pop_front().expect("compared");
                repairs.push((key, None));
            }
            std::cmp::Ordering::Equal => {
                let (key, value) = rebuilt_page.pop_front().expect("compared");
                let (_, stored) = stored_page.pop_front().expect("compared");
                records += 1;
                if value != stored {
                    repairs.push((key, Some(value)));
                }
            }
        }
    }
    if write {
        store.repair_state(&repairs).map_err(storage)?;
    }
    Ok(RebuildReport {
        entries: size,
        records,
        differing_keys: repairs.into_iter().map(|(key, _)| key).collect(),
    })
}
