//! AuthorizationPolicy evaluation with the answers Istio 1.24+ gives, at each place a policy
//! is enforced ([`Layer`]): ztunnel, or an Envoy proxy (sidecar, waypoint) on an HTTP port or
//! on a TCP port.
//!
//! How a proxy uses it, in Istio's filter order (`pilot/pkg/security/authz/builder/builder.go`,
//! and the CUSTOM filter placed first):
//! 1. HTTP only: [`normalize_path`] on the request target; an error is the response (Envoy's
//!    HCM answers it before any filter), the result is the path for policy and forwarding.
//! 2. Envoy only: [`custom_matches`]; when non-empty, ask the provider (ext_authz) and stop
//!    with its denial. ztunnel has no CUSTOM.
//! 3. [`evaluate`]: DENY, then ALLOW; AUDIT rules that matched are listed for the access log
//!    and never change the decision. [`authorize`] is the decision alone.

mod envoy;
mod matchers;
mod path;
mod ztunnel;

use std::collections::BTreeMap;
use std::net::IpAddr;

use scenario::manifest::{
    Action, AuthorizationPolicy, ROOT_NAMESPACE, RequestAuthentication, Rule, TargetRef,
    WAYPOINT_CLASS, WorkloadSelector,
};

pub use path::{PathRejected, normalize_path, path_match, template_match};

/// Where a policy is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// ztunnel: pilot's workload-API translation (no HTTP attributes, no AUDIT / CUSTOM, no
    /// `targetRefs` policies).
    L4,
    /// A sidecar or waypoint enforcing on an HTTP port (Envoy's HTTP RBAC filter).
    L7,
    /// A sidecar or waypoint enforcing on a TCP (non-HTTP) port with Envoy's network RBAC
    /// filter (`BuildTCP`): ALLOW rules holding HTTP fields are skipped, DENY / AUDIT / CUSTOM
    /// rules lose their HTTP fields and so match more.
    Tcp,
}

/// What is known about a request or connection.
#[derive(Debug, Clone, Default)]
pub struct Attrs {
    /// Peer principal, `cluster.local/ns/<ns>/sa/<sa>`; None for plaintext.
    pub principal: Option<String>,
    /// The peer identity's namespace. Istio reads the namespace out of the principal, so this
    /// is used only when the principal does not parse, and never without a principal.
    pub namespace: Option<String>,
    /// The direct peer address (`source.ip`, `ipBlocks`).
    pub source_ip: Option<IpAddr>,
    /// The original client (`remote.ip`, `remoteIpBlocks`): from `X-Forwarded-For` or PROXY
    /// protocol where trusted; None means the direct peer, as Envoy with no trusted hops.
    pub remote_ip: Option<IpAddr>,
    pub dest_port: u16,
    /// The address the connection was sent to (`destination.ip`).
    pub dest_ip: Option<IpAddr>,
    /// The TLS server name the client asked for (`connection.sni`), where TLS was terminated.
    pub sni: Option<String>,
    pub http: Option<HttpAttrs>,
}

impl Attrs {
    fn remote(&self) -> Option<IpAddr> {
        self.remote_ip.or(self.source_ip)
    }

    fn peer_namespace(&self) -> Option<&str> {
        let p = self.principal.as_deref()?;
        matchers::identity(p)
            .map(|id| id.namespace)
            .or(self.namespace.as_deref())
    }
}

#[derive(Debug, Clone, Default)]
pub struct HttpAttrs {
    pub method: String,
    /// The normalized path ([`normalize_path`]), query included; matchers ignore the query.
    pub path: String,
    pub host: String,
    /// Lowercase names; repeated headers are matched joined with `,`, as Envoy does.
    pub headers: Vec<(String, String)>,
    /// `<iss>/<sub>` of a validated JWT.
    pub request_principal: Option<String>,
    pub request_issuer: Option<String>,
    pub request_audiences: Vec<String>,
    /// `azp` of a validated JWT (`request.auth.presenter`).
    pub request_presenter: Option<String>,
    /// The whole payload of a validated JWT (`request.auth.claims[...]`); when set it is what
    /// `iss`, `sub`, `aud` and `azp` are read from, as Envoy reads the JWT filter's metadata.
    pub request_claims: Option<serde_json::Value>,
}

impl HttpAttrs {
    fn header(&self, name: &str) -> Option<String> {
        let vs: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!vs.is_empty()).then(|| vs.join(","))
    }

    fn claim(&self, name: &str) -> Option<Vec<&str>> {
        let c = self.request_claims.as_ref()?;
        Some(matchers::claim_strings(c, &[name.to_string()]))
    }

    fn audiences(&self) -> Vec<&str> {
        self.claim("aud")
            .unwrap_or_else(|| self.request_audiences.iter().map(String::as_str).collect())
    }

    fn presenter(&self) -> Vec<&str> {
        self.claim("azp")
            .unwrap_or_else(|| self.request_presenter.as_deref().into_iter().collect())
    }

    /// The token's issuer and subject; None without a validated token.
    fn iss_sub(&self) -> Option<(&str, &str)> {
        if let Some(c) = &self.request_claims {
            let s = |k: &str| c.get(k).and_then(|v| v.as_str()).unwrap_or("");
            return self
                .request_principal
                .as_ref()
                .map(|_| (s("iss"), s("sub")));
        }
        let p = self.request_principal.as_deref()?;
        match self.request_issuer.as_deref() {
            Some(iss) => Some((iss, p.strip_prefix(iss)?.strip_prefix('/')?)),
            None => p.rsplit_once('/'),
        }
    }
}

