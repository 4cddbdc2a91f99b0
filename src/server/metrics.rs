//! Prometheus text-format metrics: counters and histograms kept with atomics and small
//! maps, rendered on demand. Label sets are bounded: routes are the router's templates,
//! reasons are the refusal classes.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency histogram, in seconds.
const LATENCY_BUCKETS_S: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Upper bounds of the batch-size histogram, in entries.
const BATCH_BUCKETS: &[u64] = &[1, 2, 5, 10, 50, 100, 500, 1000, 16_000];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        for (i, b) in bounds.iter().enumerate() {
            if value <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in bounds.iter().enumerate() {
            let n = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Default)]
pub struct Metrics {
    entries_accepted: AtomicU64,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    batches: Mutex<Histogram>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Metrics {
    pub fn accepted(&self, entries: usize) {
        self.entries_accepted
            .fetch_add(entries as u64, Ordering::Relaxed);
        let bounds: Vec<f64> = BATCH_BUCKETS.iter().map(|b| *b as f64).collect();
        lock(&self.batches).observe(&bounds, entries as f64);
    }

    pub fn rejected(&self, reason: &'static str) {
        *lock(&self.rejections).entry(reason).or_default() += 1;
    }

    pub fn request(&self, method: &str, route: &str, seconds: f64) {
        lock(&self.latency)
            .entry((method.to_string(), route.to_string()))
            .or_default()
            .observe(LATENCY_BUCKETS_S, seconds);
    }

    pub fn render(&self, tree_size: u64) -> String {
        let mut out = String::new();
        out.push_str("# HELP dcledger_entries_accepted_total Entries made durable.\n# TYPE dcledger_entries_accepted_total counter\n");
        let _ = writeln!(
            out,
            "dcledger_entries_accepted_total {}",
            self.entries_accepted.load(Ordering::Relaxed)
        );
        out.push_str("# HELP dcledger_rejections_total Refused submissions by reason.\n# TYPE dcledger_rejections_total counter\n");
        for (reason, n) in lock(&self.rejections).iter() {
            let _ = writeln!(out, "dcledger_rejections_total{{reason=\"{reason}\"}} {n}");
        }
        out.push_str(
            "# HELP dcledger_tree_size Leaves in the ledger.\n# TYPE dcledger_tree_size gauge\n",
        );
        let _ = writeln!(out, "dcledger_tree_size {tree_size}");
        out.push_str("# HELP dcledger_batch_entries Entries per accepted submission.\n# TYPE dcledger_batch_entries histogram\n");
        let bounds: Vec<f64> = BATCH_BUCKETS.iter().map(|b| *b as f64).collect();
        lock(&self.batches).render(&mut out, "dcledger_batch_entries", "", &bounds);
        out.push_str("# HELP dcledger_http_request_duration_seconds Request latency by route.\n# TYPE dcledger_http_request_duration_seconds histogram\n");
        for ((method, route), h) in lock(&self.latency).iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            h.render(
                &mut out,
                "dcledger_http_request_duration_seconds",
                &labels,
                LATENCY_BUCKETS_S,
            );
        }
        out
    }
}
