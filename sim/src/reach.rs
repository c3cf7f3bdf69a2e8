//! `meshsim reach`: the reachability matrix of a running cluster, and what changes between two
//! modes (e.g. today's sidecars and tomorrow's ambient). Every probe is sent for real from its
//! source pod's namespace — through the capture, the proxies and their policies — and its
//! outcome is recorded with the decision that produced it (the proxies' decision log).
//!
//! The probe set: every source workload to every service port (`GET /`, or a TCP echo), each
//! flow's own request, and the methods and paths that the policies' rules name (exact ones;
//! wildcards and templates are left to the flows).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::Cluster;
use crate::component::{Component, ComponentKind};
use crate::mesh::decisions::Record;
use scenario::Loaded;
use scenario::format::{App, PortProtocol};
use scenario::manifest::Object;

/// How long a probe may take before it counts as a timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// One request from one pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Probe {
    pub from: String,
    /// `name.namespace:port`.
    pub to: String,
    /// `GET /path`, or `tcp` for a TCP echo.
    pub request: String,
    #[serde(skip)]
    pub headers: Vec<(String, String)>,
    /// Why it is in the set: `service port`, `flow <name>`, `policy <ns/name>`.
    pub why: String,
}

/// What the client saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "status")]
pub enum Outcome {
    /// An answer from the app (any status it sent).
    Allowed(u16),
    /// 403 from a proxy's policy.
    Denied,
    /// 401 from jwt_authn.
    Unauthorized,
    /// 503: the proxy could not reach the destination (e.g. a ztunnel refused the waypoint).
    Unavailable,
    /// Reset or closed with no answer.
    Reset,
    Timeout,
}

impl Outcome {
    pub fn allowed(self) -> bool {
        matches!(self, Outcome::Allowed(_))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Allowed(s) => write!(f, "allowed ({s})"),
            Outcome::Denied => f.write_str("denied 403"),
            Outcome::Unauthorized => f.write_str("401"),
            Outcome::Unavailable => f.write_str("503"),
            Outcome::Reset => f.write_str("reset"),
            Outcome::Timeout => f.write_str("timeout"),
        }
    }
}

/// One probe's result.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub probe: Probe,
    /// The source pod's data plane.
    pub from_dataplane: Option<scenario::DataPlane>,
    pub outcome: Outcome,
    /// The decision that refused it (the first refusing one), or the last that allowed it.
    pub decided_by: Option<Record>,
}

/// A service port a probe can target.
struct Target {
    name: String,
    ns: String,
    port: u16,
    http: bool,
    workload: String,
}

fn targets(l: &Loaded) -> Vec<Target> {
    let mut out = Vec::new();
    for s in &l.scenario.services {
        let app = l
            .scenario
            .workloads
            .iter()
            .find(|w| w.name == s.workload && w.namespace == s.namespace)
            .and_then(|w| w.app.as_ref());
        for p in &s.ports {
            let http = match p.protocol {
                Some(PortProtocol::Http) => true,
                Some(PortProtocol::Tcp) => false,
                None => matches!(app, Some(App::Http(_))),
            };
            out.push(Target {
                name: s.name.clone(),
                ns: s.namespace.clone(),
                port: p.port,
                http,
                workload: s.workload.clone(),
            });
        }
    }
    out
}