/// `values` (any matches) and `not_values` (none matches): how every field and condition
/// combines its list (Envoy: `or` and `not(or)`; ztunnel `matches_internal`). `pred` must be
/// false for an absent attribute, so it fails a positive list and passes a negative one.
fn values_match(values: &[String], not_values: &[String], pred: impl Fn(&str) -> bool) -> bool {
    (values.is_empty() || values.iter().any(|v| pred(v)))
        && (not_values.is_empty() || !not_values.iter().any(|v| pred(v)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// `policy`: `<ns>/<name>` of the DENY policy that matched, or `allow-nomatch`.
    Deny {
        policy: String,
    },
}

/// One rule of one policy: `policy` is `<ns>/<name>`, `rule` the index in `spec.rules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    pub policy: String,
    pub rule: usize,
}

/// Why the decision was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// This DENY rule matched.
    Denied(RuleRef),
    /// This ALLOW rule matched.
    Allowed(RuleRef),
    /// No enforced ALLOW policy applies: allowed.
    NoAllowPolicies,
    /// ALLOW policies apply and none of their rules matched: denied.
    NoAllowMatched,
}

/// The full answer of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub decision: Decision,
    pub reason: Reason,
    /// AUDIT rules that matched, in Envoy's order (the first is the one Envoy's RBAC LOG
    /// filter names); empty at ztunnel.
    pub audits: Vec<RuleRef>,
    /// Rules of `istio.io/dry-run: "true"` policies that matched (Envoy's shadow rules), with
    /// their action; they never change the decision.
    pub dry_run: Vec<(Action, RuleRef)>,
}

/// A CUSTOM rule that matched: the proxy must ask `provider` (a mesh config extension
/// provider) before the DENY / ALLOW decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomMatch {
    pub provider: String,
    pub rule: RuleRef,
}

fn name(p: &AuthorizationPolicy) -> String {
    format!("{}/{}", p.metadata.ns(), p.metadata.name)
}

fn has_target_refs(p: &AuthorizationPolicy) -> bool {
    p.spec.target_ref.is_some() || !p.spec.target_refs.is_empty()
}

/// `istio.io/dry-run` parsed as Go's `strconv.ParseBool` (a bad value is not dry-run).
fn is_dry_run(p: &AuthorizationPolicy) -> bool {
    matches!(
        p.metadata
            .annotations
            .get("istio.io/dry-run")
            .map(String::as_str),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True")
    )
}

/// Whether the enforcement point receives the policy at all. ztunnel gets only ALLOW and DENY
/// policies without `targetRefs` (`convertAuthorizationPolicy`); Istio 1.24 also enforced
/// dry-run ones there (newer istiod leaves them out unless ambient dry-run is enabled).
fn enforced_at(p: &AuthorizationPolicy, layer: Layer) -> bool {
    match layer {
        Layer::L4 => matches!(p.spec.action, Action::Allow | Action::Deny) && !has_target_refs(p),
        Layer::L7 | Layer::Tcp => true,
    }
}

/// Every rule of the policies with `action` that matches, in the order the proxy checks them.
/// Envoy keeps RBAC policies in a map keyed `ns[<ns>]-policy[<name>]-rule[<i>]`
/// (`builder.go`, `policyName`) and reports the first match in that (string) order; ztunnel
/// goes through policies in the order it holds them, here the caller's.
fn matching_rules(
    policies: &[&AuthorizationPolicy],
    attrs: &Attrs,
    layer: Layer,
    action: Action,
    dry_run: bool,
) -> Vec<RuleRef> {
    let mut hits: Vec<(String, RuleRef)> = Vec::new();
    for p in policies.iter().filter(|p| {
        p.spec.action == action
            && enforced_at(p, layer)
            && (layer == Layer::L4 || is_dry_run(p) == dry_run)
    }) {
        for (i, r) in p.spec.rules.iter().flatten().enumerate() {
            if rule_matches(r, p.metadata.ns(), attrs, layer, action) {
                let key = format!(
                    "ns[{}]-policy[{}]-rule[{i}]",
                    p.metadata.ns(),
                    p.metadata.name
                );
                hits.push((
                    key,
                    RuleRef {
                        policy: name(p),
                        rule: i,
                    },
                ));
            }
        }
    }
    if layer != Layer::L4 {
        hits.sort_by(|a, b| a.0.cmp(&b.0));
    }
    hits.into_iter().map(|(_, r)| r).collect()
}

fn rule_matches(r: &Rule, ns: &str, a: &Attrs, layer: Layer, action: Action) -> bool {
    match layer {
        Layer::L4 => ztunnel::generated(r, action) && ztunnel::rule_matches(r, ns, a),
        Layer::L7 | Layer::Tcp => {
            let tcp = layer == Layer::Tcp;
            envoy::generated(r, tcp, action) && envoy::rule_matches(r, ns, a, tcp)
        }
    }
}

/// Decides a request (L7) or connection (L4, Tcp) under the policies that apply where it is
/// enforced, and says which rule decided, which AUDIT rules matched and what dry-run policies
/// would have done. CUSTOM policies are not part of it: see [`custom_matches`].
/// Whether a rule holds an HTTP attribute, which ztunnel cannot see (pilot's
/// `ambient/authorization.go` `handleRule`).
pub fn rule_has_http(r: &Rule) -> bool {
    ztunnel::has_http(r)
}

