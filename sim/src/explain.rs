//! `meshsim explain`: why a request is allowed or refused. The path the request takes through
//! the data plane is worked out from the mesh plan the proxies run on — the same transport
//! choices (a sidecar never uses a service's waypoint; ztunnel sends to a service's waypoint,
//! or HBONE to a pod that takes it, or plaintext), and at every hop the same checks, made with
//! the proxies' own code: PeerAuthentication, jwt_authn ([`http::check_jwt`]), path
//! normalization, and AuthorizationPolicy ([`policy::evaluate`]) at L4 or L7. Each policy
//! considered is shown with each rule matched or not, and for a rule that did not match, which
//! of its `from`, `to` and `when` failed. The request is then sent for real from the source pod
//! and the outcome compared with the prediction.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::mesh::Identity;
use crate::mesh::control::{MeshPlan, WorkloadInfo};
use crate::mesh::policy::{self, Attrs, Decision, Layer, Reason};
use crate::proxy::http;
use crate::reach::Outcome;
use scenario::DataPlane;
use scenario::jwt::Issuer;
use scenario::manifest::{Action, AuthorizationPolicy, MtlsMode};

/// What to explain: a request from a pod.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ask {
    pub from: String,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
}

/// One policy at one hop: its rules, each matched or why not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyView {
    /// `ns/name (ACTION)`.
    pub policy: String,
    pub rules: Vec<String>,
}

/// One proxy on the path and what it checked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hop {
    pub proxy: String,
    /// What it saw: the peer identity and transport.
    pub sees: String,
    pub checks: Vec<String>,
    pub policies: Vec<PolicyView>,
    pub verdict: String,
}

/// The prediction for one endpoint of the service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Path {
    pub endpoint: String,
    pub route: Vec<String>,
    pub hops: Vec<Hop>,
    pub outcome: String,
    /// False when a hop asks something meshsim cannot predict (an ext_authz provider).
    pub certain: bool,
}

/// The answer: every endpoint's path, what really happened, and whether they agree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Explanation {
    pub request: String,
    pub paths: Vec<Path>,
    pub actual: String,
    /// The decisions the proxies recorded on the real request.
    pub actual_decisions: Vec<String>,
    /// What NetworkPolicy (the CNI, outside the proxies) dropped of the real request, read
    /// from the nodes' drop counters. The prediction covers the proxies only: a drop here
    /// explains an outcome they did not decide.
    #[serde(default)]
    pub cni_drops: Vec<String>,
    pub agree: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("no pod {0:?} in this cluster")]
    NoPod(String),
    #[error("cannot read the URL {0:?}: write it as http://service[.namespace][:port]/path")]
    BadUrl(String),
    #[error("{0:?} is neither a service of this cluster nor a pod address")]
    NoTarget(String),
    #[error("service {0} has no port {1}")]
    NoPort(String, u16),
}

/// Where the request is addressed: a service port, or a pod directly.
enum Target {
    Service(usize, u16),
    Pod(usize, u16),
}

fn resolve(
    plan: &MeshPlan,
    src: &WorkloadInfo,
    url: &str,
) -> Result<(Target, String), ExplainError> {
    let uri: ::http::Uri = url.parse().map_err(|_| ExplainError::BadUrl(url.into()))?;
    let host = uri.host().ok_or_else(|| ExplainError::BadUrl(url.into()))?;
    let port = uri.port_u16().unwrap_or(80);
    // `tcp://host:port`: a TCP exchange, as reach's `tcp` probe.
    let path = if uri.scheme_str() == Some("tcp") {
        "tcp".to_string()
    } else {
        uri.path_and_query()
            .map_or("/".to_string(), |p| p.to_string())
    };
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        if let Some((s, _)) = plan.service_by_vip(ip) {
            return Ok((Target::Service(s, port), path));
        }
        if let Some(w) = plan.workload_index(ip) {
            return Ok((Target::Pod(w, port), path));
        }
        return Err(ExplainError::NoTarget(host.into()));
    }
    // A pod by name, as the pods' hosts files have them.
    if let Some(w) = plan.workloads.iter().position(|w| w.pod == host) {
        return Ok((Target::Pod(w, port), path));
    }
    let mut parts = host.split('.');
    let name = parts.next().unwrap_or_default();
    let ns = parts.next().unwrap_or(&src.namespace);
    let s = plan
        .services
        .iter()
        .position(|s| s.name == name && s.namespace == ns)
        .ok_or_else(|| ExplainError::NoTarget(host.into()))?;
    if plan.services[s].port(port).is_none() {
        return Err(ExplainError::NoPort(format!("{name}.{ns}"), port));
    }
    Ok((Target::Service(s, port), path))
}

