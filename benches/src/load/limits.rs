//! The machine's limits, measured in the same run as the phases: `verify_strict` on one thread
//! and on every core, the ledger's signature rule and the envelope check on every core, and the
//! rate of synced RocksDB write batches (of 1000 small puts, and of one).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use vledger_wire::envelope::{pae, VerifiedEnvelope, COMMAND_PAYLOAD_TYPE};

use super::mix::{CommandKind, Fixture};
use super::LoadArgs;

/// Puts per synced batch in the RocksDB probe, and the size of each value.
pub(crate) const PROBE_BATCH_PUTS: usize = 1000;
pub(crate) const PROBE_VALUE_BYTES: usize = 100;

/// The machine's limits, measured in the same run.
#[derive(Default)]
pub(crate) struct Limits {
    pub(crate) threads: usize,
    pub(crate) verify_1t: f64,
    pub(crate) verify_nt: f64,
    pub(crate) rule_nt: f64,
    pub(crate) envelope_nt: f64,
    pub(crate) batch_1000_per_s: f64,
    pub(crate) batch_1_per_s: f64,
}

impl Limits {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "threads": self.threads,
            "verify_strict_per_second_1_thread": self.verify_1t,
            "verify_strict_per_second_all_threads": self.verify_nt,
            "ledger_signature_rule_per_second_all_threads": self.rule_nt,
            "envelope_parse_and_verify_per_second_all_threads": self.envelope_nt,
            "rocksdb_synced_batches_of_1000_per_second": self.batch_1000_per_s,
            "rocksdb_synced_puts_per_second_in_batches_of_1000": self.batch_1000_per_s * PROBE_BATCH_PUTS as f64,
            "rocksdb_synced_batches_of_1_per_second": self.batch_1_per_s,
        })
    }
}

/// Runs `work` on `threads` threads for about `seconds`; returns operations per second.
fn rate_on_threads(threads: usize, seconds: f64, work: impl Fn() + Sync) -> f64 {
    let deadline = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let total: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = 0u64;
                    while started.elapsed() < deadline {
                        for _ in 0..32 {
                            work();
                        }
                        done += 32;
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("probe thread"))
            .sum()
    });
    total as f64 / started.elapsed().as_secs_f64()
}

pub(crate) fn measure(args: &LoadArgs, fixture: &Fixture, parent: &Path) -> Result<Limits> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let raw = CommandKind::PartyRegister.build(fixture, u64::MAX, 1);
    let verified = VerifiedEnvelope::parse_and_verify(&raw)
        .map_err(|e| anyhow::anyhow!("probe envelope: {e}"))?;
    let message = pae(COMMAND_PAYLOAD_TYPE, &verified.payload_bytes);
    let signature = fixture.admin.sign(&message);
    let public = fixture.admin.public_key();
    // The machine's limit: ed25519-dalek's own `verify_strict`, with the key decoded once.
    let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(public.as_bytes())
        .context("the probe key decodes")?;
    let dalek_signature = ed25519_dalek::Signature::from_bytes(&signature);
    let verify = || {
        dalek_key
            .verify_strict(std::hint::black_box(&message), &dalek_signature)
            .expect("valid signature");
    };
    let s = args.probe_seconds;
    eprintln!("limits: verify_strict on 1 and {threads} threads, envelope checks, synced RocksDB writes ...");
    let verify_1t = rate_on_threads(1, s, verify);
    let verify_nt = rate_on_threads(threads, s, verify);
    // The ledger's check of the same rule (keys::PublicKey::verify).
    let rule_nt = rate_on_threads(threads, s, || {
        public
            .verify(std::hint::black_box(&message), &signature)
            .expect("valid signature");
    });
    let envelope_nt = rate_on_threads(threads, s, || {
        VerifiedEnvelope::parse_and_verify(std::hint::black_box(&raw)).expect("verifies");
    });

    let dir = tempfile::Builder::new()
        .prefix("vledger-bench-rocksdb-")
        .tempdir_in(parent)?;
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.increase_parallelism(2);
    let db = rocksdb::DB::open(&options, dir.path()).context("open the probe RocksDB")?;
    let mut synced = rocksdb::WriteOptions::default();
    synced.set_sync(true);
    let value = [0x5a_u8; PROBE_VALUE_BYTES];
    let mut key = 0u64;
    let mut synced_batches = |puts: usize| -> Result<f64> {
        let started = Instant::now();
        let mut batches = 0u64;
        while started.elapsed().as_secs_f64() < s {
            let mut batch = rocksdb::WriteBatch::default();
            for _ in 0..puts {
                key += 1;
                batch.put(key.to_be_bytes(), value);
            }
            db.write_opt(batch, &synced).context("synced write")?;
            batches += 1;
        }
        Ok(batches as f64 / started.elapsed().as_secs_f64())
    };
    let batch_1000_per_s = synced_batches(PROBE_BATCH_PUTS)?;
    let batch_1_per_s = synced_batches(1)?;
    Ok(Limits {
        threads,
        verify_1t,
        verify_nt,
        rule_nt,
        envelope_nt,
        batch_1000_per_s,
        batch_1_per_s,
    })
}
