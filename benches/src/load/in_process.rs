//! The in-process phases (`writer`, `inproc`): envelopes handed to `Node::submit` from
//! submitting threads, at most `--window` in flight, answers counted where they arrive.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vledger_wire::envelope::VerifiedEnvelope;

use super::measure::{error_kind, Latencies, PhaseResult, ProcessMemory, WriterDelta};
use super::mix::{Fixture, Mix};
use super::{write_new_key, LoadArgs, ORIGIN, REGION};

/// Counts in-flight commands; `acquire` waits while `limit` are out. A release wakes a waiter
/// only when there is one, so that answering a command costs the load generator no system call.
struct Window {
    state: Mutex<WindowState>,
    freed: Condvar,
    limit: usize,
}

#[derive(Default)]
struct WindowState {
    out: usize,
    waiting: usize,
}

impl Window {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            state: Mutex::default(),
            freed: Condvar::new(),
            limit: limit.max(1),
        }
    }

    fn acquire(&self) {
        let mut state = self.state.lock().expect("window lock");
        while state.out >= self.limit {
            state.waiting += 1;
            state = self.freed.wait(state).expect("window lock");
            state.waiting -= 1;
        }
        state.out += 1;
    }

    fn release(&self) {
        let mut state = self.state.lock().expect("window lock");
        state.out -= 1;
        if state.waiting > 0 {
            self.freed.notify_one();
        }
    }
}

/// What the in-process phases submit: raw envelopes (checked by the submitting threads) or
/// envelopes verified before the clock starts.
pub(crate) enum Load {
    Raw(Arc<Vec<Vec<u8>>>),
    Verified(Vec<VerifiedEnvelope>),
}

impl Load {
    pub(crate) fn len(&self) -> usize {
        match self {
            Load::Raw(raw) => raw.len(),
            Load::Verified(verified) => verified.len(),
        }
    }
}

/// The answers an in-process phase has collected.
struct Tally {
    answered: usize,
    accepted: usize,
    errors: BTreeMap<String, usize>,
    latencies: Latencies,
    last_answer: Instant,
}

impl Tally {
    pub(crate) fn add(&mut self, (answer, latency_ns): (Result<(), String>, u64)) {
        self.answered += 1;
        self.last_answer = Instant::now();
        self.latencies.record(latency_ns);
        match answer {
            Ok(()) => self.accepted += 1,
            Err(kind) => *self.errors.entry(kind).or_insert(0) += 1,
        }
    }
}

/// Drives `total` commands, arriving in `loads` (all at once, or chunk by chunk as they are
/// signed), into a fresh node through `Node::submit`, at most `--window` in flight, and waits
/// for every answer. `checked`: the loads are raw envelopes, checked by one thread per core.
pub(crate) fn run(
    args: &LoadArgs,
    fixture: &Fixture,
    mix: &Mix,
    parent: &Path,
    checked: bool,
    total: u64,
    loads: impl Iterator<Item = Load>,
) -> Result<PhaseResult> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (name, mut label, threads) = if checked {
        (
            "inproc",
            format!("in process (checks on {cores} threads)"),
            cores,
        )
    } else {
        ("writer", "writer (pre-verified)".to_string(), 1)
    };
    if let Some(chunk) = args.sign_chunk {
        label.push_str(&format!(", signed in chunks of {chunk} during the phase"));
    }
    eprintln!("{label}: {total} commands ...");
    let (node, dir, node_key) = fixture.open_node(parent, mix, args.max_batch)?;
    let window = Arc::new(Window::new(args.window));
    let deadline = Duration::from_secs(args.max_seconds);
    let before = WriterDelta::read(&node);
    let started = Instant::now();
    let mut sent = 0usize;
    // Counted where each answer arrives (the node's commit thread, or a checking thread for a
    // refused envelope): no channel and no wake-up per command.
    let tally = Arc::new(Mutex::new(Tally {
        answered: 0,
        accepted: 0,
        errors: BTreeMap::new(),
        latencies: Latencies::new(),
        last_answer: started,
    }));

    for load in loads {
        if started.elapsed() >= deadline {
            break;
        }
        let count = load.len();
        let (slots, raw): (Vec<Mutex<Option<VerifiedEnvelope>>>, _) = match load {
            Load::Verified(v) => (v.into_iter().map(|e| Mutex::new(Some(e))).collect(), None),
            Load::Raw(raw) => (Vec::new(), Some(raw)),
        };
        let next = AtomicUsize::new(0);
        let chunk_sent = AtomicUsize::new(0);
        let submitter = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= count || started.elapsed() >= deadline {
                break;
            }
            window.acquire();
            chunk_sent.fetch_add(1, Ordering::Relaxed);
            let taken = Instant::now();
            let envelope = match &raw {
                None => slots[i]
                    .lock()
                    .expect("slot lock")
                    .take()
                    .expect("each envelope is taken once"),
                Some(raw) => match VerifiedEnvelope::parse_and_verify(&raw[i]) {
                    Ok(envelope) => envelope,
                    Err(e) => {
                        window.release();
                        let latency = taken.elapsed().as_nanos() as u64;
                        let answer = Err(error_kind(&e.to_string()));
                        tally.lock().expect("tally lock").add((answer, latency));
                        continue;
                    }
                },
            };
            let (tally, window) = (tally.clone(), window.clone());
            node.submit(
                envelope,
                Box::new(move |answer| {
                    let latency = taken.elapsed().as_nanos() as u64;
                    window.release();
                    let answer = answer.map(|_| ()).map_err(|e| error_kind(&e.to_string()));
                    tally.lock().expect("tally lock").add((answer, latency));
                }),
            );
        };
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(submitter);
            }
        });
        sent += chunk_sent.into_inner();
    }
    // Every command sent is answered (the writer answers each, accepted or not).
    while tally.lock().expect("tally lock").answered < sent {
        std::thread::sleep(Duration::from_millis(1));
    }
    let tally = {
        let mut counted = tally.lock().expect("tally lock");
        Tally {
            errors: std::mem::take(&mut counted.errors),
            latencies: std::mem::take(&mut counted.latencies),
            ..*counted
        }
    };
    let writer = WriterDelta::read(&node).since(before);
    let memory = ProcessMemory::read();
    node.shutdown();
    drop(node);
    if let Some(keep) = &args.keep_data {
        if keep.exists() {
            bail!("--keep-data: {} exists already", keep.display());
        }
        // Renamed, so on the file system of --dir.
        std::fs::rename(dir.keep(), keep)
            .with_context(|| format!("--keep-data: cannot move the data to {}", keep.display()))?;
        write_new_key(&keep.join("keys").join("node.pem"), &node_key)?;
        write_new_key(&keep.join("keys").join("admin.pem"), &fixture.admin)?;
        eprintln!(
            "kept the node's data, its key and its admin's key in {}; serve it with \
             `vledger serve --data {} --region {REGION} --origin {ORIGIN}`",
            keep.display(),
            keep.display()
        );
    }
    Ok(PhaseResult {
        name,
        label,
        sent,
        accepted: tally.accepted,
        errors: tally.errors,
        elapsed: tally.last_answer - started,
        latencies: tally.latencies,
        writer: Some(writer),
        memory,
    })
}
