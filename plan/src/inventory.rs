//! An inventory of a real cluster, as a platform team knows it: node pools, namespaces with
//! their labels, workloads with replicas, services, the waypoints declared, and the traffic
//! between services. Read from YAML with every error placed at its file, line and field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use scenario::units::Size;
use scenario::yaml::{self, Diagnostic, LocIndex};
use serde::{Deserialize, Serialize};

use crate::PlanError;

pub type Labels = BTreeMap<String, String>;

/// Namespaces Istio's charts and Kubernetes keep for themselves: out of the mesh unless their
/// labels say otherwise.
pub const SYSTEM_NAMESPACES: [&str; 4] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "istio-system",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inventory {
    pub version: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub nodes: Vec<NodePool>,
    pub namespaces: Vec<Namespace>,
    pub workloads: Vec<Workload>,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub waypoints: Vec<Waypoint>,
    #[serde(default)]
    pub traffic: Vec<Traffic>,
    /// A migration in stages: `plan` projects the declared data plane after each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<Migration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Migration {
    pub stages: Vec<Stage>,
}

/// One stage of a migration, on top of the stages before it, as a scenario's `migration:`
/// writes it: label changes, and the waypoints it deploys or removes. A plan projects the
/// stage done: every pod it relabels restarted (a sidecar comes or goes only then).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stage {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabel: Vec<Relabel>,
    /// Waypoints the stage deploys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_waypoints: Vec<Waypoint>,
    /// Waypoints the stage removes: `namespace/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_waypoints: Vec<String>,
}

/// Label changes on one namespace, or one workload's pod template, as a scenario's stage
/// writes them; a `null` value removes the label. An inventory names a workload
/// `namespace/workload` (its names are unique per namespace only).
pub use scenario::format::Relabel;

/// `count` nodes alike, named `<pool>-0`, `<pool>-1`, ….
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodePool {
    pub pool: String,
    #[serde(default = "one")]
    pub count: u32,
    /// Allocatable cores of one node (for the share the mesh takes), optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Size>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Namespace {
    pub name: String,
    /// As on the cluster: `istio-injection`, `istio.io/dataplane-mode`, `istio.io/rev`,
    /// `istio.io/use-waypoint` decide enrollment and waypoints, as Istio decides them.
    #[serde(default)]
    pub labels: Labels,
    /// A `Sidecar` resource's `egress.hosts` for the namespace (e.g. `["./*",
    /// "istio-system/*"]`): the services its sidecars are configured for. Absent: every
    /// service of the cluster, Istio's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar_egress_hosts: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    pub namespace: String,
    /// Deployment, StatefulSet, DaemonSet, Job…: informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default = "one")]
    pub replicas: u32,
    /// Default: the workload's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// The pod template's labels (services select on them; enrollment reads them).
    #[serde(default)]
    pub labels: Labels,
    /// Node pools its pods may run on; default: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<String>,
}

impl Workload {
    pub fn service_account(&self) -> &str {
        self.service_account.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    pub name: String,
    pub namespace: String,
    /// Pods it selects, by label; or `workload:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<Labels>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// e.g. `istio.io/use-waypoint`.
    #[serde(default)]
    pub labels: Labels,
}

/// A waypoint (a Gateway of class `istio-waypoint`), sized by the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Waypoint {
    pub name: String,
    pub namespace: String,
    /// Envoy worker threads per replica (default 2, as the waypoint template's limit).
    #[serde(default = "two")]
    pub concurrency: u32,
    /// CPU limit per replica, cores (default 2: Istio's waypoint template).
    #[serde(default = "two_f")]
    pub cpu_limit: f64,
}

fn two() -> u32 {
    2
}
fn two_f() -> f64 {
    2.0
}

/// Requests from one workload (or from outside the mesh) to one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Traffic {
    /// `namespace/workload`; absent: from outside the cluster (only the destination's proxies
    /// carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `namespace/service`.
    pub to: String,
    /// Average requests per second.
    pub rps: f64,
    /// Busiest requests per second (sizing uses it); default: `rps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rps: Option<f64>,
    #[serde(default = "kib")]
    pub request_size: Size,
    #[serde(default = "kib")]
    pub response_size: Size,
    /// Requests per connection: 1 is a new connection per request; default 100 (keep-alive).
    #[serde(default = "hundred")]
    pub requests_per_connection: f64,
    /// Connections open at once, in all; default: one per source pod (or destination pod,
    /// from outside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
}

