//! What an ingest phase measured: its answers and latencies, the node writer's counters and
//! threads' CPU time over the phase, and the process's resident memory.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};
use vledger_node::node::Node;
use vledger_node::writer::{COMMIT_THREAD_NAME, WRITER_THREAD_NAME};

use super::MIB;

/// What one ingest phase measured.
pub(crate) struct PhaseResult {
    pub(crate) name: &'static str,
    pub(crate) label: String,
    pub(crate) sent: usize,
    pub(crate) accepted: usize,
    pub(crate) errors: BTreeMap<String, usize>,
    pub(crate) elapsed: Duration,
    /// Per command, from when it was taken up (before any check) to its answer.
    pub(crate) latencies: Latencies,
    /// The writer's counters; not known for a target node in another process.
    pub(crate) writer: Option<WriterDelta>,
    /// The process's resident memory at the end of the phase, and its peak so far.
    pub(crate) memory: Option<ProcessMemory>,
}

/// A short, stable description of why a command was not accepted, for counting.
pub(crate) fn error_kind(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Latencies in nanoseconds, kept in a histogram with three significant digits: its memory does
/// not grow with the number of commands.
pub(crate) struct Latencies(hdrhistogram::Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub(crate) fn new() -> Self {
        // 1 ns to an hour; anything longer counts as an hour.
        Self(
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("valid histogram bounds"),
        )
    }

    pub(crate) fn record(&mut self, nanos: u64) {
        self.0.saturating_record(nanos);
    }

    /// The latency at quantile `q` (the maximum at 1.0), or None when nothing was recorded.
    pub(crate) fn percentile(&self, q: f64) -> Option<Duration> {
        if self.0.is_empty() {
            return None;
        }
        let nanos = if q >= 1.0 {
            self.0.max()
        } else {
            self.0.value_at_quantile(q)
        };
        Some(Duration::from_nanos(nanos))
    }
}

/// Resident memory of this process, from `/proc/self/status` (Linux).
#[derive(Clone, Copy)]
pub(crate) struct ProcessMemory {
    pub(crate) resident_bytes: u64,
    pub(crate) peak_resident_bytes: u64,
}

impl ProcessMemory {
    pub(crate) fn read() -> Option<Self> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib = |field: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(field))?;
            line[field.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        };
        Some(Self {
            resident_bytes: kib("VmRSS:")? * 1024,
            peak_resident_bytes: kib("VmHWM:")? * 1024,
        })
    }
}

/// The writer's counters over a phase.
#[derive(Clone, Copy)]
pub(crate) struct WriterDelta {
    pub(crate) batches: u64,
    pub(crate) accepted: u64,
    pub(crate) commit_micros: u64,
    /// The node's longest synced write (each phase's node is a fresh one).
    pub(crate) longest_commit_micros: u64,
    /// CPU time the writer thread ran, and the commit thread (`None` where the kernel does not
    /// tell a thread's CPU time).
    pub(crate) writer_cpu_nanos: Option<u64>,
    pub(crate) commit_cpu_nanos: Option<u64>,
}

impl WriterDelta {
    pub(crate) fn read(node: &Node) -> Self {
        let stats = &node.published().stats;
        Self {
            batches: stats.batches.load(Ordering::Relaxed),
            accepted: stats.commands_accepted.load(Ordering::Relaxed),
            commit_micros: stats.commit_micros_total.load(Ordering::Relaxed),
            longest_commit_micros: stats.longest_commit_micros.load(Ordering::Relaxed),
            writer_cpu_nanos: threads_cpu_nanos(WRITER_THREAD_NAME),
            commit_cpu_nanos: threads_cpu_nanos(COMMIT_THREAD_NAME),
        }
    }

    pub(crate) fn since(self, before: Self) -> Self {
        let delta = |now: Option<u64>, then: Option<u64>| Some(now?.saturating_sub(then?));
        Self {
            batches: self.batches - before.batches,
            accepted: self.accepted - before.accepted,
            commit_micros: self.commit_micros - before.commit_micros,
            longest_commit_micros: self.longest_commit_micros,
            writer_cpu_nanos: delta(self.writer_cpu_nanos, before.writer_cpu_nanos),
            commit_cpu_nanos: delta(self.commit_cpu_nanos, before.commit_cpu_nanos),
        }
    }

