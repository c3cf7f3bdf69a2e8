//! AuthorizationPolicy evaluation as Istio does it: DENY policies first, then ALLOW (allow
//! when none exist, otherwise only what one matches). At ztunnel (L4) an ALLOW rule with L7
//! parts never matches and a DENY rule loses its L7 parts (so it is more restrictive), as
//! ztunnel enforces them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use scenario::manifest::{
    Action, AuthorizationPolicy, Condition, Operation, ROOT_NAMESPACE, RequestAuthentication, Rule,
    Source, TargetRef, WorkloadSelector,
};

/// Where a policy is enforced: ztunnel (L4 only) or a sidecar/waypoint (L7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    L4,
    L7,
}

/// What is known about a request or connection.
#[derive(Debug, Clone, Default)]
pub struct Attrs {
    /// Peer principal, `cluster.local/ns/<ns>/sa/<sa>`; None for plaintext.
    pub principal: Option<String>,
    pub namespace: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub dest_port: u16,
    /// The address the connection was sent to (`destination.ip`).
    pub dest_ip: Option<IpAddr>,
    /// The TLS server name the client asked for (`connection.sni`), where TLS was terminated.
    pub sni: Option<String>,
    pub http: Option<HttpAttrs>,
}

#[derive(Debug, Clone, Default)]
pub struct HttpAttrs {
    pub method: String,
    pub path: String,
    pub host: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    /// `<iss>/<sub>` of a validated JWT.
    pub request_principal: Option<String>,
    pub request_issuer: Option<String>,
    pub request_audiences: Vec<String>,
    /// `azp` of a validated JWT (`request.auth.presenter`).
    pub request_presenter: Option<String>,
    /// The whole payload of a validated JWT (`request.auth.claims[...]`).
    pub request_claims: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// `policy`: `<ns>/<name>` of the DENY policy that matched, or `allow-nomatch`.
    Deny {
        policy: String,
    },
}

/// Istio string match: exact, `prefix*`, `*suffix`, or `*` (anything present).
fn smatch(pattern: &str, v: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(p) = pattern.strip_suffix('*') {
        return v.starts_with(p);
    }
    if let Some(s) = pattern.strip_prefix('*') {
        return v.ends_with(s);
    }
    pattern == v
}

/// `values` (any matches) and `not_values` (none matches), against an optional value: absent
/// matches no positive list and passes every negative one.
fn field(
    values: &[String],
    not_values: &[String],
    v: Option<&str>,
    m: fn(&str, &str) -> bool,
) -> bool {
    let pos = values.is_empty() || v.is_some_and(|v| values.iter().any(|p| m(p, v)));
    let neg = not_values.is_empty() || !v.is_some_and(|v| not_values.iter().any(|p| m(p, v)));
    pos && neg
}

fn ci_match(p: &str, v: &str) -> bool {
    smatch(&p.to_ascii_lowercase(), &v.to_ascii_lowercase())
}

