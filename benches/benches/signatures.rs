//! The signature rule and the envelope check every command goes through before the writer.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use vledger_benches::{admin_key, register_envelope};
use vledger_ledger::envelope::{pae, VerifiedEnvelope, COMMAND_PAYLOAD_TYPE};
use vledger_ledger::keys::PublicKey;

fn signatures(c: &mut Criterion) {
    let admin = admin_key();
    let raw = register_envelope(&admin, 0);
    let verified = VerifiedEnvelope::parse_and_verify(&raw).expect("fixture verifies");
    let message = pae(COMMAND_PAYLOAD_TYPE, &verified.payload_bytes);
    let signature = admin.sign(&message);
    let public = admin.public_key();
    let public_b64 = public.to_base64();

    let mut group = c.benchmark_group("signatures");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify_strict (PublicKey::verify)", |b| {
        b.iter(|| {
            public
                .verify(black_box(&message), black_box(&signature))
                .expect("valid signature")
        })
    });
    group.bench_function("key rule (PublicKey::from_base64)", |b| {
        b.iter(|| PublicKey::from_base64(black_box(&public_b64)).expect("valid key"))
    });
    group.bench_function(
        format!("parse_and_verify party.register ({} B)", raw.len()),
        |b| {
            b.iter(|| {
                VerifiedEnvelope::parse_and_verify(black_box(&raw)).expect("fixture verifies")
            })
        },
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = signatures
}
criterion_main!(benches);
