//! `meshsim check`: the static part of the migration checklist, from the scenario and its
//! manifests alone (no cluster, well under a second). Each item is verified, failed, a warning
//! or not checkable here, with its evidence; the policy findings use the same engine and the
//! same enrollment as the proxies, so what `check` predicts is what `run` and `up` do.
//!
//! The classic ambient breaks it looks for:
//! - an L7 policy bound by selector to a pod ztunnel captures: ztunnel cannot see HTTP, so
//!   its ALLOW rules never match and its HTTP-only DENY entries never apply
//!   (`pilot/pkg/serviceregistry/ambient/authorization.go` `handleRule`);
//! - a `targetRefs` policy whose Service no waypoint serves: nothing enforces it;
//! - an L4 policy at a service's pods that refuses the service's waypoint identity: every
//!   request through the waypoint gets 503;
//! - plaintext from a pod out of the mesh into a STRICT destination.
//! - a DestinationRule connection pool whose clients lose their sidecar while no waypoint
//!   serves the service: ztunnel does not apply it, so its limits are gone.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::mesh::control::{self, mtls_mode, service_waypoint};
use crate::mesh::policy::{self, Attrs, Decision, Layer};
use scenario::enrollment::{DATAPLANE_MODE, DataPlane, Enrollment};
use scenario::manifest::{
    Action, AuthorizationPolicy, MtlsMode, Object, PeerAuthentication, WaypointFor,
};
use scenario::{Loaded, Mode};

/// How one checklist item came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Failed,
    Warning,
    Verified,
    NotCheckable,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Failed => "FAILED",
            Status::Warning => "warning",
            Status::Verified => "ok",
            Status::NotCheckable => "n/a",
        }
    }
}

/// One item: what was checked, how it came out, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub id: &'static str,
    pub status: Status,
    pub title: String,
    /// The evidence, one finding per line (file:line where there is one).
    pub evidence: Vec<String>,
    /// The Istio source of the rule applied.
    pub source: &'static str,
}

/// The whole checklist for one mode.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub mode: Mode,
    /// Data plane → pods in it.
    pub dataplanes: BTreeMap<DataPlane, Vec<String>>,
    pub items: Vec<Item>,
}

impl Report {
    /// The items as run.json keeps them.
    pub fn checklist(&self) -> Vec<results::run::ChecklistItem> {
        self.items
            .iter()
            .map(|i| results::run::ChecklistItem {
                id: i.id.to_string(),
                status: match i.status {
                    Status::Failed => "failed",
                    Status::Warning => "warning",
                    Status::Verified => "verified",
                    Status::NotCheckable => "not-checkable",
                }
                .to_string(),
                title: i.title.clone(),
                evidence: i.evidence.clone(),
                source: i.source.to_string(),
            })
            .collect()
    }

    pub fn failed(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.status == Status::Failed)
            .count()
    }
}

/// One pod of the scenario as the check sees it.
struct Pod<'a> {
    name: String,
    workload: &'a scenario::Workload,
    labels: BTreeMap<String, String>,
    enrollment: Enrollment,
}

fn pods<'a>(l: &'a Loaded, mode: Mode) -> Vec<Pod<'a>> {
    let mut out = Vec::new();
    for w in &l.scenario.workloads {
        let mut labels = w.labels.clone();
        labels
            .entry("app".to_string())
            .or_insert_with(|| w.name.clone());
        for i in 0..w.replicas {
            out.push(Pod {
                name: format!("{}-{i}", w.name),
                workload: w,
                labels: labels.clone(),
                enrollment: l.enrollment(w, mode),
            });
        }
    }
    out
}

fn at(l: &Loaded, p: &AuthorizationPolicy) -> String {
    let o = l.objects().find(|o| match &o.object {
        Object::AuthorizationPolicy(x) => x.metadata == p.metadata,
        _ => false,
    });
    let name = format!("{}/{}", p.metadata.ns(), p.metadata.name);
    match o {
        Some(o) => {
            let line = o.origin.at("metadata.name", String::new()).line;
            format!("{name} ({}:{line})", o.origin.file.display())
        }
        None => name,
    }
}