fn action(a: Action) -> &'static str {
    match a {
        Action::Allow => "ALLOW",
        Action::Deny => "DENY",
        Action::Audit => "AUDIT",
        Action::Custom => "CUSTOM",
    }
}

/// Whether rule `i` of `p` matches, with the engine itself: the rule alone (as an ALLOW), and
/// when it does not, each of its parts alone, to name the ones that fail.
fn rule_lines(p: &AuthorizationPolicy, attrs: &Attrs, layer: Layer) -> Vec<String> {
    let rules = p.spec.rules.clone().unwrap_or_default();
    if rules.is_empty() {
        return vec![match p.spec.rules {
            None => "no rules: matches nothing (ALLOW) / nothing (DENY)".into(),
            Some(_) => "an empty rule list: matches nothing".into(),
        }];
    }
    let matches = |r: scenario::manifest::Rule| {
        let mut q = p.clone();
        q.spec.action = Action::Allow;
        q.spec.provider = None;
        q.spec.rules = Some(vec![r]);
        matches!(
            policy::evaluate(&[&q], attrs, layer).reason,
            Reason::Allowed(_)
        )
    };
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if matches(r.clone()) {
                return format!("rule {i}: matches");
            }
            let mut failing = Vec::new();
            let empty = scenario::manifest::Rule::default();
            if !r.from.is_empty()
                && !matches(scenario::manifest::Rule {
                    from: r.from.clone(),
                    ..empty.clone()
                })
            {
                failing.push("from");
            }
            if !r.to.is_empty()
                && !matches(scenario::manifest::Rule {
                    to: r.to.clone(),
                    ..empty.clone()
                })
            {
                failing.push(if layer == Layer::L7 {
                    "to"
                } else {
                    "to (ports at L4; HTTP fields never match at L4)"
                });
            }
            if !r.when.is_empty()
                && !matches(scenario::manifest::Rule {
                    when: r.when.clone(),
                    ..empty.clone()
                })
            {
                failing.push("when");
            }
            if failing.is_empty() {
                format!("rule {i}: does not match (its parts match alone, not together)")
            } else {
                format!("rule {i}: does not match: {} does not", failing.join(", "))
            }
        })
        .collect()
}

/// The policies at a hop, each with its rules.
fn views(policies: &[&AuthorizationPolicy], attrs: &Attrs, layer: Layer) -> Vec<PolicyView> {
    policies
        .iter()
        .map(|p| PolicyView {
            policy: format!(
                "{}/{} ({})",
                p.metadata.ns(),
                p.metadata.name,
                action(p.spec.action)
            ),
            rules: rule_lines(p, attrs, layer),
        })
        .collect()
}

/// A hop's authorization: the verdict in words, and whether it allows.
fn authorize(
    policies: &[&AuthorizationPolicy],
    attrs: &Attrs,
    layer: Layer,
) -> (String, bool, bool) {
    let custom = !policy::custom_matches(policies, attrs, layer).is_empty();
    let v = policy::evaluate(policies, attrs, layer);
    let allowed = v.decision == Decision::Allow;
    (crate::mesh::decisions::describe(&v), allowed, custom)
}

/// What a hop needs to know about the request.
struct Req<'a> {
    method: &'a str,
    path: &'a str,
    host: &'a str,
    headers: &'a [(String, String)],
}

impl Req<'_> {
    fn http(&self) -> ::http::Request<()> {
        let mut b = ::http::Request::builder()
            .method(self.method)
            .uri(self.path)
            .header("host", self.host);
        for (k, v) in self.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        b.body(()).unwrap_or_default()
    }
}

enum L7 {
    Allow,
    Refuse(Outcome),
}

