//! `DestinationRule` (networking.istio.io): which rule a proxy applies to a service, and the
//! connection pool's circuit breakers it turns into, as istiod and Envoy do.
//!
//! - Which rule: istiod looks in the proxy's own namespace first, then the service's namespace
//!   (rules exported to the proxy's), then the root namespace; in each, the exact host beats the
//!   most specific wildcard (`PushContext.destinationRule`, pilot/pkg/model/push_context.go).
//! - Short hosts: a host without a dot is `<host>.<rule's namespace>.svc.cluster.local`; one with
//!   a dot is taken as written (`ResolveShortnameToFQDN`, pkg/config/model.go).
//! - Limits: `applyConnectionPool` (pilot/pkg/networking/core/cluster_traffic_policy.go) maps
//!   `tcp.maxConnections` → max_connections, `http.http1MaxPendingRequests` →
//!   max_pending_requests, `http.http2MaxRequests` → max_requests, and leaves each unset one at
//!   istiod's default, `math.MaxUint32` (`getDefaultCircuitBreakerThresholds`): without a
//!   rule, nothing overflows. A `portLevelSettings` entry for the port replaces the whole
//!   `connectionPool` (`GetPortLevelTrafficPolicy`).
//!
//! Subsets, load balancer, outlier detection, TLS and the rest are read so that real rules
//! load, and reported as not applied (`unmodelled`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::{ObjectMeta, ROOT_NAMESPACE, WorkloadSelector};

pub const API_VERSIONS: &[&str] = &[
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRule {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: DestinationRuleSpec,
    #[serde(default, skip_serializing)]
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRuleSpec {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortTrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    pub number: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionPoolSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_max_pending_requests: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_client_protocol: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_keep_alive: Option<serde_json::Value>,
}

/// Envoy's circuit-breaker thresholds for one cluster, and its requests per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolLimits {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    /// 0: no limit (Envoy's default).
    pub max_requests_per_connection: u32,
}

impl PoolLimits {
    /// istiod's thresholds when no rule sets them: `math.MaxUint32` each.
    pub const ISTIO_DEFAULT: PoolLimits = PoolLimits {
        max_connections: u32::MAX,
        max_pending_requests: u32::MAX,
        max_requests: u32::MAX,
        max_requests_per_connection: 0,
    };

    fn from_settings(s: &ConnectionPoolSettings) -> PoolLimits {
        // istiod copies a setting only when it is > 0; 0 keeps the default.
        let set = |v: Option<i64>, default: u32| match v {
            Some(n) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
            _ => default,
        };
        let d = PoolLimits::ISTIO_DEFAULT;
        let http = s.http.as_ref();
        PoolLimits {
            max_connections: set(s.tcp.as_ref().and_then(|t| t.max_connections), u32::MAX),
            max_pending_requests: set(http.and_then(|h| h.http1_max_pending_requests), u32::MAX),
            max_requests: set(http.and_then(|h| h.http2_max_requests), u32::MAX),
            max_requests_per_connection: set(
                http.and_then(|h| h.max_requests_per_connection),
                d.max_requests_per_connection,
            ),
        }
    }

    pub fn is_default(&self) -> bool {
        *self == PoolLimits::ISTIO_DEFAULT
    }
}

impl std::fmt::Display for PoolLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |v: u32| {
            if v == u32::MAX {
                "∞".to_string()
            } else {
                v.to_string()
            }
        };
        write!(
            f,
            "maxConnections {}, http1MaxPendingRequests {}, http2MaxRequests {}",
            n(self.max_connections),
            n(self.max_pending_requests),
            n(self.max_requests)
        )?;
        if self.max_requests_per_connection > 0 {
            write!(
                f,
                ", maxRequestsPerConnection {}",
                self.max_requests_per_connection
            )?;
        }
        Ok(())
    }
}

impl DestinationRule {
    /// Whether the rule sets a connection pool anywhere (the rule's own or a port's).
    pub fn has_connection_pool(&self) -> bool {
        self.spec.traffic_policy.as_ref().is_some_and(|tp| {
            tp.connection_pool.is_some()
                || tp
                    .port_level_settings
                    .iter()
                    .any(|p| p.connection_pool.is_some())
        })
    }

    /// The rule's host as istiod reads it.
    pub fn host(&self) -> String {
        let h = &self.spec.host;
        if h == "*" || h.contains('.') || h.parse::<std::net::IpAddr>().is_ok() {
            h.clone()
        } else {
            format!("{h}.{}.svc.cluster.local", self.metadata.ns())
        }
    }

    /// Whether the rule is visible to proxies in `ns` (`exportTo`; empty is `*`, meshConfig's
    /// default).
    fn exported_to(&self, ns: &str) -> bool {
        let e = &self.spec.export_to;
        e.is_empty()
            || e.iter()
                .any(|x| x == "*" || x == ns || (x == "." && self.metadata.ns() == ns))
    }

