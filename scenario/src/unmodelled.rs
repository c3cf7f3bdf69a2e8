//! What a scenario's manifests ask for that meshsim does not model, said as warnings with file
//! and line: a run measures a mesh without those objects and fields, and whoever reads its
//! numbers should know. `meshsim validate --strict` turns them into errors.

use std::path::PathBuf;

use crate::loaded::Loaded;
use crate::manifest::{Ignored, Object, Origin};

/// One thing the run will not reflect.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: warning: {}",
            self.file.display(),
            self.line,
            self.message
        )
    }
}

/// Every warning for a loaded scenario: ignored objects, then ignored fields of modelled ones,
/// in file order.
pub fn warnings(loaded: &Loaded) -> Vec<Warning> {
    let mut out: Vec<Warning> = loaded.ignored.iter().map(ignored_object).collect();
    for o in loaded.objects() {
        out.extend(ignored_fields(&o.object, &o.origin));
    }
    out.sort();
    out
}

fn ignored_object(i: &Ignored) -> Warning {
    let (what, consequence) = consequence(&i.kind);
    Warning {
        file: i.file.clone(),
        line: i.line,
        message: format!(
            "{} {} ({}) is not modelled: {consequence}",
            i.kind,
            i.name,
            what.unwrap_or(&i.api_version)
        ),
    }
}

/// What an object of `kind` does in Istio (shown after its name) and what the run does instead.
fn consequence(kind: &str) -> (Option<&'static str>, &'static str) {
    if kind.starts_with("Gateway of class") {
        return (
            Some("ingress/egress gateway"),
            "meshsim has no ingress or egress gateways; traffic through it is not simulated",
        );
    }
    match kind {
        "VirtualService" => (
            Some("routing rules"),
            "the run sends traffic by round robin and ignores its routes, retries, timeouts and faults",
        ),
        "HTTPRoute" | "GRPCRoute" | "TCPRoute" | "TLSRoute" => (
            Some("Gateway API routes"),
            "waypoints and sidecars send traffic to the addressed service by round robin and ignore its matches, filters and backend weights",
        ),
        "EnvoyFilter" => (
            Some("Envoy config patch"),
            "the proxies run without its patch, so what it adds or changes (filters, Lua, rate limits, cluster settings) is absent from the results",
        ),
        "WasmPlugin" => (
            Some("proxy extension"),
            "the extension is not run, so its CPU cost and effects are absent from the results",
        ),
        "Telemetry" => (
            Some("metrics, tracing, access logs"),
            "the proxies keep meshsim's standard metrics and write no traces or access logs, whatever it configures",
        ),
        "Sidecar" => (
            Some("proxy scope"),
            "every proxy keeps the whole mesh's configuration; its egress and ingress limits are not applied",
        ),
        "ProxyConfig" => (
            Some("proxy settings"),
            "the proxies keep the scenario's and cost profile's concurrency and resources",
        ),
        "ServiceEntry" | "WorkloadEntry" | "WorkloadGroup" => (
            Some("mesh registry entry"),
            "the run knows only the scenario's services and workloads; hosts and endpoints it adds are not reachable",
        ),
        "Service" | "Deployment" | "Pod" | "StatefulSet" | "DaemonSet" | "ServiceAccount" => (
            Some("Kubernetes workload object"),
            "meshsim builds workloads and services from the scenario file; declare them there",
        ),
        _ => (None, "the run ignores it"),
    }
}

