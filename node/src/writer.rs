//! The single writer: takes verified commands from a bounded queue, applies them in order, and
//! commits each batch of entries, tree nodes, state changes, nonces and a fresh checkpoint in ONE
//! synced RocksDB write (group commit). Only after that write returns are the commands answered.
//! The write runs on a commit thread while the writer decides the next batch (see
//! [`Writer::run`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Sender;

use crate::record_cache::{CachedStore, RecordCache};
use crate::store::{CommitBatch, NonceRecord, PeerLogStep, StateChanges, Store, StoreError};
use vledger_domain::limits::STORAGE_RETRY_INTERVAL_MS;
use vledger_domain::types::{LogIndex, RegionId, TimeMs};
use vledger_domain::{
    self as domain, merged_scan, ApplyContext, ApplyError, Command, Overlay, Rejection,
    ScannedRecords, StateError, StateRead,
};
use vledger_tlog::keys::PublicKey;
use vledger_tlog::merkle::{leaf_hash, Frontier, Hash};
use vledger_tlog::note::{Checkpoint, NoteSigner};
use vledger_wire::entry::Entry;
use vledger_wire::envelope::VerifiedEnvelope;
use vledger_wire::receipt::{BatchReceipts, ReceiptData};

/// The name of the writer's thread (the one that decides batches).
pub const WRITER_THREAD_NAME: &str = "vledger-writer";
/// The name of the thread that writes each decided batch in its synced write and answers it.
pub const COMMIT_THREAD_NAME: &str = "vledger-commit";

/// What the submitter hears back.
pub type Reply = Box<dyn FnOnce(Result<Accepted, SubmitError>) + Send>;

/// A verified command waiting for the writer.
pub struct Submission {
    pub envelope: VerifiedEnvelope,
    pub command: Command,
    pub reply: Reply,
    /// For `federation.adopt` only, which the node's mirror alone submits: what the adoption
    /// makes current (see [`MirrorStep`]).
    pub mirror_step: Option<Box<MirrorStep>>,
}

/// What the mirror of another region verified for one adoption, committed with the adoption
/// entry in its batch: the region's log step, and the changes of its records in this node's
/// view of it (keys of [`vledger_domain::federation::view_key`], `None` deletes).
#[derive(Debug, Clone)]
pub struct MirrorStep {
    pub log: PeerLogStep,
    pub view_changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// A command is in the log (now, or earlier if this was a retry).
#[derive(Debug, Clone)]
pub struct Accepted {
    pub receipt: ReceiptData,
    /// The signed receipts of the batch that committed it; none for a retry, whose receipt
    /// is signed on its own when answered.
    pub receipts: Option<Arc<BatchReceipts>>,
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
    /// The longest synced batch write so far.
    pub longest_commit_micros: AtomicU64,
    pub last_batch_size: AtomicU64,
    /// Batches whose synced write failed (their commands were refused).
    pub failed_batches: AtomicU64,
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
    /// runs on the commit thread: it must be quick and must not block).
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
    /// The batch in its synced write, if any (see [`Writer::run`]).
    pub(crate) in_flight: Option<InFlight>,
    /// The outcome of that write, when it came while the writer was deciding the next batch.
    pub(crate) in_flight_outcome: Option<Result<(), CommitError>>,
    /// The (signer ‖ nonce) table of the last batch written, emptied and used again for the
    /// next one rather than grown from nothing for every batch.
    pub(crate) spare_nonces: BatchNonces,
    /// Most commands in one batch (see [`crate::node::NodeConfig::max_batch_commands`]).
    pub(crate) max_batch_commands: usize,
}

/// A batch's (signer ‖ nonce) pairs, for the retries and reuses within it and the next batch.
pub(crate) type BatchNonces = HashMap<Vec<u8>, NonceRecord>;

/// Why a batch was not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// The synced write failed (the store is then unwritable until it is reopened).
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The commit thread is gone, so the batch has no outcome.
    #[error("the commit thread stopped")]
    CommitThreadGone,
}

/// The commit thread's report of each batch's write: what the writer waits on.
pub(crate) type CommitOutcomes = crossbeam_channel::Receiver<Result<(), CommitError>>;

enum Outcome {
    Applied(ReceiptData),
    Replayed {
        index: LogIndex,
        command_hash: [u8; 32],
    },
    Failed(SubmitError),
}

