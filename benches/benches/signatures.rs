//! The signature rule and the envelope check every command goes through before the writer.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use vledger_benches::{admin_key, party_key, register_envelope};
use vledger_tlog::fixed_base::FixedBase;
use vledger_tlog::keys::PublicKey;
use vledger_wire::envelope::{pae, VerifiedEnvelope, COMMAND_PAYLOAD_TYPE};

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
    let dalek_key =
        ed25519_dalek::VerifyingKey::from_bytes(public.as_bytes()).expect("the key decodes");
    let dalek_signature = ed25519_dalek::Signature::from_bytes(&signature);
    group.bench_function("ed25519-dalek verify_strict, key decoded once", |b| {
        b.iter(|| {
            dalek_key
                .verify_strict(black_box(&message), &dalek_signature)
                .expect("valid signature")
        })
    });
    // The rule as the node checks it; after its first 16 signatures the key has its table of
    // multiples, so this measures the path of a key that signs often.
    group.bench_function("PublicKey::verify, a key that signs often", |b| {
        b.iter(|| {
            public
                .verify(black_box(&message), black_box(&signature))
                .expect("valid signature")
        })
    });
    // The lifecycle mix has 82 signers: with many keys' tables in turn, their look-ups miss the
    // CPU's caches more often than with one.
    for keys in [16u64, 64] {
        let signed: Vec<(PublicKey, Vec<u8>, [u8; 64])> = (0..keys)
            .map(|n| {
                let signer = party_key(n);
                let key = PublicKey::from_bytes(signer.public_key().as_bytes()).expect("valid");
                let message = format!("{n}: {}", "m".repeat(600)).into_bytes();
                let signature = signer.sign(&message);
                (key, message, signature)
            })
            .collect();
        for (key, message, signature) in &signed {
            for _ in 0..32 {
                key.verify(message, signature).expect("valid signature");
            }
        }
        let mut next = signed.iter().cycle();
        group.bench_function(format!("PublicKey::verify, {keys} keys in turn"), |b| {
            b.iter(|| {
                let (key, message, signature) = next.next().expect("cycles");
                key.verify(black_box(message), black_box(signature))
                    .expect("valid signature")
            })
        });
    }
    group.bench_function("a key's table of multiples (built once per key)", |b| {
        let minus_a = -dalek_key.to_edwards();
        b.iter(|| FixedBase::for_key(black_box(&minus_a)))
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
