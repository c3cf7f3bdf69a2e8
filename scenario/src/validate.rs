//! The checks after parsing: names, ranges, references between parts of the scenario and its
//! manifests, and what the topology can build. Each problem is one [`Diagnostic`] at the field
//! it is about; all are collected.

use std::collections::{BTreeMap, BTreeSet};

use crate::format::{App, FlowProtocol, Mode, PortProtocol};
use crate::loaded::Loaded;
use crate::manifest::{
    self, Object, ROOT_NAMESPACE, TargetRef, USE_WAYPOINT, USE_WAYPOINT_NAMESPACE, WAYPOINT_CLASS,
};
use crate::units::Rate;
use crate::yaml::Diagnostic;

/// Ports the proxies own inside a pod; an app cannot listen on them.
pub const RESERVED_PORTS: &[u16] = &[15000, 15001, 15006, 15008, 15020, 15021, 15053, 15090];

/// Limits that keep one machine's cluster buildable.
const MAX_NODES: usize = 250;
const MAX_PODS: usize = 5000;

struct Ctx<'a> {
    l: &'a Loaded,
    out: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn err(&mut self, path: &str, message: impl Into<String>) {
        let loc = self.l.index.value_loc(path);
        self.out.push(Diagnostic {
            file: self.l.path.clone(),
            line: loc.line,
            column: loc.column,
            path: path.to_string(),
            message: message.into(),
        });
    }
}

/// A DNS label (RFC 1123): what Kubernetes allows for names, and what fits interface and
/// host names.
fn dns_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a valid name: use 1-63 lowercase letters, digits and `-`, starting and ending with a letter or digit"
        ))
    }
}

/// Every check of a loaded scenario, each a named function over one part of it; the names
/// each part declares (nodes, namespaces, workloads, flows) are what later checks look up.
pub fn validate(l: &Loaded) -> Vec<Diagnostic> {
    let mut c = Ctx { l, out: Vec::new() };
    check_header(&mut c);
    let nodes = check_nodes(&mut c);
    let namespaces = check_namespaces(&mut c);
    let (workloads, host_names) = check_workloads(&mut c, &nodes, &namespaces);
    check_services(&mut c, &namespaces, &workloads, host_names);
    let flows = check_flows(&mut c, &workloads);
    check_slos(&mut c, &flows);
    check_proxies(&mut c);
    check_manifests(&mut c, &namespaces);
    check_extension_providers(&mut c);
    check_migration(&mut c);
    check_faults(&mut c, &nodes);
    c.out
}

