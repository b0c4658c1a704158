//! The single writer: takes verified commands from a bounded queue, applies them in order, and
//! commits each batch of entries, tree nodes, state changes, nonces and a fresh checkpoint in ONE
//! synced RocksDB write (group commit). Only after that write returns are the commands answered.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::domain::{self, ApplyContext, ApplyError, Command, Overlay, Rejection};
use crate::entry::Entry;
use crate::envelope::VerifiedEnvelope;
use crate::keys::PublicKey;
use crate::limits::MAX_BATCH_COMMANDS;
use crate::merkle::{leaf_hash, Frontier, Hash};
use crate::note::{Checkpoint, NoteSigner};
use crate::receipt::ReceiptData;
use crate::record_cache::{CachedStore, RecordCache};
use crate::store::{CommitBatch, NonceRecord, Store};
use crate::types::{LogIndex, RegionId, TimeMs};

/// What the submitter hears back.
pub type Reply = Box<dyn FnOnce(Result<Accepted, SubmitError>) + Send>;

/// A verified command waiting for the writer.
pub struct Submission {
    pub envelope: VerifiedEnvelope,
    pub command: Command,
    pub reply: Reply,
}

/// A command is in the log (now, or earlier if this was a retry).
#[derive(Debug, Clone)]
pub struct Accepted {
    pub receipt: ReceiptData,
    /// The signed checkpoint of the batch that committed it (or the latest, for a retry).
    pub checkpoint: Arc<String>,
    /// True when the same command was already in the log and this answer repeats its receipt.
    pub replayed: bool,
}

/// Why a submitted command was not accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("this signer already used this nonce for a different command (entry {index})")]
    NonceReused { index: LogIndex },
    #[error("command is for region `{got}`; this node serves `{expected}`")]
    WrongRegion { expected: String, got: String },
    #[error("the writer queue is full; retry later")]
    QueueFull,
    #[error("the node is shutting down")]
    ShuttingDown,
    #[error("storage failed; the command was not recorded: {0}")]
    Storage(String),
}

/// Called with the new tree size after every committed batch.
pub type CommitListener = Box<dyn Fn(u64) + Send + Sync>;

/// What the node has committed and published, shared with readers.
pub struct Published {
    tree_size: AtomicU64,
    checkpoint: RwLock<Arc<String>>,
    listeners: RwLock<Vec<CommitListener>>,
    /// Cumulative counters for metrics.
    pub stats: WriterStats,
}

/// Counters the writer keeps for `/metrics`.
#[derive(Default)]
pub struct WriterStats {
    pub batches: AtomicU64,
    pub commands_accepted: AtomicU64,
    pub commands_rejected: AtomicU64,
    pub commit_micros_total: AtomicU64,
    pub last_batch_size: AtomicU64,
    /// Commands queued for the writer and not yet taken into a batch.
    pub queue_depth: AtomicU64,
}

impl Published {
    pub fn new(tree_size: u64, checkpoint: String) -> Self {
        Self {
            tree_size: AtomicU64::new(tree_size),
            checkpoint: RwLock::new(Arc::new(checkpoint)),
            listeners: RwLock::new(Vec::new()),
            stats: WriterStats::default(),
        }
    }
    /// The tree size of the latest committed batch.
    pub fn tree_size(&self) -> u64 {
        self.tree_size.load(Ordering::Acquire)
    }
    /// The latest signed checkpoint.
    pub fn checkpoint(&self) -> Arc<String> {
        self.checkpoint.read().expect("checkpoint lock").clone()
    }
    /// Calls `listener` with the new tree size after every batch committed from now on (it
    /// runs on the writer thread: it must be quick and must not block).
    pub fn on_commit(&self, listener: CommitListener) {
        self.listeners
            .write()
            .expect("listeners lock")
            .push(listener);
    }
    fn publish(&self, tree_size: u64, checkpoint: Arc<String>) {
        *self.checkpoint.write().expect("checkpoint lock") = checkpoint;
        self.tree_size.store(tree_size, Ordering::Release);
        for listener in self.listeners.read().expect("listeners lock").iter() {
            listener(tree_size);
        }
    }
}

