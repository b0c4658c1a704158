//! The RFC 6962 tree: appending to the in-memory frontier, and inclusion and consistency proofs
//! over a tree of `VLEDGER_BENCH_TREE_SIZE` leaves (default 1,000,000), in memory and in a
//! RocksDB store populated through `Store::commit`.
//!
//! The trees are built lazily, only for the benchmarks the command line selects. A RocksDB
//! store kept in `VLEDGER_BENCH_STORE_DIR` is reused (and grown) across runs; otherwise it lives
//! in a temporary directory. The in-memory tree is skipped above `VLEDGER_BENCH_MEMORY_TREE_MAX`
//! leaves (default 2^25; it takes about 100 bytes of memory per leaf).

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vledger_benches::{env_u64, memory_tree, populate_store, spread, tree_size_from_env};
use vledger_node::store::Store;
use vledger_tlog::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion,
    Frontier, Hash, SubtreeSource,
};

/// Distinct proof queries cycled through, so that reads are spread over the whole tree.
const QUERIES: usize = 4096;

fn frontier_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("merkle");
    group.throughput(Throughput::Elements(1));
    let leaf = leaf_hash(b"leaf");
    let mut frontier = Frontier::empty();
    group.bench_function("Frontier::append (in memory)", |b| {
        b.iter(|| frontier.append(black_box(leaf)))
    });
    group.finish();
}

/// Inclusion proofs of spread leaves and consistency proofs from spread sizes, all to `size`.
fn proofs<S: SubtreeSource>(c: &mut Criterion, name: &str, size: u64, tree: impl Fn() -> S) {
    let leaves = spread(QUERIES, 0, size);
    let old_sizes = spread(QUERIES, 1, size);
    let mut group = c.benchmark_group(format!("merkle/{name}/{size}"));
    group.throughput(Throughput::Elements(1));
    group.bench_function("inclusion_proof", |b| {
        let tree = tree();
        let mut k = 0;
        b.iter(|| {
            k = (k + 1) % QUERIES;
            inclusion_proof(&tree, leaves[k], size).expect("proof")
        })
    });
    group.bench_function("consistency_proof", |b| {
        let tree = tree();
        let mut k = 0;
        b.iter(|| {
            k = (k + 1) % QUERIES;
            consistency_proof(&tree, old_sizes[k], size).expect("proof")
        })
    });
    group.bench_function("root", |b| {
        let tree = tree();
        b.iter(|| root(&tree, black_box(size)).expect("root"))
    });
    group.finish();
}

/// Checks a few proofs of `tree` against its root before timing anything.
fn check<S: SubtreeSource>(tree: &S, size: u64) {
    let new_root = root(tree, size).expect("root");
    for index in spread(8, 0, size) {
        let leaf = tree.perfect_subtree(0, index).expect("leaf");
        let proof = inclusion_proof(tree, index, size).expect("proof");
        verify_inclusion(&leaf, index, size, &proof, &new_root).expect("inclusion verifies");
    }
    for old in spread(8, 1, size) {
        let old_root = root(tree, old).expect("old root");
        let proof = consistency_proof(tree, old, size).expect("proof");
        verify_consistency(old, size, &old_root, &new_root, &proof).expect("consistency verifies");
    }
}

fn memory_proofs(c: &mut Criterion) {
    let size = tree_size_from_env();
    let max = env_u64("VLEDGER_BENCH_MEMORY_TREE_MAX").unwrap_or(1 << 25);
    if size > max {
        eprintln!(
            "merkle/memory: skipped, {size} leaves is over VLEDGER_BENCH_MEMORY_TREE_MAX={max}"
        );
        return;
    }
    let cell = OnceCell::new();
    let tree = || {
        cell.get_or_init(|| {
            let started = Instant::now();
            let tree = memory_tree(size);
            check(&tree, size);
            eprintln!(
                "merkle/memory: built a tree of {size} leaves in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            tree
        })
    };
    proofs(c, "memory", size, tree);
}

fn store_proofs(c: &mut Criterion) {
    let size = tree_size_from_env();
    let kept = std::env::var_os("VLEDGER_BENCH_STORE_DIR");
    let cell = OnceCell::new();
    let tree = || {
        &cell
            .get_or_init(|| {
                let temp = match &kept {
                    Some(_) => None,
                    None => Some(tempfile::tempdir().expect("temporary directory")),
                };
                let dir = match (&kept, &temp) {
                    (Some(dir), _) => std::path::PathBuf::from(dir),
                    (None, Some(temp)) => temp.path().to_path_buf(),
                    (None, None) => unreachable!(),
                };
                let store = Store::open(&dir).expect("open the store");
                let started = Instant::now();
                let from = store.tree_size().expect("read tree size").unwrap_or(0);
                populate_store(&store, size).expect("populate the store");
                check(&store, size);
                eprintln!(
                    "merkle/rocksdb: grew the stored tree from {from} to {size} leaves in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                (store, temp)
            })
            .0
    };
    proofs(c, "rocksdb", size, tree);
}

/// A tree of any size whose stored nodes are computed, not stored: node (level, index) is
/// SHA-256 of its coordinates. Its hashes are not those of a real tree (proofs do not verify),
/// but it makes exactly the reads and folds a proof over a real tree makes, so it times the
/// proof algorithm alone at sizes (100M, 2^40) no memory tree fits in. Each read costs one
/// SHA-256 of 9 bytes (about 0.3 µs), a little more than a read from the store's tree cache.
struct SyntheticTree;

impl SubtreeSource for SyntheticTree {
    type Error = std::convert::Infallible;
    fn perfect_subtree(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        let mut coordinates = [0u8; 9];
        coordinates[0] = level;
        coordinates[1..].copy_from_slice(&index.to_be_bytes());
        Ok(leaf_hash(&coordinates))
    }
}

fn synthetic_proofs(c: &mut Criterion) {
    for size in [1_000_000, 100_000_000, 1 << 40] {
        proofs(c, "synthetic", size, || SyntheticTree);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = frontier_append, synthetic_proofs, memory_proofs, store_proofs
}
criterion_main!(benches);