/// `faults`: each kind with the fields it needs, naming things that exist, ending within
/// the shortest step it falls in.
fn check_faults(c: &mut Ctx<'_>, nodes: &BTreeSet<&str>) {
    use crate::format::FaultKind as K;
    let l = c.l;
    let s = &l.scenario;
    let pods: BTreeSet<String> = s
        .workloads
        .iter()
        .flat_map(|w| (0..w.replicas).map(move |r| format!("{}-{r}", w.name)))
        .collect();
    let gateways: BTreeSet<String> = (0..=s.migration.as_ref().map_or(0, |m| m.stages.len()))
        .flat_map(|i| {
            l.at_stage(i.checked_sub(1))
                .objects()
                .filter_map(|o| match &o.object {
                    crate::manifest::Object::Gateway(g) => Some(g.metadata.name.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let shortest = s.flows.iter().map(|f| f.duration.0).min();
    for (i, f) in s.faults.iter().enumerate() {
        let p = format!("faults[{i}]");
        let need = |c: &mut Ctx<'_>, field: &str, given: bool| {
            if !given {
                c.err(&p, format!("a `{}` fault needs `{field}`", f.kind.as_str()));
            }
        };
        match f.kind {
            K::ZtunnelRestart | K::CpuHog | K::CpuLimit => {
                need(c, "node", f.node.is_some());
                if let Some(n) = &f.node
                    && !nodes.contains(n.as_str())
                {
                    c.err(&format!("{p}.node"), format!("node `{n}` does not exist"));
                }
            }
            K::SidecarCrash | K::PodRestart => {
                need(c, "pod", f.pod.is_some());
                if let Some(n) = &f.pod
                    && !pods.contains(n)
                {
                    c.err(
                        &format!("{p}.pod"),
                        format!("pod `{n}` does not exist (pods are named <workload>-<replica>, e.g. `{}`)", pods.iter().next().map_or("echo-0", |x| x.as_str())),
                    );
                }
            }
            K::WaypointRestart => {
                need(c, "waypoint", f.waypoint.is_some());
                if let Some(n) = &f.waypoint
                    && !gateways.contains(n)
                    && !s
                        .namespaces
                        .iter()
                        .any(|ns| *n == format!("{}-waypoint", ns.name))
                {
                    c.err(
                        &format!("{p}.waypoint"),
                        format!("no waypoint `{n}`: name a Gateway of class istio-waypoint from the manifests, or `<namespace>-waypoint` of mode ambient-waypoint"),
                    );
                }
            }
            K::IstiodUnavailable => {}
            K::LoadSurge => check_surge(c, &p, f),
            K::LinkLoss | K::LinkDelay | K::LinkBandwidth => {
                if f.nodes.len() != 2 || f.nodes[0] == f.nodes[1] {
                    c.err(
                        &p,
                        format!(
                            "a `{}` fault needs `nodes: [a, b]`, two different nodes",
                            f.kind.as_str()
                        ),
                    );
                }
                for (k, n) in f.nodes.iter().enumerate() {
                    if !nodes.contains(n.as_str()) {
                        c.err(
                            &format!("{p}.nodes[{k}]"),
                            format!("node `{n}` does not exist"),
                        );
                    }
                }
                match f.kind {
                    K::LinkDelay => {
                        need(c, "delay", f.delay.is_some());
                        if let (Some(d), Some(j)) = (f.delay, f.jitter)
                            && j.0 > d.0
                        {
                            c.err(
                                &format!("{p}.jitter"),
                                format!("jitter {j} is larger than the delay {d}: a packet cannot leave before it arrives"),
                            );
                        }
                    }
                    K::LinkBandwidth => need(c, "bandwidth", f.bandwidth.is_some()),
                    _ => {}
                }
                match f.percent {
                    None if f.kind != K::LinkLoss => {}
                    None => need(c, "percent", false),
                    Some(x) if !(0.0..=100.0).contains(&x) => c.err(
                        &format!("{p}.percent"),
                        format!("{x} is not a share in percent: give 0 to 100"),
                    ),
                    Some(_) => {}
                }
            }
        }
        if f.kind == K::CpuLimit {
            match f.cpu.as_deref().map(crate::manifest::parse_cpu) {
                None => c.err(&p, "a `cpu-limit` fault needs `cpu`, e.g. `500m`"),
                Some(Err(e)) => c.err(&format!("{p}.cpu"), e),
                Some(Ok(_)) => {}
            }
        }
        if f.new_ip && f.kind != K::PodRestart {
            c.err(
                &format!("{p}.newIp"),
                format!(
                    "`newIp` applies to a `pod-restart`, not a `{}`",
                    f.kind.as_str()
                ),
            );
        }
        if f.kind != K::LoadSurge {
            for (field, given) in [("flow", f.flow.is_some()), ("rate", f.rate.is_some())] {
                if given {
                    c.err(
                        &format!("{p}.{field}"),
                        format!(
                            "`{field}` applies to a `load-surge`, not a `{}`",
                            f.kind.as_str()
                        ),
                    );
                }
            }
        }
        if f.kind == K::CpuHog {
            match f.cores {
                None | Some(0) => c.err(&p, "a `cpu-hog` fault needs `cores` of at least 1"),
                Some(_) => {}
            }
        }
        if matches!(
            f.kind,
            K::LinkLoss
                | K::LinkDelay
                | K::LinkBandwidth
                | K::CpuHog
                | K::CpuLimit
                | K::IstiodUnavailable
                | K::LoadSurge
        ) && f.duration.is_none()
        {
            c.err(
                &p,
                format!(
                    "a `{}` fault needs `duration` (how long it lasts)",
                    f.kind.as_str()
                ),
            );
        }
        if let Some(d) = shortest
            && f.at.0 + f.length() > d
        {
            c.err(
                &format!("{p}.at"),
                format!(
                    "the fault ends {} into the step, after the shortest flow's measured window ({}): move it earlier or lengthen the flows",
                    humantime::format_duration(f.at.0 + f.length()),
                    humantime::format_duration(d)
                ),
            );
        }
    }
}

/// A `load-surge`: an open-loop flow to surge, a positive rate, and no other surge of the same
/// flow at the same time.
fn check_surge(c: &mut Ctx<'_>, p: &str, f: &crate::format::Fault) {
    use crate::format::FlowProtocol;
    let s = &c.l.scenario;
    let Some(name) = &f.flow else {
        c.err(
            p,
            "a `load-surge` fault needs `flow`, the flow whose rate it raises",
        );
        return;
    };
    match s.flows.iter().find(|x| &x.name == name) {
        None => c.err(
            &format!("{p}.flow"),
            format!(
                "no flow `{name}`; flows: {}",
                join(s.flows.iter().map(|x| x.name.as_str()))
            ),
        ),
        Some(flow) if flow.rate.steps().is_empty() || flow.rate.is_search() => c.err(
            &format!("{p}.flow"),
            format!("flow `{name}` has no fixed rate to surge from: give it a rate (requests per second)"),
        ),
        Some(flow) if flow.protocol == FlowProtocol::TcpStream => c.err(
            &format!("{p}.flow"),
            format!("flow `{name}` is a tcp-stream, which has no request rate"),
        ),
        Some(_) => {}
    }
    match f.rate {
        None => c.err(
            p,
            "a `load-surge` fault needs `rate`, requests per second during the surge",
        ),
        Some(r) if !(r.is_finite() && r > 0.0) => c.err(
            &format!("{p}.rate"),
            format!("{r} is not a positive number of requests per second"),
        ),
        Some(_) => {}
    }
    let window = |x: &crate::format::Fault| (x.at.0, x.at.0 + x.length());
    let (a, b) = window(f);
    let overlaps = s
        .faults
        .iter()
        .take_while(|x| !std::ptr::eq(*x, f))
        .filter(|x| x.kind == f.kind && x.flow == f.flow)
        .any(|x| {
            let (xa, xb) = window(x);
            xa < b && a < xb
        });
    if overlaps {
        c.err(
            &format!("{p}.at"),
            format!("flow `{name}` already surges then: give its surges one after another"),
        );
    }
}

/// `migration.stages`: unique names; relabels naming one existing namespace or workload;
/// removals of objects that exist by then; expectations naming a workload and a service port.
fn check_migration(c: &mut Ctx<'_>) {
    let l = c.l;
    let s = &l.scenario;
    let Some(m) = &s.migration else {
        return;
    };
    let namespaces = l.namespace_names();
    let mut names = BTreeSet::new();
    for (i, st) in m.stages.iter().enumerate() {
        let p = format!("migration.stages[{i}]");
        if !names.insert(st.name.as_str()) {
            c.err(
                &format!("{p}.name"),
                format!("stage `{}` is listed twice", st.name),
            );
        }
        for (k, r) in st.relabel.iter().enumerate() {
            let rp = format!("{p}.relabel[{k}]");
            match (&r.namespace, &r.workload) {
                (Some(ns), None) if !namespaces.contains(ns) => c.err(
                    &format!("{rp}.namespace"),
                    format!("namespace `{ns}` does not exist"),
                ),
                (None, Some(w)) if !s.workloads.iter().any(|x| &x.name == w) => c.err(
                    &format!("{rp}.workload"),
                    format!("workload `{w}` does not exist"),
                ),
                (Some(_), None) | (None, Some(_)) => {}
                _ => c.err(&rp, "name exactly one of `namespace` or `workload`"),
            }
        }
        for (k, r) in st.restart.iter().enumerate() {
            let ok = match r.strip_suffix("/*") {
                Some(ns) => namespaces.iter().any(|n| n == ns),
                None => s.workloads.iter().any(|w| &w.name == r),
            };
            if !ok {
                c.err(
                    &format!("{p}.restart[{k}]"),
                    format!(
                        "`{r}` is neither a workload nor `<namespace>/*` of an existing namespace"
                    ),
                );
            }
        }
        let before = l.at_stage(i.checked_sub(1));
        for (k, key) in st.remove.iter().enumerate() {
            let exists = before
                .objects()
                .chain(
                    l.stage_manifests
                        .get(i)
                        .into_iter()
                        .flatten()
                        .flat_map(|m| m.objects.iter()),
                )
                .any(|o| crate::loaded::object_key(&o.object) == *key);
            if !exists {
                c.err(
                    &format!("{p}.remove[{k}]"),
                    format!(
                        "no object `{key}` exists at this stage; write it as Kind/namespace/name"
                    ),
                );
            }
        }
        for (k, e) in st.expect.iter().enumerate() {
            let ep = format!("{p}.expect[{k}]");
            if !s.workloads.iter().any(|w| w.name == e.from) {
                c.err(
                    &format!("{ep}.from"),
                    format!("workload `{}` does not exist", e.from),
                );
            }
            let known = s.services.iter().any(|svc| {
                svc.ports
                    .iter()
                    .any(|port| format!("{}.{}:{}", svc.name, svc.namespace, port.port) == e.to)
            });
            if !known {
                c.err(
                    &format!("{ep}.to"),
                    format!(
                        "`{}` is not a service port; write it as service.namespace:port",
                        e.to
                    ),
                );
            }
        }
    }
}

const MAX_WORKLOAD_CERT_TTL: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

/// `meshConfig.workloadCertTtl` within istiod's bounds; `meshConfig.extensionProviders`: each names a service of the scenario, once; each CUSTOM
/// policy names one of them.
fn check_extension_providers(c: &mut Ctx<'_>) {
    let l = c.l;
    let s = &l.scenario;
    let mut names = BTreeSet::new();
    if let Some(ttl) = s.mesh_config.workload_cert_ttl {
        // istiod refuses a TTL over its max-workload-cert-ttl (90 days by default); below 2 s
        // the half-life renewals would outpace the CA's own signing.
        if ttl.0 < std::time::Duration::from_secs(2) || ttl.0 > MAX_WORKLOAD_CERT_TTL {
            c.err(
                "meshConfig.workloadCertTtl",
                format!("{ttl} is outside 2s..90d (istiod accepts at most 90 days); pick a TTL in that range"),
            );
        }
    }
    for (i, p) in s.mesh_config.extension_providers.iter().enumerate() {
        let path = format!("meshConfig.extensionProviders[{i}]");
        if !names.insert(p.name.as_str()) {
            c.err(
                &format!("{path}.name"),
                format!("provider `{}` is defined twice", p.name),
            );
        }
        let h = &p.envoy_ext_authz_http;
        let field = format!("{path}.envoyExtAuthzHttp.service");
        match h.service_ref() {
            None => c.err(&field, format!("`{}` is not a service name meshsim can resolve; write `<name>.<namespace>.svc.cluster.local`", h.service)),
            Some((ns, name)) => {
                let svc = s.services.iter().find(|x| x.name == name && x.namespace == ns);
                match svc {
                    None => c.err(&field, format!("service `{name}` does not exist in namespace `{ns}`; add it under `services:`")),
                    Some(svc) if !svc.ports.iter().any(|p| p.port == h.port) => c.err(
                        &format!("{path}.envoyExtAuthzHttp.port"),
                        format!("service `{name}.{ns}` has no port {}", h.port),
                    ),
                    Some(_) => {}
                }
            }
        }
    }
    for o in l.objects() {
        let Object::AuthorizationPolicy(p) = &o.object else {
            continue;
        };
        if p.spec.action != manifest::Action::Custom {
            continue;
        }
        let provider = serde_json::to_value(&p.spec.provider)
            .ok()
            .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(str::to_string));
        match provider {
            None => c.out.push(o.origin.at("spec.provider", "a CUSTOM policy needs `provider: {name: …}` naming one of the scenario's `meshConfig.extensionProviders`".to_string())),
            Some(n) if !names.contains(n.as_str()) => c.out.push(o.origin.at("spec.provider.name", format!("extension provider `{n}` is not defined; add it under the scenario's `meshConfig.extensionProviders` (an `envoyExtAuthzHttp` service)"))),
            Some(_) => {}
        }
    }
}

/// Version, name, profile and modes.
fn check_header(c: &mut Ctx<'_>) {
    let l = c.l;
    let s = &l.scenario;

    if s.version != crate::format::FORMAT_VERSION {
        c.err(
            "version",
            format!(
                "scenario format version {} is not supported; this meshsim reads version {}",
                s.version,
                crate::format::FORMAT_VERSION
            ),
        );
    }
    if let Err(e) = dns_label(&s.name) {
        c.err("name", e);
    } else if s.name.len() > 40 {
        c.err("name", "is longer than 40 characters; shorten it");
    }
    let base = l.path.parent().unwrap_or(std::path::Path::new("."));
    // A file of one's own shows why it did not load (its parse error, or that it is missing).
    if let Err(e) = crate::profile::Profile::load_relative(&s.profile, base) {
        c.err("profile", e.to_string());
    }
    if s.modes.is_empty() {
        c.err(
            "modes",
            "lists no mode; add at least one of no-mesh, sidecar, ambient, ambient-waypoint, declared",
        );
    }
    let mut seen_modes = BTreeSet::new();
    for (i, m) in s.modes.iter().enumerate() {
        if !seen_modes.insert(*m) {
            c.err(
                &format!("modes[{i}]"),
                format!("mode `{m}` is listed twice"),
            );
        }
    }
}

/// Node names: valid, unique, not too many. Returns them.
fn check_nodes<'a>(c: &mut Ctx<'a>) -> BTreeSet<&'a str> {
    let s = &c.l.scenario;
    if s.nodes.is_empty() {
        c.err(
            "nodes",
            "lists no node; add at least one, e.g. `- name: node-1`",
        );
    }
    if s.nodes.len() > MAX_NODES {
        c.err(
            "nodes",
            format!(
                "has {} nodes; meshsim builds at most {MAX_NODES}",
                s.nodes.len()
            ),
        );
    }
    let mut nodes = BTreeSet::new();
    for (i, n) in s.nodes.iter().enumerate() {
        if let Err(e) = dns_label(&n.name) {
            c.err(&format!("nodes[{i}].name"), e);
        }
        if !nodes.insert(n.name.as_str()) {
            c.err(
                &format!("nodes[{i}].name"),
                format!("node `{}` is listed twice", n.name),
            );
        }
    }
    nodes
}

/// Namespaces the scenario and its manifests declare (`default` always exists). Returns them.
fn check_namespaces(c: &mut Ctx<'_>) -> BTreeSet<String> {
    let l = c.l;
    let s = &l.scenario;
    let mut namespaces: BTreeSet<String> = BTreeSet::new();
    namespaces.insert("default".into());
    for (i, n) in s.namespaces.iter().enumerate() {
        if let Err(e) = dns_label(&n.name) {
            c.err(&format!("namespaces[{i}].name"), e);
        }
        if !namespaces.insert(n.name.clone()) && n.name != "default" {
            c.err(
                &format!("namespaces[{i}].name"),
                format!("namespace `{}` is listed twice", n.name),
            );
        }
    }
    for o in l.objects() {
        if let Object::Namespace(n) = &o.object {
            namespaces.insert(n.metadata.name.clone());
        }
    }
    namespaces
}

/// Workloads: names, namespaces, replicas, nodes and apps. Returns them by name, and the
/// host names their pods take.
fn check_workloads<'a>(
    c: &mut Ctx<'a>,
    nodes: &BTreeSet<&str>,
    namespaces: &BTreeSet<String>,
) -> (BTreeMap<&'a str, usize>, BTreeMap<String, String>) {
    let s = &c.l.scenario;
    let mut workloads: BTreeMap<&str, usize> = BTreeMap::new();
    let mut host_names: BTreeMap<String, String> = BTreeMap::new();
    let mut pods = 0usize;
    for (i, w) in s.workloads.iter().enumerate() {
        if workloads.insert(&w.name, i).is_some() {
            c.err(
                &format!("workloads[{i}].name"),
                format!(
                    "workload `{}` is listed twice (pod names must be unique in the cluster)",
                    w.name
                ),
            );
        }
        pods += w.replicas as usize;
        for r in 0..w.replicas.min(1000) {
            host_names.insert(
                format!("{}-{r}", w.name),
                format!("pod of workload `{}`", w.name),
            );
        }
        check_workload(c, i, w, nodes, namespaces);
    }
    if s.workloads.is_empty() {
        c.err("workloads", "lists no workload; add at least one");
    }
    if pods > MAX_PODS {
        c.err(
            "workloads",
            format!("make {pods} pods; meshsim builds at most {MAX_PODS}"),
        );
    }
    (workloads, host_names)
}

