//! The PostgreSQL baseline of `benches/pg_baseline.sh`: the same entries vledger writes (signed
//! `party.register` envelopes, already verified, in canonical entry bytes) appended to a table
//! that carries a SHA-256 hash chain, with `synchronous_commit = on`, in two forms:
//!
//! 1. `batch`: one writer appends batches of `--batch` entries, each batch one transaction that
//!    loads its rows with `COPY ... FROM STDIN` (the chain hashes are computed by the writer);
//! 2. `clients`: `--clients` concurrent clients each append one entry per transaction, taking
//!    the chain head with `SELECT ... FOR UPDATE` (one row `head`), inserting the entry and
//!    moving the head.
//!
//!   pg_baseline --url 'host=127.0.0.1 port=5433 user=postgres dbname=postgres' \
//!       [--entries 100000] [--batch 1000] [--clients 16] [--client-entries 20000] [--json]
//!
//! With `--json`, one JSON object on standard output; `vledger-load --baseline FILE` reads it
//! and prints vledger's ratios against both forms.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use sha2::{Digest, Sha256};
use vledger_benches::{admin_key, parallel_map, register_envelope};
use vledger_wire::entry::Entry;

struct Args {
    url: String,
    entries: u64,
    batch: u64,
    clients: u64,
    client_entries: u64,
    json: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        url: String::new(),
        entries: 100_000,
        batch: 1000,
        clients: 16,
        client_entries: 20_000,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value(),
            "--entries" => args.entries = value().parse().expect("--entries"),
            "--batch" => args.batch = value().parse().expect("--batch"),
            "--clients" => args.clients = value().parse().expect("--clients"),
            "--client-entries" => args.client_entries = value().parse().expect("--client-entries"),
            "--json" => args.json = true,
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!args.url.is_empty(), "--url is required");
    assert!(args.batch > 0 && args.clients > 0);
    args
}

/// The canonical bytes of the `i`-th entry: a signed `party.register` envelope, as vledger's
/// writer stores it (events left empty: the baseline stores, it does not decide).
fn entries(count: u64) -> Vec<Vec<u8>> {
    let admin = admin_key();
    parallel_map(0..count, |i| {
        Entry {
            index: i,
            node_time_ms: 1_700_000_000_000 + i,
            prev_leaf_hash: [0; 32],
            envelope: register_envelope(&admin, i),
            events: Vec::new(),
        }
        .encode()
    })
}

