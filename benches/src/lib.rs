//! Fixtures shared by vledger's criterion benchmarks: deterministic keys, signed `party.register`
//! commands, a durable node in a temporary directory, and trees of synthetic leaves in memory or
//! in a RocksDB [`Store`]; and [`load`], the load generator of the `vledger-load` binary.
//!
//! Sizes come from the environment so that `benches/run_long.sh` can run the long versions:
//! `VLEDGER_BENCH_TREE_SIZE` (leaves of the proof trees, default 1,000,000).

pub mod load;

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use vledger_domain::GenesisBody;
use vledger_node::node::{Node, NodeConfig};
use vledger_node::store::{CommitBatch, Store, StoreError};
use vledger_tlog::keys::{PublicKey, SigningKey};
use vledger_tlog::merkle::{leaf_hash, Frontier, Hash, MemoryTree};
use vledger_wire::envelope::{seal, CommandPayload, VerifiedEnvelope, COMMAND_FORMAT_VERSION};

/// The region every fixture node serves.
pub const REGION: &str = "cq";
/// The checkpoint origin of fixture nodes.
pub const ORIGIN: &str = "vledger.bench/cq";
/// Default number of leaves of the proof trees.
pub const DEFAULT_TREE_SIZE: u64 = 1_000_000;
/// Leaves committed per synced write while a store is populated.
pub const POPULATE_BATCH_LEAVES: u64 = 50_000;

/// A key derived from a tag and a counter, so that every run signs the same bytes.
pub fn key_from_seed(tag: &str, n: u64) -> SigningKey {
    let mut hasher = Sha256::new();
    hasher.update(tag.as_bytes());
    hasher.update(n.to_be_bytes());
    SigningKey::from_bytes(&hasher.finalize().into())
}

/// The node's own key.
pub fn node_key() -> SigningKey {
    key_from_seed("vledger-bench node", 0)
}

/// The region's first admin, who signs every benchmark command.
pub fn admin_key() -> SigningKey {
    key_from_seed("vledger-bench admin", 0)
}

/// The key of the `seq`-th party registered by the benchmarks.
pub fn party_key(seq: u64) -> SigningKey {
    key_from_seed("vledger-bench party", seq)
}

/// The genesis body founding the fixture region with `admin` as its first admin.
pub fn genesis(admin: &SigningKey) -> GenesisBody {
    GenesisBody {
        region_name: "Chongqing Science and Technology Bureau".into(),
        admin_key: admin.public_key(),
        admin_name: "Chongqing Science and Technology Bureau admin".into(),
        time_zone: "Asia/Shanghai".into(),
    }
}

/// The payload of a `party.register` of `party` by `admin`, as a client would write it.
pub fn register_payload(admin: &SigningKey, party: &PublicKey, seq: u64) -> CommandPayload {
    CommandPayload {
        v: u64::from(COMMAND_FORMAT_VERSION),
        command_type: "party.register".into(),
        region: REGION.try_into().expect("valid region id"),
        signer: admin.public_key(),
        nonce: format!("bench-register-{seq:012}"),
        body: serde_json::json!({
            "key": party.to_base64(),
            "role": "agency",
            "home_region": REGION,
            "name": format!("Chongqing Innovation Service Agency {seq}"),
        }),
    }
}

/// The signed envelope (as sent on the wire) registering party number `seq`.
pub fn register_envelope(admin: &SigningKey, seq: u64) -> Vec<u8> {
    seal(
        &register_payload(admin, &party_key(seq).public_key(), seq),
        admin,
    )
}

/// Signed `party.register` envelopes for parties `start..start + count`, made on every core.
pub fn register_envelopes(admin: &SigningKey, start: u64, count: u64) -> Vec<Vec<u8>> {
    parallel_map(start..start + count, |seq| register_envelope(admin, seq))
}

/// Like [`register_envelopes`], already checked (what [`Node::submit`] takes).
pub fn verified_registers(admin: &SigningKey, start: u64, count: u64) -> Vec<VerifiedEnvelope> {
    parallel_map(start..start + count, |seq| {
        VerifiedEnvelope::parse_and_verify(&register_envelope(admin, seq))
            .expect("a fixture envelope verifies")
    })
}

