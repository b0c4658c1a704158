//! A deterministic simulation of the mirror protocol. Over many seeds, the node of region `sc`
//! (real, on RocksDB, accepting commands all along) is mirrored by the node of region `cq`
//! through a simulated network that loses, delays, reorders, corrupts and partitions reads,
//! answers from older snapshots, restarts the nodes and, in some seeds, serves a fork of `sc`'s
//! log signed under the same key. The simulation steps the mirror itself, on a simulated clock:
//! no mirror thread, no sleep. After every step:
//!
//! 1. what is adopted is a state that `sc` (or, once it is served, the fork) holds: the size
//!    and root its tree has;
//! 2. each state adopted extends the one before (a consistency proof from the node that holds
//!    it), unless the mirror halted with evidence that checks on its own; after a halt nothing
//!    more is adopted, across restarts too;
//! 3. once the network heals, the mirror catches up within a bounded number of steps and holds
//!    exactly `sc`'s entries, and `sc`'s parties are known as `sc` has them.
//!
//! `VLEDGER_SIM_SEEDS` seeds are run (from `VLEDGER_SIM_FIRST_SEED`, 0 by default) on
//! `VLEDGER_SIM_THREADS` threads (1); `VLEDGER_SIM_SEED=<n>` runs seed n alone,
//! `VLEDGER_SIM_VERBOSE` prints a line per seed and `VLEDGER_SIM_TRACE` one per step. A run
//! depends on its seed only: the sizes, the faults and each step's outcome repeat (only node
//! times, nonces and so hashes differ, and with them the message of a corrupted answer's
//! failure), except where a burst of commands (one seed in [`BURST_ONE_SEED_IN`]) is batched
//! as the writer finds them queued.

mod common;

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::Region;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use vledger_domain::federation::{find_party, load_adopted};
use vledger_domain::limits::MAX_MIRROR_STEP_ENTRIES;
use vledger_domain::types::RegionId;
use vledger_domain::Event;
use vledger_federation::mirror::{MirrorError, MIRROR_MAX_BACKOFF, MIRROR_POLL};
use vledger_federation::source::{LocalSource, PEER_READ_TIMEOUT};
use vledger_federation::{Mirror, PeerSource, SourceError, StepOutcome};
use vledger_node::node::Node;
use vledger_tlog::keys::SigningKey;
use vledger_tlog::merkle::{self, verify_consistency, Hash};
use vledger_tlog::tiles::{encode_entry_bundle, TilePath, TILE_WIDTH};
use vledger_wire::entry::Entry;

/// Seeds the suite runs: about 17 s of the release build on an idle machine of two cores.
const DEFAULT_SEEDS: u64 = 48;
/// Steps of a seed before the network heals: at least this many, up to twice as many.
const MIN_FAULTY_STEPS: u64 = 60;
/// Answers kept back by the network per kind of read, to be delivered late.
const MAX_LATE_ANSWERS: usize = 16;
/// The fewest commands in a run of them (see [`Scenario::run_rate`]).
const MIN_COMMAND_RUN: u64 = 20;
/// One seed in this many has a burst of commands (see [`Sim::burst`]).
const BURST_ONE_SEED_IN: u64 = 24;
/// The most commands a fork takes to reach a power of two.
const MAX_FORK_TO_POWER_OF_TWO: u64 = 200;
/// `Sim::step` once the network healed.
const HEALED: u64 = u64::MAX;
/// The keys of the mirroring node's region (`cq`) and of the region mirrored (`sc`).
const HOME_SEED: u8 = 1;
const REGION_SEED: u8 = 2;

#[test]
fn the_mirror_adopts_only_verified_consistent_states_and_converges_over_seeded_faults() {
    let seeds = seeds_from_env();
    let threads = env_u64("VLEDGER_SIM_THREADS").unwrap_or(1).max(1);
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let totals = Mutex::new(Totals::default());
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i as usize) else {
                    return;
                };
                match catch_unwind(AssertUnwindSafe(|| simulate(seed))) {
                    Ok(run) => totals.lock().unwrap().add(&run),
                    Err(_) => {
                        eprintln!(
                            "simulation seed {seed} failed; rerun it alone with VLEDGER_SIM_SEED={seed}"
                        );
                        failed.lock().unwrap().push(seed);
                    }
                }
            });
        }
    });
    let totals = totals.into_inner().unwrap();
    println!(
        "simulation: {} seeds ({}..={}) in {:.1} s",
        seeds.len(),
        seeds.first().unwrap(),
        seeds.last().unwrap(),
        started.elapsed().as_secs_f64()
    );
    println!("{totals}");
    let mut failed = failed.into_inner().unwrap();
    failed.sort_unstable();
    assert!(failed.is_empty(), "seeds that failed: {failed:?}");
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
    })
}

fn seeds_from_env() -> Vec<u64> {
    if let Some(seed) = env_u64("VLEDGER_SIM_SEED") {
        return vec![seed];
    }
    let first = env_u64("VLEDGER_SIM_FIRST_SEED").unwrap_or(0);
    let count = env_u64("VLEDGER_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS).max(1);
    (first..first + count).collect()
}

// ---------------------------------------------------------------------------------------------
// The network.

/// What the network does to reads, in reads per thousand.
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    /// Lost: the read times out.
    loss: u64,
    /// Answered too late: the read times out, and the answer is delivered later, to another read.
    late: u64,
    /// Answered with an answer kept back from an earlier read of the same kind.
    reorder: u64,
    /// Answered from an older snapshot of the node: as of a smaller tree size.
    stale: u64,
    /// One bit of the answer flipped.
    corrupt: u64,
}

impl Faults {
    fn draw(rng: &mut StdRng) -> Self {
        let mut at_most = |n: u64| {
            if below(rng, 4) == 0 {
                0
            } else {
                below(rng, n + 1)
            }
        };
        Self {
            loss: at_most(300),
            late: at_most(100),
            reorder: at_most(200),
            stale: at_most(200),
            corrupt: at_most(40),
        }
    }
}