    /// CPU microseconds per accepted command of the writer thread and of the commit thread.
    pub(crate) fn cpu_micros_per_command(&self) -> Option<(f64, f64)> {
        let per_command =
            |nanos: Option<u64>| Some(nanos? as f64 / 1e3 / self.accepted.max(1) as f64);
        Some((
            per_command(self.writer_cpu_nanos)?,
            per_command(self.commit_cpu_nanos)?,
        ))
    }
}

/// The CPU time (ns) the threads of this process named `name` have run so far, from Linux's
/// `/proc/self/task/*/schedstat`; `None` if no such thread reports it. A node has one writer
/// and one commit thread, and each phase's node is a fresh one: the difference over a phase
/// is that node's (threads of earlier nodes that still exist add the same to both readings).
fn threads_cpu_nanos(name: &str) -> Option<u64> {
    let mut total = None;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        if !std::fs::read_to_string(path.join("comm")).is_ok_and(|comm| comm.trim_end() == name) {
            continue;
        }
        let ran = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|stat| stat.split_whitespace().next()?.parse::<u64>().ok());
        if let Some(nanos) = ran {
            total = Some(total.unwrap_or(0) + nanos);
        }
    }
    total
}

impl PhaseResult {
    pub(crate) fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn percentile(&self, p: f64) -> Option<Duration> {
        self.latencies.percentile(p)
    }

    pub(crate) fn mean_batch(&self) -> Option<f64> {
        let w = self.writer?;
        Some(w.accepted as f64 / w.batches.max(1) as f64)
    }

    pub(crate) fn mean_commit(&self) -> Option<Duration> {
        let w = self.writer?;
        Some(Duration::from_micros(w.commit_micros / w.batches.max(1)))
    }

    /// The share of the phase's wall time the commit thread spent in synced writes (the writer
    /// decides the next batch meanwhile).
    pub(crate) fn commit_share(&self) -> Option<f64> {
        let w = self.writer?;
        Some(w.commit_micros as f64 / 1e6 / self.elapsed.as_secs_f64())
    }

    pub(crate) fn to_json(&self) -> Value {
        let ms = |p: f64| self.percentile(p).map(|d| d.as_secs_f64() * 1e3);
        json!({
            "label": self.label,
            "sent": self.sent,
            "accepted": self.accepted,
            "errors": self.errors,
            "seconds": self.elapsed.as_secs_f64(),
            "commands_per_second": self.rate(),
            "latency_ms": { "p50": ms(0.50), "p99": ms(0.99), "p999": ms(0.999), "max": ms(1.0) },
            "resident_memory_mib": self.memory.map(|m| json!({
                "at_end": m.resident_bytes as f64 / MIB,
                "peak_of_process": m.peak_resident_bytes as f64 / MIB,
            })),
            "writer": self.writer.map(|w| json!({
                "batches": w.batches,
                "mean_batch_commands": self.mean_batch(),
                "mean_commit_ms": self.mean_commit().map(|d| d.as_secs_f64() * 1e3),
                "commit_share_of_wall_time": self.commit_share(),
                "longest_commit_ms": w.longest_commit_micros as f64 / 1e3,
                "writer_thread_cpu_us_per_command": w.cpu_micros_per_command().map(|c| c.0),
                "commit_thread_cpu_us_per_command": w.cpu_micros_per_command().map(|c| c.1),
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn the_cpu_time_of_named_threads_is_read_from_the_kernel() {
        let name = "bench-cpu-probe";
        assert_eq!(threads_cpu_nanos(name), None, "no such thread yet");
        let (spun, has_spun) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let spinner = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // Spins until the kernel has counted 20 ms of its CPU time (however busy the
                // machine's other cores are), or 10 s have passed.
                let started = Instant::now();
                let mut spins = 0u64;
                while started.elapsed() < Duration::from_secs(10)
                    && (!spins.is_multiple_of(4096)
                        || threads_cpu_nanos(name).unwrap_or(0) < 20_000_000)
                {
                    spins = std::hint::black_box(spins + 1);
                }
                spun.send(()).unwrap();
                stopped.recv().unwrap();
            })
            .unwrap();
        has_spun.recv().unwrap();
        let nanos = threads_cpu_nanos(name).expect("the spinning thread is counted");
        // It ran on a core for at least 20 ms.
        assert!(nanos >= 10_000_000, "{nanos} ns");
        assert!(nanos < 10_000_000_000, "{nanos} ns");
        stop.send(()).unwrap();
        spinner.join().unwrap();
    }
}