fn ip_match(block: &str, ip: &str) -> bool {
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let (net, len) = match block.split_once('/') {
        Some((n, l)) => (n, l.parse::<u32>().unwrap_or(u32::MAX)),
        None => (block, if block.contains(':') { 128 } else { 32 }),
    };
    match (net.parse::<IpAddr>(), ip) {
        (Ok(IpAddr::V4(n)), IpAddr::V4(i)) if len <= 32 => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (Ok(IpAddr::V6(n)), IpAddr::V6(i)) if len <= 128 => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

fn source_has_l7(s: &Source) -> bool {
    !s.request_principals.is_empty() || !s.not_request_principals.is_empty()
}

fn op_has_l7(o: &Operation) -> bool {
    !(o.methods.is_empty()
        && o.not_methods.is_empty()
        && o.paths.is_empty()
        && o.not_paths.is_empty()
        && o.hosts.is_empty()
        && o.not_hosts.is_empty())
}

fn cond_is_l7(c: &Condition) -> bool {
    c.key.starts_with("request.")
}

fn rule_has_l7(r: &Rule) -> bool {
    r.from.iter().any(|f| source_has_l7(&f.source))
        || r.to.iter().any(|t| op_has_l7(&t.operation))
        || r.when.iter().any(cond_is_l7)
}

fn source_matches(s: &Source, a: &Attrs, l4: bool) -> bool {
    let ip = a.source_ip.map(|i| i.to_string());
    let ok = field(
        &s.principals,
        &s.not_principals,
        a.principal.as_deref(),
        smatch,
    ) && field(
        &s.namespaces,
        &s.not_namespaces,
        a.namespace.as_deref(),
        smatch,
    ) && field(&s.ip_blocks, &s.not_ip_blocks, ip.as_deref(), ip_match)
        && field(
            &s.remote_ip_blocks,
            &s.not_remote_ip_blocks,
            ip.as_deref(),
            ip_match,
        );
    if l4 {
        return ok;
    }
    let rp = a.http.as_ref().and_then(|h| h.request_principal.as_deref());
    ok && field(&s.request_principals, &s.not_request_principals, rp, smatch)
}

fn op_matches(o: &Operation, a: &Attrs, l4: bool) -> bool {
    let port = a.dest_port.to_string();
    let ports: Vec<String> = o.ports.iter().map(|p| p.0.to_string()).collect();
    let not_ports: Vec<String> = o.not_ports.iter().map(|p| p.0.to_string()).collect();
    let ok = field(&ports, &not_ports, Some(&port), |p, v| p == v);
    if l4 {
        return ok;
    }
    let h = a.http.as_ref();
    ok && field(
        &o.methods,
        &o.not_methods,
        h.map(|h| h.method.as_str()),
        |p, v| p == v,
    ) && field(&o.paths, &o.not_paths, h.map(|h| h.path.as_str()), smatch)
        && field(&o.hosts, &o.not_hosts, h.map(|h| h.host.as_str()), ci_match)
}

fn cond_matches(c: &Condition, a: &Attrs) -> bool {
    let h = a.http.as_ref();
    let single = |v: Option<String>| field(&c.values, &c.not_values, v.as_deref(), smatch);
    match c.key.as_str() {
        "source.principal" => single(a.principal.clone()),
        "source.namespace" => single(a.namespace.clone()),
        "source.ip" => field(
            &c.values,
            &c.not_values,
            a.source_ip.map(|i| i.to_string()).as_deref(),
            ip_match,
        ),
        "destination.port" => single(Some(a.dest_port.to_string())),
        "request.auth.principal" => single(h.and_then(|h| h.request_principal.clone())),
        "request.auth.issuer" => single(h.and_then(|h| h.request_issuer.clone())),
        "request.auth.audiences" => {
            let auds = h.map(|h| h.request_audiences.clone()).unwrap_or_default();
            let pos =
                c.values.is_empty() || auds.iter().any(|a| c.values.iter().any(|p| smatch(p, a)));
            let neg = c.not_values.is_empty()
                || !auds
                    .iter()
                    .any(|a| c.not_values.iter().any(|p| smatch(p, a)));
            pos && neg
        }
        k => match k
            .strip_prefix("request.headers[")
            .and_then(|r| r.strip_suffix(']'))
        {
            Some(name) => {
                let name = name.to_ascii_lowercase();
                single(h.and_then(|h| {
                    h.headers
                        .iter()
                        .find(|(k, _)| *k == name)
                        .map(|(_, v)| v.clone())
                }))
            }
            None => false,
        },
    }
}

fn rule_matches(r: &Rule, a: &Attrs, l4: bool) -> bool {
    (r.from.is_empty() || r.from.iter().any(|f| source_matches(&f.source, a, l4)))
        && (r.to.is_empty() || r.to.iter().any(|t| op_matches(&t.operation, a, l4)))
        && r.when
            .iter()
            .filter(|c| !(l4 && cond_is_l7(c)))
            .all(|c| cond_matches(c, a))
}

fn policy_matches(p: &AuthorizationPolicy, a: &Attrs, layer: Layer) -> bool {
    let l4 = layer == Layer::L4;
    p.spec.rules.iter().flatten().any(|r| {
        if l4 && p.spec.action == Action::Allow && rule_has_l7(r) {
            return false;
        }
        rule_matches(r, a, l4)
    })
}

fn name(p: &AuthorizationPolicy) -> String {
    format!("{}/{}", p.metadata.ns(), p.metadata.name)
}

/// Decides a request or connection under the policies that apply where it is enforced.
pub fn authorize(policies: &[&AuthorizationPolicy], attrs: &Attrs, layer: Layer) -> Decision {
    for p in policies.iter().filter(|p| p.spec.action == Action::Deny) {
        if policy_matches(p, attrs, layer) {
            return Decision::Deny { policy: name(p) };
        }
    }
    let allows: Vec<_> = policies
        .iter()
        .filter(|p| p.spec.action == Action::Allow)
        .collect();
    if allows.is_empty() || allows.iter().any(|p| policy_matches(p, attrs, layer)) {
        Decision::Allow
    } else {
        Decision::Deny {
            policy: "allow-nomatch".into(),
        }
    }
}

fn selects(
    policy_ns: &str,
    selector: Option<&WorkloadSelector>,
    has_targets: bool,
    ns: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    if has_targets || (policy_ns != ns && policy_ns != ROOT_NAMESPACE) {
        return false;
    }
    selector.is_none_or(|s| s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn targets(
    policy_ns: &str,
    refs: &[TargetRef],
    one: Option<&TargetRef>,
    kind: &str,
    group: &str,
    ns: &str,
    name: &str,
) -> bool {
    refs.iter().chain(one).any(|t| {
        t.kind == kind
            && t.group == group
            && t.name == name
            && t.namespace.as_deref().unwrap_or(policy_ns) == ns
    })
}

/// Whether a policy's selector (or its namespace / the root namespace) covers a workload.
pub fn selects_workload(
    p: &AuthorizationPolicy,
    ns: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let s = &p.spec;
    selects(
        p.metadata.ns(),
        s.selector.as_ref(),
        s.target_ref.is_some() || !s.target_refs.is_empty(),
        ns,
        labels,
    )
}

pub fn targets_service(p: &AuthorizationPolicy, ns: &str, name: &str) -> bool {
    targets(
        p.metadata.ns(),
        &p.spec.target_refs,
        p.spec.target_ref.as_ref(),
        "Service",
        "",
        ns,
        name,
    )
}

pub fn targets_gateway(p: &AuthorizationPolicy, ns: &str, name: &str) -> bool {
    targets(
        p.metadata.ns(),
        &p.spec.target_refs,
        p.spec.target_ref.as_ref(),
        "Gateway",
        "gateway.networking.k8s.io",
        ns,
        name,
    )
}

pub fn selects_workload_ra(
    p: &RequestAuthentication,
    ns: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let s = &p.spec;
    selects(
        p.metadata.ns(),
        s.selector.as_ref(),
        s.target_ref.is_some() || !s.target_refs.is_empty(),
        ns,
        labels,
    )
}

pub fn targets_service_ra(p: &RequestAuthentication, ns: &str, name: &str) -> bool {
    targets(
        p.metadata.ns(),
        &p.spec.target_refs,
        p.spec.target_ref.as_ref(),
        "Service",
        "",
        ns,
        name,
    )
}

pub fn targets_gateway_ra(p: &RequestAuthentication, ns: &str, name: &str) -> bool {
    targets(
        p.metadata.ns(),
        &p.spec.target_refs,
        p.spec.target_ref.as_ref(),
        "Gateway",
        "gateway.networking.k8s.io",
        ns,
        name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> AuthorizationPolicy {
        serde_saphyr::from_str(yaml).unwrap()
    }

    const PAYMENT_AUTHZ: &str = "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: payment-authz, namespace: production}
spec:
  targetRefs: [{kind: Service, group: \"\", name: payment-service}]
  rules:
  - from: [{source: {principals: [\"cluster.local/ns/production/sa/order-service\"]}}]
    to: [{operation: {methods: [POST], paths: [/api/v1/payments]}}]
";

    fn req(sa: &str, ns: &str, method: &str, path: &str) -> Attrs {
        Attrs {
            principal: Some(format!("cluster.local/ns/{ns}/sa/{sa}")),
            namespace: Some(ns.into()),
            source_ip: Some("10.1.1.2".parse().unwrap()),
            dest_port: 8080,
            dest_ip: None,
            sni: None,
            http: Some(HttpAttrs {
                method: method.into(),
                path: path.into(),
                ..HttpAttrs::default()
            }),
        }
    }

    #[test]
    fn the_guides_payment_policy() {
        let p = policy(PAYMENT_AUTHZ);
        let ps = [&p];
        let post = req("order-service", "production", "POST", "/api/v1/payments");
        assert_eq!(authorize(&ps, &post, Layer::L7), Decision::Allow);
        let get = req("order-service", "production", "GET", "/api/v1/payments");
        assert_ne!(authorize(&ps, &get, Layer::L7), Decision::Allow);
        let fraud = req("fraud-check", "production", "POST", "/api/v1/payments");
        assert_ne!(authorize(&ps, &fraud, Layer::L7), Decision::Allow);
        // At L4 an ALLOW rule with L7 parts never matches: the connection is denied.
        let mut l4 = post.clone();
        l4.http = None;
        assert_ne!(authorize(&ps, &l4, Layer::L4), Decision::Allow);
        assert!(targets_service(&p, "production", "payment-service"));
        assert!(!selects_workload(&p, "production", &BTreeMap::new()));
    }

    #[test]
    fn deny_namespace_at_both_layers_and_l7_parts_dropped_at_l4() {
        let p = policy(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: d, namespace: production}\nspec:\n  action: DENY\n  rules:\n  - from: [{source: {namespaces: [legacy]}}]\n",
        );
        let legacy = req("batch", "legacy", "GET", "/");
        let prod = req("web", "production", "GET", "/");
        for layer in [Layer::L4, Layer::L7] {
            assert!(matches!(
                authorize(&[&p], &legacy, layer),
                Decision::Deny { .. }
            ));
            assert_eq!(authorize(&[&p], &prod, layer), Decision::Allow);
        }
        let del = policy(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: d}\nspec:\n  action: DENY\n  rules:\n  - to: [{operation: {methods: [DELETE]}}]\n",
        );
        assert!(matches!(
            authorize(&[&del], &prod, Layer::L4),
            Decision::Deny { .. }
        ));
        assert_eq!(authorize(&[&del], &prod, Layer::L7), Decision::Allow);
        assert!(matches!(
            authorize(&[&del], &req("w", "x", "DELETE", "/"), Layer::L7),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn empty_rules_wildcards_and_selection() {
        let deny_all = policy(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {}\n",
        );
        assert_ne!(
            authorize(&[&deny_all], &req("a", "default", "GET", "/"), Layer::L7),
            Decision::Allow
        );
        let allow_all = policy(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules: [{}]\n",
        );
        assert_eq!(
            authorize(&[&allow_all], &req("a", "default", "GET", "/"), Layer::L4),
            Decision::Allow
        );
        let wild = policy(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  selector: {matchLabels: {app: echo}}\n  rules:\n  - from: [{source: {principals: [\"*\"], notPrincipals: [\"*/sa/bad\"]}}]\n    to: [{operation: {paths: [\"/api/*\"]}}]\n    when: [{key: \"request.headers[x-user]\", values: [\"ali*\"]}]\n",
        );
        let mut ok = req("good", "default", "GET", "/api/x");
        ok.http
            .as_mut()
            .unwrap()
            .headers
            .push(("x-user".into(), "alice".into()));
        assert_eq!(authorize(&[&wild], &ok, Layer::L7), Decision::Allow);
        let mut bad = ok.clone();
        bad.principal = Some("cluster.local/ns/default/sa/bad".into());
        assert_ne!(authorize(&[&wild], &bad, Layer::L7), Decision::Allow);
        let mut plain = ok.clone();
        plain.principal = None;
        assert_ne!(authorize(&[&wild], &plain, Layer::L7), Decision::Allow);
        let mut labels = BTreeMap::new();
        labels.insert("app".to_string(), "echo".to_string());
        assert!(selects_workload(&wild, "default", &labels));
        assert!(!selects_workload(&wild, "other", &labels));
        assert!(!selects_workload(&wild, "default", &BTreeMap::new()));
        assert!(ip_match("10.1.0.0/16", "10.1.200.3"));
        assert!(!ip_match("10.1.0.0/16", "10.2.0.3"));
    }

    #[test]
    fn request_principals_need_a_token() {
        let p = policy(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - from: [{source: {requestPrincipals: [\"*\"]}}]\n",
        );
        let mut a = req("x", "default", "GET", "/");
        assert_ne!(authorize(&[&p], &a, Layer::L7), Decision::Allow);
        a.http.as_mut().unwrap().request_principal = Some("https://auth/alice".into());
        assert_eq!(authorize(&[&p], &a, Layer::L7), Decision::Allow);
    }
}