    /// The connection pool for `port`: a port-level one, or the rule's own.
    fn pool_for(&self, port: u16) -> Option<&ConnectionPoolSettings> {
        let tp = self.spec.traffic_policy.as_ref()?;
        tp.port_level_settings
            .iter()
            .find(|p| p.port.as_ref().is_some_and(|s| s.number == u32::from(port)))
            .and_then(|p| p.connection_pool.as_ref())
            .or(tp.connection_pool.as_ref())
    }
}

/// How well `pattern` matches `host`: `Some(usize::MAX)` exact, `Some(n)` a wildcard with `n`
/// characters after its `*` (longer is more specific), `None` no match.
fn host_match(pattern: &str, host: &str) -> Option<usize> {
    if pattern == host {
        return Some(usize::MAX);
    }
    let suffix = pattern.strip_prefix('*')?;
    host.ends_with(suffix).then_some(suffix.len())
}

/// Whether a rule for `pattern` (as [`DestinationRule::host`] gives it) covers `host`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    host_match(pattern, host).is_some()
}

/// The proxy a rule is looked up for: its namespace and its pod's labels.
pub struct Proxy<'a> {
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

/// The service traffic goes to.
pub struct Target<'a> {
    pub fqdn: &'a str,
    pub namespace: &'a str,
    pub port: u16,
}

/// The rule `proxy` applies to traffic for `target`, and the limits it sets there. `rules` in
/// manifest order (istiod takes the oldest first).
pub fn lookup<'a>(
    rules: &[&'a DestinationRule],
    proxy: &Proxy<'_>,
    target: &Target<'_>,
) -> Option<(&'a DestinationRule, PoolLimits)> {
    let most_specific = |ns: &str, visible: &dyn Fn(&DestinationRule) -> bool| {
        let mut best: Option<(usize, &'a DestinationRule)> = None;
        for r in rules.iter().copied().filter(|r| r.metadata.ns() == ns) {
            if !visible(r) {
                continue;
            }
            if let Some(score) = host_match(&r.host(), target.fqdn)
                && best.is_none_or(|(b, _)| score > b)
            {
                best = Some((score, r));
            }
        }
        best.map(|(_, r)| r)
    };
    // A rule with a workload selector applies only to the pods it selects, in its namespace.
    let selects = |r: &DestinationRule| {
        r.spec.workload_selector.as_ref().is_none_or(|s| {
            s.match_labels
                .iter()
                .all(|(k, v)| proxy.labels.get(k) == Some(v))
        })
    };
    let own = most_specific(proxy.namespace, &|r| selects(r));
    let exported =
        |r: &DestinationRule| r.spec.workload_selector.is_none() && r.exported_to(proxy.namespace);
    let rule = own
        .or_else(|| {
            (target.namespace != proxy.namespace)
                .then(|| most_specific(target.namespace, &exported))
                .flatten()
        })
        .or_else(|| {
            (proxy.namespace != ROOT_NAMESPACE)
                .then(|| most_specific(ROOT_NAMESPACE, &exported))
                .flatten()
        })?;
    let limits = rule
        .pool_for(target.port)
        .map_or(PoolLimits::ISTIO_DEFAULT, PoolLimits::from_settings);
    Some((rule, limits))
}

/// Istio's validation of a connection pool (`validateConnectionPool`,
/// pkg/config/validation/validation.go): each problem with its field path under `path`.
pub fn check_pool(path: &str, s: &ConnectionPoolSettings) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if s.http.is_none() && s.tcp.is_none() {
        out.push((
            path.to_string(),
            "a connection pool must have at least one field: set `tcp` or `http`".to_string(),
        ));
    }
    let mut neg = |field: &str, v: Option<i64>| {
        if let Some(n) = v
            && n < 0
        {
            out.push((
                format!("{path}.{field}"),
                format!("{n} is negative; use 0 (no limit) or more"),
            ));
        }
    };
    if let Some(h) = &s.http {
        neg("http.http1MaxPendingRequests", h.http1_max_pending_requests);
        neg("http.http2MaxRequests", h.http2_max_requests);
        neg(
            "http.maxRequestsPerConnection",
            h.max_requests_per_connection,
        );
        neg("http.maxRetries", h.max_retries);
        neg("http.maxConcurrentStreams", h.max_concurrent_streams);
    }
    if let Some(t) = &s.tcp {
        neg("tcp.maxConnections", t.max_connections);
    }
    out
}

