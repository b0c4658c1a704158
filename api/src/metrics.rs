//! Prometheus text metrics: requests by route and status, latency histograms per route, and the
//! writer's counters.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use vledger_node::node::Node;

/// Upper bounds of the latency histogram buckets, in seconds.
const LATENCY_BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

/// Request counters and latency histograms, keyed by route template.
#[derive(Default)]
pub struct HttpMetrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Connections served now.
    connections_open: AtomicU64,
    /// Connections over the bound being answered 503 now.
    connections_refusing: AtomicU64,
    /// Connections over the bound since the node started (answered 503, or closed at once).
    connections_refused: AtomicU64,
}

impl HttpMetrics {
    pub(crate) fn connection_opened(&self, refusing: bool) {
        self.connection_gauge(refusing)
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self, refusing: bool) {
        self.connection_gauge(refusing)
            .fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    fn connection_gauge(&self, refusing: bool) -> &AtomicU64 {
        if refusing {
            &self.connections_refusing
        } else {
            &self.connections_open
        }
    }

    pub fn record(&self, route: &str, status: u16, elapsed: Duration) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((route.to_string(), status))
            .or_default() += 1;
        let mut latency = self.latency.lock().expect("metrics lock");
        let h = latency.entry(route.to_string()).or_default();
        let s = elapsed.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS_S.iter().enumerate() {
            if s <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum_s += s;
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self, node: &Node) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP vledger_http_requests_total HTTP requests by route template and status.\n",
        );
        out.push_str("# TYPE vledger_http_requests_total counter\n");
        for ((route, status), count) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "vledger_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP vledger_http_request_duration_seconds HTTP request latency by route template.\n");
        out.push_str("# TYPE vledger_http_request_duration_seconds histogram\n");
        for (route, h) in self.latency.lock().expect("metrics lock").iter() {
            for (bound, count) in LATENCY_BUCKETS_S.iter().zip(h.buckets) {
                let _ = writeln!(out, "vledger_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(
                out,
                "vledger_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "vledger_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum_s
            );
            let _ = writeln!(
                out,
                "vledger_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        let stats = &node.published().stats;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let gauges = [
            (
                "vledger_http_connections_open",
                "gauge",
                "Connections served now.",
                load(&self.connections_open),
            ),
            (
                "vledger_http_connections_refusing",
                "gauge",
                "Connections over the bound being answered 503 now.",
                load(&self.connections_refusing),
            ),
            (
                "vledger_http_connections_refused_total",
                "counter",
                "Connections over the bound (answered 503 too-many-connections, or closed at once).",
                load(&self.connections_refused),
            ),
            (
                "vledger_tree_size",
                "gauge",
                "Entries in the log.",
                node.tree_size(),
            ),
            (
                "vledger_writer_batches_total",
                "counter",
                "Batches committed by the writer.",
                load(&stats.batches),
            ),
            (
                "vledger_commands_accepted_total",
                "counter",
                "Commands written to the log.",
                load(&stats.commands_accepted),
            ),
            (
                "vledger_commands_rejected_total",
                "counter",
                "Commands the writer refused.",
                load(&stats.commands_rejected),
            ),
            (
                "vledger_writer_last_batch_size",
                "gauge",
                "Commands in the last committed batch.",
                load(&stats.last_batch_size),
            ),
            (
                "vledger_writer_queue_depth",
                "gauge",
                "Commands waiting for the writer.",
                node.queue_depth(),
            ),
            (
                "vledger_writer_commit_microseconds_total",
                "counter",
                "Time spent in synced batch writes.",
                load(&stats.commit_micros_total),
            ),
            (
                "vledger_writer_failed_batches_total",
                "counter",
                "Batches whose synced write failed (their commands were refused).",
                load(&stats.failed_batches),
            ),
            (
                "vledger_storage_writable",
                "gauge",
                "1 while the store writes, 0 while it cannot (commands are refused).",
                u64::from(node.storage_failure().is_none()),
            ),
            (
                "vledger_writer_longest_commit_microseconds",
                "gauge",
                "The longest synced batch write since the node started.",
                load(&stats.longest_commit_micros),
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}