fn reset(client: &mut Client) -> Result<(), postgres::Error> {
    client.batch_execute(
        "SET synchronous_commit = on;
         DROP TABLE IF EXISTS entries; DROP TABLE IF EXISTS head;
         CREATE TABLE entries (idx bigint PRIMARY KEY, entry bytea NOT NULL, chain bytea NOT NULL);
         CREATE TABLE head (id int PRIMARY KEY, idx bigint NOT NULL, chain bytea NOT NULL);
         INSERT INTO head VALUES (1, -1, '\\x0000000000000000000000000000000000000000000000000000000000000000');",
    )
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn chain(prev: &[u8], entry: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(prev)
        .chain_update(entry)
        .finalize()
        .into()
}

/// Form 1: batches in one transaction each, rows loaded with COPY (text format, bytea in hex).
fn batch_form(url: &str, entries: &[Vec<u8>], batch: u64) -> Result<f64, postgres::Error> {
    let mut client = Client::connect(url, NoTls)?;
    reset(&mut client)?;
    let mut prev = [0u8; 32];
    let started = Instant::now();
    for (b, chunk) in entries.chunks(batch as usize).enumerate() {
        let mut text = Vec::with_capacity(chunk.len() * (chunk[0].len() * 2 + 100));
        for (i, entry) in chunk.iter().enumerate() {
            let idx = b as u64 * batch + i as u64;
            let hash = chain(&prev, entry);
            write!(text, "{idx}\t\\\\x").expect("write to memory");
            text.extend_from_slice(to_hex(entry).as_bytes());
            writeln!(text, "\t\\\\x{}", to_hex(&hash)).expect("write to memory");
            prev = hash;
        }
        let mut tx = client.transaction()?;
        let mut writer = tx.copy_in("COPY entries (idx, entry, chain) FROM STDIN")?;
        writer.write_all(&text).expect("COPY data");
        writer.finish()?;
        tx.execute(
            "UPDATE head SET idx = $1, chain = $2 WHERE id = 1",
            &[&((b as i64 + 1) * batch as i64 - 1), &prev.as_slice()],
        )?;
        tx.commit()?;
    }
    Ok(entries.len() as f64 / started.elapsed().as_secs_f64())
}

/// Form 2: each client appends one entry per transaction under the head's row lock.
fn clients_form(
    url: &str,
    entries: &[Vec<u8>],
    clients: u64,
) -> Result<(f64, Vec<Duration>), postgres::Error> {
    let mut client = Client::connect(url, NoTls)?;
    reset(&mut client)?;
    let entries = Arc::new(entries.to_vec());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (entries, next, url) = (entries.clone(), next.clone(), url.to_string());
            std::thread::spawn(move || -> Result<Vec<Duration>, postgres::Error> {
                let mut client = Client::connect(&url, NoTls)?;
                client.batch_execute("SET synchronous_commit = on")?;
                let lock = client.prepare("SELECT idx, chain FROM head WHERE id = 1 FOR UPDATE")?;
                let insert = client
                    .prepare("INSERT INTO entries (idx, entry, chain) VALUES ($1, $2, $3)")?;
                let advance =
                    client.prepare("UPDATE head SET idx = $1, chain = $2 WHERE id = 1")?;
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(entry) = entries.get(i) else {
                        return Ok(latencies);
                    };
                    let t = Instant::now();
                    let mut tx = client.transaction()?;
                    let row = tx.query_one(&lock, &[])?;
                    let idx: i64 = row.get(0);
                    let prev: Vec<u8> = row.get(1);
                    let hash = chain(&prev, entry);
                    tx.execute(&insert, &[&(idx + 1), &entry.as_slice(), &hash.as_slice()])?;
                    tx.execute(&advance, &[&(idx + 1), &hash.as_slice()])?;
                    tx.commit()?;
                    latencies.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for handle in handles {
        latencies.extend(handle.join().expect("client thread")?);
    }
    let rate = entries.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Ok((rate, latencies))
}

/// Checks the chain PostgreSQL holds, from the first entry to the head.
fn check_chain(url: &str, expected: usize) -> Result<(), postgres::Error> {
    let mut client = Client::connect(url, NoTls)?;
    let mut prev = vec![0u8; 32];
    let mut count = 0;
    for row in client.query("SELECT entry, chain FROM entries ORDER BY idx", &[])? {
        let entry: Vec<u8> = row.get(0);
        let stored: Vec<u8> = row.get(1);
        assert_eq!(chain(&prev, &entry).as_slice(), stored, "row {count}");
        prev = stored;
        count += 1;
    }
    assert_eq!(count, expected, "rows in the table");
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> Result<(), postgres::Error> {
    let args = parse_args();
    let all = entries(args.entries.max(args.client_entries));
    let mean_entry_bytes = all.iter().map(Vec::len).sum::<usize>() / all.len();

    let batch_rate = batch_form(&args.url, &all[..args.entries as usize], args.batch)?;
    check_chain(&args.url, args.entries as usize)?;
    let (clients_rate, lat) = clients_form(
        &args.url,
        &all[..args.client_entries as usize],
        args.clients,
    )?;
    check_chain(&args.url, args.client_entries as usize)?;

    let version: String = Client::connect(&args.url, NoTls)?
        .query_one("SHOW server_version", &[])?
        .get(0);
    eprintln!("PostgreSQL {version}, entries of {mean_entry_bytes} B, synchronous_commit on");
    eprintln!(
        "form 1, COPY batches of {}: {:.0} entries/s ({} entries)",
        args.batch, batch_rate, args.entries
    );
    eprintln!(
        "form 2, {} clients, one entry per transaction: {:.0} entries/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms ({} entries)",
        args.clients,
        clients_rate,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        args.client_entries
    );
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "postgres_version": version,
                "entry_bytes": mean_entry_bytes,
                "batch": { "batch_size": args.batch, "entries": args.entries, "entries_per_s": batch_rate },
                "clients": {
                    "clients": args.clients, "entries": args.client_entries, "entries_per_s": clients_rate,
                    "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99), "p999_ms": percentile(&lat, 0.999),
                },
            })
        );
    }
    Ok(())
}