/// Runs every check for `mode`.
pub fn check(l: &Loaded, mode: Mode) -> Report {
    let pods = pods(l, mode);
    let mut dataplanes: BTreeMap<DataPlane, Vec<String>> = BTreeMap::new();
    for p in &pods {
        dataplanes
            .entry(p.enrollment.dataplane)
            .or_default()
            .push(p.name.clone());
    }
    let authz: Vec<&AuthorizationPolicy> = l
        .objects()
        .filter_map(|o| match &o.object {
            Object::AuthorizationPolicy(p) => Some(p),
            _ => None,
        })
        .collect();
    let items = vec![
        kernel(),
        istio_version(l),
        envoy_filters(l),
        sidecars_left(l, &pods),
        l7_at_ztunnel(l, &pods, &authz),
        unbound_target_refs(l, mode, &authz),
        waypoint_identity(l, mode, &pods, &authz),
        plaintext_into_strict(l, &pods),
        netpol_hbone(l, &pods),
        destination_rules_applied(l, mode, &pods),
    ];
    Report {
        scenario: l.scenario.name.clone(),
        mode,
        dataplanes,
        items,
    }
}

fn item(
    id: &'static str,
    title: &str,
    evidence: Vec<String>,
    fail: Status,
    source: &'static str,
) -> Item {
    Item {
        id,
        status: if evidence.is_empty() {
            Status::Verified
        } else {
            fail
        },
        title: title.to_string(),
        evidence,
        source,
    }
}

/// Istio's nftables backend (the one meshsim's capture uses) needs Linux 5.13.
fn kernel() -> Item {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    let mut parts = release.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    let version = (parts.next().flatten(), parts.next().flatten());
    let (status, evidence) = match version {
        (Some(a), Some(b)) if (a, b) >= (5, 13) => (Status::Verified, format!("Linux {release}")),
        (Some(_), Some(_)) => (
            Status::Failed,
            format!("Linux {release}: Istio's nftables backend needs 5.13 or newer"),
        ),
        _ => (
            Status::NotCheckable,
            format!("cannot read the kernel version ({release:?})"),
        ),
    };
    Item {
        id: "kernel",
        status,
        title: "host kernel supports the capture (nftables, Linux ≥ 5.13)".into(),
        evidence: vec![evidence],
        source: "istio.io Platform Requirements: the nftables backend needs Linux 5.13+",
    }
}

/// The cost profile stands for an Istio release; ambient is stable from 1.22.
fn istio_version(l: &Loaded) -> Item {
    let name = &l.scenario.profile;
    let version = name.strip_prefix("istio-").and_then(|v| {
        let mut p = v.split('.').map(|x| x.parse::<u32>().ok());
        Some((p.next()??, p.next()??))
    });
    let (status, evidence) = match version {
        Some(v) if v >= (1, 22) => (Status::Verified, format!("profile {name}")),
        Some(_) => (
            Status::Failed,
            format!("profile {name}: ambient is stable from Istio 1.22"),
        ),
        None => (
            Status::NotCheckable,
            format!("profile {name} names no Istio release"),
        ),
    };
    Item {
        id: "istio-version",
        status,
        title: "Istio version ≥ 1.22 (ambient GA)".into(),
        evidence: vec![evidence],
        source: "istio.io blog 'Istio 1.22: ambient mode is Beta/GA'; release notes 1.22",
    }
}

fn envoy_filters(l: &Loaded) -> Item {
    let evidence = l
        .ignored
        .iter()
        .filter(|i| i.kind == "EnvoyFilter")
        .map(|i| {
            format!(
                "EnvoyFilter {} ({}:{}): ztunnel cannot run it, and waypoints do not take sidecar EnvoyFilters",
                i.name,
                i.file.display(),
                i.line
            )
        })
        .collect();
    item(
        "envoy-filters",
        "no EnvoyFilter (unsupported in ambient)",
        evidence,
        Status::Failed,
        "istio.io ambient docs: EnvoyFilter is not supported for ztunnel; migrate it to a waypoint or drop it",
    )
}

