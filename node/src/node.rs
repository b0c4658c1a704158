//! A region's node: opens (and checks) the store, founds the region on first start, runs the
//! single writer, and answers reads. The imperative shell around the pure state machine.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use crate::store::{Store, TreeReadError};
use crate::writer::{Accepted, MirrorStep, Published, Reply, Submission, SubmitError, Writer};
use vledger_domain::limits::WRITER_QUEUE_CAPACITY;
use vledger_domain::queries::{self, DueCommand};
use vledger_domain::types::{LogIndex, RegionId, TimeMs};
use vledger_domain::{
    Command, CommandType, GenesisBody, ScannedRecords, StateError, StateRead, STATE_RECORD_ENCODING,
};
use vledger_tlog::keys::{PublicKey, SigningKey};
use vledger_tlog::merkle::{self, leaf_hash, Frontier, Hash};
use vledger_tlog::note::{Checkpoint, NoteSigner, NoteVerifier, SignedNote};
use vledger_wire::entry::Entry;
use vledger_wire::envelope::{seal, CommandPayload, VerifiedEnvelope, COMMAND_FORMAT_VERSION};
use vledger_wire::receipt::{BatchReceipts, Receipt};

/// How often the node looks for time-driven work (expired vouchers, orders to auto-confirm,
/// voucher shares left unclaimed past the claim deadline).
pub const CLOCK_TICK: std::time::Duration = std::time::Duration::from_millis(500);

/// The nonce of the genesis command the node signs itself.
pub const GENESIS_NONCE: &str = "genesis";

/// How to open a node.
pub struct NodeConfig {
    /// Directory of the RocksDB store.
    pub data_dir: PathBuf,
    /// The region this node serves.
    pub region: RegionId,
    /// The checkpoint origin (the log's name), e.g. `vledger.example/cq`.
    pub origin: String,
    /// The node's own key: signs checkpoints, receipts, genesis and time-driven commands.
    pub node_key: SigningKey,
    /// Founds the region if the store is empty.
    pub genesis: Option<GenesisBody>,
    /// Most commands in one batch, that is in one synced write: at least 1, and
    /// [`vledger_domain::limits::MAX_BATCH_COMMANDS`] unless a benchmark compares at another batch size.
    pub max_batch_commands: usize,
}

/// Why a node refused to open. The message names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the store is inconsistent, refusing to start: {0}")]
    Inconsistent(String),
    #[error(
        "the store is empty and no genesis was given: found the region with an admin key first"
    )]
    NoGenesis,
    #[error("genesis was refused: {0}")]
    GenesisRefused(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error(
        "the state records are in the {0} encoding and this version reads {enc}: run `vledger \
         rebuild --write` on the data directory to rewrite them from the log",
        enc = STATE_RECORD_ENCODING
    )]
    StateEncoding(String),
}

/// Why a read was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    OutOfRange(String),
    #[error("storage: {0}")]
    Storage(String),
}

impl From<merkle::TreeError<TreeReadError>> for ReadError {
    fn from(e: merkle::TreeError<TreeReadError>) -> Self {
        match e {
            merkle::TreeError::Source(e) => ReadError::Storage(e.to_string()),
            other => ReadError::OutOfRange(other.to_string()),
        }
    }
}

/// A running node.
pub struct Node {
    store: Arc<Store>,
    signing_key: SigningKey,
    clock_stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    clock: Mutex<Option<JoinHandle<()>>>,
    queue: RwLock<Option<crossbeam_channel::Sender<Submission>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    published: Arc<Published>,
    region: RegionId,
    origin: String,
    receipt_signer: NoteSigner,
    node_key: PublicKey,
}