/// Exact methods and paths a policy's rules name, with the service workloads they can reach.
fn policy_requests(l: &Loaded) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for o in l.objects() {
        let Object::AuthorizationPolicy(p) = &o.object else {
            continue;
        };
        let name = format!("{}/{}", p.metadata.ns(), p.metadata.name);
        for r in p.spec.rules.iter().flatten() {
            for t in &r.to {
                let op = &t.operation;
                let methods: Vec<&str> = if op.methods.is_empty() {
                    vec!["GET"]
                } else {
                    op.methods.iter().map(String::as_str).collect()
                };
                let exact = |p: &&String| !p.contains('*') && !p.contains('{');
                let paths: Vec<&String> = op.paths.iter().filter(exact).collect();
                for m in &methods {
                    for path in &paths {
                        out.push((name.clone(), m.to_string(), path.to_string()));
                    }
                    if paths.is_empty() && !op.methods.is_empty() {
                        out.push((name.clone(), m.to_string(), "/".to_string()));
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The probe set of a scenario: every client pod (replica 0 of each workload) to every
/// service port, each flow's request, and the policies' exact requests to every HTTP port.
pub fn probes(l: &Loaded) -> Vec<Probe> {
    let targets = targets(l);
    let policy = policy_requests(l);
    let mut out = Vec::new();
    for w in &l.scenario.workloads {
        let from = format!("{}-0", w.name);
        for t in &targets {
            let to = format!("{}.{}:{}", t.name, t.ns, t.port);
            if t.workload == w.name && t.ns == w.namespace {
                continue;
            }
            let request = if t.http {
                "GET /".to_string()
            } else {
                "tcp".into()
            };
            out.push(probe(&from, &to, &request, Vec::new(), "service port"));
            if t.http {
                for (name, m, path) in &policy {
                    let req = format!("{m} {path}");
                    out.push(probe(
                        &from,
                        &to,
                        &req,
                        Vec::new(),
                        &format!("policy {name}"),
                    ));
                }
            }
        }
    }
    for f in &l.scenario.flows {
        let Some(t) = targets.iter().find(|t| {
            let (host, port) = f.to.rsplit_once(':').unwrap_or((&f.to, "80"));
            let mut h = host.split('.');
            let name = h.next().unwrap_or_default();
            let ns = h.next();
            t.name == name && ns.is_none_or(|n| n == t.ns) && port.parse() == Ok(t.port)
        }) else {
            continue;
        };
        if !t.http {
            continue;
        }
        let to = format!("{}.{}:{}", t.name, t.ns, t.port);
        let req = format!("{} {}", f.method, f.path);
        let headers = f
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.push(probe(
            &format!("{}-0", f.from),
            &to,
            &req,
            headers,
            &format!("flow {}", f.name),
        ));
    }
    // One probe per (from, to, request): the first reason it was wanted.
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|p| seen.insert((p.from.clone(), p.to.clone(), p.request.clone())));
    out
}

fn probe(from: &str, to: &str, request: &str, headers: Vec<(String, String)>, why: &str) -> Probe {
    Probe {
        from: from.into(),
        to: to.into(),
        request: request.into(),
        headers,
        why: why.into(),
    }
}

/// Sends every probe for real in a running cluster (in the order given, one at a time, so each
/// decision is the probe's own).
pub fn run(cluster: &Cluster, probes: &[Probe]) -> Vec<Cell> {
    if let Some(plan) = &cluster.mesh {
        plan.decisions.enable();
        plan.decisions.take();
    }
    let vips: BTreeMap<String, SocketAddr> = cluster
        .info
        .services
        .iter()
        .flat_map(|s| {
            s.ports.iter().map(move |p| {
                (
                    format!("{}.{}:{p}", s.name, s.namespace),
                    SocketAddr::from((s.vip, *p)),
                )
            })
        })
        .collect();
    let nodes = cluster.node_netns();
    // NetworkPolicy's drop counters, when any pod is isolated: what the CNI dropped.
    let mut counters = (!cluster.netpol.guards.is_empty())
        .then(|| crate::netpol::drops(&nodes, &cluster.netpol).ok())
        .flatten();
    let mut by_source: BTreeMap<&str, Vec<&Probe>> = BTreeMap::new();
    for p in probes {
        by_source.entry(p.from.as_str()).or_default().push(p);
    }
    let mut out = Vec::new();
    // L4 decisions are taken when a connection opens: a probe on a pooled connection inherits
    // the decision its connection got.
    let mut last: BTreeMap<(String, String), Record> = BTreeMap::new();
    for (from, list) in by_source {
        let Some(ns) = cluster.pod_netns(from) else {
            continue;
        };
        let c = Component::new(format!("reach-{from}"), ComponentKind::LoadClient, ns);
        let Ok(rt) = c.start_runtime(1, None) else {
            continue;
        };
        for p in list {
            let Some(&addr) = vips.get(&p.to) else {
                continue;
            };
            let owned = p.clone();
            let outcome = rt.run(async move { send(addr, &owned).await });
            let decisions = cluster
                .mesh
                .as_ref()
                .map(|m| m.decisions.take())
                .unwrap_or_default();
            // A dropped packet looks like a silent peer: the client, or the proxy before it,
            // times out, and no proxy refused. Only then are the CNI's counters read, against
            // the last reading.
            let silent = matches!(outcome, Outcome::Timeout | Outcome::Unavailable)
                && decisions.iter().all(|d| d.allowed);
            let dropped = match &mut counters {
                Some(last) if silent => match crate::netpol::drops(&nodes, &cluster.netpol) {
                    Ok(now) => {
                        let d = crate::netpol::dropped(&cluster.netpol, last, &now);
                        *last = now;
                        d
                    }
                    Err(_) => Vec::new(),
                },
                _ => Vec::new(),
            };
            let pair = (p.from.clone(), p.to.clone());
            let decided_by = match dropped
                .first()
                .or(decisions.iter().find(|d| !d.allowed))
                .or(decisions.last())
            {
                Some(d) => {
                    if d.request.is_none() {
                        last.insert(pair, d.clone());
                    }
                    Some(d.clone())
                }
                None => last.get(&pair).map(|d| Record {
                    by: format!("{} (when its connection opened)", d.by),
                    ..d.clone()
                }),
            };
            out.push(Cell {
                probe: p.clone(),
                from_dataplane: cluster
                    .info
                    .pods
                    .iter()
                    .find(|x| x.name == p.from)
                    .and_then(|x| x.enrollment.as_ref())
                    .map(|e| e.dataplane),
                outcome,
                decided_by,
            });
        }
    }
    out
}

pub(crate) async fn send(addr: SocketAddr, p: &Probe) -> Outcome {
    match tokio::time::timeout(PROBE_TIMEOUT, send_inner(addr, p)).await {
        Ok(o) => o,
        Err(_) => Outcome::Timeout,
    }
}

async fn send_inner(addr: SocketAddr, p: &Probe) -> Outcome {
    let Ok(mut tcp) = tokio::net::TcpStream::connect(addr).await else {
        return Outcome::Reset;
    };
    if p.request == "tcp" {
        if tcp.write_all(b"ping").await.is_err() {
            return Outcome::Reset;
        }
        let mut buf = [0u8; 4];
        return match tcp.read_exact(&mut buf).await {
            Ok(_) if &buf == b"ping" => Outcome::Allowed(0),
            _ => Outcome::Reset,
        };
    }
    let (method, path) = p.request.split_once(' ').unwrap_or(("GET", "/"));
    let Ok((mut send, conn)) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tcp)).await
    else {
        return Outcome::Reset;
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let host = p.to.rsplit_once(':').map_or(p.to.as_str(), |(h, _)| h);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (k, v) in &p.headers {
        req = req.header(k, v);
    }
    let Ok(req) = req.body(Empty::new()) else {
        return Outcome::Reset;
    };
    match send.send_request(req).await {
        Err(_) => Outcome::Reset,
        Ok(r) => match r.status().as_u16() {
            403 => Outcome::Denied,
            401 => Outcome::Unauthorized,
            503 => Outcome::Unavailable,
            s => Outcome::Allowed(s),
        },
    }
}

/// A probe whose outcome changed between two matrices.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub probe: Probe,
    pub before: Outcome,
    pub after: Outcome,
    /// The decision after the change (what now refuses, or now allows).
    pub decided_by: Option<Record>,
}

/// What changed from `before` to `after`: breaks (allowed, now refused) and openings
/// (refused, now allowed — a security regression).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Diff {
    pub breaks: Vec<Change>,
    pub openings: Vec<Change>,
}

pub fn diff(before: &[Cell], after: &[Cell]) -> Diff {
    let key = |c: &Cell| {
        (
            c.probe.from.clone(),
            c.probe.to.clone(),
            c.probe.request.clone(),
        )
    };
    let old: BTreeMap<_, &Cell> = before.iter().map(|c| (key(c), c)).collect();
    let mut d = Diff::default();
    for c in after {
        let Some(b) = old.get(&key(c)) else {
            continue;
        };
        let change = Change {
            probe: c.probe.clone(),
            before: b.outcome,
            after: c.outcome,
            decided_by: c.decided_by.clone(),
        };
        match (b.outcome.allowed(), c.outcome.allowed()) {
            (true, false) => d.breaks.push(change),
            (false, true) => d.openings.push(change),
            _ => {}
        }
    }
    d
}

/// What a column's probes say about mutual TLS: connections a meshed destination accepted in
/// plaintext from a meshed source (each should have been mTLS), and plaintext from outside the
/// mesh, accepted (PERMISSIVE) or refused (STRICT). Read from what the destination proxy saw
/// on the wire (Istio's `connection_security_policy`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MtlsReport {
    pub meshed_plaintext: Vec<Probe>,
    pub outside_accepted: Vec<Probe>,
    pub outside_refused_strict: Vec<Probe>,
}