fn sidecars_left(l: &Loaded, pods: &[Pod<'_>]) -> Item {
    let evidence = pods
        .iter()
        .filter(|p| {
            p.enrollment.dataplane == DataPlane::Sidecar
                && l.namespace_labels(&p.workload.namespace)
                    .get(DATAPLANE_MODE)
                    .is_some_and(|v| v == "ambient")
        })
        .map(|p| {
            format!(
                "{} ({}): {}",
                p.name, p.workload.namespace, p.enrollment.why
            )
        })
        .collect();
    item(
        "sidecars-left",
        "no sidecar left in an ambient namespace",
        evidence,
        Status::Warning,
        "istio-cni enablement_selector.go: a pod with a sidecar is not captured; remove injection and restart it",
    )
}

/// Selector policies with HTTP attributes at pods ztunnel enforces for.
fn l7_at_ztunnel(l: &Loaded, pods: &[Pod<'_>], authz: &[&AuthorizationPolicy]) -> Item {
    let mut evidence = Vec::new();
    for p in authz {
        let has_targets = p.spec.target_ref.is_some() || !p.spec.target_refs.is_empty();
        if has_targets || !matches!(p.spec.action, Action::Allow | Action::Deny) {
            continue;
        }
        let http_rules: Vec<usize> = p
            .spec
            .rules
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, r)| policy::rule_has_http(r))
            .map(|(i, _)| i)
            .collect();
        if http_rules.is_empty() {
            continue;
        }
        let hit: Vec<&str> = pods
            .iter()
            .filter(|x| x.enrollment.dataplane == DataPlane::Ambient)
            .filter(|x| policy::selects_workload(p, &x.workload.namespace, &x.labels))
            .map(|x| x.name.as_str())
            .collect();
        if hit.is_empty() {
            continue;
        }
        let effect = match p.spec.action {
            Action::Allow => {
                "ztunnel drops its rules with HTTP attributes, so that traffic is refused"
                    .to_string()
            }
            _ => deny_effect(p, &http_rules),
        };
        evidence.push(format!(
            "{} rules {http_rules:?} at ambient pods {}: {effect}; bind it to a waypoint with targetRefs",
            at(l, p),
            hit.join(", ")
        ));
    }
    item(
        "l7-at-ztunnel",
        "every L7 policy is enforced by a waypoint, not ztunnel",
        evidence,
        Status::Failed,
        "pilot/pkg/serviceregistry/ambient/authorization.go handleRule (ALLOW rules with HTTP attributes are dropped; HTTP entries become empty matches) and istio/ztunnel src/rbac.rs",
    )
}

/// What ztunnel makes of a DENY's rules with HTTP attributes: a `to`/`from` made only of HTTP
/// entries (or an HTTP `when`) is an empty clause that never matches, so the rule is a no-op;
/// otherwise its HTTP parts are dropped and it denies more than written (`handleRule`, and
/// ztunnel `src/rbac.rs` skipping empty matches).
fn deny_effect(p: &AuthorizationPolicy, http_rules: &[usize]) -> String {
    let rules: Vec<&scenario::manifest::Rule> = p.spec.rules.iter().flatten().collect();
    let (mut noop, mut wider) = (Vec::new(), Vec::new());
    for &i in http_rules {
        let r = rules[i];
        let op_l4 =
            |o: &scenario::manifest::Operation| !o.ports.is_empty() || !o.not_ports.is_empty();
        let src_l4 = |s: &scenario::manifest::Source| {
            !(s.principals.is_empty()
                && s.not_principals.is_empty()
                && s.namespaces.is_empty()
                && s.not_namespaces.is_empty()
                && s.ip_blocks.is_empty()
                && s.not_ip_blocks.is_empty())
        };
        let l4_when = [
            "source.ip",
            "source.namespace",
            "source.principal",
            "destination.ip",
            "destination.port",
        ];
        let empty_clause = (!r.to.is_empty() && !r.to.iter().any(|t| op_l4(&t.operation)))
            || (!r.from.is_empty() && !r.from.iter().any(|f| src_l4(&f.source)))
            || r.when.iter().any(|c| !l4_when.contains(&c.key.as_str()));
        if empty_clause {
            noop.push(i)
        } else {
            wider.push(i)
        }
    }
    let mut out = Vec::new();
    if !noop.is_empty() {
        out.push(format!(
            "rules {noop:?} never match there (an entry of only HTTP attributes matches nothing)"
        ));
    }
    if !wider.is_empty() {
        out.push(format!(
            "rules {wider:?} lose their HTTP parts there and deny more than written"
        ));
    }
    out.join("; ")
}