fn kib() -> Size {
    Size(1024)
}
fn hundred() -> f64 {
    100.0
}

impl Traffic {
    pub fn peak(&self) -> f64 {
        self.peak_rps.unwrap_or(self.rps)
    }
}

impl Inventory {
    /// The cluster after migration stages `0..=stage` (each restarting what it relabels).
    pub fn at_stage(&self, stage: usize) -> Inventory {
        let mut inv = self.clone();
        let stages = self.migration.as_ref().map_or(&[][..], |m| &m.stages[..]);
        for st in stages.iter().take(stage + 1) {
            for r in &st.relabel {
                let labels = match (&r.namespace, r.workload.as_deref().and_then(split_ref)) {
                    (Some(ns), None) => inv
                        .namespaces
                        .iter_mut()
                        .find(|n| &n.name == ns)
                        .map(|n| &mut n.labels),
                    (None, Some((ns, w))) => inv
                        .workloads
                        .iter_mut()
                        .find(|x| x.namespace == ns && x.name == w)
                        .map(|x| &mut x.labels),
                    _ => None,
                };
                if let Some(labels) = labels {
                    for (k, v) in &r.labels {
                        match v {
                            Some(v) => labels.insert(k.clone(), v.clone()),
                            None => labels.remove(k),
                        };
                    }
                }
            }
            // Removed, or applied again (as `kubectl apply`, the new one replaces it).
            inv.waypoints.retain(|w| {
                let key = (w.namespace.as_str(), w.name.as_str());
                !st.remove_waypoints
                    .iter()
                    .any(|r| split_ref(r) == Some(key))
                    && !st
                        .add_waypoints
                        .iter()
                        .any(|a| (a.namespace.as_str(), a.name.as_str()) == key)
            });
            inv.waypoints.extend(st.add_waypoints.iter().cloned());
        }
        inv.migration = None;
        inv
    }

