//! The node's Prometheus metrics, in one `prometheus_client` registry: requests by route and
//! status, latency histograms per route and the connections, recorded as requests are served;
//! the writer's counters, the queue, the tree and the store, read from the node at each scrape.
//! Served as the Prometheus text format (version 0.0.4).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use vledger_node::node::Node;

/// The `Content-Type` of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency histogram buckets, in seconds.
const LATENCY_BUCKETS_S: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

/// A request's route template (`/v1/entries/{index}`, or `unmatched`) and answer status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

/// A request's route template.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_S)
}

/// Every metric the node serves at `/metrics`.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Connections served now.
    connections_open: Gauge<u64, AtomicU64>,
    /// Connections over the bound being answered 503 now.
    connections_refusing: Gauge<u64, AtomicU64>,
    /// Connections over the bound since the node started (answered 503, or closed at once).
    connections_refused: Counter,
}

impl Metrics {
    /// The registry of `node`'s metrics. Help texts are given without their final full stop,
    /// which the registry adds; counters without their `_total`, which the encoding adds.
    pub fn new(
        node: Arc<Node>,
        federation: Arc<crate::federation::Federation>,
        catalog: Arc<vledger_search::CatalogIndex>,
    ) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "vledger_http_requests",
            "HTTP requests by route template and status",
            requests.clone(),
        );
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "vledger_http_request_duration_seconds",
            "HTTP request latency by route template",
            latency.clone(),
        );
        let connections_open = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "vledger_http_connections_open",
            "Connections served now",
            connections_open.clone(),
        );
        let connections_refusing = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "vledger_http_connections_refusing",
            "Connections over the bound being answered 503 now",
            connections_refusing.clone(),
        );
        let connections_refused = Counter::default();
        registry.register(
            "vledger_http_connections_refused",
            "Connections over the bound (answered 503 too-many-connections, or closed at once)",
            connections_refused.clone(),
        );
        registry.register_collector(Box::new(CatalogIndexCollector {
            node: node.clone(),
            catalog,
        }));
        registry.register_collector(Box::new(NodeCollector(node)));
        registry.register_collector(Box::new(FederationCollector(federation)));
        Self {
            registry,
            requests,
            latency,
            connections_open,
            connections_refusing,
            connections_refused,
        }
    }

    pub(crate) fn connection_opened(&self, refusing: bool) {
        self.connection_gauge(refusing).inc();
    }

    pub(crate) fn connection_closed(&self, refusing: bool) {
        self.connection_gauge(refusing).dec();
    }

    pub(crate) fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    fn connection_gauge(&self, refusing: bool) -> &Gauge<u64, AtomicU64> {
        if refusing {
            &self.connections_refusing
        } else {
            &self.connections_open
        }
    }

    /// Counts one answered request of `route` and its latency.
    pub fn record(&self, route: &str, status: u16, elapsed: Duration) {
        let route = route.to_string();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// The node's own figures, read from it at each scrape: the writer's counters (from
/// `Node::published`), its queue, the tree size and whether the store writes.
struct NodeCollector(Arc<Node>);

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCollector")
            .field("region", &self.0.region())
            .finish_non_exhaustive()
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let node = &self.0;
        let stats = &node.published().stats;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let counters = [
            (
                "vledger_writer_batches",
                "Batches committed by the writer.",
                load(&stats.batches),
            ),
            (
                "vledger_commands_accepted",
                "Commands written to the log.",
                load(&stats.commands_accepted),
            ),
            (
                "vledger_commands_rejected",
                "Commands the writer refused.",
                load(&stats.commands_rejected),
            ),
            (
                "vledger_writer_commit_microseconds",
                "Time spent in synced batch writes.",
                load(&stats.commit_micros_total),
            ),
            (
                "vledger_writer_failed_batches",
                "Batches whose synced write failed (their commands were refused).",
                load(&stats.failed_batches),
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges = [
            ("vledger_tree_size", "Entries in the log.", node.tree_size()),
            (
                "vledger_writer_last_batch_size",
                "Commands in the last committed batch.",
                load(&stats.last_batch_size),
            ),
            (
                "vledger_writer_queue_depth",
                "Commands waiting for the writer.",
                node.queue_depth(),
            ),
            (
                "vledger_storage_writable",
                "1 while the store writes, 0 while it cannot (commands are refused).",
                u64::from(node.storage_failure().is_none()),
            ),
            (
                "vledger_writer_longest_commit_microseconds",
                "The longest synced batch write since the node started.",
                load(&stats.longest_commit_micros),
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// The catalog's search index: what it reflects, read at each scrape.
struct CatalogIndexCollector {
    node: Arc<Node>,
    catalog: Arc<vledger_search::CatalogIndex>,
}

impl std::fmt::Debug for CatalogIndexCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogIndexCollector").finish()
    }
}

impl Collector for CatalogIndexCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // The index's size is read first: it never passes the log's, so the lag is never
        // negative.
        let indexed = self.catalog.freshness().log_size;
        let log_size = self.node.tree_size();
        let gauges = [
            (
                "vledger_catalog_index_log_size",
                "Entries of this log the catalog's search index reflects.",
                indexed as f64,
            ),
            (
                "vledger_catalog_index_lag_entries",
                "Entries of this log the catalog's search index does not reflect yet.",
                log_size.saturating_sub(indexed) as f64,
            ),
            (
                "vledger_catalog_index_failing",
                "1 while the latest attempt to index the catalog failed, else 0.",
                f64::from(u8::from(self.catalog.last_error().is_some())),
            ),
        ];
        for (name, help, value) in gauges {
            let family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            ConstGauge::new(value).encode(family)?;
        }
        Ok(())
    }
}

/// The mirrors of the other regions, one label set per region, read at each scrape.
struct FederationCollector(Arc<crate::federation::Federation>);

impl std::fmt::Debug for FederationCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationCollector")
            .field("regions", &self.0.peers.len())
            .finish()
    }
}

/// A region of the federation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegionLabels {
    region: String,
}

impl Collector for FederationCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = vledger_node::writer::wall_clock_ms();
        let statuses: Vec<(RegionLabels, vledger_federation::MirrorStatus)> = self
            .0
            .peers
            .iter()
            .map(|(peer, status)| {
                let labels = RegionLabels {
                    region: peer.region.to_string(),
                };
                (labels, status.read().expect("mirror status lock").clone())
            })
            .collect();
        if statuses.is_empty() {
            return Ok(());
        }
        type Figure = fn(&vledger_federation::MirrorStatus, u64) -> f64;
        let gauges: [(&str, &str, Figure); 4] = [
            (
                "vledger_federation_adopted_size",
                "The size of the region's log adopted.",
                |s, _| s.adopted_size as f64,
            ),
            (
                "vledger_federation_lag_entries",
                "Entries the region has that are not adopted yet.",
                |s, _| s.lag_entries() as f64,
            ),
            (
                "vledger_federation_lag_seconds",
                "Seconds since the oldest entry of the region not adopted yet was first seen.",
                |s, now| s.lag_seconds(now),
            ),
            (
                "vledger_federation_equivocation",
                "1 once the region equivocated (adoption from it stopped), else 0.",
                |s, _| f64::from(u8::from(s.equivocation.is_some())),
            ),
        ];
        for (name, help, figure) in gauges {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (labels, status) in &statuses {
                let gauge = ConstGauge::new(figure(status, now));
                gauge.encode(family.encode_family(labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "vledger_federation_mirror_errors",
            "Mirror steps of the region that failed.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (labels, status) in &statuses {
            let counter = ConstCounter::new(status.errors);
            counter.encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}