impl Node {
    /// Opens the store, checks that it is consistent, founds the region if the store is empty,
    /// and starts the writer.
    pub fn open(config: NodeConfig) -> Result<Arc<Self>, OpenError> {
        if config.max_batch_commands == 0 {
            return Err(OpenError::Config(
                "a batch must hold at least one command (max_batch_commands 0)".into(),
            ));
        }
        let store = Arc::new(Store::open(&config.data_dir)?);
        let node_key = config.node_key.public_key();
        let checkpoint_signer =
            NoteSigner::new(&config.origin, config.node_key.clone()).map_err(|e| {
                OpenError::Config(format!(
                    "origin `{}` cannot name a note key: {e}",
                    config.origin
                ))
            })?;
        let receipt_signer = NoteSigner::new(&config.origin, config.node_key.clone())
            .map_err(|e| OpenError::Config(e.to_string()))?;
        let recovered = recover(
            &store,
            &checkpoint_signer.verifier(),
            &config.origin,
            &config.region,
            &node_key,
        )?;
        let published = Arc::new(Published::new(
            recovered.frontier.size(),
            recovered.checkpoint,
        ));
        let writer = Writer {
            store: store.clone(),
            last_leaf: recovered.last_leaf,
            last_time_ms: recovered.last_time_ms,
            frontier: recovered.frontier,
            region: config.region.clone(),
            origin: config.origin.clone(),
            node_key,
            checkpoint_signer,
            published: published.clone(),
            records: Default::default(),
            in_flight: None,
            in_flight_outcome: None,
            spare_nonces: Default::default(),
            max_batch_commands: config.max_batch_commands,
        };
        let (sender, receiver) = crossbeam_channel::bounded(WRITER_QUEUE_CAPACITY);
        let handle = std::thread::Builder::new()
            .name(crate::writer::WRITER_THREAD_NAME.into())
            .spawn(move || writer.run(receiver))
            .expect("spawn writer thread");
        let node = Arc::new(Self {
            store,
            signing_key: config.node_key.clone(),
            clock_stop: Mutex::new(None),
            clock: Mutex::new(None),
            queue: RwLock::new(Some(sender)),
            writer: Mutex::new(Some(handle)),
            published,
            region: config.region,
            origin: config.origin,
            receipt_signer,
            node_key,
        });
        if node.tree_size() == 0 {
            let genesis = config.genesis.ok_or(OpenError::NoGenesis)?;
            node.found_region(genesis)?;
        }
        node.start_clock();
        Ok(node)
    }

    /// Starts the thread that issues the node's time-driven commands (voucher expiry).
    fn start_clock(self: &Arc<Self>) {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let weak = Arc::downgrade(self);
        let handle = std::thread::Builder::new()
            .name("vledger-clock".into())
            .spawn(move || loop {
                match stopped.recv_timeout(CLOCK_TICK) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let Some(node) = weak.upgrade() else { return };
                node.sweep_expired_vouchers();
                node.sweep_auto_confirms();
                node.sweep_unclaimed();
            })
            .expect("spawn clock thread");
        *self.clock_stop.lock().expect("clock lock") = Some(stop);
        *self.clock.lock().expect("clock lock") = Some(handle);
    }

    /// Submits `voucher.expire` for every voucher whose expiry has passed (up to a bound per
    /// sweep). The nonce is derived from the voucher, so a repeated sweep is idempotent.
    pub fn sweep_expired_vouchers(&self) {
        self.sweep("expiry", |state, now| {
            queries::due_voucher_expiries(state, now)
        });
    }

    /// Submits `order.auto_confirm` for every delivered order whose confirmation period has
    /// passed (up to a bound per sweep); the nonce is derived from the order.
    pub fn sweep_auto_confirms(&self) {
        self.sweep("auto-confirm", |state, now| {
            queries::due_auto_confirms(state, now)
        });
    }

    /// Submits `order.release_unclaimed` for every order whose program's claim deadline has
    /// passed with no claim on it (up to a bound per sweep); the nonce is derived from the order,
    /// so a repeated sweep is idempotent.
    pub fn sweep_unclaimed(&self) {
        self.sweep("claim-deadline", |state, now| {
            queries::due_unclaimed_releases(state, now)
        });
    }