pub fn mtls(cells: &[Cell]) -> MtlsReport {
    let mut r = MtlsReport::default();
    for c in cells {
        let Some(d) = &c.decided_by else {
            continue;
        };
        let meshed_src = c
            .from_dataplane
            .is_some_and(|p| p != scenario::DataPlane::None);
        if d.by.starts_with("PeerAuthentication STRICT") {
            r.outside_refused_strict.push(c.probe.clone());
        } else if c.outcome.allowed() && !d.mtls && meshed_src {
            r.meshed_plaintext.push(c.probe.clone());
        } else if c.outcome.allowed() && !d.mtls {
            r.outside_accepted.push(c.probe.clone());
        }
    }
    r
}

/// One column of a matrix: a mode, or the scenario after a migration stage.
#[derive(Debug, Clone)]
pub struct Column {
    /// The mode's name, `before`, or the stage's name.
    pub label: String,
    pub loaded: Loaded,
    pub mode: scenario::Mode,
    /// The changes the stage expects to make.
    pub expect: Vec<scenario::ExpectedChange>,
}

/// The columns of a migration: the scenario as written (`before`), then after each stage,
/// all in mode declared, each with the changes its stage expects.
pub fn stage_columns(l: &Loaded) -> Vec<Column> {
    let stages = l
        .scenario
        .migration
        .as_ref()
        .map(|m| m.stages.clone())
        .unwrap_or_default();
    let column = |label: &str, at: Option<usize>, expect: Vec<_>| Column {
        label: label.to_string(),
        loaded: l.at_stage(at),
        mode: scenario::Mode::Declared,
        expect,
    };
    let mut out = vec![column("before", None, Vec::new())];
    for (i, st) in stages.iter().enumerate() {
        out.push(column(&st.name, Some(i), st.expect.clone()));
    }
    out
}