fn check_workload(
    c: &mut Ctx<'_>,
    i: usize,
    w: &crate::format::Workload,
    nodes: &BTreeSet<&str>,
    namespaces: &BTreeSet<String>,
) {
    let p = format!("workloads[{i}]");
    if let Err(e) = dns_label(&w.name) {
        c.err(&format!("{p}.name"), e);
    }
    if !namespaces.contains(&w.namespace) {
        c.err(
            &format!("{p}.namespace"),
            format!(
                "namespace `{}` does not exist; add it under `namespaces:` or in a manifest",
                w.namespace
            ),
        );
    }
    if let Err(e) = dns_label(w.service_account()) {
        c.err(&format!("{p}.serviceAccount"), e);
    }
    if w.replicas == 0 || w.replicas > 1000 {
        c.err(
            &format!("{p}.replicas"),
            format!("{} is out of range 1..1000", w.replicas),
        );
    }
    for (k, n) in w.nodes.iter().enumerate() {
        if !nodes.contains(n.as_str()) {
            c.err(
                &format!("{p}.nodes[{k}]"),
                format!(
                    "node `{n}` does not exist; the nodes are: {}",
                    join(nodes.iter())
                ),
            );
        }
    }
    if let Some(app) = &w.app {
        let (port_path, port) = match app {
            App::Http(h) => (format!("{p}.app.http.port"), h.port),
            App::TcpEcho(t) => (format!("{p}.app.tcpEcho.port"), t.port),
            App::TcpSink(t) => (format!("{p}.app.tcpSink.port"), t.port),
        };
        check_port(c, &port_path, port);
        if let App::Http(h) = app {
            if !(100..=599).contains(&h.status) {
                c.err(
                    &format!("{p}.app.http.status"),
                    format!("{} is not an HTTP status (100..599)", h.status),
                );
            }
            if h.response_bytes.0 > 64 * 1024 * 1024 {
                c.err(
                    &format!("{p}.app.http.responseBytes"),
                    "is above 64MiB; use a tcp-stream flow for bulk transfer",
                );
            }
            if h.service_time.0 > std::time::Duration::from_secs(60) {
                c.err(&format!("{p}.app.http.serviceTime"), "is above 60s");
            }
        }
    }
}