/// `targetRefs` to a Service no waypoint serves in this mode.
fn unbound_target_refs(l: &Loaded, mode: Mode, authz: &[&AuthorizationPolicy]) -> Item {
    let mut evidence = Vec::new();
    for p in authz {
        for t in p.spec.target_refs.iter().chain(p.spec.target_ref.as_ref()) {
            if t.kind != "Service" {
                continue;
            }
            let ns = t.namespace.as_deref().unwrap_or(p.metadata.ns());
            let served = service_waypoint(l, mode, ns, &t.name)
                .is_some_and(|(w, wns)| waypoint_serves_services(l, mode, &w, &wns));
            if !served {
                evidence.push(format!(
                    "{} targets Service {ns}/{} which no waypoint serves in mode {mode}: nothing enforces it (label the service istio.io/use-waypoint)",
                    at(l, p),
                    t.name
                ));
            }
        }
    }
    item(
        "target-refs-bound",
        "every targetRefs policy has a waypoint to enforce it",
        evidence,
        Status::Failed,
        "istio.io Authorization Policy reference (targetRefs): only waypoints and gateways enforce them",
    )
}

fn waypoint_serves_services(l: &Loaded, mode: Mode, name: &str, ns: &str) -> bool {
    control::waypoints(l, mode).iter().any(|d| {
        d.name == name
            && d.namespace == ns
            && matches!(d.waypoint_for, WaypointFor::Service | WaypointFor::All)
    })
}

