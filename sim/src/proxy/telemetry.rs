//! Istio-compatible telemetry: the standard metrics with Istio's names and labels, kept in
//! `prometheus-client` families (the crate ztunnel itself uses) and served on each proxy's
//! 15020 `/stats/prometheus`, and merged across all proxies on one loopback port by `up`.
//!
//! A scraper that asks for OpenMetrics (`Accept: application/openmetrics-text`) gets it; any
//! other gets the Prometheus text format 0.0.4, as Envoy and ztunnel answer.

use std::borrow::Cow;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// An ordered label set; order is the exposition order.
pub type Labels = Vec<(&'static str, String)>;

/// Istio's default buckets for `istio_request_duration_milliseconds`.
pub const DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS_MS)
}

/// The metrics one proxy reports.
#[derive(Debug)]
pub struct ProxyMetrics {
    pub requests_total: Family<Labels, Counter>,
    pub request_duration: Family<Labels, Histogram, fn() -> Histogram>,
    pub tcp_opened: Family<Labels, Counter>,
    pub tcp_closed: Family<Labels, Counter>,
    pub tcp_sent: Family<Labels, Counter>,
    pub tcp_received: Family<Labels, Counter>,
    /// `istio_build`: which proxy and version answers (always 1).
    pub build: Family<Labels, Gauge>,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        ProxyMetrics {
            requests_total: Family::default(),
            request_duration: Family::new_with_constructor(duration_histogram),
            tcp_opened: Family::default(),
            tcp_closed: Family::default(),
            tcp_sent: Family::default(),
            tcp_received: Family::default(),
            build: Family::default(),
        }
    }
}

impl ProxyMetrics {
    /// A proxy's metrics, with `istio_build` set: `component` is `proxy` for Envoy-like
    /// proxies (sidecar, waypoint) and `ztunnel` for ztunnel, as Istio's are.
    pub fn for_component(component: &str) -> ProxyMetrics {
        let m = ProxyMetrics::default();
        m.build
            .get_or_create(&vec![
                ("component", component.to_string()),
                ("tag", format!("meshsim-{}", env!("CARGO_PKG_VERSION"))),
            ])
            .set(1);
        m
    }

    /// Registers (shares) every family into `r`; counters get `_total` from the encoder.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "istio_requests",
            "Total requests handled by an Istio proxy",
            self.requests_total.clone(),
        );
        r.register(
            "istio_request_duration_milliseconds",
            "Duration of requests handled by an Istio proxy, in milliseconds",
            self.request_duration.clone(),
        );
        r.register(
            "istio_tcp_connections_opened",
            "Total TCP connections opened",
            self.tcp_opened.clone(),
        );
        r.register(
            "istio_tcp_connections_closed",
            "Total TCP connections closed",
            self.tcp_closed.clone(),
        );
        r.register(
            "istio_tcp_sent_bytes",
            "Bytes sent during TCP connections (response direction)",
            self.tcp_sent.clone(),
        );
        r.register(
            "istio_tcp_received_bytes",
            "Bytes received during TCP connections (request direction)",
            self.tcp_received.clone(),
        );
        r.register(
            "istio_build",
            "Istio component build info",
            self.build.clone(),
        );
    }
}

/// A registry of several proxies' metrics, each under its own `extra` labels (e.g. its pod),
/// so one exposition tells them apart.
pub fn registry(proxies: &[(Vec<(&'static str, String)>, &ProxyMetrics)]) -> Registry {
    let mut r = Registry::default();
    for (extra, m) in proxies {
        let labels = extra
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), Cow::Owned(v.clone())));
        m.register(r.sub_registry_with_labels(labels));
    }
    r
}

/// The exposition formats a scraper can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Prometheus text 0.0.4.
    Prometheus,
}

impl Format {
    /// From an `Accept` header: OpenMetrics when asked for, Prometheus text otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Renders a registry in `format`.
pub fn render(r: &Registry, format: Format) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut text, r);
    let merged = merge_families(&text);
    match format {
        Format::OpenMetrics => merged + "# EOF\n",
        Format::Prometheus => to_prometheus_text(&merged),
    }
}

