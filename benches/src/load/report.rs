//! The report: the table on standard output (or standard error with `--json`), the JSON object,
//! and the ratios against the machine's limits and PostgreSQL's baseline.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use super::limits::{Limits, PROBE_BATCH_PUTS, PROBE_VALUE_BYTES};
use super::measure::PhaseResult;
use super::MIB;

pub(crate) struct Report {
    pub(crate) commands: u64,
    pub(crate) mix: String,
    pub(crate) clients: usize,
    pub(crate) window: usize,
    pub(crate) max_batch: usize,
    pub(crate) cores: usize,
    pub(crate) dir: PathBuf,
    pub(crate) limits: Option<Limits>,
    pub(crate) results: Vec<PhaseResult>,
    pub(crate) baseline: Option<Value>,
}

impl Report {
    pub(crate) fn result(&self, name: &str) -> Option<&PhaseResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// Each phase's ingest rate over the all-core `verify_strict` rate.
    pub(crate) fn ratios(&self) -> Vec<(&'static str, String, f64)> {
        let mut out = self.baseline_ratios();
        let Some(limits) = &self.limits else {
            return out;
        };
        for r in &self.results {
            out.push((
                r.name,
                format!("{} / verify_strict on {} threads", r.label, limits.threads),
                r.rate() / limits.verify_nt,
            ));
        }
        for r in &self.results {
            out.push((
                r.name,
                format!(
                    "{} / envelope checks on {} threads",
                    r.label, limits.threads
                ),
                r.rate() / limits.envelope_nt,
            ));
        }
        out
    }

    /// The writer phase over PostgreSQL's COPY batches, the HTTP phase over PostgreSQL's
    /// one-entry transactions.
    fn baseline_ratios(&self) -> Vec<(&'static str, String, f64)> {
        let Some(pg) = &self.baseline else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let batch = &pg["batch"];
        if let (Some(r), Some(rate)) = (self.result("writer"), batch["entries_per_s"].as_f64()) {
            out.push((
                "writer",
                format!(
                    "{}, batches of at most {} / PostgreSQL COPY batches of {} ({:.0}/s)",
                    r.label, self.max_batch, batch["batch_size"], rate
                ),
                r.rate() / rate,
            ));
        }
        let clients = &pg["clients"];
        if let (Some(r), Some(rate)) = (self.result("http"), clients["entries_per_s"].as_f64()) {
            out.push((
                "http",
                format!(
                    "{} / PostgreSQL {} clients, 1 entry per transaction ({:.0}/s)",
                    r.label, clients["clients"], rate
                ),
                r.rate() / rate,
            ));
        }
        out
    }

