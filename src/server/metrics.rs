//! `/metrics` through `prometheus-client` (OpenMetrics text). Every label set is bounded:
//! methods fold into a few names and `other`, routes are the router's templates or
//! `other`, refusal reasons are the refusal classes. Counts the ledger owns (entries
//! accepted by this process by any path, the tree size) are read at scrape time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::ledger::Reader;

/// Upper bounds of the latency histogram, in seconds.
const LATENCY_BUCKETS_S: [f64; 11] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Upper bounds of the batch-size histogram, in entries.
const BATCH_BUCKETS_ENTRIES: [f64; 9] = [1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 16_000.0];

/// An HTTP method, folded into the few the API answers and `OTHER`: a client sending
/// made-up methods cannot grow the label set.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
pub enum Method {
    GET,
    HEAD,
    POST,
    OTHER,
}

impl Method {
    pub fn of(method: &axum::http::Method) -> Method {
        match *method {
            axum::http::Method::GET => Method::GET,
            axum::http::Method::HEAD => Method::HEAD,
            axum::http::Method::POST => Method::POST,
            _ => Method::OTHER,
        }
    }
}

/// The label value for requests that matched no route.
pub const OTHER_ROUTE: &str = "other";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    method: Method,
    /// A route template of the router, or `other`.
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Refusal {
    reason: &'static str,
}

pub struct Metrics {
    registry: Registry,
    latency: Family<Request, Histogram, fn() -> Histogram>,
    rejections: Family<Refusal, Counter>,
    batches: Histogram,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS_S)
}

impl Metrics {
    pub fn new(reader: Reader) -> Metrics {
        let mut registry = Registry::default();
        let latency = Family::<Request, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "dcledger_http_request_duration_seconds",
            "Request latency by method and route",
            latency.clone(),
        );
        let rejections = Family::<Refusal, Counter>::default();
        registry.register(
            "dcledger_rejections",
            "Refused submissions by reason",
            rejections.clone(),
        );
        let batches = Histogram::new(BATCH_BUCKETS_ENTRIES);
        registry.register(
            "dcledger_batch_entries",
            "Entries per accepted submission",
            batches.clone(),
        );
        registry.register_collector(Box::new(LedgerCollector { reader }));
        Metrics {
            registry,
            latency,
            rejections,
            batches,
        }
    }

    /// An accepted submission of `entries` envelopes (the count of accepted entries
    /// itself is the ledger's: `ledger::entries_appended_by_this_process`).
    pub fn accepted(&self, entries: usize) {
        // Batches hold at most 1,000 envelopes: exact in binary64.
        #[allow(clippy::cast_precision_loss)]
        self.batches.observe(entries as f64);
    }

    /// A refused submission; `reason` is a refusal class or a fixed word.
    pub fn rejected(&self, reason: &'static str) {
        self.rejections.get_or_create(&Refusal { reason }).inc();
    }

    /// A request answered in `seconds`; `route` is a router template or `OTHER_ROUTE`.
    pub fn request(&self, method: Method, route: &'static str, seconds: f64) {
        self.latency
            .get_or_create(&Request { method, route })
            .observe(seconds);
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Entries this process has appended to any ledger, by any path (HTTP, bulk, the demo's
/// load), and the tree size, read when scraped.
struct LedgerCollector {
    reader: Reader,
}

impl std::fmt::Debug for LedgerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LedgerCollector")
    }
}

impl Collector for LedgerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let accepted = ConstCounter::new(crate::ledger::entries_appended_by_this_process());
        accepted.encode(encoder.encode_descriptor(
            "dcledger_entries_accepted",
            "Entries made durable by this process, by any path",
            None,
            accepted.metric_type(),
        )?)?;
        let size = ConstGauge::new(i64::try_from(self.reader.size()).unwrap_or(i64::MAX));
        size.encode(encoder.encode_descriptor(
            "dcledger_tree_size",
            "Leaves in the ledger",
            None,
            size.metric_type(),
        )?)?;
        Ok(())
    }
}