/// A uniform draw below `n` from one draw of the generator, so that the generator's stream
/// never depends on what the nodes answer.
fn below(rng: &mut StdRng, n: u64) -> u64 {
    rng.next_u64() % n.max(1)
}

fn chance(draw: u64, per_thousand: u64) -> bool {
    draw % 1000 < per_thousand
}

#[derive(Clone, Copy)]
enum Kind {
    Checkpoint,
    Checkpoints,
    Proof,
    Bundle,
}

/// An answer as it travels.
enum Answer {
    Note(String),
    Notes(Vec<String>),
    Proof(Vec<Hash>),
    Bundle(Vec<u8>),
}

impl Answer {
    fn flip_bit(&mut self, at: u64) {
        fn flip(bytes: &mut [u8], at: u64) {
            if !bytes.is_empty() {
                let i = (at % bytes.len() as u64) as usize;
                bytes[i] ^= 1 << ((at >> 32) % 8);
            }
        }
        match self {
            Answer::Note(note) => {
                let mut bytes = std::mem::take(note).into_bytes();
                flip(&mut bytes, at);
                *note = String::from_utf8_lossy(&bytes).into_owned();
            }
            Answer::Notes(notes) => {
                if !notes.is_empty() {
                    let i = (at % notes.len() as u64) as usize;
                    let mut one = Answer::Note(std::mem::take(&mut notes[i]));
                    one.flip_bit(at >> 8);
                    let Answer::Note(note) = one else {
                        unreachable!()
                    };
                    notes[i] = note;
                }
            }
            Answer::Proof(proof) => {
                if !proof.is_empty() {
                    let i = (at % proof.len() as u64) as usize;
                    flip(&mut proof[i], at >> 8);
                }
            }
            Answer::Bundle(bytes) => flip(bytes, at),
        }
    }
}

/// The draws of one read, made whatever becomes of it.
struct Draws {
    fate: u64,
    latency: u64,
    late: u64,
    reorder: u64,
    pick: u64,
    stale: u64,
    older: u64,
    corrupt: u64,
    at: u64,
}

#[derive(Debug, Default, Clone)]
struct NetCounts {
    reads: u64,
    partitioned: u64,
    lost: u64,
    late: u64,
    reordered: u64,
    stale: u64,
    corrupted: u64,
}

/// The simulated network between the mirror and the region's node(s), with the simulated clock.
struct Network {
    rng: StdRng,
    faults: Faults,
    partitioned: bool,
    late: [VecDeque<Answer>; 4],
    clock_ms: u64,
    counts: NetCounts,
}

impl Network {
    fn draws(&mut self) -> Draws {
        let mut d = || self.rng.next_u64();
        Draws {
            fate: d(),
            latency: d(),
            late: d(),
            reorder: d(),
            pick: d(),
            stale: d(),
            older: d(),
            corrupt: d(),
            at: d(),
        }
    }
}

fn timeout_ms() -> u64 {
    PEER_READ_TIMEOUT.as_millis() as u64
}

/// The mirror's reads of one step, sent over the network to `node`.
struct Link<'a> {
    net: &'a mut Network,
    node: &'a Arc<Node>,
}