    /// Reads and checks an inventory file.
    pub fn load(path: &Path) -> Result<Inventory, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and checks an inventory's text (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Inventory, PlanError> {
        let docs = yaml::split_documents(text);
        let doc = match docs.as_slice() {
            [d] => d.clone(),
            _ => {
                return Err(PlanError::Invalid(vec![Diagnostic {
                    file: path.to_path_buf(),
                    line: 1,
                    column: 1,
                    path: String::new(),
                    message: "an inventory is one YAML document with `version`, `name`, `nodes`, `namespaces` and `workloads`".into(),
                }]));
            }
        };
        let index = Arc::new(LocIndex::build(doc.text, doc.line_offset));
        let inv: Inventory =
            yaml::parse_doc(path, &doc, &index).map_err(|d| PlanError::Invalid(vec![d]))?;
        let problems = inv.check(path, &index);
        if problems.is_empty() {
            Ok(inv)
        } else {
            Err(PlanError::Invalid(problems))
        }
    }

    /// The references and ranges serde cannot check.
    fn check(&self, file: &Path, index: &LocIndex) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let mut at = |p: String, m: String| {
            let l = index.value_loc(&p);
            out.push(Diagnostic {
                file: PathBuf::from(file),
                line: l.line,
                column: l.column,
                path: p,
                message: m,
            });
        };
        if self.version != 1 {
            at(
                "version".into(),
                format!(
                    "version {} is not known; this meshsim reads version 1",
                    self.version
                ),
            );
        }
        if self.nodes.is_empty() {
            at(
                "nodes".into(),
                "an inventory needs at least one node pool".into(),
            );
        }
        let mut pools = BTreeSet::new();
        for (i, p) in self.nodes.iter().enumerate() {
            if !pools.insert(p.pool.as_str()) {
                at(
                    format!("nodes[{i}].pool"),
                    format!("node pool `{}` is listed twice", p.pool),
                );
            }
            if p.count == 0 {
                at(
                    format!("nodes[{i}].count"),
                    "a node pool has at least one node".into(),
                );
            }
            if p.cpu.is_some_and(|c| !positive(c)) {
                at(
                    format!("nodes[{i}].cpu"),
                    "cores must be more than 0".into(),
                );
            }
        }
        let mut namespaces = BTreeSet::new();
        for (i, n) in self.namespaces.iter().enumerate() {
            if !namespaces.insert(n.name.as_str()) {
                at(
                    format!("namespaces[{i}].name"),
                    format!("namespace `{}` is listed twice", n.name),
                );
            }
            for (j, h) in n.sidecar_egress_hosts.iter().flatten().enumerate() {
                if egress_namespace(h).is_none() {
                    at(
                        format!("namespaces[{i}].sidecarEgressHosts[{j}]"),
                        format!(
                            "`{h}` is not a Sidecar egress host meshsim reads; write `./*`, `*/*` or `<namespace>/*`"
                        ),
                    );
                }
            }
        }
        let known_ns = |ns: &str| namespaces.contains(ns);
        let mut workloads = BTreeSet::new();
        for (i, w) in self.workloads.iter().enumerate() {
            if !known_ns(&w.namespace) {
                at(
                    format!("workloads[{i}].namespace"),
                    format!("namespace `{}` is not in `namespaces`", w.namespace),
                );
            }
            if !workloads.insert((w.namespace.as_str(), w.name.as_str())) {
                at(
                    format!("workloads[{i}].name"),
                    format!("workload `{}/{}` is listed twice", w.namespace, w.name),
                );
            }
            for (j, p) in w.pools.iter().enumerate() {
                if !pools.contains(p.as_str()) {
                    at(
                        format!("workloads[{i}].pools[{j}]"),
                        format!("node pool `{p}` is not in `nodes`"),
                    );
                }
            }
        }
        let mut services = BTreeSet::new();
        for (i, s) in self.services.iter().enumerate() {
            if !known_ns(&s.namespace) {
                at(
                    format!("services[{i}].namespace"),
                    format!("namespace `{}` is not in `namespaces`", s.namespace),
                );
            }
            if !services.insert((s.namespace.as_str(), s.name.as_str())) {
                at(
                    format!("services[{i}].name"),
                    format!("service `{}/{}` is listed twice", s.namespace, s.name),
                );
            }
            match (&s.selector, &s.workload) {
                (Some(_), Some(_)) => at(
                    format!("services[{i}].workload"),
                    "give `selector` or `workload`, not both".into(),
                ),
                (None, None) => at(
                    format!("services[{i}]"),
                    "a service needs `selector` (pod labels) or `workload`".into(),
                ),
                (None, Some(w)) if !workloads.contains(&(s.namespace.as_str(), w.as_str())) => at(
                    format!("services[{i}].workload"),
                    format!("workload `{}/{w}` is not in `workloads`", s.namespace),
                ),
                _ => {}
            }
        }
        let mut waypoints = BTreeSet::new();
        for (i, w) in self.waypoints.iter().enumerate() {
            if !known_ns(&w.namespace) {
                at(
                    format!("waypoints[{i}].namespace"),
                    format!("namespace `{}` is not in `namespaces`", w.namespace),
                );
            }
            if !waypoints.insert((w.namespace.as_str(), w.name.as_str())) {
                at(
                    format!("waypoints[{i}].name"),
                    format!("waypoint `{}/{}` is listed twice", w.namespace, w.name),
                );
            }
            if w.concurrency == 0 {
                at(
                    format!("waypoints[{i}].concurrency"),
                    "at least one worker".into(),
                );
            }
            if !positive(w.cpu_limit) {
                at(
                    format!("waypoints[{i}].cpuLimit"),
                    "cores must be more than 0".into(),
                );
            }
        }
        for (i, t) in self.traffic.iter().enumerate() {
            if let Some(f) = &t.from {
                match split_ref(f) {
                    Some(k) if workloads.contains(&k) => {}
                    Some(_) => at(
                        format!("traffic[{i}].from"),
                        format!("workload `{f}` is not in `workloads`"),
                    ),
                    None => at(
                        format!("traffic[{i}].from"),
                        format!("`{f}` is not `namespace/workload`"),
                    ),
                }
            }
            match split_ref(&t.to) {
                Some(k) if services.contains(&k) => {}
                Some(_) => at(
                    format!("traffic[{i}].to"),
                    format!("service `{}` is not in `services`", t.to),
                ),
                None => at(
                    format!("traffic[{i}].to"),
                    format!("`{}` is not `namespace/service`", t.to),
                ),
            }
            if !(t.rps >= 0.0 && t.rps.is_finite()) {
                at(
                    format!("traffic[{i}].rps"),
                    "requests per second cannot be negative".into(),
                );
            }
            if t.peak_rps.is_some_and(|p| !(p >= t.rps && p.is_finite())) {
                at(
                    format!("traffic[{i}].peakRps"),
                    format!("the peak cannot be below `rps` ({})", t.rps),
                );
            }
            if !(t.requests_per_connection >= 1.0 && t.requests_per_connection.is_finite()) {
                at(
                    format!("traffic[{i}].requestsPerConnection"),
                    "at least 1 request per connection".into(),
                );
            }
        }
        // A waypoint a label names must be declared: a plan cannot size what it does not know.
        for (i, n) in self.namespaces.iter().enumerate() {
            if let Some((ns, w)) = use_wp(&n.labels, &n.name)
                && !waypoints.contains(&(ns.as_str(), w.as_str()))
            {
                at(
                    format!("namespaces[{i}].labels"),
                    format!("{USE_WAYPOINT}: waypoint `{ns}/{w}` is not in `waypoints`"),
                );
            }
        }
        for (i, s) in self.services.iter().enumerate() {
            if let Some((ns, w)) = use_wp(&s.labels, &s.namespace)
                && !waypoints.contains(&(ns.as_str(), w.as_str()))
            {
                at(
                    format!("services[{i}].labels"),
                    format!("{USE_WAYPOINT}: waypoint `{ns}/{w}` is not in `waypoints`"),
                );
            }
        }
        self.check_stages(&mut at);
        out
    }

    /// The migration's references: what each stage relabels exists, what it removes is
    /// deployed, and every waypoint a label names after it is.
    fn check_stages(&self, at: &mut dyn FnMut(String, String)) {
        let namespaces: BTreeSet<&str> = self.namespaces.iter().map(|n| n.name.as_str()).collect();
        let workloads: BTreeSet<(&str, &str)> = self
            .workloads
            .iter()
            .map(|w| (w.namespace.as_str(), w.name.as_str()))
            .collect();
        let stages = self.migration.as_ref().map_or(&[][..], |m| &m.stages[..]);
        let mut names = BTreeSet::new();
        for (k, st) in stages.iter().enumerate() {
            let p = format!("migration.stages[{k}]");
            if !names.insert(st.name.as_str()) {
                at(
                    format!("{p}.name"),
                    format!("stage `{}` is listed twice", st.name),
                );
            }
            for (j, r) in st.relabel.iter().enumerate() {
                let rp = format!("{p}.relabel[{j}]");
                match (&r.namespace, &r.workload) {
                    (Some(ns), None) if !namespaces.contains(ns.as_str()) => at(
                        format!("{rp}.namespace"),
                        format!("namespace `{ns}` is not in `namespaces`"),
                    ),
                    (None, Some(w)) if !split_ref(w).is_some_and(|k| workloads.contains(&k)) => at(
                        format!("{rp}.workload"),
                        format!("workload `{w}` is not in `workloads` (write `namespace/name`)"),
                    ),
                    (Some(_), None) | (None, Some(_)) => {}
                    _ => at(rp, "name exactly one of `namespace` or `workload`".into()),
                }
            }
            let before = self.at_stage_checked(k);
            for (j, r) in st.remove_waypoints.iter().enumerate() {
                if !split_ref(r)
                    .is_some_and(|(ns, n)| before.iter().any(|w| w.namespace == ns && w.name == n))
                {
                    at(
                        format!("{p}.removeWaypoints[{j}]"),
                        format!("waypoint `{r}` is not deployed before this stage"),
                    );
                }
            }
            for (j, w) in st.add_waypoints.iter().enumerate() {
                if !namespaces.contains(w.namespace.as_str()) {
                    at(
                        format!("{p}.addWaypoints[{j}].namespace"),
                        format!("namespace `{}` is not in `namespaces`", w.namespace),
                    );
                }
            }
            // After the stage, every waypoint a label names must be deployed.
            let after = self.at_stage(k);
            let deployed: BTreeSet<(&str, &str)> = after
                .waypoints
                .iter()
                .map(|w| (w.namespace.as_str(), w.name.as_str()))
                .collect();
            let named = after
                .namespaces
                .iter()
                .filter_map(|n| use_wp(&n.labels, &n.name))
                .chain(
                    after
                        .services
                        .iter()
                        .filter_map(|s| use_wp(&s.labels, &s.namespace)),
                );
            for (ns, w) in named {
                if !deployed.contains(&(ns.as_str(), w.as_str())) {
                    at(
                        format!("{p}.name"),
                        format!(
                            "after stage `{}`, {USE_WAYPOINT} names waypoint `{ns}/{w}`, which no stage deploys",
                            st.name
                        ),
                    );
                }
            }
        }
    }

    /// The inventory with `m` as its migration (a scenario's, read by [`migration_of`]),
    /// checked: an error is placed in `file` by `locate` (a field path to line and column).
    pub fn with_migration(
        mut self,
        m: Migration,
        file: &Path,
        locate: &dyn Fn(&str) -> (usize, usize),
    ) -> Result<Inventory, PlanError> {
        self.migration = Some(m);
        let mut problems = Vec::new();
        self.check_stages(&mut |p: String, message: String| {
            let (line, column) = locate(&p);
            problems.push(Diagnostic {
                file: file.to_path_buf(),
                line,
                column,
                path: p,
                message,
            });
        });
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(PlanError::Invalid(problems))
        }
    }

    /// The waypoints deployed before stage `k`.
    fn at_stage_checked(&self, k: usize) -> Vec<Waypoint> {
        match k.checked_sub(1) {
            Some(prev) => self.at_stage(prev).waypoints,
            None => self.waypoints.clone(),
        }
    }
}