/// Services: names, namespaces, their workload, ports against the workload's app.
fn check_services(
    c: &mut Ctx<'_>,
    namespaces: &BTreeSet<String>,
    workloads: &BTreeMap<&str, usize>,
    mut host_names: BTreeMap<String, String>,
) {
    let s = &c.l.scenario;
    let mut services: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, svc) in s.services.iter().enumerate() {
        check_service(
            c,
            i,
            svc,
            namespaces,
            workloads,
            &mut host_names,
            &mut services,
        );
    }
}

fn check_service(
    c: &mut Ctx<'_>,
    i: usize,
    svc: &crate::format::Service,
    namespaces: &BTreeSet<String>,
    workloads: &BTreeMap<&str, usize>,
    host_names: &mut BTreeMap<String, String>,
    services: &mut BTreeMap<(String, String), usize>,
) {
    let s = &c.l.scenario;
    let p = format!("services[{i}]");
    if let Err(e) = dns_label(&svc.name) {
        c.err(&format!("{p}.name"), e);
    }
    if services
        .insert((svc.name.clone(), svc.namespace.clone()), i)
        .is_some()
    {
        c.err(
            &format!("{p}.name"),
            format!("service `{}.{}` is listed twice", svc.name, svc.namespace),
        );
    }
    if let Some(other) = host_names.get(&svc.name) {
        c.err(
            &format!("{p}.name"),
            format!(
                "`{}` is already the name of a {other}; names resolve in one hosts file",
                svc.name
            ),
        );
    }
    host_names.insert(svc.name.clone(), "service".into());
    if !namespaces.contains(&svc.namespace) {
        c.err(
            &format!("{p}.namespace"),
            format!(
                "namespace `{}` does not exist; add it under `namespaces:`",
                svc.namespace
            ),
        );
    }
    let w = workloads
        .get(svc.workload.as_str())
        .map(|&k| &s.workloads[k]);
    match w {
        None => c.err(
            &format!("{p}.workload"),
            format!(
                "workload `{}` does not exist; the workloads are: {}",
                svc.workload,
                join(workloads.keys())
            ),
        ),
        Some(w) if w.namespace != svc.namespace => c.err(
            &format!("{p}.workload"),
            format!(
                "workload `{}` is in namespace `{}`, not the service's `{}`",
                w.name, w.namespace, svc.namespace
            ),
        ),
        _ => {}
    }
    if svc.ports.is_empty() {
        c.err(
            &format!("{p}.ports"),
            "lists no port; add one, e.g. `- port: 8080`",
        );
    }
    let mut ports = BTreeSet::new();
    for (k, sp) in svc.ports.iter().enumerate() {
        let pp = format!("{p}.ports[{k}]");
        check_port(c, &format!("{pp}.port"), sp.port);
        if !ports.insert(sp.port) {
            c.err(
                &format!("{pp}.port"),
                format!("port {} is listed twice", sp.port),
            );
        }
        let target = sp.target_port.unwrap_or(sp.port);
        if let Some(w) = w {
            match &w.app {
                None => c.err(
                    &format!("{pp}.targetPort"),
                    format!(
                        "workload `{}` has no app listening; give it an `app:`",
                        w.name
                    ),
                ),
                Some(app) if app.port() != target => c.err(
                    &format!(
                        "{pp}{}",
                        if sp.target_port.is_some() {
                            ".targetPort"
                        } else {
                            ".port"
                        }
                    ),
                    format!(
                        "workload `{}` listens on port {}, not {target}; set `targetPort: {}`",
                        w.name,
                        app.port(),
                        app.port()
                    ),
                ),
                Some(app) => {
                    if sp.protocol == Some(PortProtocol::Http) && !matches!(app, App::Http(_)) {
                        c.err(
                            &format!("{pp}.protocol"),
                            format!(
                                "workload `{}` does not serve HTTP; use `protocol: tcp`",
                                w.name
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// Flows: names, source workload, target service and port, protocol against the app, rates
/// and sizes. Returns their names.
fn check_flows<'a>(c: &mut Ctx<'a>, workloads: &BTreeMap<&str, usize>) -> BTreeSet<&'a str> {
    let s = &c.l.scenario;
    let mut flows = BTreeSet::new();
    for (i, f) in s.flows.iter().enumerate() {
        if !flows.insert(f.name.as_str()) {
            c.err(
                &format!("flows[{i}].name"),
                format!("flow `{}` is listed twice", f.name),
            );
        }
        check_flow(c, i, f, workloads);
    }

    flows
}

fn check_flow(
    c: &mut Ctx<'_>,
    i: usize,
    f: &crate::format::Flow,
    workloads: &BTreeMap<&str, usize>,
) {
    let p = format!("flows[{i}]");
    if let Err(e) = dns_label(&f.name) {
        c.err(&format!("{p}.name"), e);
    }
    if !workloads.contains_key(f.from.as_str()) {
        c.err(
            &format!("{p}.from"),
            format!(
                "workload `{}` does not exist; the workloads are: {}",
                f.from,
                join(workloads.keys())
            ),
        );
    }
    let target_app = flow_target(c, &p, f, workloads);
    if let Some(app) = target_app {
        let fits = matches!(
            (f.protocol, app),
            (FlowProtocol::Http1, App::Http(_))
                | (FlowProtocol::TcpRr, App::TcpEcho(_))
                | (FlowProtocol::TcpStream, App::TcpSink(_) | App::TcpEcho(_))
        );
        if !fits {
            let want = match f.protocol {
                FlowProtocol::Http1 => "an `http` app",
                FlowProtocol::TcpRr => "a `tcpEcho` app",
                FlowProtocol::TcpStream => "a `tcpSink` or `tcpEcho` app",
            };
            c.err(
                &format!("{p}.protocol"),
                format!(
                    "`{}` needs {want} behind `{}`",
                    protocol_name(f.protocol),
                    f.to
                ),
            );
        }
    }
    check_flow_shape(c, &p, f);
}

/// The app behind a flow's `to`, when the service and port exist (each missing one is a
/// problem at `to`).
fn flow_target<'a>(
    c: &mut Ctx<'a>,
    p: &str,
    f: &crate::format::Flow,
    workloads: &BTreeMap<&str, usize>,
) -> Option<&'a App> {
    let s = &c.l.scenario;
    match f.target() {
        None => {
            c.err(
                &format!("{p}.to"),
                format!(
                    "`{}` is not `service:port` (or `service.namespace:port`)",
                    f.to
                ),
            );
            None
        }
        Some((svc, ns, port)) => {
            let found = s
                .services
                .iter()
                .find(|x| x.name == svc && ns.is_none_or(|n| n == x.namespace));
            match found {
                None => {
                    c.err(
                        &format!("{p}.to"),
                        format!(
                            "service `{svc}` does not exist; the services are: {}",
                            join(s.services.iter().map(|x| &x.name))
                        ),
                    );
                    None
                }
                Some(x) => match x.ports.iter().find(|sp| sp.port == port) {
                    None => {
                        c.err(
                            &format!("{p}.to"),
                            format!(
                                "service `{svc}` has no port {port}; it has {}",
                                join(x.ports.iter().map(|sp| sp.port))
                            ),
                        );
                        None
                    }
                    Some(_) => workloads
                        .get(x.workload.as_str())
                        .and_then(|&k| s.workloads[k].app.as_ref()),
                },
            }
        }
    }
}

/// A flow's rate, connections, sizes, duration, path, method and headers.
fn check_flow_shape(c: &mut Ctx<'_>, p: &str, f: &crate::format::Flow) {
    match &f.rate {
        Rate::Fixed(r) if !(*r > 0.0 && *r <= 1_000_000.0) => c.err(
            &format!("{p}.rate"),
            format!("{r} is out of range (0, 1000000] requests/s"),
        ),
        Rate::Steps(v) if v.is_empty() => c.err(&format!("{p}.rate"), "lists no rate step"),
        Rate::Search { start } if !(*start >= 1.0 && *start <= 1_000_000.0) => c.err(
            &format!("{p}.rate"),
            format!("a search from {start} is out of range [1, 1000000] requests/s"),
        ),
        Rate::Search { .. } if c.l.scenario.migration.is_some() || !c.l.scenario.faults.is_empty() => c.err(
            &format!("{p}.rate"),
            "`search` runs as many steps as it needs, and faults and migration stages are placed on fixed steps; give this flow fixed rates, or search in a scenario without them",
        ),
        Rate::Steps(v) => {
            for (k, r) in v.iter().enumerate() {
                if !(*r > 0.0 && *r <= 1_000_000.0) {
                    c.err(
                        &format!("{p}.rate[{k}]"),
                        format!("{r} is out of range (0, 1000000] requests/s"),
                    );
                }
            }
        }
        _ => {}
    }
    if f.protocol == FlowProtocol::TcpStream && !matches!(f.rate, Rate::Max) {
        c.err(
            &format!("{p}.rate"),
            "a tcp-stream flow sends as fast as it can; set `rate: max`",
        );
    }
    if f.connections == 0 || f.connections > 10_000 {
        c.err(
            &format!("{p}.connections"),
            format!("{} is out of range 1..10000", f.connections),
        );
    }
    if !f.reuse && f.protocol != FlowProtocol::Http1 {
        c.err(
            &format!("{p}.reuse"),
            "`reuse: false` (a connection per request) is for http1 flows",
        );
    }
    if f.protocol == FlowProtocol::TcpRr && f.request_bytes() == 0 {
        c.err(
            &format!("{p}.requestBytes"),
            "a tcp-rr message must be at least 1 byte",
        );
    }
    if f.protocol == FlowProtocol::TcpRr
        && let Some(r) = f.response_bytes
        && r.0 != f.request_bytes()
    {
        c.err(&format!("{p}.responseBytes"), "a tcp echo answers with as many bytes as it gets; leave responseBytes out or make it equal requestBytes");
    }
    if f.duration.0.is_zero() {
        c.err(&format!("{p}.duration"), "must be above 0s");
    }
    if !f.path.starts_with('/') {
        c.err(
            &format!("{p}.path"),
            format!("`{}` must start with `/`", f.path),
        );
    }
    if http::Method::from_bytes(f.method.as_bytes()).is_err() {
        c.err(
            &format!("{p}.method"),
            format!("`{}` is not an HTTP method", f.method),
        );
    }
    for k in f.headers.keys() {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            c.err(
                &format!("{p}.headers[{k:?}]"),
                format!("`{k}` is not a valid header name"),
            );
        }
    }
}

/// SLOs: their flow, modes and objectives.
fn check_slos(c: &mut Ctx<'_>, flows: &BTreeSet<&str>) {
    let s = &c.l.scenario;
    for (i, slo) in s.slos.iter().enumerate() {
        let p = format!("slos[{i}]");
        if !flows.contains(slo.flow.as_str()) {
            c.err(
                &format!("{p}.flow"),
                format!(
                    "flow `{}` does not exist; the flows are: {}",
                    slo.flow,
                    join(flows.iter())
                ),
            );
        }
        for (k, m) in slo.modes.iter().enumerate() {
            if !s.modes.contains(m) {
                c.err(
                    &format!("{p}.modes[{k}]"),
                    format!("mode `{m}` is not among the scenario's modes"),
                );
            }
        }
        let any = slo.p50.is_some()
            || slo.p90.is_some()
            || slo.p99.is_some()
            || slo.p999.is_some()
            || slo.added_p99.is_some()
            || slo.max_error_rate.is_some()
            || slo.min_achieved_rate.is_some();
        if !any {
            c.err(&p, "sets no objective; add p50, p90, p99, p999, addedP99, maxErrorRate or minAchievedRate");
        }
        if slo.added_p99.is_some() && !s.modes.contains(&Mode::NoMesh) {
            c.err(
                &format!("{p}.addedP99"),
                "needs `no-mesh` among the modes to compare with",
            );
        }
    }
}

/// Proxy settings: concurrency and CPU limits.
fn check_proxies(c: &mut Ctx<'_>) {
    let s = &c.l.scenario;
    for (kind, ps) in [
        ("sidecar", &s.proxies.sidecar),
        ("ztunnel", &s.proxies.ztunnel),
        ("waypoint", &s.proxies.waypoint),
    ] {
        if let Some(n) = ps.concurrency
            && !(1..=64).contains(&n)
        {
            c.err(
                &format!("proxies.{kind}.concurrency"),
                format!("{n} is out of range 1..64"),
            );
        }
        if let Some(cpu) = &ps.cpu_limit
            && let Err(e) = manifest::parse_cpu(cpu)
        {
            c.err(&format!("proxies.{kind}.cpuLimit"), e);
        }
    }
}

/// Manifests: references to the scenario (namespaces, services, service accounts, JWKS) and
/// to each other (waypoints).
fn check_manifests(c: &mut Ctx<'_>, namespaces: &BTreeSet<String>) {
    let l = c.l;
    let s = &l.scenario;
    // Waypoints a migration stage deploys count too: a label may point at one that comes later.
    let gateways: BTreeSet<(String, String)> = l
        .objects()
        .chain(
            l.stage_manifests
                .iter()
                .flatten()
                .flat_map(|m| m.objects.iter()),
        )
        .filter_map(|o| match &o.object {
            Object::Gateway(g) if g.spec.gateway_class_name == WAYPOINT_CLASS => {
                Some((g.metadata.name.clone(), g.metadata.ns().to_string()))
            }
            _ => None,
        })
        .collect();
    // `istio.io/use-waypoint` names a Gateway in the object's own namespace, or in the one
    // `istio.io/use-waypoint-namespace` names beside it.
    let mut check_use = |labels: &BTreeMap<String, String>, own_ns: &str, path: String| {
        let Some(wp) = labels.get(USE_WAYPOINT).filter(|wp| *wp != "none") else {
            return;
        };
        let (wns, field) = match labels.get(USE_WAYPOINT_NAMESPACE) {
            Some(n) => (n.as_str(), USE_WAYPOINT_NAMESPACE),
            None => (own_ns, USE_WAYPOINT),
        };
        if !gateways.contains(&(wp.clone(), wns.to_string())) {
            c.err(&format!("{path}.labels[{field:?}]"), format!("waypoint `{wp}` is not declared in namespace `{wns}`; add a Gateway of class istio-waypoint to a manifest"));
        }
    };
    for (i, n) in s.namespaces.iter().enumerate() {
        check_use(&n.labels, &n.name, format!("namespaces[{i}]"));
    }
    for (i, svc) in s.services.iter().enumerate() {
        check_use(&svc.labels, &svc.namespace, format!("services[{i}]"));
    }
    for (i, w) in s.workloads.iter().enumerate() {
        check_use(&w.labels, &w.namespace, format!("workloads[{i}]"));
    }
    let sa_exists = |ns: &str, sa: &str| {
        s.workloads
            .iter()
            .any(|w| w.namespace == ns && w.service_account() == sa)
    };
    let service_exists = |ns: &str, name: &str| {
        s.services
            .iter()
            .any(|x| x.namespace == ns && x.name == name)
    };
    let check_refs = |out: &mut Vec<Diagnostic>,
                      o: &manifest::Origin,
                      ns: &str,
                      base: &str,
                      refs: &[TargetRef]| {
        for (k, t) in refs.iter().enumerate() {
            let tns = t.namespace.as_deref().unwrap_or(ns);
            let missing = match t.kind.as_str() {
                "Service" => !service_exists(tns, &t.name),
                "Gateway" => !gateways.contains(&(t.name.clone(), tns.to_string())),
                _ => false,
            };
            if missing {
                out.push(o.at(
                    &format!("{base}[{k}].name"),
                    format!(
                        "{} `{}` does not exist in namespace `{tns}`",
                        t.kind, t.name
                    ),
                ));
            }
        }
    };
    for o in l.objects() {
        let ns = o.object.meta().ns().to_string();
        let known_ns = namespaces.contains(&ns) || ns == ROOT_NAMESPACE;
        if !known_ns && !matches!(o.object, Object::Namespace(_)) {
            c.out.push(o.origin.at("metadata.namespace", format!("namespace `{ns}` does not exist; declare it under `namespaces:` or with a Namespace object")));
        }
        match &o.object {
            Object::Namespace(n) => {
                if let Err(e) = dns_label(&n.metadata.name) {
                    c.out.push(o.origin.at("metadata.name", e));
                }
                if let Some(wp) = n.metadata.labels.get(USE_WAYPOINT)
                    && wp != "none"
                    && !gateways.contains(&(wp.clone(), n.metadata.name.clone()))
                {
                    c.out.push(o.origin.at(
                        &format!("metadata.labels[{USE_WAYPOINT:?}]"),
                        format!(
                            "waypoint `{wp}` is not declared in namespace `{}`",
                            n.metadata.name
                        ),
                    ));
                }
            }
            Object::Gateway(g) => {
                if let Some(sa) = g.metadata.annotations.get(manifest::FOR_SERVICE_ACCOUNT)
                    && !sa_exists(&ns, sa)
                {
                    c.out.push(o.origin.at(
                        &format!("metadata.annotations[{:?}]", manifest::FOR_SERVICE_ACCOUNT),
                        format!("no workload in namespace `{ns}` runs as service account `{sa}`"),
                    ));
                }
            }
            Object::AuthorizationPolicy(p) => {
                let mut refs = p.spec.target_refs.clone();
                refs.extend(p.spec.target_ref.clone());
                let base = if p.spec.target_ref.is_some() && p.spec.target_refs.is_empty() {
                    "spec.targetRef"
                } else {
                    "spec.targetRefs"
                };
                check_refs(&mut c.out, &o.origin, &ns, base, &refs);
            }
            Object::RequestAuthentication(ra) => {
                let mut refs = ra.spec.target_refs.clone();
                refs.extend(ra.spec.target_ref.clone());
                check_refs(&mut c.out, &o.origin, &ns, "spec.targetRefs", &refs);
                for (k, rule) in ra.spec.jwt_rules.iter().enumerate() {
                    if let Some(uri) = &rule.jwks_uri
                        && !l.jwks.contains_key(uri)
                        && !s.jwks.contains_key(uri)
                    {
                        c.out.push(o.origin.at(
                            &format!("spec.jwtRules[{k}].jwksUri"),
                            format!("meshsim has no network: map `{uri}` to a local file in the scenario's `jwks:`"),
                        ));
                    }
                    if let Some(inline) = &rule.jwks
                        && let Err(e) = crate::jwt::Jwks::parse(inline)
                    {
                        c.out.push(
                            o.origin
                                .at(&format!("spec.jwtRules[{k}].jwks"), e.to_string()),
                        );
                    }
                }
            }
            Object::PeerAuthentication(_)
            | Object::NetworkPolicy(_)
            | Object::CiliumNetworkPolicy(_)
            | Object::DestinationRule(_) => {}
        }
    }
}

fn check_port(c: &mut Ctx<'_>, path: &str, port: u16) {
    if port == 0 {
        c.err(path, "0 is not a port; use 1..65535");
    } else if RESERVED_PORTS.contains(&port) {
        c.err(
            path,
            format!(
                "port {port} is reserved for the mesh proxies ({})",
                join(RESERVED_PORTS.iter())
            ),
        );
    }
}

fn protocol_name(p: FlowProtocol) -> &'static str {
    match p {
        FlowProtocol::Http1 => "http1",
        FlowProtocol::TcpRr => "tcp-rr",
        FlowProtocol::TcpStream => "tcp-stream",
    }
}

fn join<T: std::fmt::Display>(it: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = it.into_iter().map(|x| x.to_string()).collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}