impl Link<'_> {
    /// A read on its way out: partitioned, lost, or on its way to the node.
    fn send(&mut self) -> Result<Draws, SourceError> {
        let net = &mut *self.net;
        let d = net.draws();
        net.counts.reads += 1;
        if net.partitioned {
            net.counts.partitioned += 1;
            net.clock_ms += timeout_ms();
            return Err(SourceError::Unavailable("partitioned: timed out".into()));
        }
        if chance(d.fate, net.faults.loss) {
            net.counts.lost += 1;
            net.clock_ms += timeout_ms();
            return Err(SourceError::Unavailable("lost: timed out".into()));
        }
        net.clock_ms += 1 + d.latency % 40;
        Ok(d)
    }

    /// A size the node had before, if this read is answered from an older snapshot.
    fn older_size(&mut self, d: &Draws) -> Option<u64> {
        let size = self.node.tree_size();
        (size > 1 && chance(d.stale, self.net.faults.stale)).then(|| {
            self.net.counts.stale += 1;
            1 + d.older % (size - 1)
        })
    }

    /// An answer on its way back: too late (kept back), exchanged for one kept back, or
    /// corrupted.
    fn deliver(
        &mut self,
        kind: Kind,
        d: &Draws,
        answer: Result<Answer, SourceError>,
    ) -> Result<Answer, SourceError> {
        let mut answer = answer?;
        let net = &mut *self.net;
        let kept = &mut net.late[kind as usize];
        if chance(d.late, net.faults.late) {
            net.counts.late += 1;
            kept.push_back(answer);
            if kept.len() > MAX_LATE_ANSWERS {
                kept.pop_front();
            }
            net.clock_ms += timeout_ms();
            return Err(SourceError::Unavailable("timed out".into()));
        }
        if !kept.is_empty() && chance(d.reorder, net.faults.reorder) {
            net.counts.reordered += 1;
            let i = (d.pick % kept.len() as u64) as usize;
            std::mem::swap(&mut answer, &mut kept[i]);
        }
        if chance(d.corrupt, net.faults.corrupt) {
            net.counts.corrupted += 1;
            answer.flip_bit(d.at);
        }
        Ok(answer)
    }

    fn local(&self) -> LocalSource {
        LocalSource {
            node: self.node.clone(),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> SourceError {
    SourceError::Unavailable(e.to_string())
}

impl PeerSource for Link<'_> {
    fn checkpoint(&mut self) -> Result<String, SourceError> {
        let d = self.send()?;
        let answer = match self.older_size(&d) {
            Some(size) => self
                .node
                .checkpoints_from(size, 1)
                .map_err(unavailable)
                .and_then(|notes| {
                    notes
                        .into_iter()
                        .next()
                        .map(|(_, note)| note)
                        .ok_or_else(|| unavailable("no checkpoint"))
                }),
            None => self.local().checkpoint(),
        };
        match self.deliver(Kind::Checkpoint, &d, answer.map(Answer::Note))? {
            Answer::Note(note) => Ok(note),
            _ => unreachable!("answers are kept by kind"),
        }
    }

    fn checkpoints_from(&mut self, from: u64, limit: usize) -> Result<Vec<String>, SourceError> {
        let d = self.send()?;
        let older = self.older_size(&d);
        let answer = self
            .node
            .checkpoints_from(from, limit)
            .map_err(unavailable)
            .map(|notes| {
                notes
                    .into_iter()
                    .filter(|(size, _)| older.is_none_or(|older| *size <= older))
                    .map(|(_, note)| note)
                    .collect()
            });
        match self.deliver(Kind::Checkpoints, &d, answer.map(Answer::Notes))? {
            Answer::Notes(notes) => Ok(notes),
            _ => unreachable!("answers are kept by kind"),
        }
    }

    fn consistency_proof(&mut self, from: u64, to: u64) -> Result<Vec<Hash>, SourceError> {
        let d = self.send()?;
        let answer = match self.older_size(&d) {
            // A proof to the size the snapshot had, for a question it could not answer.
            Some(older) if older < to && from < older => self
                .node
                .consistency_proof(from, older)
                .map_err(unavailable),
            Some(older) if older < to => Err(unavailable("beyond the tree size")),
            _ => self.local().consistency_proof(from, to),
        };
        match self.deliver(Kind::Proof, &d, answer.map(Answer::Proof))? {
            Answer::Proof(proof) => Ok(proof),
            _ => unreachable!("answers are kept by kind"),
        }
    }

    fn entry_bundle(&mut self, tile: TilePath) -> Result<Vec<u8>, SourceError> {
        let d = self.send()?;
        let answer = match (self.older_size(&d), tile) {
            // The bundle as far as the snapshot had it.
            (Some(older), TilePath::Entries { index, width })
                if older < index * TILE_WIDTH + u64::from(width) =>
            {
                let start = index * TILE_WIDTH;
                if older > start {
                    self.node
                        .entries(start, older)
                        .map_err(unavailable)
                        .and_then(|entries| {
                            encode_entry_bundle(entries.iter().map(|(_, e)| e.as_slice()))
                                .map_err(unavailable)
                        })
                } else {
                    Err(SourceError::NotFound(tile.to_path()))
                }
            }
            _ => self.local().entry_bundle(tile),
        };
        match self.deliver(Kind::Bundle, &d, answer.map(Answer::Bundle))? {
            Answer::Bundle(bytes) => Ok(bytes),
            _ => unreachable!("answers are kept by kind"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One seed's run.

/// What one seed's run did.
#[derive(Debug, Default, Clone)]
struct Run {
    steps: u64,
    adoptions: u64,
    up_to_date: u64,
    failed_source: u64,
    failed_invalid: u64,
    halted_steps: u64,
    home_restarts: u64,
    region_restarts: u64,
    partitions: u64,
    commands: u64,
    bursts: u64,
    mutual: bool,
    forked: bool,
    fork_served: bool,
    /// The mirror adopted a state of the fork past the point where it forked.
    fork_adopted: bool,
    /// The fork was caught: the mirror halted with evidence.
    caught: bool,
    /// On the fork's branch at a power-of-two size: no evidence can be built from a
    /// consistency proof, and every later step is refused.
    refused_power_of_two: bool,
    /// Caught up with the region, having seen a larger checkpoint of the fork (the status
    /// keeps it as the largest seen).
    fork_seen_larger: bool,
    /// Steps refused because the region's checkpoint is on another branch than the state
    /// adopted, at a power-of-two size: evidence cannot come from a consistency proof.
    refused_steps: u64,
    /// Steps after the network healed until the mirror held the region's whole log.
    catch_up_steps: u64,
    net: NetCounts,
}

#[derive(Clone)]
struct Party {
    key: SigningKey,
    /// The size of the log that first holds its registration.
    registered_at: u64,
    /// The size of the log that first holds its suspension.
    suspended_at: Option<u64>,
}

/// A region's node and what was done in it.
struct Side {
    region: Option<Region>,
    parties: Vec<Party>,
}

impl Side {
    fn node(&self) -> &Arc<Node> {
        &self.region.as_ref().expect("region open").node
    }

    fn region(&self) -> &Region {
        self.region.as_ref().expect("region open")
    }

    /// A registration, or now and then the suspension of a party registered before.
    fn command(&mut self, draw: u64, next_key: &mut u64, seed: u64) {
        let region = self.region.as_ref().expect("region open");
        let active: Vec<usize> = (0..self.parties.len())
            .filter(|&i| self.parties[i].suspended_at.is_none())
            .collect();
        // One command in five a suspension, one registration in three an agency's.
        if draw % 5 == 4 && !active.is_empty() {
            let i = active[((draw / 5) % active.len() as u64) as usize];
            region.suspend(&self.parties[i].key);
            self.parties[i].suspended_at = Some(region.node.tree_size());
        } else {
            let key = party_key(seed, *next_key);
            *next_key += 1;
            let role = ["agency", "enterprise", "enterprise"][(draw % 3) as usize];
            region.register(&key, role);
            self.parties.push(Party {
                key,
                registered_at: region.node.tree_size(),
                suspended_at: None,
            });
        }
    }
}

fn party_key(seed: u64, n: u64) -> SigningKey {
    let mut bytes = [7u8; 32];
    bytes[..8].copy_from_slice(&seed.to_be_bytes());
    bytes[8..16].copy_from_slice(&n.to_be_bytes());
    SigningKey::from_bytes(&bytes)
}

/// A state adopted: size and root.
type Adopted = (u64, Hash);

struct Sim {
    seed: u64,
    step: u64,
    rng: StdRng,
    net: Network,
    home: Option<Region>,
    mirror: Option<Mirror>,
    /// In mutual seeds, the region's mirror of the mirroring node, over a perfect network.
    reverse: Option<Mirror>,
    mutual: bool,
    /// Print every step (`VLEDGER_SIM_TRACE`).
    trace: bool,
    /// The fork takes no more commands.
    fork_frozen: bool,
    /// The region's size when it forked.
    fork_point: Option<u64>,
    honest: Side,
    fork: Option<Side>,
    /// Serve the fork this step.
    serving_fork: bool,
    region_id: RegionId,
    evidence_dir: tempfile::TempDir,
    /// The states adopted, in order, from nothing.
    adopted: Vec<Adopted>,
    halted: bool,
    failures_in_a_row: u32,
    next_key: u64,
    run: Run,
}

/// What a seed's run is made of, drawn from the seed.
#[derive(Debug)]
struct Scenario {
    faults: Faults,
    faulty_steps: u64,
    /// The step at which the region forks.
    fork_at: Option<u64>,
    /// The fork grows to the next power of two and stops there.
    fork_to_power_of_two: bool,
    /// How often the fork is served, per thousand steps.
    fork_share: u64,
    /// How often the region (and its fork) takes a command, per thousand steps.
    command_rate: u64,
    /// The region mirrors the mirroring node too: its log has adoptions of its own.
    mutual: bool,
    /// How often the region takes a run of commands in a row, per thousand steps.
    run_rate: u64,
    /// The step at which the region commits more than a mirror step's worth of entries in
    /// a few large batches.
    burst_at: Option<u64>,
}

impl Scenario {
    fn draw(seed: u64, rng: &mut StdRng) -> Self {
        let faults = Faults::draw(rng);
        let faulty_steps = MIN_FAULTY_STEPS + below(rng, MIN_FAULTY_STEPS + 1);
        let fork_at = (below(rng, 2) == 0).then(|| below(rng, faulty_steps * 3 / 4));
        let fork_to_power_of_two = below(rng, 3) == 0;
        let fork_share = 200 + below(rng, 700);
        let command_rate = 150 + below(rng, 450);
        let mutual = below(rng, 2) == 0;
        let run_rate = if below(rng, 3) == 0 { 30 } else { 0 };
        // Bursts cost seconds each: a fixed share of the seeds, so that the suite's time is.
        let burst_at =
            (seed % BURST_ONE_SEED_IN == BURST_ONE_SEED_IN - 1).then(|| below(rng, faulty_steps));
        Self {
            faults,
            faulty_steps,
            fork_at,
            fork_to_power_of_two,
            fork_share,
            command_rate,
            mutual,
            run_rate,
            burst_at,
        }
    }
}

fn simulate(seed: u64) -> Run {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let scenario = Scenario::draw(seed, &mut rng);
    let mut step_seeds = StdRng::seed_from_u64(rng.next_u64());
    let home = Region::found("cq", HOME_SEED);
    let honest = Region::found("sc", REGION_SEED);
    let region_id = honest.id.clone();
    let evidence_dir = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(
        home.node.clone(),
        honest.as_peer(),
        Some(evidence_dir.path().to_path_buf()),
    );
    let mut sim = Sim {
        seed,
        step: 0,
        rng,
        net: Network {
            rng: StdRng::seed_from_u64(0),
            faults: scenario.faults,
            partitioned: false,
            late: Default::default(),
            clock_ms: 1_767_225_600_000,
            counts: NetCounts::default(),
        },
        home: Some(home),
        mirror: Some(mirror),
        reverse: None,
        mutual: scenario.mutual,
        trace: std::env::var_os("VLEDGER_SIM_TRACE").is_some(),
        fork_frozen: false,
        fork_point: None,
        honest: Side {
            region: Some(honest),
            parties: Vec::new(),
        },
        fork: None,
        serving_fork: false,
        region_id,
        evidence_dir,
        adopted: vec![(0, merkle::empty_root())],
        halted: false,
        failures_in_a_row: 0,
        next_key: 0,
        run: Run::default(),
    };

    sim.start_reverse();
    let command_rate = scenario.command_rate;
    let mut partition_left = 0;
    for step in 0..scenario.faulty_steps {
        sim.step = step;
        // Each step's draws (the driver's and the network's) come from a generator of its
        // own, so that a step that goes another way leaves the draws of the others as they were.
        sim.rng = StdRng::seed_from_u64(step_seeds.next_u64());
        sim.net.rng = StdRng::seed_from_u64(step_seeds.next_u64());
        if below(&mut sim.rng, 1000) < command_rate {
            let draw = sim.rng.next_u64();
            sim.honest.command(draw, &mut sim.next_key, seed);
            sim.run.commands += 1;
        }
        if below(&mut sim.rng, 1000) < scenario.run_rate {
            for _ in 0..MIN_COMMAND_RUN + below(&mut sim.rng, MIN_COMMAND_RUN * 4) {
                let draw = sim.rng.next_u64();
                sim.honest.command(draw, &mut sim.next_key, seed);
                sim.run.commands += 1;
            }
        }
        if scenario.burst_at == Some(step) {
            sim.burst();
        }
        if scenario.fork_at == Some(step) {
            sim.start_fork(scenario.fork_to_power_of_two);
        }
        if let Some(fork) = sim.fork.as_mut().filter(|_| !sim.fork_frozen) {
            if below(&mut sim.rng, 1000) < command_rate {
                let draw = sim.rng.next_u64();
                fork.command(draw, &mut sim.next_key, seed);
                sim.run.commands += 1;
            }
        }
        if sim.mutual {
            if below(&mut sim.rng, 1000) < command_rate / 3 {
                let key = party_key(seed, sim.next_key);
                sim.next_key += 1;
                sim.home().register(&key, "enterprise");
                sim.run.commands += 1;
            }
            if below(&mut sim.rng, 2) == 0 {
                sim.step_reverse();
            }
        }
        if below(&mut sim.rng, 1000) < 15 {
            sim.restart_home();
        }
        if below(&mut sim.rng, 1000) < 10 {
            sim.restart_region();
        }
        if partition_left > 0 {
            partition_left -= 1;
        } else if below(&mut sim.rng, 1000) < 25 {
            partition_left = 1 + below(&mut sim.rng, 12);
            sim.run.partitions += 1;
        }
        sim.net.partitioned = partition_left > 0;
        sim.serving_fork = sim.fork.is_some() && below(&mut sim.rng, 1000) < scenario.fork_share;
        sim.step_mirror();
    }
    sim.heal();
    sim.check_view();
    sim.run.mutual = sim.mutual;
    if std::env::var_os("VLEDGER_SIM_VERBOSE").is_some() {
        let (adopted, _) = *sim.adopted.last().unwrap();
        let r = &sim.run;
        println!(
            "seed {seed} ({:.2} s): {} steps, {} adoptions, {} failed; region size {}, adopted {adopted}{}{}{}; {scenario:?}",
            started.elapsed().as_secs_f64(),
            r.steps,
            r.adoptions,
            r.failed_source + r.failed_invalid,
            sim.honest.node().tree_size(),
            if r.fork_adopted { ", on the fork's branch" } else { "" },
            if r.caught { ", caught the fork" } else { "" },
            if r.refused_power_of_two { ", refused the region for good" } else { "" },
        );
    }
    sim.run.net = sim.net.counts.clone();
    sim.run
}

impl Sim {
    fn step_name(&self) -> String {
        match self.step {
            HEALED => "after the heal".into(),
            step => step.to_string(),
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "seed {}, step {}: {what} (adopted so far: {:?})",
            self.seed,
            self.step_name(),
            self.adopted
                .iter()
                .map(|(size, _)| size)
                .collect::<Vec<_>>()
        )
    }

    fn home(&self) -> &Region {
        self.home.as_ref().expect("home open")
    }

    fn mirror(&mut self) -> &mut Mirror {
        self.mirror.as_mut().expect("mirror running")
    }

    /// The region's node stops; a copy of its store starts as a second node under the same
    /// key, and the two go on with different entries.
    fn start_fork(&mut self, to_power_of_two: bool) {
        self.reverse = None;
        let region = self.honest.region.take().unwrap();
        let (honest, fork) = region.fork(REGION_SEED);
        self.honest.region = Some(honest);
        self.start_reverse();
        let parties = self.honest.parties.clone();
        self.fork_point = Some(self.honest.node().tree_size());
        let mut fork = Side {
            region: Some(fork),
            parties,
        };
        let target = (fork.node().tree_size() + 1).next_power_of_two();
        if to_power_of_two && target - fork.node().tree_size() <= MAX_FORK_TO_POWER_OF_TWO {
            while fork.node().tree_size() < target {
                let draw = self.rng.next_u64();
                fork.command(draw, &mut self.next_key, self.seed);
                self.run.commands += 1;
            }
            self.fork_frozen = true;
        }
        self.fork = Some(fork);
        self.run.forked = true;
    }

    /// The region's node restarts (and its mirror of the mirroring node with it).
    fn restart_region(&mut self) {
        self.reverse = None;
        let region = self.honest.region.take().unwrap();
        self.honest.region = Some(region.restart(REGION_SEED));
        self.start_reverse();
        self.run.region_restarts += 1;
    }

    fn start_reverse(&mut self) {
        if self.mutual {
            let peer = self.home().as_peer();
            self.reverse = Some(Mirror::new(self.honest.node().clone(), peer, None));
        }
    }

    /// A step of the region's mirror of the mirroring node, over a perfect network.
    fn step_reverse(&mut self) -> StepOutcome {
        let mut source = LocalSource {
            node: self.home().node.clone(),
        };
        let reverse = self.reverse.as_mut().expect("a mutual seed");
        let outcome = reverse.step(&mut source, self.net.clock_ms);
        if self.trace {
            println!(
                "seed {} step {}: the region mirrors the mirroring node at size {} -> {outcome:?}",
                self.seed,
                self.step_name(),
                self.home().node.tree_size()
            );
        }
        if !matches!(outcome, StepOutcome::Adopted { .. } | StepOutcome::UpToDate) {
            self.fail(format!(
                "the region's mirror of the mirroring node: {outcome:?}"
            ));
        }
        outcome
    }

    /// More than a mirror step's worth of registrations, in a few large batches: the mirror
    /// catches up through intermediate checkpoints.
    fn burst(&mut self) {
        let n = MAX_MIRROR_STEP_ENTRIES + below(&mut self.rng, 512);
        let keys: Vec<SigningKey> = (0..n)
            .map(|i| party_key(self.seed, self.next_key + i))
            .collect();
        self.next_key += n;
        let before = self.honest.node().tree_size();
        self.honest.region().register_many(&keys, "enterprise");
        if self.honest.node().tree_size() != before + n {
            self.fail("a burst that is not one entry per command".into());
        }
        // The writer takes the queue in order: the i-th registration is entry `before + i`.
        self.honest
            .parties
            .extend(
                keys.into_iter()
                    .zip(before + 1..)
                    .map(|(key, registered_at)| Party {
                        key,
                        registered_at,
                        suspended_at: None,
                    }),
            );
        self.run.commands += n;
        self.run.bursts += 1;
    }

    /// The mirroring node restarts: the mirror and every reference to the node go, and a new
    /// mirror resumes from the adoption record (and the evidence file, if it halted).
    fn restart_home(&mut self) {
        self.mirror = None;
        let home = self.home.take().unwrap().restart(HOME_SEED);
        let peer = self.honest.region().as_peer();
        self.mirror = Some(Mirror::new(
            home.node.clone(),
            peer,
            Some(self.evidence_dir.path().to_path_buf()),
        ));
        self.home = Some(home);
        self.run.home_restarts += 1;
        let status = self.mirror().status().read().unwrap().clone();
        let record = self.load_adopted();
        if status.adopted_size != record.0 {
            self.fail(format!(
                "after a restart the mirror says size {} is adopted, the record {}",
                status.adopted_size, record.0
            ));
        }
        if self.halted && status.equivocation.is_none() {
            self.fail("after a restart the mirror forgot its evidence".into());
        }
    }

    fn load_adopted(&self) -> Adopted {
        let state = self.home().node.state();
        match load_adopted(&state, &self.region_id).unwrap() {
            None => (0, merkle::empty_root()),
            Some(record) => {
                let bytes = B64.decode(&record.root_hash).unwrap();
                (record.size, merkle::hash_from_slice(&bytes).unwrap())
            }
        }
    }

    /// The node that holds `state` (the region's or, once served, the fork's), if any.
    fn holder(&self, (size, root): Adopted) -> Option<&Arc<Node>> {
        let holds = |node: &Arc<Node>| node.root(size).is_ok_and(|r| r == root);
        let honest = self.honest.node();
        if holds(honest) {
            return Some(honest);
        }
        let fork = self.fork.as_ref().filter(|_| self.run.fork_served)?.node();
        holds(fork).then_some(fork)
    }

    fn step_mirror(&mut self) -> StepOutcome {
        let now_ms = self.net.clock_ms;
        let node = match (&self.fork, self.serving_fork) {
            (Some(fork), true) => {
                self.run.fork_served = true;
                fork.node().clone()
            }
            _ => self.honest.node().clone(),
        };
        let mut link = Link {
            net: &mut self.net,
            node: &node,
        };
        let outcome = self
            .mirror
            .as_mut()
            .expect("mirror running")
            .step(&mut link, now_ms);
        self.run.steps += 1;
        if self.trace {
            println!(
                "seed {} step {}: {} at size {} -> {outcome:?}",
                self.seed,
                self.step_name(),
                if self.serving_fork { "fork" } else { "region" },
                node.tree_size(),
            );
        }
        self.check(&outcome, &node);
        let wait = match &outcome {
            StepOutcome::Adopted { .. } => {
                self.failures_in_a_row = 0;
                0
            }
            StepOutcome::UpToDate => {
                self.failures_in_a_row = 0;
                MIRROR_POLL.as_millis() as u64
            }
            StepOutcome::Failed(_) => {
                self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
                let doubled =
                    MIRROR_POLL.as_millis() as u64 * (1 << self.failures_in_a_row.min(16));
                let wait = doubled.min(MIRROR_MAX_BACKOFF.as_millis() as u64);
                wait - wait * below(&mut self.rng, 1000) / 4000
            }
            StepOutcome::Halted => MIRROR_MAX_BACKOFF.as_millis() as u64,
        };
        self.net.clock_ms += wait;
        outcome
    }

    /// The properties, after every step.
    fn check(&mut self, outcome: &StepOutcome, served: &Arc<Node>) {
        let now = self.load_adopted();
        let last = *self.adopted.last().unwrap();
        if let StepOutcome::Failed(MirrorError::Invalid(e)) = outcome {
            let other_branch = served.root(last.0).is_ok_and(|root| root != last.1);
            if other_branch && last.0.is_power_of_two() && e.contains("consistency proof") {
                self.run.refused_steps += 1;
            }
        }
        match outcome {
            StepOutcome::Adopted { size } => {
                self.run.adoptions += 1;
                if now.0 != *size || now == last {
                    self.fail(format!(
                        "adopted size {size}, but the record holds {}",
                        now.0
                    ));
                }
            }
            StepOutcome::UpToDate | StepOutcome::Failed(_) | StepOutcome::Halted => {
                if now != last {
                    self.fail(format!(
                        "the record changed to size {} without an adoption ({outcome:?})",
                        now.0
                    ));
                }
            }
        }
        match outcome {
            StepOutcome::UpToDate => self.run.up_to_date += 1,
            StepOutcome::Failed(MirrorError::Source(_)) => self.run.failed_source += 1,
            StepOutcome::Failed(MirrorError::Invalid(_)) => self.run.failed_invalid += 1,
            StepOutcome::Failed(e) => self.fail(format!("a failure of this node's own: {e}")),
            StepOutcome::Adopted { .. } | StepOutcome::Halted => {}
        }
        if self.halted && !matches!(outcome, StepOutcome::Halted) {
            self.fail(format!(
                "after a halt, a step that did not halt: {outcome:?}"
            ));
        }
        let status = self.mirror().status().read().unwrap().clone();
        if let StepOutcome::Halted = outcome {
            self.run.halted_steps += 1;
            let Some(evidence) = &status.equivocation else {
                self.fail("halted without evidence".into());
            };
            if let Err(e) = evidence.check() {
                self.fail(format!("halted on evidence that does not check: {e}"));
            }
            if !self.run.fork_served {
                self.fail("halted, but no fork was ever served".into());
            }
            self.halted = true;
            self.run.caught = true;
        }
        if status.adopted_size != now.0 {
            self.fail(format!(
                "the mirror's status says size {} is adopted, the record {}",
                status.adopted_size, now.0
            ));
        }
        if matches!(outcome, StepOutcome::Adopted { .. } | StepOutcome::UpToDate) {
            let caught_up =
                status.latest_seen_size <= status.adopted_size.max(status.verified_size);
            if status.last_error.is_some() || (caught_up && status.behind_since_ms.is_some()) {
                self.fail(format!(
                    "after a step that succeeded ({outcome:?}), a status that says otherwise: {status:?}"
                ));
            }
        }

        // 1. Only states that the region (or its fork) holds.
        let Some(holder) = self.holder(now).cloned() else {
            self.fail(format!(
                "adopted size {} with root {}, which no node of the region holds",
                now.0,
                B64.encode(now.1)
            ));
        };
        let store = self.home().node.store();
        if !store
            .peer_entries(&self.region_id, now.0, 1)
            .unwrap()
            .is_empty()
        {
            self.fail(format!("entries mirrored past the size adopted, {}", now.0));
        }
        if now == last {
            return;
        }

        // 2. Each state adopted extends the one before; the entries mirrored are the holder's.
        if now.0 <= last.0 {
            self.fail(format!("adopted size {} after size {}", now.0, last.0));
        }
        if last.0 > 0 {
            let proof = holder.consistency_proof(last.0, now.0).unwrap();
            if let Err(e) = verify_consistency(last.0, now.0, &last.1, &now.1, &proof) {
                self.fail(format!(
                    "adopted size {} that does not extend the size {} adopted before: {e}",
                    now.0, last.0
                ));
            }
        }
        let mirrored = store
            .peer_entries(&self.region_id, last.0, usize::MAX)
            .unwrap();
        let theirs = holder.entries(last.0, now.0).unwrap();
        if mirrored != theirs {
            self.fail(format!(
                "entries {}..{} mirrored are not the region's ({} mirrored)",
                last.0,
                now.0,
                mirrored.len()
            ));
        }
        if store
            .peer_checkpoint(&self.region_id, now.0)
            .unwrap()
            .is_none()
        {
            self.fail(format!(
                "no checkpoint stored for the size adopted, {}",
                now.0
            ));
        }
        let fork_point = self
            .fork
            .as_ref()
            .map(|_| self.honest.node().root(now.0).is_ok_and(|r| r == now.1));
        if fork_point == Some(false) {
            self.run.fork_adopted = true;
        }
        self.adopted.push(now);
    }

    /// The region's parties as the mirroring node knows them: those of the adopted state's
    /// branch registered within the size adopted, with their standing as of that size, and no
    /// other.
    fn check_view(&self) {
        let (size, root) = *self.adopted.last().unwrap();
        let state = self.home().node.state();
        let shared = self.fork_point.unwrap_or(u64::MAX);
        for side in std::iter::once(&self.honest).chain(&self.fork) {
            let holds = side.node().root(size).is_ok_and(|r| r == root);
            for party in &side.parties {
                if !holds && party.registered_at <= shared {
                    continue; // the branch that holds the state checks it
                }
                let known = find_party(&state, &party.key.public_key()).unwrap();
                let expected = holds && party.registered_at <= size;
                match known {
                    None if expected => self.fail(format!(
                        "a party registered at size {} unknown with size {size} adopted",
                        party.registered_at
                    )),
                    Some(known) if !expected => self.fail(format!(
                        "a party registered at size {} (on {} branch) known with size {size} adopted: {known:?}",
                        party.registered_at,
                        if holds { "the adopted" } else { "the other" }
                    )),
                    Some(known) => {
                        let suspended = party.suspended_at.is_some_and(|at| at <= size);
                        if known.party.home_region != self.region_id
                            || known.party.suspended != suspended
                        {
                            self.fail(format!(
                                "a party as adopted at size {size}: {:?}, suspended there at {:?}",
                                known.party, party.suspended_at
                            ));
                        }
                    }
                    None => {}
                }
            }
        }
    }

    /// Whether the region's entries `from..to` are all adoptions of other regions.
    fn only_adoptions(&self, from: u64, to: u64) -> bool {
        from < to
            && self
                .honest
                .node()
                .entries(from, to)
                .unwrap()
                .iter()
                .all(|(_, bytes)| {
                    let entry = Entry::decode(bytes).unwrap();
                    let events: Vec<Event> = serde_json::from_slice(&entry.events).unwrap();
                    !events.is_empty()
                        && events
                            .iter()
                            .all(|event| matches!(event, Event::RegionAdopted { .. }))
                })
    }

    /// The network heals: no loss, no reordering, no fork, no new commands. The mirror must
    /// catch up within a bounded number of steps, or, if what it adopted is the fork's, stay
    /// halted or refuse.
    fn heal(&mut self) {
        self.step = HEALED;
        self.net.faults = Faults::default();
        self.net.partitioned = false;
        self.net.late = Default::default();
        self.serving_fork = false;
        if self.mutual {
            // The region adopts what the mirroring node has, so that its log stops growing.
            self.step_reverse();
            if !matches!(self.step_reverse(), StepOutcome::UpToDate) {
                self.fail("the region's mirror of the mirroring node is not up to date".into());
            }
        }
        let size = self.honest.node().tree_size();
        let adopted = *self.adopted.last().unwrap();
        let on_honest_branch = self
            .honest
            .node()
            .root(adopted.0)
            .is_ok_and(|r| r == adopted.1);
        if self.halted {
            for _ in 0..3 {
                self.step_mirror();
            }
            self.restart_home();
            self.step_mirror();
            return;
        }
        if !on_honest_branch {
            // Adopted a state of the fork: the region's checkpoints contradict it.
            if adopted.0.is_power_of_two() && size > adopted.0 {
                for _ in 0..3 {
                    match self.step_mirror() {
                        StepOutcome::Failed(MirrorError::Invalid(_)) => {}
                        other => self.fail(format!(
                            "on the fork's branch at size {}, a step that was not refused: {other:?}",
                            adopted.0
                        )),
                    }
                }
                self.run.refused_power_of_two = true;
            } else {
                match self.step_mirror() {
                    StepOutcome::Halted => {}
                    other => self.fail(format!(
                        "on the fork's branch at size {}, the region's checkpoint of size {size} did not halt the mirror: {other:?}",
                        adopted.0
                    )),
                }
            }
            return;
        }

        // 3. Converges: the region's whole log, each entry once, in as few steps as its size
        // allows; a tail of the region's own adoptions is verified and not adopted.
        let bound = (size - adopted.0).div_ceil(MAX_MIRROR_STEP_ENTRIES) + 1;
        let mut steps = 0;
        loop {
            steps += 1;
            let outcome = self.step_mirror();
            let now = *self.adopted.last().unwrap();
            let verified = self.mirror().status().read().unwrap().verified_size;
            if now.0 == size || (verified == size && self.only_adoptions(now.0, size)) {
                if !matches!(outcome, StepOutcome::Adopted { .. } | StepOutcome::UpToDate) {
                    self.fail(format!("after the heal: {outcome:?}"));
                }
                break;
            }
            if steps >= bound || !matches!(outcome, StepOutcome::Adopted { .. }) {
                self.fail(format!(
                    "after the heal, step {steps}: {outcome:?}; adopted {} of {size}",
                    now.0
                ));
            }
        }
        self.run.catch_up_steps = steps;
        match self.step_mirror() {
            StepOutcome::UpToDate => {}
            other => self.fail(format!("caught up, then {other:?}")),
        }
        let adopted = self.adopted.last().unwrap().0;
        let store = self.home().node.store();
        let mirrored = store.peer_entries(&self.region_id, 0, usize::MAX).unwrap();
        let theirs = self.honest.node().entries(0, adopted).unwrap();
        if mirrored != theirs {
            self.fail(format!(
                "caught up with {} entries mirrored, the region has {adopted} adopted and they differ",
                mirrored.len()
            ));
        }
        let status = self.mirror().status().read().unwrap().clone();
        // A larger checkpoint of the fork, seen and never adopted, stays the largest seen: the
        // region looks rolled back, and behind it.
        let fork_seen = self.run.fork_served
            && status.latest_seen_size > size
            && self
                .fork
                .as_ref()
                .is_some_and(|fork| fork.node().tree_size() >= status.latest_seen_size);
        if fork_seen {
            self.run.fork_seen_larger = true;
        } else if status.lag_entries() != 0 || status.behind_since_ms.is_some() {
            self.fail(format!("caught up, but the status shows a lag: {status:?}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Totals.

#[derive(Debug, Default)]
struct Totals {
    seeds: u64,
    steps: u64,
    adoptions: u64,
    up_to_date: u64,
    failed_source: u64,
    failed_invalid: u64,
    home_restarts: u64,
    region_restarts: u64,
    partitions: u64,
    commands: u64,
    bursts: u64,
    mutual: u64,
    forked: u64,
    fork_served: u64,
    fork_adopted: u64,
    caught: u64,
    refused_power_of_two: u64,
    refused_steps: u64,
    seeds_with_refused_steps: u64,
    fork_seen_larger: u64,
    max_catch_up_steps: u64,
    net: NetCounts,
}

impl Totals {
    fn add(&mut self, run: &Run) {
        self.seeds += 1;
        self.steps += run.steps;
        self.adoptions += run.adoptions;
        self.up_to_date += run.up_to_date;
        self.failed_source += run.failed_source;
        self.failed_invalid += run.failed_invalid;
        self.home_restarts += run.home_restarts;
        self.region_restarts += run.region_restarts;
        self.partitions += run.partitions;
        self.commands += run.commands;
        self.bursts += run.bursts;
        self.mutual += u64::from(run.mutual);
        self.refused_steps += run.refused_steps;
        self.seeds_with_refused_steps += u64::from(run.refused_steps > 0);
        self.fork_seen_larger += u64::from(run.fork_seen_larger);
        self.forked += u64::from(run.forked);
        self.fork_served += u64::from(run.fork_served);
        self.fork_adopted += u64::from(run.fork_adopted);
        self.caught += u64::from(run.caught);
        self.refused_power_of_two += u64::from(run.refused_power_of_two);
        self.max_catch_up_steps = self.max_catch_up_steps.max(run.catch_up_steps);
        let (n, r) = (&mut self.net, &run.net);
        n.reads += r.reads;
        n.partitioned += r.partitioned;
        n.lost += r.lost;
        n.late += r.late;
        n.reordered += r.reordered;
        n.stale += r.stale;
        n.corrupted += r.corrupted;
    }
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "steps {}: adoptions {}, up to date {}, failed {} (source {}, invalid {}); commands {} (bursts {}); mutual seeds {}",
            self.steps,
            self.adoptions,
            self.up_to_date,
            self.failed_source + self.failed_invalid,
            self.failed_source,
            self.failed_invalid,
            self.commands,
            self.bursts,
            self.mutual
        )?;
        writeln!(
            f,
            "restarts: mirroring node {}, region {}; partitions {}; catch-up after the heal at most {} steps",
            self.home_restarts, self.region_restarts, self.partitions, self.max_catch_up_steps
        )?;
        let n = &self.net;
        writeln!(
            f,
            "reads {}: partitioned {}, lost {}, late {}, reordered {}, stale {}, corrupted {}",
            n.reads, n.partitioned, n.lost, n.late, n.reordered, n.stale, n.corrupted
        )?;
        write!(
            f,
            "forks: {} seeds forked, {} served the fork, {} adopted the fork's branch; caught with evidence {}; refused for good without evidence at a power-of-two size {}; steps refused so {} (in {} seeds); caught up with the region after seeing a larger checkpoint of the fork {}",
            self.forked,
            self.fork_served,
            self.fork_adopted,
            self.caught,
            self.refused_power_of_two,
            self.refused_steps,
            self.seeds_with_refused_steps,
            self.fork_seen_larger
        )
    }
}