    pub(crate) fn table(&self) -> String {
        use std::fmt::Write;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "vledger-load: {} commands ({}), {} cores, durable (synced) stores under {}, \
             batches of at most {} commands",
            self.commands,
            self.mix,
            self.cores,
            self.dir.display(),
            self.max_batch
        );
        if let Some(l) = &self.limits {
            let _ = writeln!(t, "\nmachine limits (this run)");
            let _ = writeln!(
                t,
                "  {:<44} {:>12}/s",
                "verify_strict, 1 thread",
                count(l.verify_1t)
            );
            let _ = writeln!(
                t,
                "  {:<44} {:>12}/s",
                format!("verify_strict, {} threads", l.threads),
                count(l.verify_nt)
            );
            let _ = writeln!(
                t,
                "  {:<44} {:>12}/s",
                format!("ledger signature rule, {} threads", l.threads),
                count(l.rule_nt)
            );
            let _ = writeln!(
                t,
                "  {:<44} {:>12}/s",
                format!("envelope parse_and_verify, {} threads", l.threads),
                count(l.envelope_nt)
            );
            let _ = writeln!(
                t,
                "  {:<44} {:>12}/s  ({} puts/s)",
                format!("synced RocksDB batch of {PROBE_BATCH_PUTS} x {PROBE_VALUE_BYTES} B"),
                count(l.batch_1000_per_s),
                count(l.batch_1000_per_s * PROBE_BATCH_PUTS as f64)
            );
            let _ = writeln!(
                t,
                "  {:<44} {:>12}/s  ({} each)",
                "synced RocksDB batch of 1 put",
                count(l.batch_1_per_s),
                duration(Duration::from_secs_f64(1.0 / l.batch_1_per_s.max(1e-9)))
            );
        }
        if !self.results.is_empty() {
            let _ = writeln!(
                t,
                "\ningest (window {} in flight in process; HTTP clients wait for each answer)",
                self.window
            );
            let _ = writeln!(
                t,
                "  {:<32} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9} {:>7} {:>9}",
                "phase",
                "cmd/s",
                "p50",
                "p99",
                "p99.9",
                "max",
                "batches",
                "cmd/batch",
                "commit",
                "in sync",
                "longest"
            );
            for r in &self.results {
                let p = |q| r.percentile(q).map_or("-".into(), duration);
                let _ = writeln!(
                    t,
                    "  {:<32} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9} {:>7} {:>9}",
                    r.label,
                    count(r.rate()),
                    p(0.50),
                    p(0.99),
                    p(0.999),
                    p(1.0),
                    r.writer.map_or("-".into(), |w| w.batches.to_string()),
                    r.mean_batch().map_or("-".into(), |b| format!("{b:.0}")),
                    r.mean_commit().map_or("-".into(), duration),
                    r.commit_share()
                        .map_or("-".into(), |c| format!("{:.0}%", c * 100.0)),
                    r.writer
                        .map_or("-".into(), |w| duration(Duration::from_micros(
                            w.longest_commit_micros
                        )))
                );
                if r.accepted != r.sent || !r.errors.is_empty() {
                    let _ = writeln!(
                        t,
                        "    {} of {} sent were accepted; refused: {:?}",
                        r.accepted, r.sent, r.errors
                    );
                }
                if let Some((writer, commit)) = r.writer.and_then(|w| w.cpu_micros_per_command()) {
                    let _ = writeln!(
                        t,
                        "    CPU per command: writer thread {writer:.2} µs, commit thread \
                         {commit:.2} µs (the writer thread alone could decide {}/s)",
                        count(1e6 / writer.max(f64::MIN_POSITIVE))
                    );
                }
                if let Some(m) = r.memory {
                    let _ = writeln!(
                        t,
                        "    resident memory at the end {:.0} MiB; the process's peak so far {:.0} MiB",
                        m.resident_bytes as f64 / MIB,
                        m.peak_resident_bytes as f64 / MIB
                    );
                }
            }
            let _ = writeln!(
                t,
                "  (commit: mean synced write per batch; in sync: share of the phase's wall time \
                 the commit thread spent in it, while the writer decides the next batch; longest: \
                 the longest synced write)"
            );
        }
        let ratios = self.ratios();
        if !ratios.is_empty() {
            let _ = writeln!(t, "\nratios");
            for (_, label, ratio) in &ratios {
                let _ = writeln!(t, "  {label:<72} {ratio:>6.3}");
            }
            if let (Some(l), Some(http)) = (&self.limits, self.result("http")) {
                let bound = l.batch_1_per_s * self.clients as f64;
                let _ = writeln!(
                    t,
                    "  {:<72} {:>6.3}",
                    format!(
                        "{} / ({} clients x synced batches of 1 per s)",
                        http.label, self.clients
                    ),
                    http.rate() / bound
                );
            }
        }
        t
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut phases = serde_json::Map::new();
        for r in &self.results {
            phases.insert(r.name.to_string(), r.to_json());
        }
        let mut ratios = serde_json::Map::new();
        if let Some(l) = &self.limits {
            for r in &self.results {
                ratios.insert(
                    format!("{}_over_verify_strict_all_threads", r.name),
                    json!(r.rate() / l.verify_nt),
                );
                ratios.insert(
                    format!("{}_over_envelope_checks_all_threads", r.name),
                    json!(r.rate() / l.envelope_nt),
                );
            }
            if let Some(http) = self.result("http") {
                ratios.insert(
                    "http_over_clients_times_synced_batches_of_1".into(),
                    json!(http.rate() / (l.batch_1_per_s * self.clients as f64)),
                );
            }
        }
        for (name, _, ratio) in self.baseline_ratios() {
            let key = match name {
                "writer" => "writer_over_postgres_copy_batches",
                _ => "http_over_postgres_one_entry_transactions",
            };
            ratios.insert(key.into(), json!(ratio));
        }
        json!({
            "commands": self.commands,
            "mix": self.mix,
            "clients": self.clients,
            "window": self.window,
            "max_batch_commands": self.max_batch,
            "cores": self.cores,
            "limits": self.limits.as_ref().map(Limits::to_json),
            "phases": phases,
            "ratios": ratios,
            "postgres": self.baseline,
        })
    }
}

/// A rate or count with thousands separators.
pub(crate) fn count(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A latency in the unit that suits it.
fn duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 10_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}