/// An Envoy hop (sidecar inbound, or a waypoint): normalization, jwt_authn, then RBAC at L7
/// — or at L4 for a TCP port.
fn envoy_hop(
    proxy: String,
    (policies, issuers): (&[&AuthorizationPolicy], &[Issuer]),
    base: Attrs,
    req: &Req<'_>,
    http_port: bool,
) -> (Hop, L7, bool) {
    let sees = match &base.principal {
        Some(p) => format!("mTLS from {p}"),
        None => "plaintext (no peer identity)".into(),
    };
    let mut checks = Vec::new();
    if !http_port {
        let (verdict, ok, _) = authorize(policies, &base, Layer::Tcp);
        let hop = Hop {
            proxy,
            sees,
            checks,
            policies: views(policies, &base, Layer::Tcp),
            verdict: format!("TCP port, L4 attributes only: {verdict}"),
        };
        return (
            hop,
            if ok {
                L7::Allow
            } else {
                L7::Refuse(Outcome::Reset)
            },
            true,
        );
    }
    let mut r = req.http();
    if let Err(resp) = http::normalize(&mut r) {
        let s = resp.status().as_u16();
        checks.push(format!("path normalization: refused ({s})"));
        let hop = Hop {
            proxy,
            sees,
            checks,
            policies: Vec::new(),
            verdict: format!("answered {s} before any policy"),
        };
        return (hop, L7::Refuse(Outcome::Allowed(s)), true);
    }
    let mut h = http::http_attrs(&r);
    if let Err(resp) = http::check_jwt(&mut r, issuers, &mut h) {
        let s = resp.status().as_u16();
        checks.push(format!(
            "RequestAuthentication (jwt_authn): token refused ({s})"
        ));
        let o = match s {
            401 => Outcome::Unauthorized,
            403 => Outcome::Denied,
            s => Outcome::Allowed(s),
        };
        let hop = Hop {
            proxy,
            sees,
            checks,
            policies: Vec::new(),
            verdict: format!("jwt_authn answered {s}"),
        };
        return (hop, L7::Refuse(o), true);
    }
    checks.push(if issuers.is_empty() {
        "RequestAuthentication: none applies".into()
    } else {
        match &h.request_principal {
            Some(p) => format!("RequestAuthentication: token valid, request principal {p}"),
            None => "RequestAuthentication: no token (allowed by jwt_authn; policies see no request principal)".into(),
        }
    });
    let mut attrs = base;
    attrs.http = Some(h);
    let (verdict, ok, custom) = authorize(policies, &attrs, Layer::L7);
    if custom {
        checks.push(
            "CUSTOM policy matched: the ext_authz provider decides first (not predicted)".into(),
        );
    }
    let hop = Hop {
        proxy,
        sees,
        checks,
        policies: views(policies, &attrs, Layer::L7),
        verdict,
    };
    (
        hop,
        if ok {
            L7::Allow
        } else {
            L7::Refuse(Outcome::Denied)
        },
        !custom,
    )
}

/// ztunnel's inbound L4 check of a connection to pod `w` from `peer`.
fn ztunnel_hop(
    plan: &MeshPlan,
    w: usize,
    peer: Option<&Identity>,
    src_ip: IpAddr,
    port: u16,
) -> (Hop, bool) {
    let me = &plan.workloads[w];
    let policies = plan.workload_policies(w);
    let attrs = Attrs {
        principal: peer.map(|p| p.principal()),
        namespace: peer.map(|p| p.namespace.clone()),
        source_ip: Some(src_ip),
        dest_port: port,
        dest_ip: Some(me.ip.into()),
        ..Attrs::default()
    };
    let (verdict, ok, _) = authorize(&policies, &attrs, Layer::L4);
    let hop = Hop {
        proxy: format!("ztunnel for {}", me.pod),
        sees: match peer {
            Some(p) => format!("HBONE (mTLS) from {}", p.principal()),
            None => "plaintext (no peer identity)".into(),
        },
        checks: Vec::new(),
        policies: views(&policies, &attrs, Layer::L4),
        verdict: format!("L4 only (HTTP fields never match at ztunnel): {verdict}"),
    };
    (hop, ok)
}