pub fn evaluate(policies: &[&AuthorizationPolicy], attrs: &Attrs, layer: Layer) -> Verdict {
    let audits = if layer == Layer::L4 {
        Vec::new()
    } else {
        matching_rules(policies, attrs, layer, Action::Audit, false)
    };
    let mut dry_run = Vec::new();
    if layer != Layer::L4 {
        for action in [Action::Deny, Action::Allow, Action::Audit] {
            let hits = matching_rules(policies, attrs, layer, action, true);
            dry_run.extend(hits.into_iter().map(|r| (action, r)));
        }
    }
    let (decision, reason) = decide(policies, attrs, layer);
    Verdict {
        decision,
        reason,
        audits,
        dry_run,
    }
}

fn decide(policies: &[&AuthorizationPolicy], attrs: &Attrs, layer: Layer) -> (Decision, Reason) {
    if let Some(r) = matching_rules(policies, attrs, layer, Action::Deny, false)
        .into_iter()
        .next()
    {
        let policy = r.policy.clone();
        return (Decision::Deny { policy }, Reason::Denied(r));
    }
    let any_allow = policies.iter().any(|p| {
        p.spec.action == Action::Allow
            && enforced_at(p, layer)
            && (layer == Layer::L4 || !is_dry_run(p))
    });
    if !any_allow {
        return (Decision::Allow, Reason::NoAllowPolicies);
    }
    match matching_rules(policies, attrs, layer, Action::Allow, false)
        .into_iter()
        .next()
    {
        Some(r) => (Decision::Allow, Reason::Allowed(r)),
        None => (
            Decision::Deny {
                policy: "allow-nomatch".into(),
            },
            Reason::NoAllowMatched,
        ),
    }
}

/// Decides a request or connection; [`evaluate`] without the explanation.
pub fn authorize(policies: &[&AuthorizationPolicy], attrs: &Attrs, layer: Layer) -> Decision {
    evaluate(policies, attrs, layer).decision
}

/// The CUSTOM rules that match, in Envoy's order; empty at ztunnel, which has no CUSTOM.
/// CUSTOM rules are generated like DENY ones (on a TCP port they lose their HTTP fields), and
/// dry-run CUSTOM policies are included: Istio's RBAC filter marks them for ext_authz too.
///
/// The caller then:
/// - asks the provider when the list is non-empty, before [`evaluate`]; its denial is final;
/// - on a TCP port, skips an HTTP-only provider (`envoyExtAuthzHttp`): pilot adds no filter
///   for it there (`buildTCP`, "ignored CUSTOM action with HTTP provider on TCP filter chain");
/// - denies the request itself when the provider is not in the mesh config, or when the
///   workload's CUSTOM policies name more than one provider ([`custom_providers`]): pilot
///   then turns these rules into DENY rules (`getBadCustomDenyRules`; Istio 1.24 allows one
///   provider per workload).
pub fn custom_matches(
    policies: &[&AuthorizationPolicy],
    attrs: &Attrs,
    layer: Layer,
) -> Vec<CustomMatch> {
    if layer == Layer::L4 {
        return Vec::new();
    }
    let mut hits: Vec<(String, CustomMatch)> = Vec::new();
    for p in policies.iter().filter(|p| p.spec.action == Action::Custom) {
        let provider = p
            .spec
            .provider
            .as_ref()
            .map(|pr| pr.name.clone())
            .unwrap_or_default();
        for (i, r) in p.spec.rules.iter().flatten().enumerate() {
            if rule_matches(r, p.metadata.ns(), attrs, layer, Action::Custom) {
                let key = format!(
                    "istio-ext-authz-{provider}-ns[{}]-policy[{}]-rule[{i}]",
                    p.metadata.ns(),
                    p.metadata.name
                );
                let rule = RuleRef {
                    policy: name(p),
                    rule: i,
                };
                hits.push((
                    key,
                    CustomMatch {
                        provider: provider.clone(),
                        rule,
                    },
                ));
            }
        }
    }
    hits.sort_by(|a, b| a.0.cmp(&b.0));
    hits.into_iter().map(|(_, m)| m).collect()
}