/// The machine's clock in ms since the Unix epoch; read only by the shell, never by the domain.
pub fn wall_clock_ms() -> TimeMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A batch decided by the writer, on its way to (or in) its synced write.
struct DecidedBatch {
    /// Everything the batch writes; no entries when every command was refused or repeated.
    commit: CommitBatch,
    /// The (signer ‖ nonce) pairs of the commands it applied, as a table (`commit.nonces` is
    /// the same pairs as a list, and empty when the batch is refused as a whole).
    nonces: BatchNonces,
    replies: Vec<Reply>,
    outcomes: Vec<Outcome>,
    /// The signed receipts of the commands it applies.
    receipts: Option<Arc<BatchReceipts>>,
}

impl DecidedBatch {
    /// Refuses every command of the batch: its state cannot be committed.
    fn fail_all(&mut self, reason: &str) {
        for outcome in self.outcomes.iter_mut() {
            *outcome = Outcome::Failed(SubmitError::Storage(reason.to_string()));
        }
    }
}

/// The batch in its synced write, as the writer sees it while it decides the next one.
pub(crate) struct InFlight {
    /// Its state changes: the next batch reads them before the committed state.
    state_changes: Arc<StateChanges>,
    /// Its (signer ‖ nonce) pairs.
    nonces: BatchNonces,
    /// The writer's position before it, to go back to if its write fails.
    frontier_before: Frontier,
    last_leaf_before: Hash,
}

/// The state the writer decides on: the changes of the batch in flight, then the committed
/// records (through the cache, then the store).
struct WriterView<'a> {
    in_flight: Option<&'a StateChanges>,
    committed: CachedStore<'a>,
}

impl StateRead for WriterView<'_> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.in_flight.and_then(|changes| changes.get(key)) {
            Some(change) => Ok(change.clone()),
            None => self.committed.get_raw(key),
        }
    }

    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<ScannedRecords, StateError> {
        match self.in_flight {
            Some(changes) => merged_scan(changes, prefix, start, limit, |from, limit| {
                self.committed.scan_prefix_from(prefix, from, limit)
            }),
            None => self.committed.scan_prefix_from(prefix, start, limit),
        }
    }
}

/// An adoption comes with the mirror's step, and only an adoption does: `federation.adopt` is
/// not a command a client submits, even signed by the node's key. (Signed by any other key,
/// the permission table refuses it first.)
fn check_mirror_step(
    command: &Command,
    step: &Option<Box<MirrorStep>>,
    from_node: bool,
) -> Result<(), Rejection> {
    match (command, step) {
        (Command::Adopt(_), None) if !from_node => Ok(()),
        (Command::Adopt(body), Some(step))
            if step.log.region == body.region
                && vledger_domain::federation::adopted_checkpoint(body)
                    .map_or(true, |(_, checkpoint)| {
                        checkpoint.size == step.log.checkpoint.0
                    })
                && step.view_changes.iter().all(|(key, _)| {
                    key.starts_with(&vledger_domain::federation::view_prefix(&body.region))
                }) =>
        {
            Ok(())
        }
        (Command::Adopt(_), _) => Err(Rejection::InvalidAdoption(
            "only the node's mirror adopts another region's state, with the entries it verified"
                .into(),
        )),
        (_, None) => Ok(()),
        (_, Some(_)) => Err(Rejection::InvalidAdoption(
            "a mirror step comes only with federation.adopt".into(),
        )),
    }
}

/// The commit thread: writes each decided batch in one synced write, publishes its
/// checkpoint, answers its commands, and reports the outcome to the writer.
struct Committer {
    store: Arc<Store>,
    published: Arc<Published>,
}

impl Committer {
    fn run(self, batches: Receiver<DecidedBatch>, done: Sender<Result<(), CommitError>>) {
        for batch in batches {
            let result = self.commit(batch);
            if done.send(result).is_err() {
                return;
            }
        }
    }