/// Every problem Istio's validation finds in the rule, with its field path.
pub fn check(r: &DestinationRule) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if r.spec.host.is_empty() {
        out.push((
            "spec.host".to_string(),
            "a DestinationRule needs a host: the service's name or FQDN".to_string(),
        ));
    }
    if let Some(tp) = &r.spec.traffic_policy {
        if let Some(p) = &tp.connection_pool {
            out.extend(check_pool("spec.trafficPolicy.connectionPool", p));
        }
        for (i, pl) in tp.port_level_settings.iter().enumerate() {
            let at = format!("spec.trafficPolicy.portLevelSettings[{i}]");
            match &pl.port {
                None => out.push((
                    format!("{at}.port"),
                    "a port-level setting needs `port: {number: N}`".to_string(),
                )),
                Some(p) if p.number == 0 || p.number > 65535 => out.push((
                    format!("{at}.port.number"),
                    format!("{} is not a port; use 1..65535", p.number),
                )),
                _ => {}
            }
            if let Some(p) = &pl.connection_pool {
                out.extend(check_pool(&format!("{at}.connectionPool"), p));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ns: &str, yaml: &str) -> DestinationRule {
        let text = format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r, namespace: {ns}}}\nspec:\n{yaml}"
        );
        serde_saphyr::from_str(&text).expect("rule")
    }

    fn find<'a>(
        rules: &[&'a DestinationRule],
        proxy_ns: &str,
        labels: &BTreeMap<String, String>,
    ) -> Option<(&'a DestinationRule, PoolLimits)> {
        lookup(
            rules,
            &Proxy {
                namespace: proxy_ns,
                labels,
            },
            &Target {
                fqdn: "reviews.prod.svc.cluster.local",
                namespace: "prod",
                port: 9080,
            },
        )
    }

    #[test]
    fn unset_limits_are_istiods_maxuint32_and_set_ones_map_to_envoys_thresholds() {
        let r = rule(
            "prod",
            "  host: reviews\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: 10}\n      http: {http1MaxPendingRequests: 5, maxRequestsPerConnection: 1, http2MaxRequests: 0}\n",
        );
        let (_, l) = find(&[&r], "prod", &BTreeMap::new()).expect("applies");
        assert_eq!(l.max_connections, 10);
        assert_eq!(l.max_pending_requests, 5);
        // 0 keeps istiod's default (cluster_traffic_policy.go copies only values > 0).
        assert_eq!(l.max_requests, u32::MAX);
        assert_eq!(l.max_requests_per_connection, 1);
    }

    #[test]
    fn the_proxys_namespace_wins_then_the_services_then_the_root_namespace() {
        let pool = |n: u32| {
            format!(
                "  host: reviews.prod.svc.cluster.local\n  trafficPolicy:\n    connectionPool:\n      http: {{http2MaxRequests: {n}}}\n"
            )
        };
        let client = rule("client", &pool(1));
        let service = rule("prod", &pool(2));
        let root = rule("istio-system", &pool(3));
        let all = [&root, &service, &client];
        let none = BTreeMap::new();
        let got = |ns: &str, rules: &[&DestinationRule]| {
            find(rules, ns, &none).map(|(_, l)| l.max_requests)
        };
        assert_eq!(got("client", &all), Some(1));
        assert_eq!(got("other", &all), Some(2));
        assert_eq!(got("other", &[&root]), Some(3));
        // `exportTo: ["."]` keeps the service namespace's rule to its own proxies.
        let private = rule("prod", &format!("{}  exportTo: [\".\"]\n", pool(2)));
        assert_eq!(got("other", &[&root, &private]), Some(3));
        assert_eq!(got("prod", &[&root, &private]), Some(2));
    }

    #[test]
    fn an_exact_host_beats_a_wildcard_and_a_dotted_short_name_is_not_expanded() {
        let wild = rule(
            "prod",
            "  host: \"*.prod.svc.cluster.local\"\n  trafficPolicy:\n    connectionPool:\n      http: {http2MaxRequests: 7}\n",
        );
        let exact = rule(
            "prod",
            "  host: reviews\n  trafficPolicy:\n    connectionPool:\n      http: {http2MaxRequests: 8}\n",
        );
        let none = BTreeMap::new();
        assert_eq!(
            find(&[&wild, &exact], "prod", &none).map(|(_, l)| l.max_requests),
            Some(8)
        );
        assert_eq!(
            find(&[&wild], "prod", &none).map(|(_, l)| l.max_requests),
            Some(7)
        );
        // `reviews.prod` has a dot, so istiod takes it as written: it names no service.
        let dotted = rule("prod", "  host: reviews.prod\n");
        assert!(find(&[&dotted], "prod", &none).is_none());
    }

    #[test]
    fn a_port_level_pool_replaces_the_rules_own_and_a_selector_limits_who_applies_it() {
        let r = rule(
            "prod",
            "  host: reviews\n  workloadSelector: {matchLabels: {app: web}}\n  trafficPolicy:\n    connectionPool:\n      http: {http2MaxRequests: 100}\n    portLevelSettings:\n    - port: {number: 9080}\n      connectionPool:\n        tcp: {maxConnections: 3}\n",
        );
        let web = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let (_, l) = find(&[&r], "prod", &web).expect("selected");
        assert_eq!((l.max_connections, l.max_requests), (3, u32::MAX));
        assert!(find(&[&r], "prod", &BTreeMap::new()).is_none());
        assert!(find(&[&r], "other", &web).is_none());
    }

    #[test]
    fn negative_limits_and_empty_pools_are_refused_at_their_field() {
        let r = rule(
            "prod",
            "  host: reviews\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: -1}\n    portLevelSettings:\n    - connectionPool: {}\n",
        );
        let errs = check(&r);
        let paths: Vec<&str> = errs.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.trafficPolicy.connectionPool.tcp.maxConnections",
                "spec.trafficPolicy.portLevelSettings[0].port",
                "spec.trafficPolicy.portLevelSettings[0].connectionPool",
            ]
        );
    }
}