/// DestinationRule connection pools that no proxy applies: a client without a sidecar sends
/// to the rule's service and no waypoint serves it. ztunnel does not read DestinationRules;
/// a sidecar applies them to what it sends, a waypoint to what it serves.
fn destination_rules_applied(l: &Loaded, mode: Mode, pods: &[Pod<'_>]) -> Item {
    let mut evidence = Vec::new();
    for o in l.objects() {
        let Object::DestinationRule(r) = &o.object else {
            continue;
        };
        if !r.has_connection_pool() {
            continue;
        }
        let host = r.host();
        for svc in &l.scenario.services {
            let fqdn = format!("{}.{}.svc.cluster.local", svc.name, svc.namespace);
            if !scenario::destrule::host_matches(&host, &fqdn)
                || service_waypoint(l, mode, &svc.namespace, &svc.name)
                    .is_some_and(|(w, wns)| waypoint_serves_services(l, mode, &w, &wns))
            {
                continue;
            }
            let mut clients: Vec<&str> = Vec::new();
            for f in &l.scenario.flows {
                let Some((name, ns, _)) = f.target() else {
                    continue;
                };
                let from = pods.iter().find(|p| p.workload.name == f.from);
                let ns = ns.unwrap_or(from.map_or("default", |p| p.workload.namespace.as_str()));
                if name != svc.name || ns != svc.namespace {
                    continue;
                }
                if let Some(p) = from
                    && p.enrollment.dataplane != DataPlane::Sidecar
                    && !clients.contains(&p.name.as_str())
                {
                    clients.push(&p.name);
                }
            }
            if !clients.is_empty() {
                let line = o.origin.at("spec.host", String::new()).line;
                evidence.push(format!(
                    "DestinationRule {}/{} ({}:{line}) sets a connection pool for {fqdn}, but {} send to it without a sidecar and no waypoint serves it in mode {mode}: ztunnel does not apply DestinationRules, so its limits are gone (label the service istio.io/use-waypoint)",
                    r.metadata.ns(),
                    r.metadata.name,
                    o.origin.file.display(),
                    clients.join(", ")
                ));
            }
        }
    }
    item(
        "destination-rules-applied",
        "every DestinationRule connection pool has a proxy to apply it",
        evidence,
        Status::Warning,
        "istio.io 'Migrate policies' (ambient): DestinationRule traffic policies (connection pool, outlier detection, TLS) are supported by waypoints",
    )
}

/// L4 policies at a waypointed service's ambient pods that refuse the waypoint's identity.
fn waypoint_identity(
    l: &Loaded,
    mode: Mode,
    pods: &[Pod<'_>],
    authz: &[&AuthorizationPolicy],
) -> Item {
    let mut evidence = Vec::new();
    for svc in &l.scenario.services {
        let Some((wp, wns)) = service_waypoint(l, mode, &svc.namespace, &svc.name) else {
            continue;
        };
        if !waypoint_serves_services(l, mode, &wp, &wns) {
            continue;
        }
        // A waypoint runs as the Gateway's service account.
        let principal = format!("cluster.local/ns/{wns}/sa/{wp}");
        for pod in pods.iter().filter(|p| {
            p.workload.name == svc.workload
                && p.workload.namespace == svc.namespace
                && p.enrollment.dataplane == DataPlane::Ambient
        }) {
            let selected: Vec<&AuthorizationPolicy> = authz
                .iter()
                .copied()
                .filter(|p| policy::selects_workload(p, &pod.workload.namespace, &pod.labels))
                .collect();
            for port in &svc.ports {
                let attrs = Attrs {
                    principal: Some(principal.clone()),
                    namespace: Some(wns.clone()),
                    dest_port: port.target_port.unwrap_or(port.port),
                    ..Attrs::default()
                };
                let v = policy::evaluate(&selected, &attrs, Layer::L4);
                if let Decision::Deny { .. } = v.decision {
                    evidence.push(format!(
                        "{}.{}:{} through waypoint {wns}/{wp}: {}'s ztunnel refuses {principal} ({:?}), so requests get 503; allow the waypoint's identity",
                        svc.name, svc.namespace, port.port, pod.name, v.reason
                    ));
                    break;
                }
            }
        }
    }
    item(
        "waypoint-identity",
        "pods behind a waypoint admit the waypoint's identity",
        evidence,
        Status::Failed,
        "istio.io 'Use waypoint proxies': the destination ztunnel sees the waypoint's identity; PILOT_AUTO_ALLOW_WAYPOINT_POLICY is off by default",
    )
}

/// Flows from pods out of the mesh into destinations that refuse plaintext.
fn plaintext_into_strict(l: &Loaded, pods: &[Pod<'_>]) -> Item {
    let peer_authn: Vec<PeerAuthentication> = l
        .objects()
        .filter_map(|o| match &o.object {
            Object::PeerAuthentication(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    let mut evidence = Vec::new();
    for f in &l.scenario.flows {
        let Some(src) = pods.iter().find(|p| p.workload.name == f.from) else {
            continue;
        };
        if src.enrollment.dataplane != DataPlane::None {
            continue;
        }
        let (host, port) = f.to.rsplit_once(':').unwrap_or((f.to.as_str(), "80"));
        let port: u16 = port.parse().unwrap_or(80);
        let mut parts = host.split('.');
        let name = parts.next().unwrap_or_default();
        let ns = parts.next().unwrap_or(&src.workload.namespace);
        let Some(svc) = l
            .scenario
            .services
            .iter()
            .find(|s| s.name == name && s.namespace == ns)
        else {
            continue;
        };
        let target = svc
            .ports
            .iter()
            .find(|p| p.port == port)
            .map_or(port, |p| p.target_port.unwrap_or(p.port));
        for dst in pods.iter().filter(|p| {
            p.workload.name == svc.workload
                && p.workload.namespace == svc.namespace
                && p.enrollment.dataplane != DataPlane::None
        }) {
            let m = mtls_mode(&peer_authn, &dst.workload.namespace, &dst.labels, target);
            if m == MtlsMode::Strict {
                evidence.push(format!(
                    "flow {}: {} is out of the mesh and sends plaintext to {} ({}), which is STRICT: connections are reset",
                    f.name, src.name, dst.name, dst.enrollment.dataplane
                ));
                break;
            }
        }
    }
    item(
        "plaintext-into-strict",
        "no flow sends plaintext into a STRICT destination",
        evidence,
        Status::Failed,
        "istio.io PeerAuthentication reference: STRICT accepts mTLS only",
    )
}

/// Port 15008, for what an ambient migration needs from the NetworkPolicies in force: the CNI
/// enforces them on the node, and HBONE between pods arrives on 15008, not on the app's port.
/// "Sidecar workloads receiving traffic will also need to allow inbound traffic on port 15008
/// to allow ambient workloads to communicate with them."
/// (https://istio.io/latest/docs/ambient/usage/networkpolicy/)
fn netpol_hbone(l: &Loaded, pods: &[Pod<'_>]) -> Item {
    use crate::proxy::capture::HBONE_PORT;
    let any_ambient = pods
        .iter()
        .any(|p| p.enrollment.dataplane == DataPlane::Ambient);
    let mut evidence = Vec::new();
    let mut probes = Vec::new();
    for o in l.objects() {
        let Some(np) = o.object.netpol() else {
            continue;
        };
        let line = o.origin.at("metadata.name", String::new()).line;
        let at = format!("{} ({}:{line})", np.id(), o.origin.file.display());
        let admits_hbone = |rules: &[scenario::netpol::NpRule]| {
            rules.iter().any(|r| {
                r.ports.is_empty() || r.ports.iter().any(|p| p.contains("tcp", HBONE_PORT))
            })
        };
        let selected: Vec<&Pod<'_>> = pods
            .iter()
            .filter(|p| p.workload.namespace == np.namespace && np.selector.matches(&p.labels))
            .collect();
        for (dir, rules) in [("ingress", &np.ingress), ("egress", &np.egress)] {
            // A direction with no rule is a deliberate deny-all: nothing to add.
            let Some(rules) = rules.as_ref().filter(|r| !r.is_empty()) else {
                continue;
            };
            if admits_hbone(rules) {
                continue;
            }
            let hit: Vec<String> = selected
                .iter()
                .filter(|p| match p.enrollment.dataplane {
                    DataPlane::Ambient => true,
                    // Ambient clients reach a sidecar over HBONE too.
                    DataPlane::Sidecar => dir == "ingress" && any_ambient,
                    DataPlane::None => false,
                })
                .map(|p| format!("{} ({})", p.name, p.enrollment.dataplane))
                .collect();
            if hit.is_empty() {
                continue;
            }
            let ports = scenario::netpol::Netpol::ports(rules).unwrap_or_default();
            evidence.push(format!(
                "{at} limits {dir} of {} to {}, without TCP {HBONE_PORT}: HBONE {} them is dropped by the CNI; add `port: {HBONE_PORT}, protocol: TCP`",
                hit.join(", "),
                ports.join(", "),
                if dir == "ingress" { "to" } else { "from" },
            ));
        }
        if let Some(rules) = np.ingress.as_ref().filter(|r| !r.is_empty())
            && selected
                .iter()
                .any(|p| p.enrollment.dataplane == DataPlane::Ambient)
            && !rules.iter().any(|r| r.peers.is_none())
        {
            probes.push(at);
        }
    }
    let mut i = item(
        "netpol-hbone",
        "NetworkPolicies admit HBONE (TCP 15008) where ambient traffic goes",
        evidence,
        Status::Failed,
        "istio.io/latest/docs/ambient/usage/networkpolicy: pod-to-pod traffic arrives on 15008, and NetworkPolicy is enforced on the host",
    );
    if i.status == Status::Verified && !probes.is_empty() {
        // meshsim runs no kubelet, so this one is told, not tested.
        i.status = Status::Warning;
        i.evidence = probes
            .into_iter()
            .map(|at| format!("{at} admits ingress from listed peers only: kubelet health probes to ambient pods arrive from istio-cni's SNAT address 169.254.7.127 (istio.io/latest/docs/ambient/usage/networkpolicy, health probes); if the CNI applies the policy to them, admit that address"))
            .collect();
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(name: &str) -> Loaded {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        scenario::load(&root.join(name)).expect("bundled scenario loads")
    }

    fn find<'a>(r: &'a Report, id: &str) -> &'a Item {
        r.items.iter().find(|i| i.id == id).expect("item")
    }

    #[test]
    fn the_mixed_scenario_passes_its_policy_checks() {
        let r = check(&loaded("scenarios/migration-mixed.yaml"), Mode::Declared);
        for id in [
            "l7-at-ztunnel",
            "target-refs-bound",
            "waypoint-identity",
            "plaintext-into-strict",
        ] {
            assert_eq!(
                find(&r, id).status,
                Status::Verified,
                "{id}: {:?}",
                find(&r, id)
            );
        }
        assert_eq!(
            r.dataplanes[&DataPlane::Sidecar],
            vec!["web-0", "catalog-0"]
        );
    }

    #[test]
    fn the_conformance_cluster_shows_each_classic_break() {
        let r = check(&loaded("tests/conformance/mixed.yaml"), Mode::Declared);
        let wp = find(&r, "waypoint-identity");
        assert_eq!(wp.status, Status::Failed);
        assert!(
            wp.evidence.iter().any(|e| e.starts_with("a-wp2.amb:8080")),
            "{wp:?}"
        );
        assert!(
            !wp.evidence.iter().any(|e| e.starts_with("a-wp.amb")),
            "a-wp admits it: {wp:?}"
        );
        let l7 = find(&r, "l7-at-ztunnel");
        assert!(
            l7.evidence
                .iter()
                .any(|e| e.contains("amb/a-echo-deny-http-only")),
            "{l7:?}"
        );
        // In sidecar mode no waypoint exists: every targetRefs policy is enforced by nothing.
        let r = check(&loaded("tests/conformance/mixed.yaml"), Mode::Sidecar);
        let t = find(&r, "target-refs-bound");
        assert!(
            t.evidence.iter().any(|e| e.contains("amb/a-wp-authz")),
            "{t:?}"
        );
    }
}