/// Fields of modelled objects that are read but not applied.
fn ignored_fields(object: &Object, origin: &Origin) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut warn = |path: &str, message: String| {
        let d = origin.at_key(path, "");
        out.push(Warning {
            file: d.file,
            line: d.line,
            message,
        });
    };
    let name = |m: &crate::manifest::ObjectMeta| format!("{}/{}", m.ns(), m.name);
    match object {
        // Istio reads portLevelMtls only from a workload (selector) policy
        // (pilot/pkg/security/authn/policy_applier.go, ComposePeerAuthentication).
        Object::PeerAuthentication(p)
            if !p.spec.port_level_mtls.is_empty()
                && p.spec
                    .selector
                    .as_ref()
                    .is_none_or(|s| s.match_labels.is_empty()) =>
        {
            warn(
                "spec.portLevelMtls",
                format!(
                    "PeerAuthentication {}: portLevelMtls without a selector is ignored, as Istio ignores it: every port gets the policy's `mtls` mode",
                    name(&p.metadata)
                ),
            )
        }
        Object::RequestAuthentication(r) => {
            for (i, rule) in r.spec.jwt_rules.iter().enumerate() {
                if !rule.space_delimited_claims.is_empty() {
                    warn(
                        &format!("spec.jwtRules[{i}].spaceDelimitedClaims"),
                        format!(
                            "RequestAuthentication {}: spaceDelimitedClaims is not modelled: claims are matched as whole strings",
                            name(&r.metadata)
                        ),
                    );
                }
            }
        }
        Object::DestinationRule(r) => {
            let unapplied = destrule_unapplied(r);
            if let Some((first, _)) = unapplied.first() {
                let fields: Vec<&str> = unapplied.iter().map(|(_, f)| f.as_str()).collect();
                warn(
                    first,
                    format!(
                        "DestinationRule {}: {} not applied: the run balances round robin over every endpoint and applies only the connection pool's limits (maxConnections, http1MaxPendingRequests, http2MaxRequests, maxRequestsPerConnection)",
                        name(&r.metadata),
                        fields.join(", ")
                    ),
                );
            }
        }
        Object::CiliumNetworkPolicy(p) => {
            let dirs = [("ingress", &p.spec.ingress), ("egress", &p.spec.egress)];
            for (dir, rules) in dirs {
                for (r, rule) in rules.iter().flatten().enumerate() {
                    for (k, tp) in rule.to_ports.iter().enumerate() {
                        if tp.rules.is_some() {
                            warn(
                                &format!("spec.{dir}[{r}].toPorts[{k}].rules"),
                                format!(
                                    "CiliumNetworkPolicy {}: L7 rules are not modelled: the port is admitted for every request",
                                    name(&p.metadata)
                                ),
                            );
                        }
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// The fields of a DestinationRule a run does not apply: (path of the first, name), each name
/// once, in the rule's order. Everything but the rule's reach and its connection pool limits.
fn destrule_unapplied(r: &crate::destrule::DestinationRule) -> Vec<(String, String)> {
    const APPLIED: &[&str] = &[
        "host",
        "exportTo",
        "workloadSelector",
        "matchLabels",
        "trafficPolicy",
        "portLevelSettings",
        "port",
        "number",
        "connectionPool",
        "tcp",
        "http",
        "maxConnections",
        "http1MaxPendingRequests",
        "http2MaxRequests",
        "maxRequestsPerConnection",
    ];
    fn walk(v: &serde_json::Value, at: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let path = format!("{at}.{k}");
                    if !APPLIED.contains(&k.as_str()) {
                        if !out.iter().any(|(_, n)| n == k) {
                            out.push((path, k.clone()));
                        }
                    } else {
                        walk(v, &path, out);
                    }
                }
            }
            serde_json::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, &format!("{at}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(spec) = serde_json::to_value(&r.spec) {
        walk(&spec, "spec", &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_file;
    use std::path::Path;

    #[test]
    fn routing_objects_say_what_the_run_does_instead() {
        let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n  namespace: prod\nspec: {}\n---\napiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata:\n  name: lua\nspec: {}\n";
        let (m, errs) = parse_file(Path::new("m.yaml"), text);
        assert!(errs.is_empty(), "{errs:?}");
        let w: Vec<String> = m
            .ignored
            .iter()
            .map(|i| ignored_object(i).to_string())
            .collect();
        assert!(
            w[0].starts_with(
                "m.yaml:1: warning: VirtualService prod/reviews (routing rules) is not modelled: the run sends traffic by round robin"
            ),
            "{w:?}"
        );
        assert!(
            w[1].starts_with("m.yaml:8: warning: EnvoyFilter lua"),
            "{w:?}"
        );
    }

    #[test]
    fn ignored_fields_point_at_their_line() {
        let text = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: pa\n  namespace: prod\nspec:\n  mtls: {mode: STRICT}\n  portLevelMtls:\n    \"8080\": {mode: DISABLE}\n";
        let (m, errs) = parse_file(Path::new("p.yaml"), text);
        assert!(errs.is_empty(), "{errs:?}");
        let o = &m.objects[0];
        let w = ignored_fields(&o.object, &o.origin);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].line, 8);
        assert!(
            w[0].to_string()
                .contains("portLevelMtls without a selector is ignored")
        );
    }

    #[test]
    fn a_destination_rule_names_what_it_sets_that_the_run_does_not_apply() {
        let text = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: prod}\nspec:\n  host: reviews\n  trafficPolicy:\n    connectionPool:\n      http: {http2MaxRequests: 10, maxRetries: 3}\n    outlierDetection: {consecutive5xxErrors: 5}\n  subsets:\n  - name: v1\n    labels: {version: v1}\n";
        let (m, errs) = parse_file(Path::new("d.yaml"), text);
        assert!(errs.is_empty(), "{errs:?}");
        let o = &m.objects[0];
        let w = ignored_fields(&o.object, &o.origin);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].line, 10, "{w:?}");
        let s = w[0].to_string();
        assert!(
            s.contains("DestinationRule prod/r: subsets, maxRetries, outlierDetection not applied"),
            "{s}"
        );
        // A rule with only the limits the run applies warns of nothing.
        let plain = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: prod}\nspec:\n  host: reviews\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: 4}\n";
        let (m, _) = parse_file(Path::new("d.yaml"), plain);
        let o = &m.objects[0];
        assert!(ignored_fields(&o.object, &o.origin).is_empty());
    }
}