/// A column probed: its cells, how long each part took, and what its Prometheus said.
pub struct Probed {
    pub label: String,
    pub cells: Vec<Cell>,
    pub up: Duration,
    pub probing: Duration,
    pub down: Duration,
    pub monitoring: Option<crate::monitor::StageEval>,
}

/// Probes every column on a cluster of its own, with one probe set for all (so each probe
/// compares with itself), calling `each` as a column is done. With `queries`, a fresh
/// Prometheus scrapes each column's cluster and evaluates them after its probes; without the
/// `prometheus` program the check is skipped, and the result says how to install it.
pub fn probe_columns(
    columns: &[Column],
    queries: &[scenario::monitoring::Query],
    profile: &scenario::profile::Profile,
    sandbox: crate::sandbox::Sandbox,
    mut each: impl FnMut(&Probed),
) -> Result<(Vec<Probed>, Option<results::run::MonitoringResult>), crate::cluster::ClusterError> {
    let mut probes: Vec<Probe> = columns.iter().flat_map(|c| probes(&c.loaded)).collect();
    probes.sort();
    probes.dedup_by(|a, b| (&a.from, &a.to, &a.request) == (&b.from, &b.to, &b.request));
    let labels: Vec<String> = columns.iter().map(|c| c.label.clone()).collect();
    let skipped = |why: String| results::run::MonitoringResult {
        skipped: Some(why),
        prometheus: None,
        stages: labels.clone(),
        queries: Vec::new(),
    };
    let found = (!queries.is_empty()).then(crate::monitor::find);
    if let Some(Err(e)) = &found {
        eprintln!("{e}");
    }
    let mut prometheus = found.as_ref().and_then(|f| f.as_ref().ok()).cloned();
    let mut failed = None;
    let mut out = Vec::new();
    for c in columns {
        let t0 = std::time::Instant::now();
        let mut cluster = Cluster::up_scenario(&c.loaded, c.mode, profile, sandbox)?;
        let t1 = std::time::Instant::now();
        let mut monitoring = None;
        let cells = match &prometheus {
            Some((bin, _)) => match monitored(&mut cluster, &probes, bin, queries) {
                Ok((cells, eval)) => {
                    monitoring = Some(eval);
                    cells
                }
                Err(e) => {
                    eprintln!("the monitoring check stopped: {e}");
                    failed = Some(format!("the monitoring check failed at {}: {e}", c.label));
                    prometheus = None;
                    run(&cluster, &probes)
                }
            },
            None => run(&cluster, &probes),
        };
        let t2 = std::time::Instant::now();
        drop(cluster);
        let p = Probed {
            label: c.label.clone(),
            cells,
            up: t1 - t0,
            probing: t2 - t1,
            down: t2.elapsed(),
            monitoring,
        };
        each(&p);
        out.push(p);
    }
    let monitoring = match (found, failed) {
        (None, _) => None,
        (Some(Err(e)), _) => Some(skipped(e.to_string())),
        (Some(Ok(_)), Some(why)) => Some(skipped(why)),
        (Some(Ok((_, version))), None) => {
            let evals: Vec<_> = out.iter().filter_map(|p| p.monitoring.clone()).collect();
            Some(crate::monitor::result(version, labels, queries, &evals))
        }
    };
    Ok((out, monitoring))
}

