//! The projection: an inventory's pods placed on its nodes, its traffic spread over the pods,
//! and each proxy's cost from the model, per mode. Every figure is a [`Band`]: the model's
//! low, middle and high parameters, evaluated separately.

use std::collections::{BTreeMap, BTreeSet};

use scenario::costmodel::{CostModel, End, ProxyModel};
use scenario::enrollment::{self, DataPlane};
use serde::{Deserialize, Serialize};

use crate::inventory::{
    Inventory, Labels, SYSTEM_NAMESPACES, USE_WAYPOINT, USE_WAYPOINT_NAMESPACE, egress_namespace,
    split_ref,
};

/// Headroom kept on a waypoint replica's CPU when sizing (a replica runs at most 70% busy).
pub const WAYPOINT_HEADROOM: f64 = 0.30;

const MIB: f64 = 1024.0 * 1024.0;

/// A figure at the model's low, middle and high parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub low: f64,
    pub mid: f64,
    pub high: f64,
}

impl Band {
    fn of(f: impl Fn(End) -> f64) -> Band {
        Band {
            low: f(End::Low),
            mid: f(End::Mid),
            high: f(End::High),
        }
    }

    pub fn at(&self, end: End) -> f64 {
        match end {
            End::Low => self.low,
            End::Mid => self.mid,
            End::High => self.high,
        }
    }

    fn scale(self, k: f64) -> Band {
        Band::of(|e| self.at(e) * k)
    }

    fn max(self, o: Band) -> Band {
        Band::of(|e| self.at(e).max(o.at(e)))
    }
}

impl std::ops::Add for Band {
    type Output = Band;
    fn add(self, o: Band) -> Band {
        Band::of(|e| self.at(e) + o.at(e))
    }
}

impl std::ops::AddAssign for Band {
    fn add_assign(&mut self, o: Band) {
        *self = *self + o;
    }
}

impl std::iter::Sum for Band {
    fn sum<I: Iterator<Item = Band>>(it: I) -> Band {
        it.fold(Band::default(), |a, b| a + b)
    }
}

/// vCPU and memory (MiB).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub vcpu: Band,
    pub mib: Band,
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            vcpu: self.vcpu + o.vcpu,
            mib: self.mib + o.mib,
        }
    }
}

impl std::ops::AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        *self = *self + o;
    }
}

impl std::iter::Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(it: I) -> Cost {
        it.fold(Cost::default(), |a, b| a + b)
    }
}

/// The load on one proxy, per second (or at once, for connections).
pub use scenario::costmodel::ProxyLoad as Load;
/// The configuration in one proxy's scope.
pub use scenario::costmodel::ProxyScope as Scope;

/// One proxy's vCPU under `load`.
pub fn proxy_vcpu(m: &ProxyModel, load: &Load) -> Band {
    Band::of(|e| m.vcpu(e, load))
}

/// One proxy's memory (MiB) with `load`'s open connections and `scope`'s configuration.
pub fn proxy_mib(m: &ProxyModel, load: &Load, scope: &Scope) -> Band {
    Band::of(|e| m.memory_bytes(e, load, scope) / MIB)
}

fn proxy_cost(m: &ProxyModel, load: &Load, scope: &Scope) -> Cost {
    Cost {
        vcpu: proxy_vcpu(m, load),
        mib: proxy_mib(m, load, scope),
    }
}

/// The data-plane shapes a plan projects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanMode {
    /// Every meshed pod with a sidecar.
    Sidecar,
    /// Every meshed pod captured by ztunnel; no waypoint.
    Ambient,
    /// Ambient, with the inventory's waypoints where its labels use them.
    AmbientWaypoints,
    /// Each pod as its labels declare it today (a half-migrated mesh), waypoints as labelled.
    Declared,
}

impl PlanMode {
    pub const ALL: [PlanMode; 4] = [
        PlanMode::Sidecar,
        PlanMode::Ambient,
        PlanMode::AmbientWaypoints,
        PlanMode::Declared,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PlanMode::Sidecar => "sidecar",
            PlanMode::Ambient => "ambient",
            PlanMode::AmbientWaypoints => "ambient-waypoints",
            PlanMode::Declared => "declared",
        }
    }

    pub fn parse(s: &str) -> Option<PlanMode> {
        PlanMode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    fn waypoints(self) -> bool {
        matches!(self, PlanMode::AmbientWaypoints | PlanMode::Declared)
    }
}

