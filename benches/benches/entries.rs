//! The canonical entry bytes: encoding, decoding and the Merkle leaf hash of a real
//! `party.register` entry.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use vledger_benches::sample_register_entry;
use vledger_tlog::merkle::leaf_hash;
use vledger_wire::entry::Entry;

fn entries(c: &mut Criterion) {
    let bytes = sample_register_entry();
    let entry = Entry::decode(&bytes).expect("a stored entry decodes");
    let len = bytes.len();

    let mut group = c.benchmark_group(format!("entries ({len} B party.register entry)"));
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function("Entry::encode", |b| b.iter(|| black_box(&entry).encode()));
    group.bench_function("Entry::decode", |b| {
        b.iter(|| Entry::decode(black_box(&bytes)).expect("decodes"))
    });
    group.bench_function("merkle::leaf_hash", |b| {
        b.iter(|| leaf_hash(black_box(&bytes)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = entries
}
criterion_main!(benches);