pub const USE_WAYPOINT: &str = "istio.io/use-waypoint";
pub const USE_WAYPOINT_NAMESPACE: &str = "istio.io/use-waypoint-namespace";

/// The waypoint (namespace, name) an object's `istio.io/use-waypoint` labels name, if one.
fn use_wp(labels: &Labels, ns: &str) -> Option<(String, String)> {
    labels.get(USE_WAYPOINT).filter(|w| *w != "none").map(|w| {
        (
            labels
                .get(USE_WAYPOINT_NAMESPACE)
                .map_or(ns, |n| n.as_str())
                .to_string(),
            w.clone(),
        )
    })
}

/// A finite number above zero (NaN is not).
fn positive(v: f64) -> bool {
    v.is_finite() && v > 0.0
}

/// `namespace/name`.
pub fn split_ref(r: &str) -> Option<(&str, &str)> {
    let (ns, name) = r.split_once('/')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains('/')).then_some((ns, name))
}

/// The namespace a Sidecar egress host admits: `Some(None)` for every namespace (`*/*`),
/// `Some(Some("."))` for the Sidecar's own.
pub fn egress_namespace(host: &str) -> Option<Option<&str>> {
    match host.split_once('/')? {
        ("*", "*") => Some(None),
        (ns, "*") if !ns.is_empty() => Some(Some(ns)),
        _ => None,
    }
}

