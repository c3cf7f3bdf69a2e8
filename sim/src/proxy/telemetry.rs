//! Istio-compatible telemetry: the standard metrics with Istio's names and labels, served as
//! Prometheus text on each proxy's 15020 `/stats/prometheus`, and merged across all proxies
//! on one loopback port by `up`.
//!
//! Metrics are kept per proxy. A sample's label set is looked up once per connection (or per
//! response code) and the returned handle is bumped lock-free on the hot path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// An ordered label set; order is the exposition order.
pub type Labels = Vec<(&'static str, String)>;

/// Istio's default buckets for `istio_request_duration_milliseconds`.
pub const DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
pub struct Histogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in microseconds, so it can be atomic.
    sum_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: DURATION_BUCKETS_MS
                .iter()
                .map(|_| AtomicU64::new(0))
                .collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe_ms(&self, ms: f64) {
        if let Some(i) = DURATION_BUCKETS_MS.iter().position(|&b| ms <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((ms * 1000.0).max(0.0) as u64, Ordering::Relaxed);
    }
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// A metric family: one series per label set.
#[derive(Debug)]
pub struct Family<M> {
    pub name: &'static str,
    pub help: &'static str,
    series: RwLock<BTreeMap<Labels, Arc<M>>>,
}

impl<M: Default> Family<M> {
    pub fn new(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            help,
            series: RwLock::new(BTreeMap::new()),
        }
    }

    /// The series for `labels`, created on first use.
    pub fn get(&self, labels: &Labels) -> Arc<M> {
        if let Ok(s) = self.series.read()
            && let Some(m) = s.get(labels)
        {
            return m.clone();
        }
        let mut s = self.series.write().unwrap_or_else(|e| e.into_inner());
        s.entry(labels.clone()).or_default().clone()
    }

    pub fn snapshot(&self) -> Vec<(Labels, Arc<M>)> {
        self.series
            .read()
            .map(|s| s.iter().map(|(l, m)| (l.clone(), m.clone())).collect())
            .unwrap_or_default()
    }
}

/// The metrics one proxy reports.
#[derive(Debug)]
pub struct ProxyMetrics {
    pub requests_total: Family<Counter>,
    pub request_duration: Family<Histogram>,
    pub tcp_opened: Family<Counter>,
    pub tcp_closed: Family<Counter>,
    pub tcp_sent: Family<Counter>,
    pub tcp_received: Family<Counter>,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        ProxyMetrics {
            requests_total: Family::new(
                "istio_requests_total",
                "Total requests handled by an Istio proxy.",
            ),
            request_duration: Family::new(
                "istio_request_duration_milliseconds",
                "Duration of requests handled by an Istio proxy, in milliseconds.",
            ),
            tcp_opened: Family::new(
                "istio_tcp_connections_opened_total",
                "Total TCP connections opened.",
            ),
            tcp_closed: Family::new(
                "istio_tcp_connections_closed_total",
                "Total TCP connections closed.",
            ),
            tcp_sent: Family::new(
                "istio_tcp_sent_bytes_total",
                "Bytes sent during TCP connections (response direction).",
            ),
            tcp_received: Family::new(
                "istio_tcp_received_bytes_total",
                "Bytes received during TCP connections (request direction).",
            ),
        }
    }
}

/// Prometheus text label escaping.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn write_labels(out: &mut String, labels: &Labels, extra: &[(&str, &str)], le: Option<&str>) {
    out.push('{');
    let mut first = true;
    let mut put = |out: &mut String, k: &str, v: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{k}=\"{}\"", escape(v));
    };
    for (k, v) in extra {
        put(out, k, v);
    }
    for (k, v) in labels {
        put(out, k, v);
    }
    if let Some(le) = le {
        put(out, "le", le);
    }
    out.push('}');
}

/// Renders the metrics of several proxies as one Prometheus text exposition. Each family's
/// HELP and TYPE appear once; `extra` labels (e.g. the proxy's pod) tell the proxies apart.
pub fn render(proxies: &[(Vec<(&str, &str)>, &ProxyMetrics)]) -> String {
    let mut out = String::new();
    let counters: [fn(&ProxyMetrics) -> &Family<Counter>; 5] = [
        |m| &m.requests_total,
        |m| &m.tcp_opened,
        |m| &m.tcp_closed,
        |m| &m.tcp_sent,
        |m| &m.tcp_received,
    ];
    for pick in counters {
        let Some((_, first)) = proxies.first() else {
            return out;
        };
        let fam = pick(first);
        let mut header = false;
        for (extra, m) in proxies {
            for (labels, c) in pick(m).snapshot() {
                if !header {
                    let _ = writeln!(out, "# HELP {} {}", fam.name, fam.help);
                    let _ = writeln!(out, "# TYPE {} counter", fam.name);
                    header = true;
                }
                out.push_str(fam.name);
                write_labels(&mut out, &labels, extra, None);
                let _ = writeln!(out, " {}", c.get());
            }
        }
    }
    let mut header = false;
    for (extra, m) in proxies {
        let fam = &m.request_duration;
        for (labels, h) in fam.snapshot() {
            if !header {
                let _ = writeln!(out, "# HELP {} {}", fam.name, fam.help);
                let _ = writeln!(out, "# TYPE {} histogram", fam.name);
                header = true;
            }
            let mut cum = 0;
            for (b, n) in DURATION_BUCKETS_MS.iter().zip(&h.buckets) {
                cum += n.load(Ordering::Relaxed);
                let _ = write!(out, "{}_bucket", fam.name);
                write_labels(&mut out, &labels, extra, Some(&b.to_string()));
                let _ = writeln!(out, " {cum}");
            }
            let count = h.count();
            let _ = write!(out, "{}_bucket", fam.name);
            write_labels(&mut out, &labels, extra, Some("+Inf"));
            let _ = writeln!(out, " {count}");
            let _ = write!(out, "{}_sum", fam.name);
            write_labels(&mut out, &labels, extra, None);
            let _ = writeln!(out, " {}", h.sum_us.load(Ordering::Relaxed) as f64 / 1000.0);
            let _ = write!(out, "{}_count", fam.name);
            write_labels(&mut out, &labels, extra, None);
            let _ = writeln!(out, " {count}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_merged_families_once() {
        let a = ProxyMetrics::default();
        let b = ProxyMetrics::default();
        let l: Labels = vec![
            ("reporter", "destination".into()),
            ("response_code", "200".into()),
        ];
        a.requests_total.get(&l).inc();
        a.requests_total.get(&l).inc();
        b.requests_total.get(&l).inc();
        b.request_duration.get(&l).observe_ms(3.0);
        let text = render(&[(vec![("pod", "a")], &a), (vec![("pod", "b")], &b)]);
        assert_eq!(
            text.matches("# TYPE istio_requests_total counter").count(),
            1
        );
        assert!(text.contains(
            "istio_requests_total{pod=\"a\",reporter=\"destination\",response_code=\"200\"} 2"
        ));
        assert!(text.contains(
            "istio_requests_total{pod=\"b\",reporter=\"destination\",response_code=\"200\"} 1"
        ));
        assert!(text.contains("le=\"5\"} 1"), "{text}");
        assert!(text.contains("le=\"1\"} 0"), "{text}");
        assert!(text.contains("istio_request_duration_milliseconds_count{pod=\"b\""));
        assert!(!text.contains("istio_tcp_connections_opened_total"));
    }
}