/// The writer's in-memory view of the log's end.
pub struct Writer {
    pub(crate) store: Arc<Store>,
    pub(crate) frontier: Frontier,
    pub(crate) last_leaf: Hash,
    pub(crate) last_time_ms: TimeMs,
    pub(crate) region: RegionId,
    pub(crate) origin: String,
    pub(crate) node_key: PublicKey,
    pub(crate) checkpoint_signer: NoteSigner,
    pub(crate) published: Arc<Published>,
    /// Committed state records recently read or written (see [`crate::record_cache`]).
    pub(crate) records: RefCell<RecordCache>,
}

enum Outcome {
    Applied(ReceiptData),
    Replayed {
        index: LogIndex,
        command_hash: [u8; 32],
    },
    Failed(SubmitError),
}

fn nonce_key(signer: &PublicKey, nonce: &str) -> Vec<u8> {
    let mut key = signer.as_bytes().to_vec();
    key.extend_from_slice(nonce.as_bytes());
    key
}

/// The machine's clock in ms since the Unix epoch; read only by the shell, never by the domain.
pub fn wall_clock_ms() -> TimeMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Writer {
    /// Runs until every sender of the queue is dropped and the queue is drained.
    pub fn run(mut self, queue: Receiver<Submission>) {
        while let Ok(first) = queue.recv() {
            let mut batch = Vec::with_capacity(64);
            batch.push(first);
            while batch.len() < MAX_BATCH_COMMANDS {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            self.published
                .stats
                .queue_depth
                .fetch_sub(batch.len() as u64, Ordering::Relaxed);
            self.process_batch(batch);
        }
    }

    /// Applies and commits one batch, then answers every submission in it.
    pub fn process_batch(&mut self, batch: Vec<Submission>) {
        let node_time_ms = wall_clock_ms().max(self.last_time_ms);
        let frontier_before = self.frontier.clone();
        let last_leaf_before = self.last_leaf;
        let mut commit = CommitBatch::default();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut batch_nonces: HashMap<Vec<u8>, NonceRecord> = HashMap::new();
        let mut storage_failure: Option<String> = None;
        let committed = CachedStore {
            store: &self.store,
            cache: &self.records,
        };
        let mut overlay = Overlay::new(&committed);

        for submission in batch {
            replies.push(submission.reply);
            if let Some(reason) = &storage_failure {
                outcomes.push(Outcome::Failed(SubmitError::Storage(reason.clone())));
                continue;
            }
            let payload = &submission.envelope.payload;
            let command_hash = submission.envelope.command_hash;
            let key = nonce_key(&payload.signer, &payload.nonce);
            let seen = match batch_nonces.get(&key) {
                Some(record) => Ok(Some(*record)),
                None => self.store.nonce(&key),
            };
            match seen {
                Err(e) => {
                    storage_failure = Some(e.to_string());
                    outcomes.push(Outcome::Failed(SubmitError::Storage(e.to_string())));
                    continue;
                }
                Ok(Some(record)) if record.command_hash == command_hash => {
                    outcomes.push(Outcome::Replayed {
                        index: record.index,
                        command_hash,
                    });
                    continue;
                }
                Ok(Some(record)) => {
                    outcomes.push(Outcome::Failed(SubmitError::NonceReused {
                        index: record.index,
                    }));
                    continue;
                }
                Ok(None) => {}
            }
            let index = self.frontier.size();
            let ctx = ApplyContext {
                index,
                node_time_ms,
                region: self.region.clone(),
                node_key: self.node_key,
            };
            let events =
                match domain::apply(&mut overlay, &ctx, &payload.signer, &submission.command) {
                    Ok(events) => events,
                    Err(ApplyError::Rejected(rejection)) => {
                        outcomes.push(Outcome::Failed(SubmitError::Rejected(rejection)));
                        continue;
                    }
                    Err(ApplyError::State(e)) => {
                        // A command half-folded into the overlay cannot be committed: fail the batch.
                        storage_failure = Some(e.to_string());
                        outcomes.push(Outcome::Failed(SubmitError::Storage(e.to_string())));
                        continue;
                    }
                };
            let entry = Entry {
                index,
                node_time_ms,
                prev_leaf_hash: self.last_leaf,
                envelope: submission.envelope.raw,
                events: domain::encode_events(&events),
            };
            let bytes = entry.encode();
            let leaf = leaf_hash(&bytes);
            commit.tree_nodes.extend(self.frontier.append(leaf));
            commit.entries.push((index, bytes));
            self.last_leaf = leaf;
            let record = NonceRecord {
                index,
                command_hash,
            };
            batch_nonces.insert(key.clone(), record);
            commit.nonces.push((key, record));
            outcomes.push(Outcome::Applied(ReceiptData {
                index,
                leaf_hash: leaf,
                node_time_ms,
                command_hash,
            }));
        }

        let state_changes = overlay.into_changes();
        if let Some(reason) = storage_failure {
            self.frontier = frontier_before;
            self.last_leaf = last_leaf_before;
            for outcome in outcomes.iter_mut() {
                if matches!(outcome, Outcome::Applied(_)) {
                    *outcome = Outcome::Failed(SubmitError::Storage(reason.clone()));
                }
            }
        } else if !commit.entries.is_empty() {
            let size = self.frontier.size();
            let checkpoint_text = Checkpoint {
                origin: self.origin.clone(),
                size,
                root_hash: self.frontier.root(),
                extensions: vec![],
            }
            .to_text();
            let note = self
                .checkpoint_signer
                .sign(&checkpoint_text)
                .expect("checkpoint text is a valid note");
            commit.new_tree_size = size;
            commit.checkpoint = Some((size, note.clone()));
            commit.state_changes = state_changes.into_iter().collect();
            let accepted = commit.entries.len() as u64;
            let started = Instant::now();
            match self.store.commit(&commit) {
                Ok(()) => {
                    self.records
                        .borrow_mut()
                        .committed(std::mem::take(&mut commit.state_changes));
                    let stats = &self.published.stats;
                    stats
                        .commit_micros_total
                        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    stats
                        .commands_accepted
                        .fetch_add(accepted, Ordering::Relaxed);
                    stats.last_batch_size.store(accepted, Ordering::Relaxed);
                    self.last_time_ms = node_time_ms;
                    self.published.publish(size, Arc::new(note));
                }
                Err(e) => {
                    tracing::error!(error = %e, "batch commit failed; its commands are refused");
                    self.frontier = frontier_before;
                    self.last_leaf = last_leaf_before;
                    for outcome in outcomes.iter_mut() {
                        if matches!(outcome, Outcome::Applied(_)) {
                            *outcome = Outcome::Failed(SubmitError::Storage(e.to_string()));
                        }
                    }
                }
            }
        }

        let checkpoint = self.published.checkpoint();
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let answer = match outcome {
                Outcome::Applied(receipt) => Ok(Accepted {
                    receipt,
                    checkpoint: checkpoint.clone(),
                    replayed: false,
                }),
                Outcome::Replayed {
                    index,
                    command_hash,
                } => self
                    .replayed_receipt(index, command_hash)
                    .map(|receipt| Accepted {
                        receipt,
                        checkpoint: checkpoint.clone(),
                        replayed: true,
                    }),
                Outcome::Failed(error) => {
                    self.published
                        .stats
                        .commands_rejected
                        .fetch_add(1, Ordering::Relaxed);
                    Err(error)
                }
            };
            reply(answer);
        }
    }

    fn replayed_receipt(
        &self,
        index: LogIndex,
        command_hash: [u8; 32],
    ) -> Result<ReceiptData, SubmitError> {
        let bytes = self
            .store
            .entry(index)
            .map_err(|e| SubmitError::Storage(e.to_string()))?
            .ok_or_else(|| {
                SubmitError::Storage(format!("entry {index} named by a nonce is missing"))
            })?;
        let entry = Entry::decode(&bytes)
            .map_err(|e| SubmitError::Storage(format!("entry {index}: {e}")))?;
        Ok(ReceiptData {
            index,
            leaf_hash: leaf_hash(&bytes),
            node_time_ms: entry.node_time_ms,
            command_hash,
        })
    }
}