    /// Signs and submits what `due` finds due on the node's clock.
    fn sweep(
        &self,
        what: &'static str,
        due: impl Fn(&CommittedState<'_>, TimeMs) -> Result<Vec<DueCommand>, StateError>,
    ) {
        let now = crate::writer::wall_clock_ms();
        let due = match due(&self.state(), now) {
            Ok(due) => due,
            Err(e) => {
                return tracing::error!(error = %e, sweep = what, "a sweep could not read its index")
            }
        };
        for command in due {
            let envelope = self.seal_own(command.command_type, &command.nonce, command.body);
            let (command_type, record) = (command.command_type, command.record);
            self.submit(
                envelope,
                Box::new(move |answer| {
                    if let Err(e) = answer {
                        tracing::warn!(command = command_type, record = %record, error = %e, "a due command was not recorded");
                    }
                }),
            );
        }
    }

    /// The voucher share an order would get now (on the node's clock), with the limit that
    /// binds, computed by the placement rules themselves.
    pub fn quote_order(
        &self,
        voucher_id: &vledger_domain::types::RecordId,
        listing: vledger_domain::orders::ListingRef<'_>,
        price: vledger_domain::money::AmountMinor,
    ) -> Result<vledger_domain::orders::OrderQuote, vledger_domain::ApplyError> {
        vledger_domain::orders::quote_order(
            self.store.as_ref(),
            crate::writer::wall_clock_ms(),
            voucher_id,
            listing,
            price,
        )
    }

    /// What a settlement statement for `creditor` would net now (on the node's clock): its
    /// period, read as `settlement.propose` reads it, and the open payouts of that period.
    pub fn statement_draft(
        &self,
        creditor: &vledger_domain::types::RegionId,
        period: &vledger_domain::settlement::ProposeStatementBody,
    ) -> Result<vledger_domain::queries::StatementDraft, vledger_domain::ApplyError> {
        vledger_domain::queries::statement_draft(
            self.store.as_ref(),
            crate::writer::wall_clock_ms(),
            creditor,
            period,
        )
    }

    /// Signs a command with the node's own key.
    fn seal_own(
        &self,
        command_type: &str,
        nonce: &str,
        body: serde_json::Value,
    ) -> VerifiedEnvelope {
        let payload = CommandPayload {
            v: u64::from(COMMAND_FORMAT_VERSION),
            command_type: command_type.into(),
            region: self.region.clone(),
            signer: self.signing_key.public_key(),
            nonce: nonce.into(),
            body,
        };
        VerifiedEnvelope::parse_and_verify(&seal(&payload, &self.signing_key))
            .expect("the node's own envelopes verify")
    }

    fn found_region(&self, genesis: GenesisBody) -> Result<(), OpenError> {
        let body = serde_json::to_value(&genesis).expect("genesis body serializes");
        let envelope = self.seal_own(CommandType::Genesis.name(), GENESIS_NONCE, body);
        self.submit_and_wait(envelope)
            .map(|_| ())
            .map_err(|e| OpenError::GenesisRefused(e.to_string()))
    }

    /// Queues a verified envelope for the writer; `reply` is called once it is decided.
    pub fn submit(&self, envelope: VerifiedEnvelope, reply: Reply) {
        self.submit_with(envelope, None, reply)
    }

    /// Appends `federation.adopt` with `body`, committing the mirror's `step` with it, and
    /// waits for the writer's answer. The nonce names the region and size, so the same
    /// adoption submitted twice is one entry.
    pub fn adopt(
        &self,
        body: &vledger_domain::federation::AdoptBody,
        step: MirrorStep,
    ) -> Result<Accepted, SubmitError> {
        let size = step.log.checkpoint.0;
        let nonce = format!("adopt/{}/{size}", body.region);
        let envelope = self.seal_own(
            CommandType::Adopt.name(),
            &nonce,
            serde_json::to_value(body).expect("adoption bodies serialize"),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit_with(
            envelope,
            Some(Box::new(step)),
            Box::new(move |answer| drop(tx.send(answer))),
        );
        rx.recv().unwrap_or(Err(SubmitError::ShuttingDown))
    }

    fn submit_with(
        &self,
        envelope: VerifiedEnvelope,
        mirror_step: Option<Box<MirrorStep>>,
        reply: Reply,
    ) {
        if envelope.payload.region != self.region {
            let error = SubmitError::WrongRegion {
                expected: self.region.to_string(),
                got: envelope.payload.region.to_string(),
            };
            return reply(Err(error));
        }
        let command = match Command::parse(&envelope.payload.command_type, &envelope.payload.body) {
            Ok(command) => command,
            Err(rejection) => return reply(Err(SubmitError::Rejected(rejection))),
        };
        let queue = self.queue.read().expect("queue lock");
        let Some(sender) = queue.as_ref() else {
            return reply(Err(SubmitError::ShuttingDown));
        };
        let sent = sender.try_send(Submission {
            envelope,
            command,
            reply,
            mirror_step,
        });
        match sent {
            Ok(()) => {}
            Err(crossbeam_channel::TrySendError::Full(s)) => (s.reply)(Err(SubmitError::QueueFull)),
            Err(crossbeam_channel::TrySendError::Disconnected(s)) => {
                (s.reply)(Err(SubmitError::ShuttingDown))
            }
        }
    }

    /// Commands queued for the writer and not yet taken into a batch.
    pub fn queue_depth(&self) -> u64 {
        let queue = self.queue.read().expect("queue lock");
        queue.as_ref().map_or(0, |sender| sender.len() as u64)
    }

    /// Submits and blocks until the writer answers. For the CLI, tests and genesis.
    pub fn submit_and_wait(&self, envelope: VerifiedEnvelope) -> Result<Accepted, SubmitError> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.submit(envelope, Box::new(move |answer| drop(tx.send(answer))));
        rx.recv().unwrap_or(Err(SubmitError::ShuttingDown))
    }

    /// Stops taking commands, lets the writer finish those already queued, and waits for it.
    pub fn shutdown(&self) {
        self.clock_stop.lock().expect("clock lock").take();
        if let Some(handle) = self.clock.lock().expect("clock lock").take() {
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
        self.queue.write().expect("queue lock").take();
        if let Some(handle) = self.writer.lock().expect("writer lock").take() {
            let _ = handle.join();
        }
    }

    /// The receipt of an accepted command: from its batch's signed receipts, or, for a
    /// retry, signed on its own.
    pub fn receipt(&self, accepted: &Accepted) -> Receipt {
        match &accepted.receipts {
            Some(batch) => batch.receipt(&accepted.receipt),
            None => BatchReceipts::sign(&self.origin, &self.receipt_signer, &[accepted.receipt])
                .receipt(&accepted.receipt),
        }
    }

    pub fn region(&self) -> &RegionId {
        &self.region
    }
    pub fn origin(&self) -> &str {
        &self.origin
    }
    pub fn node_key(&self) -> PublicKey {
        self.node_key
    }
    /// The node's key as a C2SP verifier key, `name+hash+base64`.
    pub fn verifier_key(&self) -> String {
        self.receipt_signer.verifier().to_verifier_key()
    }
    /// The committed tree size.
    pub fn tree_size(&self) -> u64 {
        self.published.tree_size()
    }
    /// The latest signed checkpoint.
    pub fn checkpoint(&self) -> Arc<String> {
        self.published.checkpoint()
    }
    /// Why the store cannot write, while it cannot (commands are then refused with
    /// `storage-failure`; the writer reopens the store until a write succeeds).
    pub fn storage_failure(&self) -> Option<String> {
        self.store.write_failure()
    }
    /// The writer's counters.
    pub fn published(&self) -> &Published {
        &self.published
    }
    /// The committed state, read through the domain's queries (`StateRead`) only.
    pub fn state(&self) -> CommittedState<'_> {
        CommittedState(&self.store)
    }
    /// The store itself, for the tools that run beside a node (export, rebuild, benchmarks).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Committed entries in `[start, end)`; `end` is clipped to the tree size.
    /// Signed checkpoints the node stored (one per committed batch), of tree size `from` and
    /// up, in size order, at most `limit`.
    pub fn checkpoints_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, ReadError> {
        self.store
            .checkpoints_from(from, limit)
            .map_err(|e| ReadError::Storage(e.to_string()))
    }

    pub fn entries(
        &self,
        start: LogIndex,
        end: LogIndex,
    ) -> Result<Vec<(LogIndex, Vec<u8>)>, ReadError> {
        let size = self.tree_size();
        if start >= size {
            return Err(ReadError::OutOfRange(format!(
                "start {start} is not below the tree size {size}"
            )));
        }
        let end = end.min(size);
        self.store
            .entries(start, end)
            .map_err(|e| ReadError::Storage(e.to_string()))
    }

    fn check_size(&self, size: u64) -> Result<(), ReadError> {
        let published = self.tree_size();
        if size > published {
            return Err(ReadError::OutOfRange(format!(
                "tree size {size} is beyond the published size {published}"
            )));
        }
        Ok(())
    }

    /// RFC 9162 inclusion proof of `index` in the tree of `size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ReadError> {
        self.check_size(size)?;
        Ok(merkle::inclusion_proof(&*self.store, index, size)?)
    }