/// The distinct providers the CUSTOM policies name (sorted).
pub fn custom_providers(policies: &[&AuthorizationPolicy]) -> Vec<String> {
    let mut v: Vec<String> = policies
        .iter()
        .filter(|p| p.spec.action == Action::Custom)
        .filter_map(|p| p.spec.provider.as_ref().map(|pr| pr.name.clone()))
        .collect();
    v.sort();
    v.dedup();
    v
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

/// The policy's references: `targetRefs`, or the legacy `targetRef` when that is empty
/// (`pilot/pkg/model/policyattachment.go`, `GetTargetRefs`).
fn target_refs<'a>(refs: &'a [TargetRef], one: Option<&'a TargetRef>) -> Vec<&'a TargetRef> {
    if refs.is_empty() {
        one.into_iter().collect()
    } else {
        refs.iter().collect()
    }
}

/// Group names compare as Kubernetes canonical groups: `""` is `core`.
fn same_group(a: &str, b: &str) -> bool {
    let canon = |g: &str| {
        if g.is_empty() {
            "core".to_string()
        } else {
            g.to_string()
        }
    };
    canon(a) == canon(b)
}

/// A reference to `kind`/`group` named `name` in namespace `ns`, as `ShouldAttachPolicy`
/// (`policyattachment.go`) attaches it: only a policy in the object's own namespace attaches
/// (cross-namespace references never match).
fn targets(
    policy_ns: &str,
    refs: &[TargetRef],
    one: Option<&TargetRef>,
    kind: &str,
    group: &str,
    ns: &str,
    name: &str,
) -> bool {
    policy_ns == ns
        && target_refs(refs, one).into_iter().any(|t| {
            t.kind == kind
                && same_group(&t.group, group)
                && t.name == name
                && t.namespace.as_deref().is_none_or(|n| n == ns)
        })
}

/// A `GatewayClass` reference to `istio-waypoint` from the root namespace: the policy applies
/// to every waypoint (`policyattachment.go`; Istio 1.26+, rejected by 1.24/1.25 validation).
fn targets_waypoints(policy_ns: &str, refs: &[TargetRef], one: Option<&TargetRef>) -> bool {
    policy_ns == ROOT_NAMESPACE
        && target_refs(refs, one).into_iter().any(|t| {
            t.kind == "GatewayClass"
                && same_group(&t.group, GATEWAY_GROUP)
                && t.name == WAYPOINT_CLASS
        })
}

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
const ISTIO_NETWORKING_GROUP: &str = "networking.istio.io";

/// Whether a policy's selector (or its namespace / the root namespace) covers a workload.
/// Policies with `targetRefs` never select by labels: sidecars ignore them and waypoints use
/// only `targetRefs` (`ShouldAttachPolicy`).
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

/// `targetRefs` kind `Service` (core group); applies at the service's waypoint.
pub fn targets_service(p: &AuthorizationPolicy, ns: &str, name: &str) -> bool {
    let s = &p.spec;
    let one = s.target_ref.as_ref();
    targets(
        p.metadata.ns(),
        &s.target_refs,
        one,
        "Service",
        "",
        ns,
        name,
    )
}

/// `targetRefs` kind `ServiceEntry` (`networking.istio.io`); applies at its waypoint.
pub fn targets_service_entry(p: &AuthorizationPolicy, ns: &str, name: &str) -> bool {
    let s = &p.spec;
    let one = s.target_ref.as_ref();
    targets(
        p.metadata.ns(),
        &s.target_refs,
        one,
        "ServiceEntry",
        ISTIO_NETWORKING_GROUP,
        ns,
        name,
    )
}

/// `targetRefs` kind `Gateway` (`gateway.networking.k8s.io`); applies at that gateway.
pub fn targets_gateway(p: &AuthorizationPolicy, ns: &str, name: &str) -> bool {
    let s = &p.spec;
    let one = s.target_ref.as_ref();
    targets(
        p.metadata.ns(),
        &s.target_refs,
        one,
        "Gateway",
        GATEWAY_GROUP,
        ns,
        name,
    )
}

/// `targetRefs` kind `GatewayClass` named `istio-waypoint`, in the root namespace: applies at
/// every waypoint (Istio 1.26+).
pub fn targets_waypoint_class(p: &AuthorizationPolicy) -> bool {
    let s = &p.spec;
    targets_waypoints(p.metadata.ns(), &s.target_refs, s.target_ref.as_ref())
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
    let s = &p.spec;
    let one = s.target_ref.as_ref();
    targets(
        p.metadata.ns(),
        &s.target_refs,
        one,
        "Service",
        "",
        ns,
        name,
    )
}

pub fn targets_service_entry_ra(p: &RequestAuthentication, ns: &str, name: &str) -> bool {
    let s = &p.spec;
    let one = s.target_ref.as_ref();
    targets(
        p.metadata.ns(),
        &s.target_refs,
        one,
        "ServiceEntry",
        ISTIO_NETWORKING_GROUP,
        ns,
        name,
    )
}

pub fn targets_gateway_ra(p: &RequestAuthentication, ns: &str, name: &str) -> bool {
    let s = &p.spec;
    let one = s.target_ref.as_ref();
    targets(
        p.metadata.ns(),
        &s.target_refs,
        one,
        "Gateway",
        GATEWAY_GROUP,
        ns,
        name,
    )
}

pub fn targets_waypoint_class_ra(p: &RequestAuthentication) -> bool {
    let s = &p.spec;
    targets_waypoints(p.metadata.ns(), &s.target_refs, s.target_ref.as_ref())
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
            http: Some(HttpAttrs {
                method: method.into(),
                path: path.into(),
                ..HttpAttrs::default()
            }),
            ..Attrs::default()
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
        // A targetRefs policy is never sent to ztunnel (ambient/authorization.go,
        // convertAuthorizationPolicy); with a selector instead, its HTTP rule never matches.
        let mut l4 = post.clone();
        l4.http = None;
        assert_eq!(authorize(&ps, &l4, Layer::L4), Decision::Allow);
        let sel = policy(&PAYMENT_AUTHZ.replace(
            "targetRefs: [{kind: Service, group: \"\", name: payment-service}]",
            "selector: {matchLabels: {app: payment}}",
        ));
        assert_ne!(authorize(&[&sel], &l4, Layer::L4), Decision::Allow);
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
        // ztunnel skips the empty match an HTTP-only entry leaves (ztunnel src/rbac.rs), so
        // this DENY is a no-op at L4; on an Envoy TCP port it loses `methods` and denies all.
        assert_eq!(authorize(&[&del], &prod, Layer::L4), Decision::Allow);
        assert!(matches!(
            authorize(&[&del], &prod, Layer::Tcp),
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

    /// A policy in namespace `prod` (or `meta` as given) with the spec `spec` (YAML).
    fn pol(name: &str, spec: &str) -> AuthorizationPolicy {
        policy(&format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: prod}}\nspec:\n{spec}"
        ))
    }

    fn tcp_conn() -> Attrs {
        let mut a = req("web", "prod", "GET", "/");
        a.http = None;
        a
    }

    fn denied(d: Decision) -> bool {
        matches!(d, Decision::Deny { .. })
    }

    // pilot/pkg/serviceregistry/ambient/authorization.go, handleRule + ztunnel src/rbac.rs
    // (`mg.is_empty()` skipped): a DENY entry of only HTTP attributes matches nothing.
    #[test]
    fn ztunnel_deny_of_only_http_is_a_no_op() {
        let p = pol(
            "d",
            "  action: DENY\n  rules:\n  - to: [{operation: {methods: [GET]}}]\n",
        );
        assert_eq!(authorize(&[&p], &tcp_conn(), Layer::L4), Decision::Allow);
        let p = pol(
            "d",
            "  action: DENY\n  rules:\n  - from: [{source: {requestPrincipals: [\"*\"]}}]\n",
        );
        assert_eq!(authorize(&[&p], &tcp_conn(), Layer::L4), Decision::Allow);
        let p = pol(
            "d",
            "  action: DENY\n  rules:\n  - from: [{source: {remoteIpBlocks: [10.0.0.0/8]}}]\n",
        );
        assert_eq!(authorize(&[&p], &tcp_conn(), Layer::L4), Decision::Allow);
        let p = pol(
            "d",
            "  action: DENY\n  rules:\n  - when: [{key: \"request.headers[x]\", values: [a]}]\n",
        );
        assert_eq!(authorize(&[&p], &tcp_conn(), Layer::L4), Decision::Allow);
    }

    // authorization.go, handleRule: a mixed entry keeps its L4 part (ports / namespaces).
    #[test]
    fn ztunnel_deny_mixed_keeps_l4_parts() {
        let p = pol(
            "d",
            "  action: DENY\n  rules:\n  - to: [{operation: {methods: [GET], ports: [\"8080\"]}}]\n",
        );
        assert!(denied(authorize(&[&p], &tcp_conn(), Layer::L4)));
        let mut other = tcp_conn();
        other.dest_port = 9090;
        assert_eq!(authorize(&[&p], &other, Layer::L4), Decision::Allow);
        // An HTTP-only `to` entry next to an L4 one: only the L4 one can match.
        let p = pol(
            "d",
            "  action: DENY\n  rules:\n  - to: [{operation: {methods: [GET]}}, {operation: {ports: [\"9090\"]}}]\n",
        );
        assert_eq!(authorize(&[&p], &tcp_conn(), Layer::L4), Decision::Allow);
        assert!(denied(authorize(&[&p], &other, Layer::L4)));
        // A non-L4 `when` is its own empty clause: the rule never matches.
        let p = pol(
            "d",
            "  action: DENY\n  rules:\n  - from: [{source: {namespaces: [prod]}}]\n    when: [{key: remote.ip, values: [10.0.0.0/8]}]\n",
        );
        assert_eq!(authorize(&[&p], &tcp_conn(), Layer::L4), Decision::Allow);
    }

    // authorization.go, l4WhenAttributes: source.ip/namespace/principal, destination.ip/port.
    #[test]
    fn ztunnel_when_keys() {
        let mut a = tcp_conn();
        a.dest_ip = Some("10.9.0.1".parse().unwrap());
        let p = pol(
            "d",
            "  action: DENY\n  rules:\n  - when: [{key: destination.ip, values: [10.9.0.0/16]}, {key: source.namespace, values: [\"pro*\"]}]\n",
        );
        assert!(denied(authorize(&[&p], &a, Layer::L4)));
        for key in [
            "connection.sni",
            "source.serviceAccount",
            "request.auth.claims[iss]",
        ] {
            let p = pol(
                "d",
                &format!("  action: DENY\n  rules:\n  - when: [{{key: \"{key}\", values: [x]}}]\n"),
            );
            assert_eq!(authorize(&[&p], &a, Layer::L4), Decision::Allow, "{key}");
        }
    }

    // authorization.go, handleRule: "L7 policies never match for ALLOW" (rule dropped), but
    // the policy still exists, so a connection no other rule allows is denied.
    #[test]
    fn ztunnel_allow_with_http_rule_never_matches() {
        let p = pol(
            "a",
            "  rules:\n  - to: [{operation: {ports: [\"8080\"], methods: [GET]}}]\n  - from: [{source: {namespaces: [other]}}]\n",
        );
        let v = evaluate(&[&p], &tcp_conn(), Layer::L4);
        assert_eq!(v.reason, Reason::NoAllowMatched);
        let p = pol(
            "a",
            "  rules:\n  - to: [{operation: {methods: [GET]}}]\n  - to: [{operation: {ports: [\"8080\"]}}]\n",
        );
        let v = evaluate(&[&p], &tcp_conn(), Layer::L4);
        assert_eq!(
            v.reason,
            Reason::Allowed(RuleRef {
                policy: "prod/a".into(),
                rule: 1
            })
        );
    }

    // authorization.go, convertAuthorizationPolicy: targetRefs policies and AUDIT / CUSTOM
    // actions are not sent to ztunnel.
    #[test]
    fn ztunnel_ignores_target_refs_audit_and_custom() {
        let p = pol(
            "a",
            "  targetRefs: [{kind: Service, group: \"\", name: s}]\n  rules:\n  - from: [{source: {namespaces: [other]}}]\n",
        );
        assert_eq!(
            evaluate(&[&p], &tcp_conn(), Layer::L4).reason,
            Reason::NoAllowPolicies
        );
        let p = pol("a", "  action: AUDIT\n  rules: [{}]\n");
        assert!(evaluate(&[&p], &tcp_conn(), Layer::L4).audits.is_empty());
        let p = pol(
            "c",
            "  action: CUSTOM\n  provider: {name: ext}\n  rules: [{}]\n",
        );
        assert!(custom_matches(&[&p], &tcp_conn(), Layer::L4).is_empty());
    }

    // ztunnel src/rbac.rs: an empty group (rule `{}`) matches; no rules matches nothing.
    #[test]
    fn ztunnel_empty_rule_and_no_rules() {
        let all = pol("a", "  action: DENY\n  rules: [{}]\n");
        assert!(denied(authorize(&[&all], &tcp_conn(), Layer::L4)));
        let none = pol("a", "  {}\n");
        assert!(denied(authorize(&[&none], &tcp_conn(), Layer::L4)));
    }

    // pilot/pkg/security/authz/model/model.go, rule.checkError: on the network filter a DENY
    // drops its HTTP fields per field (an HTTP-only entry then matches everything).
    #[test]
    fn tcp_deny_drops_http_fields_and_widens() {
        let p = pol(
            "d",
            "  action: DENY\n  rules:\n  - to: [{operation: {methods: [DELETE]}}]\n",
        );
        assert!(denied(authorize(&[&p], &tcp_conn(), Layer::Tcp)));
        let p = pol(
            "d",
            "  action: DENY\n  rules:\n  - from: [{source: {namespaces: [other], requestPrincipals: [\"*\"]}}]\n",
        );
        assert_eq!(authorize(&[&p], &tcp_conn(), Layer::Tcp), Decision::Allow);
        let p = pol(
            "d",
            "  action: DENY\n  rules:\n  - when: [{key: \"request.auth.claims[groups]\", values: [admin]}]\n",
        );
        assert!(denied(authorize(&[&p], &tcp_conn(), Layer::Tcp)));
        // remote.ip and connection.sni are not HTTP-only: kept on TCP.
        let p = pol(
            "d",
            "  action: DENY\n  rules:\n  - when: [{key: remote.ip, values: [192.168.0.0/16]}]\n",
        );
        assert_eq!(authorize(&[&p], &tcp_conn(), Layer::Tcp), Decision::Allow);
    }

    // model.go, rule.checkError: an ALLOW rule with an HTTP field is skipped on TCP ports.
    #[test]
    fn tcp_allow_skips_rules_with_http_fields() {
        let p = pol(
            "a",
            "  rules:\n  - from: [{source: {namespaces: [prod]}}]\n    to: [{operation: {methods: [GET]}}]\n",
        );
        assert_eq!(
            evaluate(&[&p], &tcp_conn(), Layer::Tcp).reason,
            Reason::NoAllowMatched
        );
        let p = pol(
            "a",
            "  rules:\n  - from: [{source: {namespaces: [prod]}}]\n",
        );
        assert!(matches!(
            evaluate(&[&p], &tcp_conn(), Layer::Tcp).reason,
            Reason::Allowed(_)
        ));
    }

    // builder.go: AUDIT is its own RBAC LOG filter; it never changes the decision.
    #[test]
    fn audit_reports_and_never_decides() {
        let audit = pol(
            "log",
            "  action: AUDIT\n  rules:\n  - to: [{operation: {paths: [\"/admin/*\"]}}]\n",
        );
        let allow = pol("ok", "  rules: [{}]\n");
        let a = req("web", "prod", "GET", "/admin/x");
        let v = evaluate(&[&audit, &allow], &a, Layer::L7);
        assert_eq!(v.decision, Decision::Allow);
        assert_eq!(
            v.audits,
            vec![RuleRef {
                policy: "prod/log".into(),
                rule: 0
            }]
        );
        assert_eq!(
            v.reason,
            Reason::Allowed(RuleRef {
                policy: "prod/ok".into(),
                rule: 0
            })
        );
        let only_audit = evaluate(&[&audit], &a, Layer::L7);
        assert_eq!(only_audit.reason, Reason::NoAllowPolicies);
    }

    // builder.go, policyName + Envoy's ordered policy map: the first rule by name decides.
    #[test]
    fn deny_reports_the_rule_in_envoy_order() {
        let b = pol(
            "b",
            "  action: DENY\n  rules: [{to: [{operation: {ports: [\"1\"]}}]}, {}]\n",
        );
        let a = pol("a", "  action: DENY\n  rules: [{}]\n");
        let v = evaluate(&[&b, &a], &req("w", "prod", "GET", "/"), Layer::L7);
        assert_eq!(
            v.reason,
            Reason::Denied(RuleRef {
                policy: "prod/a".into(),
                rule: 0
            })
        );
        assert_eq!(
            v.decision,
            Decision::Deny {
                policy: "prod/a".into()
            }
        );
    }

    // builder.go, build: CUSTOM rules are built like DENY; provider named per match.
    #[test]
    fn custom_matches_name_the_provider() {
        let c = pol(
            "ext",
            "  action: CUSTOM\n  provider: {name: opa}\n  rules:\n  - to: [{operation: {paths: [\"/secure/*\"]}}]\n",
        );
        let m = custom_matches(&[&c], &req("w", "prod", "GET", "/secure/a"), Layer::L7);
        assert_eq!(
            m,
            vec![CustomMatch {
                provider: "opa".into(),
                rule: RuleRef {
                    policy: "prod/ext".into(),
                    rule: 0
                }
            }]
        );
        assert!(custom_matches(&[&c], &req("w", "prod", "GET", "/open"), Layer::L7).is_empty());
        assert_eq!(custom_matches(&[&c], &tcp_conn(), Layer::Tcp).len(), 1);
        assert_eq!(custom_providers(&[&c, &c]), vec!["opa".to_string()]);
        assert_eq!(
            evaluate(&[&c], &req("w", "prod", "GET", "/secure/a"), Layer::L7).decision,
            Decision::Allow
        );
    }

    // builder.go, isDryRun: dry-run policies go to shadow rules only.
    #[test]
    fn dry_run_is_reported_not_enforced() {
        let mut d = pol("d", "  action: DENY\n  rules: [{}]\n");
        d.metadata
            .annotations
            .insert("istio.io/dry-run".into(), "true".into());
        let v = evaluate(&[&d], &req("w", "prod", "GET", "/"), Layer::L7);
        assert_eq!(v.decision, Decision::Allow);
        assert_eq!(
            v.dry_run,
            vec![(
                Action::Deny,
                RuleRef {
                    policy: "prod/d".into(),
                    rule: 0
                }
            )]
        );
        // Istio 1.24 sent the annotation-blind policy to ztunnel, which enforced it.
        assert!(denied(authorize(&[&d], &tcp_conn(), Layer::L4)));
    }

    fn with_token(mut a: Attrs, claims: serde_json::Value) -> Attrs {
        let h = a.http.as_mut().unwrap();
        let iss = claims["iss"].as_str().unwrap_or("").to_string();
        let sub = claims["sub"].as_str().unwrap_or("").to_string();
        h.request_principal = Some(format!("{iss}/{sub}"));
        h.request_issuer = Some(iss);
        h.request_claims = Some(claims);
        a
    }

    // model/generator.go, requestClaimGenerator + matcher/metadata.go (string or list).
    #[test]
    fn claims_nested_and_lists() {
        let p = pol(
            "a",
            "  rules:\n  - when:\n    - {key: \"request.auth.claims[groups]\", values: [admin]}\n    - {key: \"request.auth.claims[realm][role]\", values: [\"ops-*\"]}\n",
        );
        let tok = serde_json::json!({"iss": "https://idp", "sub": "alice", "groups": ["dev", "admin"], "realm": {"role": "ops-1"}});
        let a = with_token(req("w", "prod", "GET", "/"), tok);
        assert_eq!(authorize(&[&p], &a, Layer::L7), Decision::Allow);
        let tok = serde_json::json!({"iss": "https://idp", "sub": "alice", "groups": "admin", "realm": {"role": 7}});
        let b = with_token(req("w", "prod", "GET", "/"), tok);
        assert!(denied(authorize(&[&p], &b, Layer::L7)));
    }

    // model/generator.go, requestPresenterGenerator and requestAudiencesGenerator.
    #[test]
    fn presenter_and_audiences() {
        let p = pol(
            "a",
            "  rules:\n  - when:\n    - {key: request.auth.presenter, values: [web-app]}\n    - {key: request.auth.audiences, notValues: [internal]}\n",
        );
        let tok = serde_json::json!({"iss": "i", "sub": "s", "azp": "web-app", "aud": ["api"]});
        assert_eq!(
            authorize(
                &[&p],
                &with_token(req("w", "prod", "GET", "/"), tok),
                Layer::L7
            ),
            Decision::Allow
        );
        let tok = serde_json::json!({"iss": "i", "sub": "s", "azp": "web-app", "aud": ["api", "internal"]});
        assert!(denied(authorize(
            &[&p],
            &with_token(req("w", "prod", "GET", "/"), tok),
            Layer::L7
        )));
    }

    // model/generator.go, requestPrincipalGenerator: issuer and subject matched apart.
    #[test]
    fn request_principal_forms() {
        let mk = |iss: &str, sub: &str| {
            let a = with_token(
                req("w", "prod", "GET", "/"),
                serde_json::json!({"iss": iss, "sub": sub}),
            );
            a.http.unwrap()
        };
        let h = mk("https://idp.example/realm", "alice");
        assert!(envoy::request_principal(
            "https://idp.example/realm/alice",
            &h
        ));
        assert!(envoy::request_principal("*/alice", &h));
        assert!(envoy::request_principal("*realm/alice", &h));
        assert!(envoy::request_principal("https://idp.example/realm/*", &h));
        assert!(envoy::request_principal(
            "https://idp.example/realm/al*",
            &h
        ));
        assert!(envoy::request_principal("*ice", &h));
        assert!(envoy::request_principal("https:*", &h));
        assert!(!envoy::request_principal("https://idp.example/*", &h));
        // A subject with a slash: Istio splits the value at its last slash, so no match.
        let h = mk("iss", "a/b");
        assert!(!envoy::request_principal("iss/a/b", &h));
    }

    // model/generator.go: remoteIPGenerator (original client), srcIPGenerator (direct peer),
    // destIPGenerator, connSNIGenerator.
    #[test]
    fn ip_and_sni_conditions() {
        let mut a = req("w", "prod", "GET", "/");
        a.remote_ip = Some("203.0.113.7".parse().unwrap());
        a.dest_ip = Some("10.96.0.10".parse().unwrap());
        a.sni = Some("api.example.com".into());
        let p = pol(
            "a",
            "  rules:\n  - when:\n    - {key: remote.ip, values: [203.0.113.0/24]}\n    - {key: source.ip, values: [10.1.1.2]}\n    - {key: destination.ip, values: [10.96.0.0/12]}\n    - {key: connection.sni, values: [\"*.example.com\"]}\n",
        );
        assert_eq!(authorize(&[&p], &a, Layer::L7), Decision::Allow);
        let p = pol(
            "a",
            "  rules:\n  - from: [{source: {remoteIpBlocks: [10.1.1.2]}}]\n",
        );
        assert!(denied(authorize(&[&p], &a, Layer::L7)));
        a.remote_ip = None;
        assert_eq!(authorize(&[&p], &a, Layer::L7), Decision::Allow);
    }

    // model/generator.go, serviceAccountRegex; ambient authorization.go,
    // stringToServiceAccountMatch (namespace defaults to the policy's). Istio 1.25+.
    #[test]
    fn service_accounts() {
        let p = pol(
            "a",
            "  rules:\n  - from: [{source: {serviceAccounts: [web, \"other/api\"]}}]\n",
        );
        for layer in [Layer::L4, Layer::L7, Layer::Tcp] {
            assert_eq!(
                authorize(&[&p], &req("web", "prod", "GET", "/"), layer),
                Decision::Allow
            );
            assert_eq!(
                authorize(&[&p], &req("api", "other", "GET", "/"), layer),
                Decision::Allow
            );
            assert!(denied(authorize(
                &[&p],
                &req("web", "other", "GET", "/"),
                layer
            )));
        }
        let p = pol(
            "a",
            "  rules:\n  - when: [{key: source.serviceAccount, values: [web]}]\n",
        );
        assert_eq!(
            authorize(&[&p], &req("web", "prod", "GET", "/"), Layer::L7),
            Decision::Allow
        );
    }

    // generator.go, srcNamespaceGenerator: a glob in the middle works at Envoy only; ztunnel's
    // stringToMatch reads it as exact.
    #[test]
    fn namespace_globs_differ_by_layer() {
        let p = pol(
            "a",
            "  rules:\n  - from: [{source: {namespaces: [\"pr*d\"]}}]\n",
        );
        let a = req("w", "prod", "GET", "/");
        assert_eq!(authorize(&[&p], &a, Layer::L7), Decision::Allow);
        assert!(denied(authorize(&[&p], &a, Layer::L4)));
        let mut plain = a.clone();
        plain.principal = None;
        assert!(denied(authorize(&[&p], &plain, Layer::L7)));
    }

    // Envoy PathMatcher ignores the query; templates per matcher/template.go.
    #[test]
    fn paths_templates_and_queries() {
        let p = pol(
            "a",
            "  rules:\n  - to: [{operation: {paths: [\"/api/{*}/items/{**}\"], notPaths: [\"/api/v1/items/secret\"]}}]\n",
        );
        let ok = req("w", "prod", "GET", "/api/v2/items/a/b?x=1");
        assert_eq!(authorize(&[&p], &ok, Layer::L7), Decision::Allow);
        assert!(denied(authorize(
            &[&p],
            &req("w", "prod", "GET", "/api/v1/items/secret?q"),
            Layer::L7
        )));
        let exact = pol("a", "  rules:\n  - to: [{operation: {paths: [/health]}}]\n");
        assert_eq!(
            authorize(
                &[&exact],
                &req("w", "prod", "GET", "/health?full=1"),
                Layer::L7
            ),
            Decision::Allow
        );
    }

    // matcher/header.go: repeated headers are joined with ',', "*" is presence.
    #[test]
    fn headers_join_and_presence() {
        let mut a = req("w", "prod", "GET", "/");
        let h = a.http.as_mut().unwrap();
        h.headers.push(("x-env".into(), "".into()));
        h.headers.push(("x-tag".into(), "a".into()));
        h.headers.push(("x-tag".into(), "b".into()));
        let p = pol(
            "a",
            "  rules:\n  - when: [{key: \"request.headers[X-Env]\", values: [\"*\"]}, {key: \"request.headers[x-tag]\", values: [\"a,b\"]}]\n",
        );
        assert_eq!(authorize(&[&p], &a, Layer::L7), Decision::Allow);
    }

    // pilot/pkg/model/policyattachment.go, ShouldAttachPolicy.
    #[test]
    fn target_kinds() {
        let se = pol(
            "a",
            "  targetRefs: [{kind: ServiceEntry, group: networking.istio.io, name: ext}]\n",
        );
        assert!(targets_service_entry(&se, "prod", "ext"));
        assert!(!targets_service(&se, "prod", "ext"));
        assert!(!targets_service_entry(&se, "other", "ext"));
        let gc = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: istio-system}\nspec:\n  targetRefs: [{kind: GatewayClass, group: gateway.networking.k8s.io, name: istio-waypoint}]\n";
        assert!(targets_waypoint_class(&policy(gc)));
        assert!(!targets_waypoint_class(&policy(
            &gc.replace("istio-system", "prod")
        )));
        assert!(!selects_workload(
            &policy(gc),
            "istio-system",
            &BTreeMap::new()
        ));
        let core = pol(
            "a",
            "  targetRefs: [{kind: Service, group: core, name: s}]\n",
        );
        assert!(targets_service(&core, "prod", "s"));
        let ra: RequestAuthentication =
            serde_saphyr::from_str(&gc.replace("AuthorizationPolicy", "RequestAuthentication"))
                .unwrap();
        assert!(targets_waypoint_class_ra(&ra));
    }
}