    /// Commits `batch` (if it has entries) and answers it; the error says why it was not
    /// committed.
    fn commit(&self, mut batch: DecidedBatch) -> Result<(), CommitError> {
        let mut result = Ok(());
        if !batch.commit.entries.is_empty() {
            let accepted = batch.commit.entries.len() as u64;
            let started = Instant::now();
            match self.store.commit(&batch.commit) {
                Ok(()) => {
                    let stats = &self.published.stats;
                    let micros = started.elapsed().as_micros() as u64;
                    stats
                        .commit_micros_total
                        .fetch_add(micros, Ordering::Relaxed);
                    stats
                        .longest_commit_micros
                        .fetch_max(micros, Ordering::Relaxed);
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    stats
                        .commands_accepted
                        .fetch_add(accepted, Ordering::Relaxed);
                    stats.last_batch_size.store(accepted, Ordering::Relaxed);
                    let (size, note) = batch
                        .commit
                        .checkpoint
                        .take()
                        .expect("a batch with entries has a checkpoint");
                    self.published.publish(size, Arc::new(note));
                }
                Err(e) => {
                    self.published
                        .stats
                        .failed_batches
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, "batch commit failed; its commands are refused");
                    batch.fail_all(&e.to_string());
                    result = Err(CommitError::Store(Arc::new(e)));
                }
            }
        }
        // The batch's own buffers go before the answers: the writer reuses its changes.
        drop(batch.commit);
        self.answer(batch.replies, batch.outcomes, batch.receipts);
        result
    }

    fn answer(
        &self,
        replies: Vec<Reply>,
        outcomes: Vec<Outcome>,
        receipts: Option<Arc<BatchReceipts>>,
    ) {
        let checkpoint = self.published.checkpoint();
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let answer = match outcome {
                Outcome::Applied(receipt) => Ok(Accepted {
                    receipt,
                    receipts: receipts.clone(),
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
                        receipts: None,
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

impl Writer {
    /// Runs until every sender of the queue is dropped and the queue is drained, then waits
    /// for the last batch's write.
    ///
    /// Two batches overlap: while one is in its synced write on the commit thread, the writer
    /// decides the next on top of its changes. The next is handed over only once the one in
    /// flight is committed; if that write fails, the next (decided on state that was never
    /// committed) is refused too and the writer goes back to the position before the failed
    /// batch.
    ///
    /// A batch takes the commands queued when the writer starts it, and then, as long as the
    /// batch before it is still in its synced write, every command that arrives: they would
    /// wait for that write anyway, and a larger batch shares one synced write among more
    /// commands.
    pub fn run(mut self, queue: crossbeam_channel::Receiver<Submission>) {
        let (to_commit, batches) = sync_channel::<DecidedBatch>(0);
        let (done_sender, done) = crossbeam_channel::unbounded::<Result<(), CommitError>>();
        let committer = Committer {
            store: self.store.clone(),
            published: self.published.clone(),
        };
        let commit_thread = std::thread::Builder::new()
            .name(COMMIT_THREAD_NAME.into())
            .spawn(move || committer.run(batches, done_sender))
            .expect("spawn commit thread");
        let max_batch_commands = self.max_batch_commands;
        let retry_interval = Duration::from_millis(STORAGE_RETRY_INTERVAL_MS);
        let mut last_reopen: Option<Instant> = None;
        loop {
            let Some(first) = self.next_command(&queue, &done, retry_interval) else {
                break;
            };
            if self.store.write_failure().is_some() {
                let _ = self.settle_in_flight(&done);
                if last_reopen.is_none_or(|at| at.elapsed() >= retry_interval) {
                    last_reopen = Some(Instant::now());
                    self.resume_storage();
                }
                if let Some(reason) = self.store.write_failure() {
                    if let Some(first) = first {
                        self.refuse(first, &queue, &reason);
                    }
                    continue;
                }
            }
            let Some(first) = first else { continue };
            let before = (self.frontier.clone(), self.last_leaf);
            let waiting_on_write = self.in_flight.is_some();
            let mut outcome = None;
            let mut first = Some(first);
            let mut taken = 0;
            let decided = self.decide(|| {
                if taken == max_batch_commands {
                    return None;
                }
                let next = first.take().or_else(|| queue.try_recv().ok()).or_else(|| {
                    if !waiting_on_write || outcome.is_some() {
                        return None;
                    }
                    crossbeam_channel::select! {
                        recv(queue) -> next => next.ok(),
                        recv(done) -> written => {
                            outcome = Some(written.unwrap_or(Err(CommitError::CommitThreadGone)));
                            None
                        }
                    }
                })?;
                taken += 1;
                Some(next)
            });
            self.in_flight_outcome = outcome;
            if !self.hand_over(decided, before, &to_commit, &done) {
                break;
            }
        }
        let _ = self.settle_in_flight(&done);
        drop(to_commit);
        let _ = commit_thread.join();
    }

    /// Waits for the next command: `None` once the queue is closed, `Some(None)` when the
    /// store cannot write and `retry_interval` passed without a command (time to try the store
    /// again, so that the node heals with its disk even when no command comes). The outcome of
    /// the batch in flight is taken as soon as it comes.
    fn next_command(
        &mut self,
        queue: &crossbeam_channel::Receiver<Submission>,
        done: &CommitOutcomes,
        retry_interval: Duration,
    ) -> Option<Option<Submission>> {
        while self.in_flight.is_some() && self.in_flight_outcome.is_none() {
            crossbeam_channel::select! {
                recv(queue) -> next => return next.ok().map(Some),
                recv(done) -> written => {
                    self.in_flight_outcome =
                        Some(written.unwrap_or(Err(CommitError::CommitThreadGone)));
                    let _ = self.settle_in_flight(done);
                }
            }
        }
        if self.store.write_failure().is_none() {
            return queue.recv().ok().map(Some);
        }
        match queue.recv_timeout(retry_interval) {
            Ok(first) => Some(Some(first)),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Some(None),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Refuses `first` and the commands queued behind it (up to a batch) at once: the store
    /// cannot write.
    fn refuse(
        &self,
        first: Submission,
        queue: &crossbeam_channel::Receiver<Submission>,
        reason: &str,
    ) {
        let refused = std::iter::once(first)
            .chain(std::iter::from_fn(|| queue.try_recv().ok()))
            .take(self.max_batch_commands);
        for submission in refused {
            self.published
                .stats
                .commands_rejected
                .fetch_add(1, Ordering::Relaxed);
            (submission.reply)(Err(SubmitError::Storage(format!(
                "the store cannot write ({reason}); retry later"
            ))));
        }
    }

    /// Reopens the store after a failed write and takes the writer's position from what it
    /// holds: a batch whose write was reported failed may still have reached the disk, and is
    /// then in the log (its commands' retries are answered as repeats).
    fn resume_storage(&mut self) {
        if let Err(e) = self.store.reopen() {
            tracing::warn!(error = %e, "the store still cannot be opened for writing");
            return;
        }
        let recovered = crate::node::recover(
            &self.store,
            &self.checkpoint_signer.verifier(),
            &self.origin,
            &self.region,
            &self.node_key,
        );
        match recovered {
            Ok(recovered) => {
                let size = recovered.frontier.size();
                self.frontier = recovered.frontier;
                self.last_leaf = recovered.last_leaf;
                self.last_time_ms = self.last_time_ms.max(recovered.last_time_ms);
                *self.records.borrow_mut() = RecordCache::default();
                if size != self.published.tree_size() {
                    self.published.publish(size, Arc::new(recovered.checkpoint));
                }
                tracing::info!(tree_size = size, "the store writes again");
            }
            Err(e) => {
                tracing::error!(error = %e, "the reopened store is not consistent");
                self.store.set_write_failure(e.to_string());
            }
        }
    }

    /// Hands `decided` (decided from the position `before`) to the commit thread once the batch
    /// in flight is settled, and makes it the batch in flight if it writes anything (otherwise
    /// waits for its answers). False when the commit thread is gone.
    fn hand_over(
        &mut self,
        mut decided: DecidedBatch,
        before: (Frontier, Hash),
        to_commit: &SyncSender<DecidedBatch>,
        done: &CommitOutcomes,
    ) -> bool {
        if let Err(reason) = self.settle_in_flight(done) {
            decided.fail_all(&format!(
                "the batch before it could not be committed: {reason}"
            ));
            decided.commit = CommitBatch::default();
        }
        let (frontier_before, last_leaf_before) = before;
        let nonces = std::mem::take(&mut decided.nonces);
        let in_flight = if decided.commit.entries.is_empty() {
            self.spare_nonces = nonces;
            None
        } else {
            Some(InFlight {
                state_changes: decided.commit.state_changes.clone(),
                nonces,
                frontier_before,
                last_leaf_before,
            })
        };
        if to_commit.send(decided).is_err() {
            return false;
        }
        match in_flight {
            Some(in_flight) => self.in_flight = Some(in_flight),
            // Nothing was written: wait for the answers, so that none is left behind.
            None => return done.recv().is_ok(),
        }
        true
    }

    /// Waits for the batch in flight, if any: on success its changes enter the record cache;
    /// on failure the writer goes back to its position before that batch.
    fn settle_in_flight(&mut self, done: &CommitOutcomes) -> Result<(), CommitError> {
        let Some(mut in_flight) = self.in_flight.take() else {
            return Ok(());
        };
        self.spare_nonces = std::mem::take(&mut in_flight.nonces);
        let result = match self.in_flight_outcome.take() {
            Some(outcome) => outcome,
            None => done.recv().unwrap_or(Err(CommitError::CommitThreadGone)),
        };
        match &result {
            Ok(()) => {
                let changes = Arc::try_unwrap(in_flight.state_changes)
                    .unwrap_or_else(|shared| (*shared).clone());
                self.records.borrow_mut().committed(changes);
            }
            Err(_) => {
                self.frontier = in_flight.frontier_before;
                self.last_leaf = in_flight.last_leaf_before;
            }
        }
        result
    }

    /// Decides a batch of exactly these commands (see [`Writer::decide`]).
    #[cfg(test)]
    fn decide_batch(&mut self, batch: Vec<Submission>) -> DecidedBatch {
        let mut batch = batch.into_iter();
        self.decide(|| batch.next())
    }

    /// Decides one batch, of the commands `next` gives until it gives none, on top of the batch
    /// in flight (if any): applies each command, appends its entry to the tree and signs the
    /// batch's checkpoint and receipts. Nothing is written here.
    fn decide(&mut self, mut next: impl FnMut() -> Option<Submission>) -> DecidedBatch {
        let node_time_ms = wall_clock_ms().max(self.last_time_ms);
        let frontier_before = self.frontier.clone();
        let last_leaf_before = self.last_leaf;
        let mut commit = CommitBatch::default();
        let mut outcomes = Vec::with_capacity(64);
        let mut replies = Vec::with_capacity(64);
        let mut batch_nonces = std::mem::take(&mut self.spare_nonces);
        batch_nonces.clear();
        let mut storage_failure: Option<String> = None;
        let in_flight = self.in_flight.as_ref();
        let view = WriterView {
            in_flight: in_flight.map(|f| &*f.state_changes),
            committed: CachedStore {
                store: &self.store,
                cache: &self.records,
            },
        };
        let mut overlay = Overlay::new(&view);

        while let Some(submission) = next() {
            replies.push(submission.reply);
            if let Some(reason) = &storage_failure {
                outcomes.push(Outcome::Failed(SubmitError::Storage(reason.clone())));
                continue;
            }
            let payload = &submission.envelope.payload;
            let command_hash = submission.envelope.command_hash;
            let key = payload.nonce_key();
            let seen = match batch_nonces
                .get(&key)
                .or_else(|| in_flight.and_then(|f| f.nonces.get(&key)))
            {
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
            let from_node = payload.signer == self.node_key;
            if let Err(rejection) =
                check_mirror_step(&submission.command, &submission.mirror_step, from_node)
            {
                outcomes.push(Outcome::Failed(SubmitError::Rejected(rejection)));
                continue;
            }
            let index = self.frontier.size();
            let ctx = ApplyContext {
                index,
                node_time_ms,
                region: self.region.clone(),
                node_key: self.node_key,
            };
            // A command whose events would not fit an entry is refused here (`entry-too-large`),
            // before anything of it reaches the overlay.
            let events = match domain::apply_encoded(
                &mut overlay,
                &ctx,
                &payload.signer,
                &submission.command,
            ) {
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
            if let Some(step) = submission.mirror_step {
                let view_prefix = vledger_domain::federation::view_prefix(&step.log.region);
                for (key, value) in step.view_changes {
                    debug_assert!(key.starts_with(&view_prefix));
                    match value {
                        Some(value) => {
                            vledger_domain::StateWrite::put_raw(&mut overlay, key, value)
                        }
                        None => vledger_domain::StateWrite::delete(&mut overlay, key),
                    }
                }
                commit.peer_logs.push(step.log);
            }
            let entry = Entry {
                index,
                node_time_ms,
                prev_leaf_hash: self.last_leaf,
                envelope: submission.envelope.raw,
                events,
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
        let mut receipts = None;
        if let Some(reason) = storage_failure {
            self.frontier = frontier_before;
            self.last_leaf = last_leaf_before;
            for outcome in outcomes.iter_mut() {
                if matches!(outcome, Outcome::Applied(_)) {
                    *outcome = Outcome::Failed(SubmitError::Storage(reason.clone()));
                }
            }
            commit = CommitBatch::default();
        } else if !commit.entries.is_empty() {
            let applied: Vec<ReceiptData> = outcomes
                .iter()
                .filter_map(|outcome| match outcome {
                    Outcome::Applied(receipt) => Some(*receipt),
                    _ => None,
                })
                .collect();
            receipts = Some(Arc::new(BatchReceipts::sign(
                &self.origin,
                &self.checkpoint_signer,
                &applied,
            )));
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
            commit.checkpoint = Some((size, note));
            commit.state_changes = Arc::new(state_changes);
            self.last_time_ms = node_time_ms;
        }
        DecidedBatch {
            commit,
            nonces: batch_nonces,
            replies,
            outcomes,
            receipts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::mpsc::channel;
    use vledger_domain::GenesisBody;
    use vledger_tlog::keys::SigningKey;
    use vledger_tlog::note::{NoteSigner, SignedNote};
    use vledger_wire::envelope::{seal, CommandPayload, COMMAND_FORMAT_VERSION};

    type Answer = Receiver<Result<Accepted, SubmitError>>;

    struct Fixture {
        writer: Writer,
        admin: SigningKey,
        to_commit: SyncSender<DecidedBatch>,
        done: CommitOutcomes,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        /// A writer on a fresh store with its commit thread, after genesis.
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(Store::open(dir.path()).unwrap());
            let node = SigningKey::generate(&mut rand::rngs::OsRng);
            let origin = "writer.test/cq".to_string();
            let published = Arc::new(Published::new(0, String::new()));
            let (to_commit, batches) = sync_channel(0);
            let (done_sender, done) = crossbeam_channel::unbounded();
            let committer = Committer {
                store: store.clone(),
                published: published.clone(),
            };
            std::thread::spawn(move || committer.run(batches, done_sender));
            let mut fixture = Self {
                writer: Writer {
                    store,
                    frontier: Frontier::empty(),
                    last_leaf: [0; 32],
                    last_time_ms: 0,
                    region: RegionId::try_from("cq").unwrap(),
                    origin: origin.clone(),
                    node_key: node.public_key(),
                    checkpoint_signer: NoteSigner::new(&origin, node.clone()).unwrap(),
                    published,
                    records: Default::default(),
                    in_flight: None,
                    in_flight_outcome: None,
                    spare_nonces: Default::default(),
                    max_batch_commands: vledger_domain::limits::MAX_BATCH_COMMANDS,
                },
                admin: SigningKey::generate(&mut rand::rngs::OsRng),
                to_commit,
                done,
                _dir: dir,
            };
            let genesis = GenesisBody {
                region_name: "Chongqing".into(),
                admin_key: fixture.admin.public_key(),
                admin_name: "admin".into(),
                time_zone: "Asia/Shanghai".into(),
            };
            let (submission, answer) = submission(
                &node,
                "region.genesis",
                "genesis",
                serde_json::to_value(genesis).unwrap(),
            );
            fixture.batch(vec![submission]);
            fixture.settle().unwrap();
            answer.recv().unwrap().unwrap();
            fixture
        }

        /// Decides a batch and hands it to the commit thread (it stays in flight).
        fn batch(&mut self, submissions: Vec<Submission>) {
            let before = (self.writer.frontier.clone(), self.writer.last_leaf);
            let decided = self.writer.decide_batch(submissions);
            assert!(self
                .writer
                .hand_over(decided, before, &self.to_commit, &self.done));
        }

        fn settle(&mut self) -> Result<(), CommitError> {
            self.writer.settle_in_flight(&self.done)
        }

        /// Holds every commit back at a gate: each arrival there is told on the receiver, and
        /// each message on the sender lets one commit through (dropping it lets all through).
        fn gate_commits(&self) -> (std::sync::mpsc::Sender<()>, Receiver<()>) {
            let (permit, permits) = channel::<()>();
            let (arrived_sender, arrived) = channel();
            *self.writer.store.commit_gate.lock().unwrap() = Some(crate::store::CommitGate {
                arrived: arrived_sender,
                permits,
            });
            (permit, arrived)
        }

        /// Commands registering `count` new parties, each with its own fresh key.
        fn register_new_parties(&self, count: usize) -> Vec<(Submission, Answer)> {
            (0..count)
                .map(|i| {
                    let key = SigningKey::generate(&mut rand::rngs::OsRng);
                    self.register(&key, &format!("n{i}"))
                })
                .collect()
        }

        fn register(&self, key: &SigningKey, nonce: &str) -> (Submission, Answer) {
            let body = json!({ "key": key.public_key().to_base64(), "role": "agency",
                               "home_region": "cq", "name": "agency" });
            submission(&self.admin, "party.register", nonce, body)
        }

        fn fail_commits(&self, fail: bool) {
            self.writer
                .store
                .fail_commits
                .store(fail, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn submission(
        key: &SigningKey,
        command_type: &str,
        nonce: &str,
        body: serde_json::Value,
    ) -> (Submission, Answer) {
        let payload = CommandPayload {
            v: u64::from(COMMAND_FORMAT_VERSION),
            command_type: command_type.into(),
            region: RegionId::try_from("cq").unwrap(),
            signer: key.public_key(),
            nonce: nonce.into(),
            body,
        };
        let envelope = VerifiedEnvelope::parse_and_verify(&seal(&payload, key)).unwrap();
        let command = Command::parse(command_type, &envelope.payload.body).unwrap();
        let (tx, rx) = channel();
        let reply: Reply = Box::new(move |answer| drop(tx.send(answer)));
        (
            Submission {
                mirror_step: None,
                envelope,
                command,
                reply,
            },
            rx,
        )
    }

    /// Commands that arrive one by one while a batch is in its synced write all join the next
    /// batch: they share its write and its checkpoint.
    #[test]
    fn commands_arriving_during_a_write_join_the_next_batch() {
        let f = Fixture::new();
        let (permit, arrived) = f.gate_commits();
        let mut commands = f.register_new_parties(3);
        let published = f.writer.published.clone();
        let (verifier, origin) = (
            f.writer.checkpoint_signer.verifier(),
            f.writer.origin.clone(),
        );
        let (queue, queued) = crossbeam_channel::bounded(16);
        let writer = f.writer;
        let running = std::thread::spawn(move || writer.run(queued));
        // Waits (a bounded time) until the writer has taken every queued command.
        let taken = || {
            for _ in 0..200 {
                if queue.is_empty() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        };
        let mut answers = Vec::new();
        for (i, (submission, answer)) in commands.drain(..).enumerate() {
            queue.send(submission).unwrap();
            answers.push(answer);
            if i == 0 {
                // The first command's write waits at the gate; the others arrive meanwhile.
                arrived.recv().unwrap();
            } else {
                taken();
            }
        }
        // Without its sender, the permits no longer hold any write back.
        drop(permit);
        let accepted: Vec<Accepted> = answers
            .iter()
            .map(|answer| answer.recv().unwrap().unwrap())
            .collect();
        let sizes: Vec<u64> = accepted
            .iter()
            .map(|accepted| {
                SignedNote::parse(&accepted.checkpoint)
                    .map(|note| Checkpoint::parse(&note.text).unwrap().size)
                    .unwrap()
            })
            .collect();
        assert_eq!(
            sizes,
            [2, 4, 4],
            "the second and third commands share a batch"
        );
        // And one signed note of receipts, from which each has its own.
        let receipts: Vec<_> = accepted
            .iter()
            .map(|a| a.receipts.as_ref().unwrap().receipt(&a.receipt))
            .collect();
        assert_eq!(receipts[1].note, receipts[2].note);
        for (receipt, accepted) in receipts.iter().zip(&accepted) {
            assert_eq!(
                receipt.verify(&verifier, &origin).unwrap(),
                accepted.receipt
            );
        }
        drop(queue);
        running.join().unwrap();
        assert_eq!(published.stats.batches.load(Ordering::SeqCst), 3);
    }

    /// A batch holds at most `max_batch_commands` commands: those queued beyond it wait for
    /// the next batch.
    #[test]
    fn a_batch_holds_at_most_the_batch_limit() {
        let mut f = Fixture::new();
        f.writer.max_batch_commands = 2;
        let (permit, arrived) = f.gate_commits();
        let commands = f.register_new_parties(4);
        let (queue, queued) = crossbeam_channel::bounded(16);
        let writer = f.writer;
        let running = std::thread::spawn(move || writer.run(queued));
        let mut answers = Vec::new();
        for (i, (submission, answer)) in commands.into_iter().enumerate() {
            queue.send(submission).unwrap();
            answers.push(answer);
            if i == 0 {
                // The first command's write waits at the gate; the others queue meanwhile.
                arrived.recv().unwrap();
            }
        }
        // The writer takes two of the three into the next batch and leaves the last queued.
        for _ in 0..200 {
            if queue.len() <= 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(
            queue.len(),
            1,
            "the batch is full: the fourth command waits"
        );
        drop(permit);
        let sizes: Vec<u64> = answers
            .iter()
            .map(|answer| {
                let accepted = answer.recv().unwrap().unwrap();
                let note = SignedNote::parse(&accepted.checkpoint).unwrap();
                Checkpoint::parse(&note.text).unwrap().size
            })
            .collect();
        assert_eq!(sizes, [2, 4, 4, 5]);
        drop(queue);
        running.join().unwrap();
    }

    /// The batch decided while another is in its synced write sees that batch's records and
    /// nonces, and is answered only after it.
    #[test]
    fn the_next_batch_is_decided_on_the_batch_in_flight() {
        let mut f = Fixture::new();
        let agency = SigningKey::generate(&mut rand::rngs::OsRng);
        let (first, first_answer) = f.register(&agency, "a");
        f.batch(vec![first]);
        assert!(f.writer.in_flight.is_some());
        // The same party again (refused: it exists in the batch in flight) and the first
        // command again (the same nonce: answered with its receipt).
        let (again, again_answer) = f.register(&agency, "b");
        let (retry, retry_answer) = f.register(&agency, "a");
        f.batch(vec![again, retry]);
        let first = first_answer.recv().unwrap().unwrap();
        assert_eq!(first.receipt.index, 1);
        match again_answer.recv().unwrap() {
            Err(SubmitError::Rejected(Rejection::PartyExists)) => {}
            other => panic!("expected party-exists, got {other:?}"),
        }
        let retry = retry_answer.recv().unwrap().unwrap();
        assert!(retry.replayed);
        assert_eq!(retry.receipt.index, 1);
        f.settle().unwrap();
        assert_eq!(f.writer.store.tree_size().unwrap(), Some(2));
        assert_eq!(f.writer.published.tree_size(), 2);
    }

    /// When the batch in flight cannot be written, the batch decided on top of it is refused
    /// too, and the writer goes back to where it was before them: the same commands are then
    /// accepted at the same indices.
    #[test]
    fn a_failed_write_also_refuses_the_batch_decided_on_it() {
        let mut f = Fixture::new();
        let (one, two) = (
            SigningKey::generate(&mut rand::rngs::OsRng),
            SigningKey::generate(&mut rand::rngs::OsRng),
        );
        f.fail_commits(true);
        let (first, first_answer) = f.register(&one, "1");
        f.batch(vec![first]);
        let first_error = match first_answer.recv().unwrap() {
            Err(SubmitError::Storage(reason)) => reason,
            other => panic!("expected a storage failure, got {other:?}"),
        };
        f.fail_commits(false);
        let (second, second_answer) = f.register(&two, "2");
        f.batch(vec![second]);
        match second_answer.recv().unwrap() {
            Err(SubmitError::Storage(reason)) => {
                assert!(
                    reason.contains("the batch before it could not be committed"),
                    "{reason}"
                );
                assert!(reason.contains(&first_error), "{reason}");
            }
            other => panic!("expected a storage failure, got {other:?}"),
        }
        assert_eq!(
            f.writer.frontier.size(),
            1,
            "back to the position before both"
        );
        assert!(f.writer.in_flight.is_none());
        assert_eq!(f.writer.store.tree_size().unwrap(), Some(1));

        let (first, first_answer) = f.register(&one, "1");
        f.batch(vec![first]);
        let (second, second_answer) = f.register(&two, "2");
        f.batch(vec![second]);
        f.settle().unwrap();
        assert_eq!(first_answer.recv().unwrap().unwrap().receipt.index, 1);
        assert_eq!(second_answer.recv().unwrap().unwrap().receipt.index, 2);
        assert_eq!(f.writer.store.tree_size().unwrap(), Some(3));
        let state = CachedStore {
            store: &f.writer.store,
            cache: &f.writer.records,
        };
        assert!(vledger_domain::load_party(&state, &two.public_key())
            .unwrap()
            .is_some());
    }
}