    /// The checkpoint of another region of this `size` that this node adopted, as signed.
    pub fn adopted_checkpoint(
        &self,
        region: &RegionId,
        size: u64,
    ) -> Result<Option<String>, ReadError> {
        self.store
            .peer_checkpoint(region, size)
            .map_err(|e| ReadError::Storage(e.to_string()))
    }

    /// RFC 9162 consistency proof between two tree sizes.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, ReadError> {
        self.check_size(to)?;
        Ok(merkle::consistency_proof(&*self.store, from, to)?)
    }

    /// The leaf hash of a committed entry.
    pub fn inclusion_leaf(&self, index: u64) -> Result<Hash, ReadError> {
        if index >= self.tree_size() {
            return Err(ReadError::OutOfRange(format!(
                "entry {index} is not in the log yet"
            )));
        }
        merkle::SubtreeSource::perfect_subtree(&*self.store, 0, index)
            .map_err(|e| ReadError::Storage(e.to_string()))
    }

    /// Root hash of the tree of `size`.
    pub fn root(&self, size: u64) -> Result<Hash, ReadError> {
        self.check_size(size)?;
        Ok(merkle::root(&*self.store, size)?)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The log's end as the store holds it.
pub(crate) struct Recovered {
    pub(crate) frontier: Frontier,
    pub(crate) last_leaf: Hash,
    pub(crate) last_time_ms: u64,
    pub(crate) checkpoint: String,
}

/// Checks that the stored tree size, the last entry and the latest checkpoint agree, and that
/// the store is the one of this origin, region and node key.
pub(crate) fn recover(
    store: &Store,
    verifier: &NoteVerifier,
    origin: &str,
    expected_region: &RegionId,
    node_key: &PublicKey,
) -> Result<Recovered, OpenError> {
    let bad = |msg: String| OpenError::Inconsistent(msg);
    let size = store.tree_size()?.unwrap_or(0);
    let encoding = store.state_record_encoding()?;
    if size > 0 && encoding.as_deref() != Some(STATE_RECORD_ENCODING) {
        return Err(OpenError::StateEncoding(
            encoding.unwrap_or_else(|| "JSON".to_string()),
        ));
    }
    if let Some(extra) = store.first_entry_at_or_after(size)? {
        return Err(bad(format!(
            "entry {extra} exists but the recorded tree size is {size}"
        )));
    }
    if size == 0 {
        if let Some(cp) = store.latest_checkpoint_size()? {
            return Err(bad(format!(
                "no entries are recorded but a checkpoint of size {cp} is"
            )));
        }
        return Ok(Recovered {
            frontier: Frontier::empty(),
            last_leaf: [0; 32],
            last_time_ms: 0,
            checkpoint: String::new(),
        });
    }
    let last_index = size - 1;
    let last_bytes = store.entry(last_index)?.ok_or_else(|| {
        bad(format!(
            "the recorded tree size is {size} but entry {last_index} is missing"
        ))
    })?;
    let last = Entry::decode(&last_bytes)
        .map_err(|e| bad(format!("entry {last_index} does not decode: {e}")))?;
    if last.index != last_index {
        return Err(bad(format!(
            "entry stored at {last_index} says its index is {}",
            last.index
        )));
    }
    let last_leaf = leaf_hash(&last_bytes);
    let frontier =
        Frontier::load(store, size).map_err(|e| bad(format!("tree nodes for size {size}: {e}")))?;
    let stored_leaf = merkle::SubtreeSource::perfect_subtree(store, 0, last_index)
        .map_err(|e| bad(format!("leaf {last_index} of the stored tree: {e}")))?;
    if stored_leaf != last_leaf {
        return Err(bad(format!(
            "the last entry ({last_index}) is not the leaf the stored tree holds at that index"
        )));
    }
    let checkpoint_size = store
        .latest_checkpoint_size()?
        .ok_or_else(|| bad(format!("tree size is {size} but no checkpoint is recorded")))?;
    if checkpoint_size != size {
        return Err(bad(format!(
            "the latest checkpoint is for size {checkpoint_size}, the tree size is {size}"
        )));
    }
    let note_text = store
        .checkpoint(size)?
        .ok_or_else(|| bad(format!("the checkpoint of size {size} is missing")))?;
    let note = SignedNote::parse(&note_text)
        .map_err(|e| bad(format!("the latest checkpoint does not parse: {e}")))?;
    note.verify(std::slice::from_ref(verifier)).map_err(|e| {
        bad(format!(
            "the latest checkpoint is not signed by this node's key ({}): {e}",
            verifier.to_verifier_key()
        ))
    })?;
    let checkpoint = Checkpoint::parse(&note.text).map_err(|e| {
        bad(format!(
            "the latest checkpoint's text is not a checkpoint: {e}"
        ))
    })?;
    if checkpoint.origin != origin {
        return Err(bad(format!(
            "the latest checkpoint's origin is `{}`, the configured origin is `{}`",
            checkpoint.origin, origin
        )));
    }
    if checkpoint.size != size || checkpoint.root_hash != frontier.root() {
        return Err(bad(format!(
            "the latest checkpoint (size {}) does not match the stored tree's root at size {size}",
            checkpoint.size
        )));
    }
    let region = vledger_domain::StateRead::get::<vledger_domain::RegionRecord>(store, b"region")
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("the log has entries but no founded region".into()))?;
    if region.region != *expected_region {
        return Err(bad(format!(
            "the store belongs to region `{}`, the configuration says `{}`",
            region.region, expected_region
        )));
    }
    if region.node_key != *node_key {
        return Err(bad(format!(
            "the store was founded by node key {}, but the configured node key is {}",
            region.node_key, node_key
        )));
    }
    Ok(Recovered {
        frontier,
        last_leaf,
        last_time_ms: last.node_time_ms,
        checkpoint: note_text,
    })
}