/// A scenario's `migration:` as an inventory's: its relabels (a workload, named in the
/// scenario by itself, as `namespace/name`), and the waypoint Gateways each stage applies or
/// removes (at the waypoint template's concurrency and CPU limit).
pub fn migration_of(loaded: &scenario::Loaded) -> Option<Migration> {
    use scenario::manifest::Object;
    let m = loaded.scenario.migration.as_ref()?;
    let stages = m
        .stages
        .iter()
        .enumerate()
        .map(|(k, st)| Stage {
            name: st.name.clone(),
            relabel: st
                .relabel
                .iter()
                .map(|r| Relabel {
                    namespace: r.namespace.clone(),
                    workload: r.workload.as_ref().map(|w| {
                        let ns = loaded
                            .scenario
                            .workloads
                            .iter()
                            .find(|x| &x.name == w)
                            .map_or("default", |x| x.namespace.as_str());
                        format!("{ns}/{w}")
                    }),
                    labels: r.labels.clone(),
                })
                .collect(),
            add_waypoints: loaded
                .stage_manifests
                .get(k)
                .into_iter()
                .flatten()
                .flat_map(|f| &f.objects)
                .filter_map(|o| match &o.object {
                    Object::Gateway(g) => Some(Waypoint {
                        name: g.metadata.name.clone(),
                        namespace: g.metadata.ns().to_string(),
                        concurrency: two(),
                        cpu_limit: two_f(),
                    }),
                    _ => None,
                })
                .collect(),
            remove_waypoints: st
                .remove
                .iter()
                .filter_map(|r| r.strip_prefix("Gateway/").map(str::to_string))
                .collect(),
        })
        .collect();
    Some(Migration { stages })
}