/// The path and checks of a request from `src` to endpoint `ep` of the target.
fn path_to(
    plan: &MeshPlan,
    src: usize,
    (svc, ep, target): (Option<usize>, usize, u16),
    req: &Req<'_>,
) -> Path {
    let s = &plan.workloads[src];
    let e = &plan.workloads[ep];
    let src_ip: IpAddr = s.ip.into();
    let http_port = plan.is_http_target(ep, target) && req.path != "tcp";
    let mut route = vec![format!("{} ({})", s.pod, s.dataplane())];
    let mut hops = Vec::new();
    let mut certain = true;
    let finish = |route: Vec<String>, hops: Vec<Hop>, o: Outcome, certain: bool| Path {
        endpoint: e.pod.clone(),
        route,
        hops,
        outcome: o.to_string(),
        certain,
    };
    // Ends at the destination: its sidecar, its ztunnel, or the app itself.
    let at_dest = |route: &mut Vec<String>,
                   hops: &mut Vec<Hop>,
                   peer: Option<&Identity>,
                   via_waypoint: bool,
                   certain: &mut bool|
     -> Outcome {
        match e.dataplane() {
            DataPlane::Sidecar => {
                route.push(format!("sidecar {}", e.pod));
                if peer.is_none() && plan.mtls_mode(ep, target) == MtlsMode::Strict {
                    hops.push(Hop {
                        proxy: format!("sidecar {}", e.pod),
                        sees: "plaintext".into(),
                        checks: vec!["PeerAuthentication: STRICT".into()],
                        policies: Vec::new(),
                        verdict: "plaintext refused: connection reset".into(),
                    });
                    return Outcome::Reset;
                }
                let base = Attrs {
                    principal: peer.map(|p| p.principal()),
                    namespace: peer.map(|p| p.namespace.clone()),
                    source_ip: Some(src_ip),
                    dest_port: target,
                    dest_ip: Some(e.ip.into()),
                    ..Attrs::default()
                };
                let policies = plan.workload_policies(ep);
                let issuers = plan.workload_issuers(ep);
                let (hop, r, sure) = envoy_hop(
                    format!("sidecar {} (inbound)", e.pod),
                    (&policies, &issuers),
                    base,
                    req,
                    http_port,
                );
                hops.push(hop);
                *certain &= sure;
                match r {
                    L7::Allow => Outcome::Allowed(200),
                    L7::Refuse(o) => o,
                }
            }
            DataPlane::Ambient => {
                route.push(format!("ztunnel for {}", e.pod));
                if peer.is_none() && plan.strict_mtls(ep, target) {
                    hops.push(Hop {
                        proxy: format!("ztunnel for {}", e.pod),
                        sees: "plaintext".into(),
                        checks: vec!["PeerAuthentication: STRICT".into()],
                        policies: Vec::new(),
                        verdict: "plaintext refused: connection reset".into(),
                    });
                    return Outcome::Reset;
                }
                let (hop, ok) = ztunnel_hop(plan, ep, peer, src_ip, target);
                hops.push(hop);
                match (ok, via_waypoint, peer.is_some()) {
                    (true, _, _) => Outcome::Allowed(200),
                    // A TCP stream has no status to carry a refusal: it is closed.
                    (false, _, _) if !http_port => Outcome::Reset,
                    // The waypoint's CONNECT gets 401 and it answers 503.
                    (false, true, _) => Outcome::Unavailable,
                    // A sidecar's HBONE tunnel is refused: it answers 503.
                    (false, false, true) if s.dataplane() == DataPlane::Sidecar => {
                        Outcome::Unavailable
                    }
                    (false, _, _) => Outcome::Reset,
                }
            }
            DataPlane::None => {
                route.push(format!("{} (app, out of the mesh)", e.pod));
                Outcome::Allowed(200)
            }
        }
    };
    let o = match s.dataplane() {
        DataPlane::Sidecar => {
            route.push(format!(
                "sidecar {} (outbound: never via a waypoint)",
                s.pod
            ));
            if let Some(k) = svc
                && http_port
                && let Some(check) = pool_check(plan, src, k, target)
            {
                hops.push(Hop {
                    proxy: format!("sidecar {} (outbound)", s.pod),
                    sees: "the app's request".into(),
                    checks: vec![check],
                    policies: Vec::new(),
                    verdict: "sent on".into(),
                });
            }
            let mtls = match e.dataplane() {
                DataPlane::Sidecar => plan.mtls_mode(ep, target) != MtlsMode::Disable,
                DataPlane::Ambient => true,
                DataPlane::None => false,
            };
            at_dest(
                &mut route,
                &mut hops,
                mtls.then_some(&s.identity),
                false,
                &mut certain,
            )
        }
        DataPlane::Ambient => {
            route.push(format!("ztunnel for {} (outbound)", s.pod));
            // ztunnel's next hop: a service's waypoint for service-addressed traffic, a pod's
            // workload waypoint for traffic addressed to the pod.
            let waypoint = match svc {
                Some(k) => plan.services[k].waypoint,
                None => e.waypoint,
            }
            .filter(|&k| plan.waypoints[k].workload != src);
            match waypoint {
                Some(k) => {
                    let wp = &plan.waypoints[k];
                    let wl = &plan.workloads[wp.workload];
                    route.push(format!("waypoint {}", wp.decl.name));
                    let base = Attrs {
                        principal: Some(s.identity.principal()),
                        namespace: Some(s.namespace.clone()),
                        source_ip: Some(src_ip),
                        dest_port: target,
                        dest_ip: Some(e.ip.into()),
                        ..Attrs::default()
                    };
                    let (policies, issuers) = match svc {
                        Some(k) if plan.services[k].waypoint.is_some() => (
                            plan.waypoint_policies(wp_index(plan, wp), &plan.services[k]),
                            plan.waypoint_issuers(wp_index(plan, wp), &plan.services[k]),
                        ),
                        _ => (
                            plan.waypoint_own_policies(wp_index(plan, wp)),
                            plan.waypoint_own_issuers(wp_index(plan, wp)),
                        ),
                    };
                    let (mut hop, r, sure) = envoy_hop(
                        format!("waypoint {}", wp.decl.name),
                        (&policies, &issuers),
                        base,
                        req,
                        http_port,
                    );
                    if http_port
                        && let Some(k) = svc
                        && plan.services[k].waypoint.is_some()
                    {
                        hop.checks.extend(pool_check(plan, wp.workload, k, target));
                    }
                    hops.push(hop);
                    certain &= sure;
                    match r {
                        L7::Refuse(o) => o,
                        L7::Allow => at_dest(
                            &mut route,
                            &mut hops,
                            Some(&wl.identity),
                            true,
                            &mut certain,
                        ),
                    }
                }
                None => {
                    let tunnel = e.takes_hbone();
                    at_dest(
                        &mut route,
                        &mut hops,
                        tunnel.then_some(&s.identity),
                        false,
                        &mut certain,
                    )
                }
            }
        }
        DataPlane::None => at_dest(&mut route, &mut hops, None, false, &mut certain),
    };
    finish(route, hops, o, certain)
}