/// Each proxy's sub-registry writes its own copy of a family's HELP and TYPE; both formats
/// want each family once, with all its samples under it.
fn merge_families(text: &str) -> String {
    // Families in first-seen order: their metadata lines, then every sample.
    let mut order: Vec<String> = Vec::new();
    let mut families: std::collections::HashMap<String, (Vec<&str>, Vec<&str>)> =
        std::collections::HashMap::new();
    let mut current: Option<String> = None;
    for l in text.lines() {
        if l == "# EOF" {
            continue;
        }
        if let Some(rest) = l.strip_prefix("# ") {
            let name = rest.split(' ').nth(1).unwrap_or_default().to_string();
            let f = families.entry(name.clone()).or_insert_with(|| {
                order.push(name.clone());
                (Vec::new(), Vec::new())
            });
            if !f.0.contains(&l) && f.1.is_empty() {
                f.0.push(l);
            }
            current = Some(name);
        } else if let Some(name) = &current
            && let Some(f) = families.get_mut(name)
        {
            f.1.push(l);
        }
    }
    let mut out = String::with_capacity(text.len());
    for name in order {
        if let Some((meta, samples)) = families.get(&name) {
            for l in meta.iter().chain(samples) {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    out
}

/// OpenMetrics text → Prometheus text 0.0.4: no `# EOF`, no `# UNIT`, and a counter's HELP
/// and TYPE name its samples (`istio_requests_total`), as the older format wants.
fn to_prometheus_text(open: &str) -> String {
    let mut counters = std::collections::BTreeSet::new();
    for l in open.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ")
            && let Some(name) = rest.strip_suffix(" counter")
        {
            counters.insert(name.to_string());
        }
    }
    let mut out = String::with_capacity(open.len());
    for l in open.lines() {
        if l == "# EOF" || l.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| l.strip_prefix(p).map(|rest| (*p, rest)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{p}{name}_total {tail}"));
                } else {
                    out.push_str(l);
                }
            }
            None => out.push_str(l),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_merged_families_once_in_both_formats() {
        let a = ProxyMetrics::for_component("proxy");
        let b = ProxyMetrics::for_component("ztunnel");
        let l: Labels = vec![
            ("reporter", "destination".into()),
            ("response_code", "200".into()),
        ];
        a.requests_total.get_or_create(&l).inc();
        a.requests_total.get_or_create(&l).inc();
        b.requests_total.get_or_create(&l).inc();
        b.request_duration.get_or_create(&l).observe(3.0);
        let r = registry(&[
            (vec![("pod", "a".to_string())], &a),
            (vec![("pod", "b".to_string())], &b),
        ]);
        let text = render(&r, Format::Prometheus);
        assert_eq!(
            text.matches("# TYPE istio_requests_total counter").count(),
            1,
            "{text}"
        );
        let sample = |pod: &str, n: u64| {
            text.lines().any(|l| {
                l.starts_with("istio_requests_total{")
                    && l.contains(&format!("pod=\"{pod}\""))
                    && l.contains("reporter=\"destination\"")
                    && l.ends_with(&format!(" {n}"))
            })
        };
        assert!(sample("a", 2) && sample("b", 1), "{text}");
        let bucket = |le: &str, n: u64| {
            text.lines().any(|l| {
                l.starts_with("istio_request_duration_milliseconds_bucket{")
                    && l.contains(&format!("le=\"{le}\""))
                    && l.ends_with(&format!(" {n}"))
            })
        };
        assert!(bucket("5.0", 1) && bucket("1.0", 0), "{text}");
        assert!(
            text.contains("istio_request_duration_milliseconds_count{"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
        assert!(text.contains("istio_build{") && text.contains("component=\"ztunnel\""));

        let open = render(&r, Format::OpenMetrics);
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(open.contains("# TYPE istio_requests counter"));
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; version=1.0.0")),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Prometheus);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
    }
}