impl std::fmt::Display for PlanMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ModePlan {
    /// The mode as tables name it: `declared`, or `stage ambient` for a migration's stage.
    pub fn label(&self) -> String {
        match &self.stage {
            Some(st) => format!("after stage {st}"),
            None => self.mode.to_string(),
        }
    }
}

/// A node's share of the mesh's cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodePlan {
    pub node: String,
    pub pods: usize,
    pub meshed_pods: usize,
    /// Its ztunnel (ambient), at average load.
    pub ztunnel: Option<Cost>,
    /// The ztunnel's load at peak (what its DaemonSet request must cover).
    pub ztunnel_peak: Option<Cost>,
    /// The sidecars of its pods, at average load.
    pub sidecars: Cost,
    /// ztunnel + sidecars; waypoints are placed by the scheduler and counted per namespace.
    pub total: Cost,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespacePlan {
    pub namespace: String,
    pub pods: usize,
    pub meshed_pods: usize,
    pub sidecars: Cost,
    /// Derived, not a proxy of its own: each node's ztunnel split over its meshed pods, by
    /// their share of its load (CPU) and by count (memory).
    pub ztunnel_share: Cost,
    pub waypoints: Cost,
    pub total: Cost,
}

/// A pod template's sidecar request: its busiest replica at peak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SidecarRequest {
    pub workload: String,
    pub replicas: u32,
    pub peak: Cost,
}

/// ztunnel's DaemonSet request: one size on every node, the hottest node's peak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZtunnelRequest {
    pub hottest_node: String,
    pub request: Cost,
    pub nodes: usize,
    /// Σ over nodes of (request − that node's own peak): what one size for all costs.
    pub over_provisioned: Cost,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaypointPlan {
    pub waypoint: String,
    pub services: Vec<String>,
    pub rps: f64,
    pub peak_rps: f64,
    /// All its replicas together, at average load.
    pub cost: Cost,
    /// One replica's share of the peak: its request.
    pub request: Cost,
    /// Replicas for the peak at its concurrency and CPU limit, with
    /// [`WAYPOINT_HEADROOM`]; at the model's middle and high parameters.
    pub replicas: u32,
    pub replicas_high: u32,
    pub concurrency: u32,
    pub cpu_limit: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModePlan {
    pub mode: PlanMode,
    /// The migration stage projected (mode `declared` after it), if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    pub sidecars: usize,
    pub ztunnels: usize,
    pub waypoint_replicas: u32,
    /// Per proxy kind, all proxies together, at average load.
    pub by_kind: BTreeMap<String, Cost>,
    pub data_plane: Cost,
    /// istiod, for the xDS clients of this mode (modeled from published figures).
    pub control_plane: Cost,
    pub total: Cost,
    /// What the cluster reserves: sidecar requests per template, ztunnel's one size per
    /// node, waypoint replicas at their CPU limit's share.
    pub requested: Cost,
    pub ztunnel_request: Option<ZtunnelRequest>,
    pub sidecar_requests: Vec<SidecarRequest>,
    pub waypoints: Vec<WaypointPlan>,
    pub nodes: Vec<NodePlan>,
    pub namespaces: Vec<NamespacePlan>,
}

/// The inventory, resolved: pods on nodes, services to the workloads they select, and each
/// workload's load.
pub struct Resolved<'a> {
    inv: &'a Inventory,
    pub nodes: Vec<String>,
    /// Per workload: the node index of each replica.
    placement: Vec<Vec<usize>>,
    /// Per service: (workload index, its share of the service's endpoints).
    backends: Vec<Vec<(usize, f64)>>,
    /// Per service: its endpoints (pods).
    endpoints: Vec<usize>,
    /// Per service: its ports, at least 1 (Envoy builds a cluster per port).
    ports: Vec<usize>,
    /// Per workload, all replicas together: (average, peak) load as a client and as a server.
    out_load: Vec<(Load, Load)>,
    in_load: Vec<(Load, Load)>,
    meshed_ns: BTreeSet<String>,
    ns_labels: BTreeMap<String, Labels>,
}