/// The DestinationRule connection pool the proxy of workload `proxy` applies to service
/// `svc` (reached on target port `target`): what sheds a request under load, which a single
/// request cannot show.
fn pool_check(plan: &MeshPlan, proxy: usize, svc: usize, target: u16) -> Option<String> {
    let port = plan.services[svc].service_port(target)?;
    let (rule, limits) = plan.destination_rule(proxy, svc, port)?;
    Some(if limits.is_default() {
        format!(
            "DestinationRule {}/{}: no connection pool limits (istiod's defaults)",
            rule.metadata.ns(),
            rule.metadata.name
        )
    } else {
        format!(
            "DestinationRule {}/{}: connection pool {limits}; past them under load this proxy sheds requests with 503 UO",
            rule.metadata.ns(),
            rule.metadata.name
        )
    })
}

fn wp_index(plan: &MeshPlan, wp: &crate::mesh::control::WaypointInfo) -> usize {
    plan.waypoints
        .iter()
        .position(|w| w.decl.pod == wp.decl.pod)
        .unwrap_or(0)
}

/// Predicts the request's path and outcome, one per endpoint the service may pick.
pub fn predict(plan: &MeshPlan, ask: &Ask) -> Result<(Vec<Path>, String), ExplainError> {
    let src = plan
        .workloads
        .iter()
        .position(|w| w.pod == ask.from)
        .ok_or_else(|| ExplainError::NoPod(ask.from.clone()))?;
    let (target, path) = resolve(plan, &plan.workloads[src], &ask.url)?;
    let host = ask
        .url
        .parse::<::http::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let req = Req {
        method: &ask.method,
        path: &path,
        host: &host,
        headers: &ask.headers,
    };
    let paths = match target {
        Target::Service(k, port) => {
            let svc = &plan.services[k];
            let (tp, _) = svc
                .port(port)
                .ok_or_else(|| ExplainError::NoPort(svc.name.clone(), port))?;
            svc.endpoints
                .iter()
                .map(|&ep| path_to(plan, src, (Some(k), ep, tp), &req))
                .collect()
        }
        Target::Pod(w, port) => vec![path_to(plan, src, (None, w, port), &req)],
    };
    let request = if path == "tcp" {
        path
    } else {
        format!("{} {}", ask.method, path)
    };
    Ok((paths, request))
}