/// Probes with a Prometheus scraping the cluster: the probes run twice, a scrape apart, so
/// every counter has grown between two samples (a rate over it is not zero), then every
/// query is evaluated.
fn monitored(
    cluster: &mut Cluster,
    probes: &[Probe],
    bin: &std::path::Path,
    queries: &[scenario::monitoring::Query],
) -> Result<(Vec<Cell>, crate::monitor::StageEval), crate::monitor::MonitorError> {
    let target = cluster
        .serve_merged_metrics(0)
        .map_err(|e| crate::monitor::MonitorError::Start(e.to_string()))?;
    let prom = crate::monitor::Prometheus::start(bin, target)?;
    let cells = run(cluster, probes);
    prom.wait_for_scrape()?;
    run(cluster, probes);
    prom.wait_for_scrape()?;
    Ok((cells, crate::monitor::evaluate(&prom, queries)))
}

/// The changes between two consecutive columns, each marked expected or not.
pub struct Step {
    pub from: String,
    pub to: String,
    pub diff: Diff,
    /// Whether the later column's `expect:` lists each change: breaks, then openings.
    pub expected: Vec<bool>,
}

/// What changed between each column and the next.
pub fn steps(columns: &[Column], probed: &[Probed]) -> Vec<Step> {
    probed
        .windows(2)
        .zip(columns.iter().skip(1))
        .map(|(w, next)| {
            let diff = diff(&w[0].cells, &w[1].cells);
            let kinds = diff
                .breaks
                .iter()
                .map(|c| (c, scenario::ChangeKind::Break))
                .chain(
                    diff.openings
                        .iter()
                        .map(|c| (c, scenario::ChangeKind::Opening)),
                );
            let expected = kinds
                .map(|(c, k)| is_expected(c, k, &next.expect))
                .collect();
            Step {
                from: w[0].label.clone(),
                to: w[1].label.clone(),
                diff,
                expected,
            }
        })
        .collect()
}

/// Whether a stage's `expect:` lists a change (`from` names the client workload, whose first
/// pod sent the probe).
pub fn is_expected(
    c: &Change,
    kind: scenario::ChangeKind,
    expect: &[scenario::ExpectedChange],
) -> bool {
    expect.iter().any(|e| {
        e.change == kind
            && c.probe.from == format!("{}-0", e.from)
            && c.probe.to == e.to
            && e.request.as_ref().is_none_or(|r| *r == c.probe.request)
    })
}

/// `proxy: policy and rule`, the decision as the report names it.
pub fn describe_decision(r: &Record) -> String {
    format!("{}: {}", r.proxy, r.by)
}