/// Maps `f` over a range on every available core, keeping the order.
pub fn parallel_map<T: Send>(range: std::ops::Range<u64>, f: impl Fn(u64) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let len = range.end.saturating_sub(range.start);
    let chunk = len.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let lo = (range.start + t * chunk).min(range.end);
                let hi = (lo + chunk).min(range.end);
                scope.spawn(move || (lo..hi).map(f).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread"))
            .collect()
    })
}

/// Opens a durable node in `dir`, founding the fixture region on first start.
pub fn open_node(dir: &Path, admin: &SigningKey) -> Arc<Node> {
    Node::open(NodeConfig {
        data_dir: dir.to_path_buf(),
        region: REGION.try_into().expect("valid region id"),
        origin: ORIGIN.into(),
        node_key: node_key(),
        max_batch_commands: vledger_domain::limits::MAX_BATCH_COMMANDS,
        genesis: Some(genesis(admin)),
    })
    .expect("open the benchmark node")
}

/// The canonical bytes of a real `party.register` entry, made by a node in a temporary directory.
pub fn sample_register_entry() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let admin = admin_key();
    let node = open_node(dir.path(), &admin);
    let envelope = VerifiedEnvelope::parse_and_verify(&register_envelope(&admin, 0))
        .expect("fixture envelope verifies");
    let accepted = node.submit_and_wait(envelope).expect("register accepted");
    let index = accepted.receipt.index;
    let mut rows = node.entries(index, index + 1).expect("read the entry");
    node.shutdown();
    rows.pop().expect("the entry is stored").1
}

/// The leaf hash of synthetic leaf number `i`.
pub fn synthetic_leaf(i: u64) -> Hash {
    leaf_hash(&i.to_be_bytes())
}

/// An in-memory tree of `size` synthetic leaves.
pub fn memory_tree(size: u64) -> MemoryTree {
    let mut tree = MemoryTree::new();
    for i in 0..size {
        tree.append_leaf_hash(synthetic_leaf(i));
    }
    tree
}

/// Grows the tree stored in `store` to `size` synthetic leaves through [`Store::commit`], in
/// synced batches of [`POPULATE_BATCH_LEAVES`] leaves, resuming from the size already stored.
/// Returns the root.
pub fn populate_store(store: &Store, size: u64) -> Result<Hash, StoreError> {
    let stored = store.tree_size()?.unwrap_or(0);
    assert!(
        stored <= size,
        "the store already holds {stored} leaves, more than {size}"
    );
    let mut frontier = Frontier::load(store, stored).expect("stored tree nodes for the frontier");
    let mut batch = CommitBatch::default();
    for i in stored..size {
        batch.tree_nodes.extend(frontier.append(synthetic_leaf(i)));
        if (i + 1) % POPULATE_BATCH_LEAVES == 0 || i + 1 == size {
            batch.new_tree_size = i + 1;
            store.commit(&std::mem::take(&mut batch))?;
        }
    }
    Ok(frontier.root())
}

/// The number of leaves of the proof trees: `VLEDGER_BENCH_TREE_SIZE` (underscores allowed),
/// default [`DEFAULT_TREE_SIZE`].
pub fn tree_size_from_env() -> u64 {
    env_u64("VLEDGER_BENCH_TREE_SIZE").unwrap_or(DEFAULT_TREE_SIZE)
}

/// A non-negative integer from the environment; underscores are allowed (`10_000_000`).
pub fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.replace('_', "").parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={text} is not a non-negative integer"),
    }
}

/// `count` pseudo-random numbers in `lo..hi` (splitmix64, fixed seed), for proof queries.
pub fn spread(count: usize, lo: u64, hi: u64) -> Vec<u64> {
    assert!(lo < hi);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..count)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            lo + z % (hi - lo)
        })
        .collect()
}

/// Submits `commands` to `node` with up to 4,096 in flight at once, and waits for every answer;
/// each command must be accepted.
pub fn submit_all(
    node: &vledger_node::node::Node,
    commands: impl Iterator<Item = vledger_wire::envelope::VerifiedEnvelope>,
) {
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<()>(8192);
    let mut in_flight = 0u64;
    for envelope in commands {
        let done = done_tx.clone();
        node.submit(
            envelope,
            Box::new(move |answer| {
                answer.expect("command accepted");
                let _ = done.send(());
            }),
        );
        in_flight += 1;
        if in_flight >= 4096 {
            done_rx.recv().expect("answers");
            in_flight -= 1;
        }
    }
    for _ in 0..in_flight {
        done_rx.recv().expect("answers");
    }
}