/// Whether the real outcome is what the prediction said (an app's own status counts as
/// allowed, whatever it is).
pub fn agrees(predicted: &str, actual: &Outcome) -> bool {
    let p_allowed = predicted.starts_with("allowed");
    if p_allowed || actual.allowed() {
        return p_allowed == actual.allowed();
    }
    predicted == actual.to_string()
}

/// Sends the request for real from its pod (namespace `ns`) and explains it: the prediction,
/// the outcome, the proxies' own decisions, and whether they agree.
pub fn explain(
    plan: &MeshPlan,
    ns: &crate::netns::NetNsRef,
    ask: &Ask,
    cni: (&[crate::netns::NetNsRef], &crate::netpol::Enforced),
) -> Result<Explanation, ExplainError> {
    let (paths, request) = predict(plan, ask)?;
    let src = &plan.workloads[plan
        .workloads
        .iter()
        .position(|w| w.pod == ask.from)
        .unwrap_or(0)];
    let (target, _) = resolve(plan, src, &ask.url)?;
    let addr = match target {
        Target::Service(k, port) => std::net::SocketAddr::from((plan.services[k].vip, port)),
        Target::Pod(w, port) => std::net::SocketAddr::from((plan.workloads[w].ip, port)),
    };
    let host = ask
        .url
        .parse::<::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_string))
        .unwrap_or_default();
    let probe = crate::reach::Probe {
        from: ask.from.clone(),
        to: format!("{host}:{}", addr.port()),
        request: request.clone(),
        headers: ask.headers.clone(),
        why: "explain".into(),
    };
    plan.decisions.enable();
    plan.decisions.take();
    let c = crate::component::Component::new(
        format!("explain-{}", ask.from),
        crate::component::ComponentKind::LoadClient,
        ns.clone(),
    );
    let guarded = !cni.1.guards.is_empty();
    let before = guarded
        .then(|| crate::netpol::drops(cni.0, cni.1).ok())
        .flatten();
    let actual = match c.start_runtime(1, None) {
        Ok(rt) => rt.run(async move { crate::reach::send(addr, &probe).await }),
        Err(_) => Outcome::Reset,
    };
    let cni_drops: Vec<String> = before
        .and_then(|b| {
            let after = crate::netpol::drops(cni.0, cni.1).ok()?;
            Some(crate::netpol::dropped(cni.1, &b, &after))
        })
        .unwrap_or_default()
        .iter()
        .map(crate::reach::describe_decision)
        .collect();
    let actual_decisions = plan
        .decisions
        .take()
        .iter()
        .map(|d| {
            format!(
                "{}: {} ({})",
                d.proxy,
                d.by,
                if d.allowed { "allowed" } else { "refused" }
            )
        })
        .collect();
    // A CNI drop is outside what the proxies predict: it explains the outcome, and the
    // proxies' prediction is then only checked where it refused first.
    let agree = paths.iter().any(|p| {
        !p.certain || agrees(&p.outcome, &actual) || (!cni_drops.is_empty() && !actual.allowed())
    });
    Ok(Explanation {
        request: format!("{} → {} {request}", ask.from, ask.url),
        paths,
        actual: actual.to_string(),
        actual_decisions,
        cni_drops,
        agree,
    })
}