/// A migration's reachability for run.json: each column probed on a cluster of its own (the
/// same probe set for all), the changes between consecutive columns, and the monitoring check.
pub fn migration(
    l: &Loaded,
    profile: &scenario::profile::Profile,
    sandbox: crate::sandbox::Sandbox,
) -> Result<results::run::ReachResult, crate::cluster::ClusterError> {
    let columns = stage_columns(l);
    let (probed, monitoring) = probe_columns(&columns, &l.monitoring, profile, sandbox, |_| {})?;
    let line = |p: &Probe| format!("{} → {} {}", p.from, p.to, p.request);
    let lines = |v: &[Probe]| v.iter().map(line).collect::<Vec<_>>();
    let out_columns = probed
        .iter()
        .map(|p| {
            let m = mtls(&p.cells);
            let allowed = p.cells.iter().filter(|c| c.outcome.allowed()).count();
            results::run::ReachColumn {
                at: p.label.clone(),
                probes: p.cells.len(),
                allowed,
                refused: p.cells.len() - allowed,
                meshed_plaintext: lines(&m.meshed_plaintext),
                outside_accepted: lines(&m.outside_accepted),
                outside_refused_strict: lines(&m.outside_refused_strict),
            }
        })
        .collect();
    let mut changes = Vec::new();
    for s in steps(&columns, &probed) {
        let kinds = s
            .diff
            .breaks
            .iter()
            .map(|c| (c, "break"))
            .chain(s.diff.openings.iter().map(|c| (c, "opening")));
        for ((c, kind), expected) in kinds.zip(&s.expected) {
            changes.push(results::run::ReachChange {
                from_stage: s.from.clone(),
                to_stage: s.to.clone(),
                kind: kind.to_string(),
                from: c.probe.from.clone(),
                to: c.probe.to.clone(),
                request: c.probe.request.clone(),
                before: c.before.to_string(),
                after: c.after.to_string(),
                decided_by: c.decided_by.as_ref().map(describe_decision),
                expected: *expected,
            });
        }
    }
    Ok(results::run::ReachResult {
        columns: out_columns,
        changes,
        monitoring,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(from: scenario::DataPlane, outcome: Outcome, mtls: bool, by: &str) -> Cell {
        Cell {
            probe: probe("a-0", "b.ns:80", "GET /", Vec::new(), "service port"),
            from_dataplane: Some(from),
            outcome,
            decided_by: Some(Record {
                proxy: "sidecar b-0".into(),
                src_ip: None,
                port: 80,
                request: None,
                allowed: outcome.allowed(),
                by: by.into(),
                mtls,
            }),
        }
    }

    #[test]
    fn mtls_lists_plaintext_between_meshed_workloads_and_what_strict_did() {
        use scenario::DataPlane::*;
        let cells = [
            cell(
                Sidecar,
                Outcome::Allowed(200),
                true,
                "no ALLOW policy applies",
            ),
            cell(
                Sidecar,
                Outcome::Allowed(200),
                false,
                "no ALLOW policy applies",
            ),
            cell(
                None,
                Outcome::Allowed(200),
                false,
                "no ALLOW policy applies",
            ),
            cell(
                None,
                Outcome::Reset,
                false,
                "PeerAuthentication STRICT (plaintext refused)",
            ),
        ];
        let r = mtls(&cells);
        assert_eq!(r.meshed_plaintext.len(), 1);
        assert_eq!(r.outside_accepted.len(), 1);
        assert_eq!(r.outside_refused_strict.len(), 1);
    }

    #[test]
    fn a_break_and_an_opening_are_told_apart() {
        use scenario::DataPlane::*;
        let before = [cell(Sidecar, Outcome::Allowed(200), true, "x")];
        let after = [cell(
            Ambient,
            Outcome::Unavailable,
            true,
            "no ALLOW rule matched",
        )];
        let d = diff(&before, &after);
        assert_eq!((d.breaks.len(), d.openings.len()), (1, 0));
        let d = diff(&after, &before);
        assert_eq!((d.breaks.len(), d.openings.len()), (0, 1));
        assert!(diff(&before, &before).breaks.is_empty());
    }
}