impl<'a> Resolved<'a> {
    pub fn new(inv: &'a Inventory) -> Resolved<'a> {
        let mut nodes = Vec::new();
        let mut pool_nodes: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for p in &inv.nodes {
            for i in 0..p.count {
                pool_nodes
                    .entry(p.pool.as_str())
                    .or_default()
                    .push(nodes.len());
                nodes.push(format!("{}-{i}", p.pool));
            }
        }
        // Round-robin, each pool's cursor carried from one workload to the next: the nodes
        // fill evenly, as a scheduler spreading pods would leave them.
        let all: Vec<usize> = (0..nodes.len()).collect();
        let mut cursors: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
        let placement = inv
            .workloads
            .iter()
            .map(|w| {
                let allowed: Vec<usize> = if w.pools.is_empty() {
                    all.clone()
                } else {
                    w.pools
                        .iter()
                        .flat_map(|p| pool_nodes.get(p.as_str()).cloned().unwrap_or_default())
                        .collect()
                };
                let c = cursors.entry(allowed.clone()).or_default();
                (0..w.replicas)
                    .map(|_| {
                        let n = allowed[*c % allowed.len()];
                        *c += 1;
                        n
                    })
                    .collect()
            })
            .collect();
        let windex: BTreeMap<(&str, &str), usize> = inv
            .workloads
            .iter()
            .enumerate()
            .map(|(i, w)| ((w.namespace.as_str(), w.name.as_str()), i))
            .collect();
        let backends: Vec<Vec<(usize, f64)>> = inv
            .services
            .iter()
            .map(|s| {
                let picked: Vec<usize> = match (&s.workload, &s.selector) {
                    (Some(w), _) => windex
                        .get(&(s.namespace.as_str(), w.as_str()))
                        .into_iter()
                        .copied()
                        .collect(),
                    (None, Some(sel)) => inv
                        .workloads
                        .iter()
                        .enumerate()
                        .filter(|(_, w)| {
                            w.namespace == s.namespace
                                && !sel.is_empty()
                                && sel.iter().all(|(k, v)| w.labels.get(k) == Some(v))
                        })
                        .map(|(i, _)| i)
                        .collect(),
                    (None, None) => Vec::new(),
                };
                let total: u32 = picked.iter().map(|&i| inv.workloads[i].replicas).sum();
                picked
                    .into_iter()
                    .filter(|_| total > 0)
                    .map(|i| (i, inv.workloads[i].replicas as f64 / total as f64))
                    .collect()
            })
            .collect();
        let endpoints = backends
            .iter()
            .map(|b| {
                b.iter()
                    .map(|&(i, _)| inv.workloads[i].replicas as usize)
                    .sum()
            })
            .collect();
        let ports = inv.services.iter().map(|s| s.ports.len().max(1)).collect();
        let sindex: BTreeMap<(&str, &str), usize> = inv
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.namespace.as_str(), s.name.as_str()), i))
            .collect();
        let n = inv.workloads.len();
        let (mut out_load, mut in_load) =
            (vec![Default::default(); n], vec![Default::default(); n]);
        for t in &inv.traffic {
            let Some(&svc) = split_ref(&t.to).and_then(|k| sindex.get(&k)) else {
                continue;
            };
            let src = t
                .from
                .as_deref()
                .and_then(split_ref)
                .and_then(|k| windex.get(&k).copied());
            let kib = (t.request_size.0 + t.response_size.0) as f64 / 1024.0;
            let conns = t.connections.map_or_else(
                || match src {
                    Some(s) => inv.workloads[s].replicas as f64,
                    None => endpoints_of(&backends[svc], inv) as f64,
                },
                f64::from,
            );
            let at = |rps: f64| Load {
                rps,
                kib_per_s: rps * kib,
                connections_per_s: rps / t.requests_per_connection,
                open_connections: conns,
            };
            let (avg, peak) = (at(t.rps), at(t.peak()));
            if let Some(s) = src {
                let o: &mut (Load, Load) = &mut out_load[s];
                o.0 += avg;
                o.1 += peak;
            }
            for &(w, share) in &backends[svc] {
                let i: &mut (Load, Load) = &mut in_load[w];
                i.0 += avg.scale(share);
                i.1 += peak.scale(share);
            }
        }
        let ns_labels: BTreeMap<String, Labels> = inv
            .namespaces
            .iter()
            .map(|n| (n.name.clone(), n.labels.clone()))
            .collect();
        let any_enrollment = inv.namespaces.iter().any(|n| {
            enrollment::ENROLLMENT_LABELS
                .iter()
                .any(|l| n.labels.contains_key(*l))
        }) || inv.workloads.iter().any(|w| {
            enrollment::ENROLLMENT_LABELS
                .iter()
                .any(|l| w.labels.contains_key(*l))
        });
        let meshed_ns = inv
            .namespaces
            .iter()
            .filter(|n| {
                if any_enrollment {
                    let none = Labels::new();
                    enrollment::enroll(&n.labels, &none).dataplane != DataPlane::None
                        || inv.workloads.iter().any(|w| {
                            w.namespace == n.name
                                && enrollment::enroll(&n.labels, &w.labels).dataplane
                                    != DataPlane::None
                        })
                } else {
                    !SYSTEM_NAMESPACES.contains(&n.name.as_str())
                }
            })
            .map(|n| n.name.clone())
            .collect();
        Resolved {
            inv,
            nodes,
            placement,
            backends,
            endpoints,
            ports,
            out_load,
            in_load,
            meshed_ns,
            ns_labels,
        }
    }

    pub fn pods(&self) -> usize {
        self.placement.iter().map(Vec::len).sum()
    }

    /// Namespaces in the mesh: those whose labels enroll them (or a workload of theirs); with
    /// no enrollment label anywhere, every namespace but the system ones.
    pub fn meshed_namespaces(&self) -> &BTreeSet<String> {
        &self.meshed_ns
    }

    /// A workload's data plane in `mode`.
    fn dataplane(&self, w: usize, mode: PlanMode) -> DataPlane {
        let wl = &self.inv.workloads[w];
        match mode {
            PlanMode::Declared => {
                let none = Labels::new();
                let ns = self.ns_labels.get(&wl.namespace).unwrap_or(&none);
                enrollment::enroll(ns, &wl.labels).dataplane
            }
            _ if !self.meshed_ns.contains(&wl.namespace) => DataPlane::None,
            PlanMode::Sidecar => DataPlane::Sidecar,
            PlanMode::Ambient | PlanMode::AmbientWaypoints => DataPlane::Ambient,
        }
    }

    /// The waypoint (index into the inventory's) a service's traffic goes through, from the
    /// service's labels, else its namespace's (`none` opts out), as Istio reads
    /// `istio.io/use-waypoint`.
    fn waypoint_of(&self, svc: usize) -> Option<usize> {
        let s = &self.inv.services[svc];
        let none = Labels::new();
        let ns_labels = self.ns_labels.get(&s.namespace).unwrap_or(&none);
        let labels = if s.labels.contains_key(USE_WAYPOINT) {
            &s.labels
        } else {
            ns_labels
        };
        let name = labels.get(USE_WAYPOINT).filter(|w| *w != "none")?;
        let ns = labels
            .get(USE_WAYPOINT_NAMESPACE)
            .map_or(s.namespace.as_str(), String::as_str);
        self.inv
            .waypoints
            .iter()
            .position(|w| w.name == *name && w.namespace == ns)
    }

    /// Services (and their endpoints) a sidecar of namespace `ns` is configured for.
    fn sidecar_scope(&self, ns: &str) -> Scope {
        let hosts = self
            .inv
            .namespaces
            .iter()
            .find(|n| n.name == ns)
            .and_then(|n| n.sidecar_egress_hosts.as_ref());
        let admitted = |svc_ns: &str| match hosts {
            None => true,
            Some(hs) => hs.iter().any(|h| match egress_namespace(h) {
                Some(None) => true,
                Some(Some(".")) => svc_ns == ns,
                Some(Some(n)) => svc_ns == n,
                None => false,
            }),
        };
        let mut scope = Scope::default();
        for (i, s) in self.inv.services.iter().enumerate() {
            if admitted(&s.namespace) {
                scope.services += self.ports[i];
                scope.endpoints += self.endpoints[i] * self.ports[i];
            }
        }
        scope
    }

    /// Projects one mode.
    pub fn project(&self, model: &CostModel, mode: PlanMode) -> ModePlan {
        let inv = self.inv;
        let dp: Vec<DataPlane> = (0..inv.workloads.len())
            .map(|w| self.dataplane(w, mode))
            .collect();
        let ambient_any = dp.contains(&DataPlane::Ambient);
        let mut node_sidecars = vec![Cost::default(); self.nodes.len()];
        let mut node_zt_load = vec![(Load::default(), Load::default()); self.nodes.len()];
        // (pods, meshed, ambient) per node.
        let mut node_pods = vec![(0usize, 0usize, 0usize); self.nodes.len()];
        let mut ns_sidecars: BTreeMap<&str, Cost> = BTreeMap::new();
        let mut sidecar_requests = Vec::new();
        let mut sidecars = 0;
        let mut scopes: BTreeMap<&str, Scope> = BTreeMap::new();
        for (w, wl) in inv.workloads.iter().enumerate() {
            let r = wl.replicas.max(1) as f64;
            let per = |l: &(Load, Load), r: f64| (l.0.scale(1.0 / r), l.1.scale(1.0 / r));
            let (out, inn) = (per(&self.out_load[w], r), per(&self.in_load[w], r));
            let (avg, peak) = (out.0 + inn.0, out.1 + inn.1);
            for &n in &self.placement[w] {
                node_pods[n].0 += 1;
                if dp[w] != DataPlane::None {
                    node_pods[n].1 += 1;
                }
                if dp[w] == DataPlane::Ambient {
                    node_pods[n].2 += 1;
                }
            }
            match dp[w] {
                DataPlane::Sidecar => {
                    let scope = *scopes
                        .entry(wl.namespace.as_str())
                        .or_insert_with(|| self.sidecar_scope(&wl.namespace));
                    let one = proxy_cost(&model.sidecar, &avg, &scope);
                    for &n in &self.placement[w] {
                        node_sidecars[n] += one;
                    }
                    *ns_sidecars.entry(wl.namespace.as_str()).or_default() +=
                        scale_cost(one, wl.replicas as f64);
                    sidecars += wl.replicas as usize;
                    sidecar_requests.push(SidecarRequest {
                        workload: format!("{}/{}", wl.namespace, wl.name),
                        replicas: wl.replicas,
                        peak: proxy_cost(&model.sidecar, &peak, &scope),
                    });
                }
                DataPlane::Ambient => {
                    for &n in &self.placement[w] {
                        node_zt_load[n].0 += avg;
                        node_zt_load[n].1 += peak;
                    }
                }
                DataPlane::None => {}
            }
        }
        // ztunnel: a DaemonSet, so on every node once any pod is ambient; it holds every
        // workload and service of the cluster (Istio 1.24 sends ztunnel all of them).
        let zt_scope = Scope {
            services: inv.services.len(),
            endpoints: 0,
            workloads: self.pods(),
        };
        let (zt, zt_peak): (Vec<Option<Cost>>, Vec<Option<Cost>>) = node_zt_load
            .iter()
            .map(|(avg, peak)| {
                if ambient_any {
                    (
                        Some(proxy_cost(&model.ztunnel, avg, &zt_scope)),
                        Some(proxy_cost(&model.ztunnel, peak, &zt_scope)),
                    )
                } else {
                    (None, None)
                }
            })
            .unzip();
        let ztunnel_request = ambient_any.then(|| {
            let hottest = (0..self.nodes.len())
                .max_by(|&a, &b| {
                    let v = |i: usize| zt_peak[i].map_or(0.0, |c| c.vcpu.mid);
                    v(a).total_cmp(&v(b)).then(b.cmp(&a))
                })
                .unwrap_or(0);
            let peaks: Vec<Cost> = zt_peak.iter().flatten().copied().collect();
            let request = peaks.iter().fold(Cost::default(), |a, c| Cost {
                vcpu: a.vcpu.max(c.vcpu),
                mib: a.mib.max(c.mib),
            });
            let over = peaks
                .iter()
                .map(|c| Cost {
                    vcpu: request.vcpu + c.vcpu.scale(-1.0),
                    mib: request.mib + c.mib.scale(-1.0),
                })
                .sum();
            ZtunnelRequest {
                hottest_node: self.nodes[hottest].clone(),
                request,
                nodes: self.nodes.len(),
                over_provisioned: over,
            }
        });
        // Waypoints: the traffic to the services that use them, with ambient destinations.
        let mut wp_load = vec![(Load::default(), Load::default()); inv.waypoints.len()];
        let mut wp_services: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); inv.waypoints.len()];
        if mode.waypoints() {
            let sindex: BTreeMap<(&str, &str), usize> = inv
                .services
                .iter()
                .enumerate()
                .map(|(i, s)| ((s.namespace.as_str(), s.name.as_str()), i))
                .collect();
            for t in &inv.traffic {
                let Some(&svc) = split_ref(&t.to).and_then(|k| sindex.get(&k)) else {
                    continue;
                };
                let ambient_share: f64 = self.backends[svc]
                    .iter()
                    .filter(|(w, _)| dp[*w] == DataPlane::Ambient)
                    .map(|(_, s)| s)
                    .sum();
                let Some(wp) = self.waypoint_of(svc).filter(|_| ambient_share > 0.0) else {
                    continue;
                };
                let kib = (t.request_size.0 + t.response_size.0) as f64 / 1024.0;
                let at = |rps: f64| Load {
                    rps,
                    kib_per_s: rps * kib,
                    connections_per_s: rps / t.requests_per_connection,
                    open_connections: 0.0,
                };
                wp_load[wp].0 += at(t.rps * ambient_share);
                wp_load[wp].1 += at(t.peak() * ambient_share);
            }
            // A waypoint serves a service whose endpoints are ambient in this mode.
            for svc in 0..inv.services.len() {
                let ambient = self.backends[svc]
                    .iter()
                    .any(|(w, _)| dp[*w] == DataPlane::Ambient);
                if let Some(wp) = self.waypoint_of(svc).filter(|_| ambient) {
                    wp_services[wp].insert(svc);
                }
            }
        }
        let waypoints: Vec<WaypointPlan> = inv
            .waypoints
            .iter()
            .enumerate()
            .filter(|(i, _)| mode.waypoints() && !wp_services[*i].is_empty())
            .map(|(i, w)| {
                let scope = Scope {
                    services: wp_services[i].iter().map(|&s| self.ports[s]).sum(),
                    endpoints: wp_services[i]
                        .iter()
                        .map(|&s| self.endpoints[s] * self.ports[s])
                        .sum(),
                    workloads: 0,
                };
                let (avg, peak) = wp_load[i];
                // The work at peak, without the idle share each replica adds.
                let work = |load: &Load, e: End| {
                    proxy_vcpu(&model.waypoint, load).at(e) - model.waypoint.cpu_idle.at(e)
                };
                let capacity = (w.concurrency as f64).min(w.cpu_limit) * (1.0 - WAYPOINT_HEADROOM);
                let replicas_at = |e: End| {
                    let per_replica = capacity - model.waypoint.cpu_idle.at(e);
                    ((work(&peak, e) / per_replica.max(1e-9)).ceil() as u32).max(1)
                };
                let replicas = replicas_at(End::Mid);
                // Replicas split the load; each holds the whole configuration and its idle.
                let per = |load: &Load| load.scale(1.0 / replicas as f64);
                let one = proxy_cost(&model.waypoint, &per(&avg), &scope);
                let request = proxy_cost(&model.waypoint, &per(&peak), &scope);
                WaypointPlan {
                    waypoint: format!("{}/{}", w.namespace, w.name),
                    services: wp_services[i]
                        .iter()
                        .map(|&s| {
                            let s = &inv.services[s];
                            format!("{}/{}", s.namespace, s.name)
                        })
                        .collect(),
                    rps: avg.rps,
                    peak_rps: peak.rps,
                    cost: scale_cost(one, replicas as f64),
                    request,
                    replicas,
                    replicas_high: replicas_at(End::High),
                    concurrency: w.concurrency,
                    cpu_limit: w.cpu_limit,
                }
            })
            .collect();
        let waypoint_replicas = waypoints.iter().map(|w| w.replicas).sum();

        let zt_total: Cost = zt.iter().flatten().copied().sum();
        let sc_total: Cost = node_sidecars.iter().copied().sum();
        let wp_total: Cost = waypoints.iter().map(|w| w.cost).sum();
        let mut by_kind = BTreeMap::new();
        if sidecars > 0 {
            by_kind.insert("sidecar".to_string(), sc_total);
        }
        if ambient_any {
            by_kind.insert("ztunnel".to_string(), zt_total);
        }
        if waypoint_replicas > 0 {
            by_kind.insert("waypoint".to_string(), wp_total);
        }
        let data_plane = sc_total + zt_total + wp_total;
        let ztunnels = if ambient_any { self.nodes.len() } else { 0 };
        let clients = sidecars + ztunnels + waypoint_replicas as usize;
        let control_plane = istiod(model, clients, inv.services.len());

        let requested = {
            let sc: Cost = sidecar_requests
                .iter()
                .map(|r| scale_cost(r.peak, r.replicas as f64))
                .sum();
            let zt = ztunnel_request
                .as_ref()
                .map_or_else(Cost::default, |z| scale_cost(z.request, z.nodes as f64));
            let wp: Cost = waypoints
                .iter()
                .map(|w| scale_cost(w.request, w.replicas as f64))
                .sum();
            sc + zt + wp + control_plane
        };

        let nodes: Vec<NodePlan> = (0..self.nodes.len())
            .map(|n| NodePlan {
                node: self.nodes[n].clone(),
                pods: node_pods[n].0,
                meshed_pods: node_pods[n].1,
                ztunnel: zt[n],
                ztunnel_peak: zt_peak[n],
                sidecars: node_sidecars[n],
                total: node_sidecars[n] + zt[n].unwrap_or_default(),
            })
            .collect();

        // Namespaces: their sidecars, their waypoints, and a derived share of each ztunnel.
        let mut ns_zt: BTreeMap<&str, Cost> = BTreeMap::new();
        if ambient_any {
            for (w, wl) in inv.workloads.iter().enumerate() {
                if dp[w] != DataPlane::Ambient {
                    continue;
                }
                let r = wl.replicas.max(1) as f64;
                let pod_load = (self.out_load[w].0 + self.in_load[w].0).scale(1.0 / r);
                for &n in &self.placement[w] {
                    let (node_load, _) = node_zt_load[n];
                    let z = zt[n].unwrap_or_default();
                    let idle = Band::of(|e| model.ztunnel.cpu_idle.at(e));
                    let busy = z.vcpu + idle.scale(-1.0);
                    let load_share = if node_load.rps > 0.0 {
                        pod_load.rps / node_load.rps
                    } else {
                        0.0
                    };
                    let count_share = 1.0 / node_pods[n].2.max(1) as f64;
                    let share = Cost {
                        vcpu: busy.scale(load_share) + idle.scale(count_share),
                        mib: z.mib.scale(count_share),
                    };
                    *ns_zt.entry(wl.namespace.as_str()).or_default() += share;
                }
            }
        }
        let namespaces = inv
            .namespaces
            .iter()
            .map(|n| {
                let ns = n.name.as_str();
                let (pods, meshed) = inv
                    .workloads
                    .iter()
                    .enumerate()
                    .filter(|(_, w)| w.namespace == ns)
                    .fold((0, 0), |(p, m), (i, w)| {
                        let r = w.replicas as usize;
                        (p + r, m + if dp[i] == DataPlane::None { 0 } else { r })
                    });
                let sidecars = ns_sidecars.get(ns).copied().unwrap_or_default();
                let ztunnel_share = ns_zt.get(ns).copied().unwrap_or_default();
                let wps: Cost = waypoints
                    .iter()
                    .filter(|w| w.waypoint.split('/').next() == Some(ns))
                    .map(|w| w.cost)
                    .sum();
                NamespacePlan {
                    namespace: ns.to_string(),
                    pods,
                    meshed_pods: meshed,
                    sidecars,
                    ztunnel_share,
                    waypoints: wps,
                    total: sidecars + ztunnel_share + wps,
                }
            })
            .collect();

        ModePlan {
            stage: None,
            mode,
            sidecars,
            ztunnels,
            waypoint_replicas,
            by_kind,
            data_plane,
            control_plane,
            total: data_plane + control_plane,
            requested,
            ztunnel_request,
            sidecar_requests,
            waypoints,
            nodes,
            namespaces,
        }
    }
}

fn endpoints_of(backends: &[(usize, f64)], inv: &Inventory) -> usize {
    backends
        .iter()
        .map(|&(i, _)| inv.workloads[i].replicas as usize)
        .sum()
}

fn scale_cost(c: Cost, k: f64) -> Cost {
    Cost {
        vcpu: c.vcpu.scale(k),
        mib: c.mib.scale(k),
    }
}

/// istiod for `clients` xDS clients of a mesh with `services` services, from the published
/// figures the profile cites.
pub fn istiod(model: &CostModel, clients: usize, services: usize) -> Cost {
    let m = &model.istiod;
    if clients == 0 {
        return Cost::default();
    }
    Cost {
        vcpu: Band::of(|e| m.cpu_base.at(e) + clients as f64 * m.cpu_per_proxy.at(e)),
        mib: Band::of(|e| {
            let per_client = m.memory_per_proxy.at(e).0 as f64
                + services as f64 * m.memory_per_proxy_per_service.at(e).0 as f64;
            (m.memory_base.at(e).0 as f64 + clients as f64 * per_client) / MIB
        }),
    }
}