/// The node's committed state as the read models see it: records read and scanned, nothing
/// written, no other part of the store reachable.
#[derive(Clone, Copy)]
pub struct CommittedState<'a>(&'a Store);

impl StateRead for CommittedState<'_> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.0.get_raw(key)
    }

    fn scan_prefix_from(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<ScannedRecords, StateError> {
        self.0.scan_prefix_from(prefix, start, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    fn register(admin: &SigningKey, nonce: &str) -> VerifiedEnvelope {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let payload = CommandPayload {
            v: u64::from(COMMAND_FORMAT_VERSION),
            command_type: "party.register".into(),
            region: RegionId::try_from("cq").unwrap(),
            signer: admin.public_key(),
            nonce: nonce.into(),
            body: serde_json::json!({ "key": key.public_key().to_base64(), "role": "agency",
                                      "home_region": "cq", "name": "agency" }),
        };
        VerifiedEnvelope::parse_and_verify(&seal(&payload, admin)).unwrap()
    }

    /// After failed writes the store is reported unwritable; once writes can succeed again the
    /// writer reopens the store by itself (no command needed) and takes the next command at the
    /// next index, and a refused command sent again is recorded once.
    #[test]
    fn after_failed_writes_the_writer_reopens_the_store_and_resumes_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        let admin = SigningKey::generate(&mut rand::rngs::OsRng);
        let node = Node::open(NodeConfig {
            data_dir: dir.path().to_path_buf(),
            region: RegionId::try_from("cq").unwrap(),
            origin: "node.test/cq".into(),
            node_key: SigningKey::generate(&mut rand::rngs::OsRng),
            genesis: Some(GenesisBody {
                region_name: "Chongqing".into(),
                admin_key: admin.public_key(),
                admin_name: "admin".into(),
                time_zone: "Asia/Shanghai".into(),
            }),
            max_batch_commands: vledger_domain::limits::MAX_BATCH_COMMANDS,
        })
        .unwrap();
        assert_eq!(node.storage_failure(), None);
        node.store.fail_commits.store(true, Ordering::SeqCst);
        let first = register(&admin, "1");
        for envelope in [first.clone(), register(&admin, "2")] {
            match node.submit_and_wait(envelope) {
                Err(SubmitError::Storage(_)) => {}
                other => panic!("expected a storage failure, got {other:?}"),
            }
            assert!(node.storage_failure().is_some());
        }
        assert_eq!(
            node.published()
                .stats
                .failed_batches
                .load(Ordering::Relaxed),
            2
        );
        node.store.fail_commits.store(false, Ordering::SeqCst);
        let started = Instant::now();
        while node.storage_failure().is_some() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the writer did not try the store again by itself"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let accepted = node.submit_and_wait(register(&admin, "3")).unwrap();
        assert_eq!(accepted.receipt.index, 1);
        let again = node.submit_and_wait(first).unwrap();
        assert!(!again.replayed);
        assert_eq!(again.receipt.index, 2);
        assert_eq!(node.tree_size(), 3);
        assert_eq!(node.store.tree_size().unwrap(), Some(3));
    }
}
