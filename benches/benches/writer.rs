//! The durable ingest path in process: pre-verified `party.register` commands submitted to a
//! node's single writer (apply, encode, hash, append, one synced RocksDB write per batch), timed
//! until every reply is in. In the same run, the machine's limits that bound it: a synced
//! RocksDB `WriteBatch` of 1000 small puts, a synced batch of one put (one fsync), and the
//! single-thread `verify_strict` rate.

use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use rocksdb::{Options, WriteBatch, WriteOptions, DB};
use vledger_benches::{admin_key, env_u64, open_node, register_envelope, verified_registers};
use vledger_wire::envelope::{pae, VerifiedEnvelope, COMMAND_PAYLOAD_TYPE};

/// Commands submitted per timed iteration (below the writer queue's capacity, so none is
/// refused as queue-full). `VLEDGER_BENCH_WRITER_COMMANDS` overrides it.
const COMMANDS_PER_ITERATION: u64 = 2000;

fn ingest(c: &mut Criterion) {
    let per_iteration = env_u64("VLEDGER_BENCH_WRITER_COMMANDS").unwrap_or(COMMANDS_PER_ITERATION);
    let dir = tempfile::tempdir().expect("temporary directory");
    let admin = admin_key();
    let node = open_node(dir.path(), &admin);
    let mut next_seq = 0;

    let mut group = c.benchmark_group("writer");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.throughput(Throughput::Elements(per_iteration));
    group.bench_function("Node::submit, durable (party.register)", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let envelopes = verified_registers(&admin, next_seq, per_iteration);
                next_seq += per_iteration;
                let (tx, rx) = mpsc::channel();
                let started = Instant::now();
                for envelope in envelopes {
                    let tx = tx.clone();
                    node.submit(
                        envelope,
                        Box::new(move |answer| drop(tx.send(answer.map(|_| ())))),
                    );
                }
                for _ in 0..per_iteration {
                    rx.recv()
                        .expect("the writer answers")
                        .expect("the command is accepted");
                }
                timed += started.elapsed();
            }
            timed
        })
    });
    group.finish();
    let stats = &node.published().stats;
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    let accepted = stats
        .commands_accepted
        .load(std::sync::atomic::Ordering::Relaxed);
    let commit_micros = stats
        .commit_micros_total
        .load(std::sync::atomic::Ordering::Relaxed);
    if batches > 0 {
        eprintln!(
            "writer: {accepted} commands in {batches} batches (mean {:.0} per batch), \
             mean synced commit {:.2} ms",
            accepted as f64 / batches as f64,
            commit_micros as f64 / batches as f64 / 1000.0
        );
    }
    node.shutdown();
}

fn limits(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut options = Options::default();
    options.create_if_missing(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.increase_parallelism(2);
    let db = DB::open(&options, dir.path()).expect("open RocksDB");
    let mut synced = WriteOptions::default();
    synced.set_sync(true);
    let value = [0x5a_u8; 100];
    let mut key = 0u64;

    let mut group = c.benchmark_group("limits");
    for puts in [1000u64, 1] {
        group.throughput(Throughput::Elements(puts));
        group.bench_function(
            format!("RocksDB synced WriteBatch of {puts} x 100 B"),
            |b| {
                b.iter(|| {
                    let mut batch = WriteBatch::default();
                    for _ in 0..puts {
                        key += 1;
                        batch.put(key.to_be_bytes(), value);
                    }
                    db.write_opt(batch, &synced).expect("synced write")
                })
            },
        );
    }

    let admin = admin_key();
    let raw = register_envelope(&admin, 0);
    let verified = VerifiedEnvelope::parse_and_verify(&raw).expect("fixture verifies");
    let message = pae(COMMAND_PAYLOAD_TYPE, &verified.payload_bytes);
    let signature = admin.sign(&message);
    let public = admin.public_key();
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_strict, one thread", |b| {
        b.iter(|| {
            public
                .verify(black_box(&message), black_box(&signature))
                .expect("valid signature")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = ingest, limits
}
criterion_main!(benches);
