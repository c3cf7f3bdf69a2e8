//! Faults on a running cluster, each doing the real thing: a proxy's threads and sockets stop
//! (its in-pod listeners close, its connections reset) and start again; a pod's app goes with
//! it; packets between two nodes are dropped by nftables; a noisy neighbour burns cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use scenario::{DataPlane, Fault, FaultKind};

use super::mesh::Wiring;
use super::{Cluster, ClusterError};
use crate::component::{Component, ComponentKind};
use crate::nft;
use crate::topology::addr;

/// What a fault took down, to bring back when it ends.
pub enum Down {
    /// Nothing here to fault in this mode (e.g. a ztunnel restart without ambient pods).
    NotApplicable(String),
    Ztunnel(usize),
    Waypoint(usize),
    Sidecar(usize),
    Pod(PodDown),
    /// The two nodes whose rules drop packets.
    Loss(usize, usize),
    /// The wires delaying or capping the traffic between two nodes, one each way.
    Wires(Vec<crate::wire::Wire>),
    Hog(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>),
    /// Certificate renewal's (renewed, failed, expired) counts when istiod went away.
    Istiod((u64, u64, u64)),
    /// The node's cgroup, and each component's threads moved into it.
    CpuLimit(crate::cgroup::CpuCgroup, Vec<(Arc<Component>, Vec<i32>)>),
    /// A surge: the flow's load client runs it on its own schedule, so the cluster has
    /// nothing to do or undo.
    Load,
}

/// A killed pod.
pub struct PodDown {
    pod: usize,
    app: Option<Arc<Component>>,
    /// It had a sidecar.
    sidecar: bool,
    /// Replaced on a new address: its old one is gone and its endpoint withdrawn; this is the
    /// plan from before (none without a mesh).
    replaced: Option<Option<Arc<crate::mesh::control::MeshPlan>>>,
}

const LOSS_TABLE: &str = "meshsim-fault-loss";

/// Drops `percent` of the packets this node forwards to (or sends to) the other node's pods
/// or its own address: both directions are covered by the rules on both nodes.
fn loss_rules(other: usize, percent: f64) -> String {
    let (net, len) = addr::pod_cidr(other);
    // Per mille, so fractional percents (0.5%) keep their meaning.
    let per_mille = (percent * 10.0).round() as u32;
    let ip = addr::node_ip(other);
    format!(
        "table ip {LOSS_TABLE} {{
  chain forward {{
    type filter hook forward priority 0; policy accept;
    ip daddr {{ {net}/{len}, {ip} }} numgen random mod 1000 < {per_mille} drop
  }}
  chain output {{
    type filter hook output priority 0; policy accept;
    ip daddr {{ {net}/{len}, {ip} }} numgen random mod 1000 < {per_mille} drop
  }}
}}
"
    )
}

impl Cluster {
    fn node_index(&self, name: &str) -> Option<usize> {
        self.topology.nodes.iter().position(|n| n.name == name)
    }

    fn pod_index(&self, name: &str) -> Option<usize> {
        self.topology.pods.iter().position(|p| p.name == name)
    }

    fn has_proxy(&self, kind: ComponentKind, pod: Option<usize>, name: Option<&str>) -> bool {
        self.proxies.iter().any(|p| {
            p.component.kind == kind
                && pod.is_none_or(|i| p.pod == Some(i))
                && name.is_none_or(|n| p.component.name == n)
        })
    }

    /// A proxy waiting for istiod answers its readiness port as the real one does: ztunnel
    /// with its xDS task pending (its "state manager" blocks readiness until the first push,
    /// istio/ztunnel src/app.rs), an Envoy's pilot-agent with no configuration received
    /// (pilot/cmd/pilot-agent/status/ready/probe.go).
    fn serve_unready(&mut self, down: &Down) -> Result<(), ClusterError> {
        let envoy = || {
            (
                hyper::StatusCode::SERVICE_UNAVAILABLE,
                "config not received from XDS server (is Istiod running?): cds updates: 0 successful, 0 rejected; lds updates: 0 successful, 0 rejected\n",
            )
        };
        let (ns, (status, why)) = match down {
            Down::Ztunnel(n) => (
                self.topology.nodes[*n].ns.clone(),
                (
                    hyper::StatusCode::INTERNAL_SERVER_ERROR,
                    "not ready, pending: state manager\n",
                ),
            ),
            Down::Waypoint(k) => {
                let Some(pod) = self.mesh.as_ref().map(|m| m.waypoints[*k].workload) else {
                    return Ok(());
                };
                (self.topology.pods[pod].ns.clone(), envoy())
            }
            Down::Sidecar(i) | Down::Pod(PodDown { pod: i, .. }) => {
                (self.topology.pods[*i].ns.clone(), envoy())
            }
            _ => return Ok(()),
        };
        let r =
            crate::proxy::admin::NotReady::serve(&ns, status, why.into()).map_err(|source| {
                ClusterError::Proxy {
                    what: "a waiting proxy's readiness port".into(),
                    source,
                }
            })?;
        self.unready.push(r);
        Ok(())
    }

    fn rotation_counts(&self) -> (u64, u64, u64) {
        self.rotator
            .as_ref()
            .map_or((0, 0, 0), |r| r.stats.snapshot())
    }

    /// Starts a fault: what it stops stops now.
    pub fn fault_down(&mut self, f: &Fault) -> Result<Down, ClusterError> {
        let na = |why: String| Ok(Down::NotApplicable(why));
        match f.kind {
            FaultKind::ZtunnelRestart => {
                let node = f.node.as_deref().unwrap_or_default();
                let name = format!("ztunnel-{node}");
                let Some(n) = self.node_index(node) else {
                    return na(format!("no node {node}"));
                };
                if !self.has_proxy(ComponentKind::Ztunnel, None, Some(&name)) {
                    return na(format!("no ztunnel runs on {node} in this mode"));
                }
                self.stop_proxy(|p| p.component.name == name);
                Ok(Down::Ztunnel(n))
            }
            FaultKind::WaypointRestart => {
                let name = f.waypoint.as_deref().unwrap_or_default();
                let Some(k) = self.mesh.as_ref().and_then(|m| {
                    m.waypoints
                        .iter()
                        .position(|w| w.deployed && w.decl.name == name)
                }) else {
                    return na(format!("no waypoint {name} in this mode"));
                };
                let pod = self.mesh.as_ref().map(|m| m.waypoints[k].workload);
                self.stop_proxy(|p| p.component.kind == ComponentKind::Waypoint && p.pod == pod);
                Ok(Down::Waypoint(k))
            }
            FaultKind::SidecarCrash => {
                let pod = f.pod.as_deref().unwrap_or_default();
                let Some(i) = self.pod_index(pod) else {
                    return na(format!("no pod {pod}"));
                };
                if !self.has_proxy(ComponentKind::Sidecar, Some(i), None) {
                    return na(format!("{pod} has no sidecar in this mode"));
                }
                self.stop_proxy(|p| p.component.kind == ComponentKind::Sidecar && p.pod == Some(i));
                Ok(Down::Sidecar(i))
            }
            FaultKind::PodRestart => {
                let pod = f.pod.as_deref().unwrap_or_default();
                let Some(i) = self.pod_index(pod) else {
                    return na(format!("no pod {pod}"));
                };
                let sidecar = self.has_proxy(ComponentKind::Sidecar, Some(i), None);
                if sidecar {
                    self.stop_proxy(|p| {
                        p.component.kind == ComponentKind::Sidecar && p.pod == Some(i)
                    });
                }
                let app = self.stop_app(pod);
                let replaced = if f.new_ip {
                    Some(self.release_pod(i)?)
                } else {
                    None
                };
                Ok(Down::Pod(PodDown {
                    pod: i,
                    app,
                    sidecar,
                    replaced,
                }))
            }
            FaultKind::LinkLoss => {
                let ends: Vec<Option<usize>> = f.nodes.iter().map(|n| self.node_index(n)).collect();
                let [Some(a), Some(b)] = ends[..] else {
                    return na(format!("nodes {} not found", f.nodes.join(", ")));
                };
                let percent = f.percent.unwrap_or(0.0);
                nft::apply(&self.topology.nodes[a].ns, &loss_rules(b, percent))?;
                nft::apply(&self.topology.nodes[b].ns, &loss_rules(a, percent))?;
                Ok(Down::Loss(a, b))
            }
            FaultKind::LinkDelay | FaultKind::LinkBandwidth => {
                let ends: Vec<Option<usize>> = f.nodes.iter().map(|n| self.node_index(n)).collect();
                let [Some(a), Some(b)] = ends[..] else {
                    return na(format!("nodes {} not found", f.nodes.join(", ")));
                };
                // The jitter's generator is seeded from the fault itself: the same fault
                // jitters the same way in every run.
                let seed = f.label().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                });
                let shape = |k: u64| crate::wire::Shape {
                    delay: f.delay.map_or(std::time::Duration::ZERO, |d| d.0),
                    jitter: f.jitter.map_or(std::time::Duration::ZERO, |d| d.0),
                    bandwidth: f.bandwidth.map(|b| b.0),
                    seed: seed ^ k,
                };
                let nodes = &self.topology.nodes;
                let first = crate::wire::Wire::start(nodes[a].ns.clone(), a, b, shape(1))
                    .map_err(ClusterError::Wire)?;
                let second = crate::wire::Wire::start(nodes[b].ns.clone(), b, a, shape(2))
                    .map_err(ClusterError::Wire)?;
                Ok(Down::Wires(vec![first, second]))
            }
            FaultKind::CpuLimit => {
                let node = f.node.as_deref().unwrap_or_default();
                let Some(n) = self.node_index(node) else {
                    return na(format!("no node {node}"));
                };
                if !self.sandbox.is_real_root() {
                    return na("a CPU quota needs cgroups, which need real root".into());
                }
                let millis = f
                    .cpu
                    .as_deref()
                    .map(scenario::manifest::parse_cpu)
                    .and_then(Result::ok)
                    .unwrap_or(1000);
                let group = crate::cgroup::CpuCgroup::create(&format!("node-{node}"), millis)
                    .map_err(|source| ClusterError::Proxy {
                        what: format!("the CPU quota of {node}"),
                        source,
                    })?;
                // Everything that runs on the node: its ztunnel, its pods' apps, proxies and
                // load clients.
                let on_node = |ns: &crate::netns::NetNsRef| {
                    Arc::ptr_eq(ns, &self.topology.nodes[n].ns)
                        || self
                            .topology
                            .pods
                            .iter()
                            .any(|p| p.node == n && Arc::ptr_eq(ns, &p.ns))
                };
                let mut moved = Vec::new();
                for c in self.components.iter().filter(|c| on_node(&c.netns)) {
                    let tids: Vec<i32> = c
                        .threads()
                        .into_iter()
                        .filter(|&t| group.add_thread(t).is_ok())
                        .collect();
                    moved.push((c.clone(), tids));
                }
                Ok(Down::CpuLimit(group, moved))
            }
            FaultKind::LoadSurge => Ok(Down::Load),
            FaultKind::IstiodUnavailable => {
                self.istiod_down.store(true, Ordering::Relaxed);
                Ok(Down::Istiod(self.rotation_counts()))
            }
            FaultKind::CpuHog => {
                let stop = Arc::new(AtomicBool::new(false));
                let mut threads = Vec::new();
                for k in 0..f.cores.unwrap_or(1) {
                    let stop = stop.clone();
                    let t = std::thread::Builder::new()
                        .name(format!("cpu-hog-{k}"))
                        .spawn(move || {
                            // A neighbour's work: the loop the scheduler must share cores with.
                            let mut x = 0u64;
                            while !stop.load(Ordering::Relaxed) {
                                for _ in 0..10_000 {
                                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                                }
                            }
                        })
                        .map_err(|source| ClusterError::Proxy {
                            what: "the CPU hog".into(),
                            source,
                        })?;
                    threads.push(t);
                }
                Ok(Down::Hog(stop, threads))
            }
        }
    }

    /// Ends a fault: what it stopped starts again (with the mesh's current plan). Returns a
    /// note of what else it did, measured: a link wire's cost, a quota's throttling, starts
    /// that waited for istiod, failed certificate renewals, a replaced pod's new address.
    pub fn fault_up(&mut self, mut down: Down) -> Result<Option<String>, ClusterError> {
        // A proxy starting without istiod has no configuration and no certificate: ztunnel
        // stays unready until its first xDS push is acknowledged (istio/ztunnel
        // src/xds/client.rs, `block_ready` is dropped once every expected type arrived), and
        // an Envoy has no listeners. It serves once istiod is back.
        if self.istiod_down.load(Ordering::Relaxed)
            && matches!(
                down,
                Down::Ztunnel(_)
                    | Down::Waypoint(_)
                    | Down::Sidecar(_)
                    | Down::Pod(PodDown { sidecar: true, .. })
            )
        {
            self.serve_unready(&down)?;
            self.waiting_for_istiod.push(down);
            return Ok(Some(
                "its proxy waited for istiod (no configuration or certificate while it was down)"
                    .into(),
            ));
        }
        if let Down::Istiod(before) = down {
            self.istiod_down.store(false, Ordering::Relaxed);
            // Their readiness ports go to the proxies themselves.
            self.unready.clear();
            let waiting = std::mem::take(&mut self.waiting_for_istiod);
            let n = waiting.len();
            for d in waiting {
                self.fault_up(d)?;
            }
            let mut notes = Vec::new();
            if n > 0 {
                notes.push(format!("{n} proxy start(s) had waited for istiod"));
            }
            let (_, failed, expired) = self.rotation_counts();
            let (failed, expired) = (failed - before.1, expired - before.2);
            if failed > 0 {
                notes.push(format!(
                    "{failed} certificate renewal(s) failed meanwhile, {expired} certificate(s) expired (new mTLS handshakes presenting them failed until renewed)"
                ));
            }
            return Ok((!notes.is_empty()).then(|| notes.join("; ")));
        }
        // A replacement pod: its new address and istiod's push come before its app starts.
        let mut moved = None;
        if let Down::Pod(PodDown {
            pod,
            ref mut replaced,
            ..
        }) = down
            && let Some(before) = replaced.take()
        {
            let was = self.topology.pods[pod].ip;
            let now = self.replace_pod(pod, before)?;
            moved = Some(format!(
                "{} came back on {now} (was {was})",
                self.topology.pods[pod].name
            ));
        }
        let Some(plan) = self.mesh.clone() else {
            return match down {
                Down::Pod(p) => self.restart_pod_app(p.pod, p.app).map(|()| moved),
                other => self.end_environmental(other),
            };
        };
        let proxies = self.proxies_settings.clone();
        let wiring = Wiring {
            cluster: self,
            plan: &plan,
            proxies: &proxies,
            enforce: self.sandbox.is_real_root(),
        };
        match down {
            Down::Ztunnel(n) => {
                let (s, h) = wiring.ztunnel(n, true)?;
                self.adopt(s)?;
                if let Some(slot) = self.ztunnels.get_mut(n) {
                    *slot = h;
                }
            }
            Down::Waypoint(k) => {
                let s = wiring.waypoint(k)?;
                self.adopt(s)?;
            }
            Down::Sidecar(i) => {
                let s = wiring.sidecar(i)?;
                self.adopt(s)?;
            }
            Down::Pod(PodDown {
                pod: i,
                app,
                sidecar,
                ..
            }) => {
                self.restart_pod_app(i, app)?;
                if sidecar && plan.workloads[i].dataplane() == DataPlane::Sidecar {
                    let wiring = Wiring {
                        cluster: self,
                        plan: &plan,
                        proxies: &proxies,
                        enforce: self.sandbox.is_real_root(),
                    };
                    let s = wiring.sidecar(i)?;
                    self.adopt(s)?;
                }
            }
            other => return self.end_environmental(other),
        }
        Ok(moved)
    }

    fn restart_pod_app(
        &mut self,
        i: usize,
        app: Option<Arc<Component>>,
    ) -> Result<(), ClusterError> {
        match app {
            Some(c) => {
                let p = self.topology.spec.pods[i].clone();
                self.start_app(&p, c)
            }
            None => Ok(()),
        }
    }

    fn end_environmental(&mut self, down: Down) -> Result<Option<String>, ClusterError> {
        match down {
            Down::Loss(a, b) => {
                let del = format!("delete table ip {LOSS_TABLE}\n");
                nft::apply(&self.topology.nodes[a].ns, &del)?;
                nft::apply(&self.topology.nodes[b].ns, &del)?;
            }
            Down::Wires(wires) => {
                let mut total = crate::wire::WireStats::default();
                for w in wires {
                    let s = w.stop().map_err(ClusterError::Wire)?;
                    total.packets += s.packets;
                    total.bytes += s.bytes;
                    total.cpu_ns += s.cpu_ns;
                }
                tracing::info!(
                    packets = total.packets,
                    cpu_ns = total.cpu_ns,
                    "link wires removed"
                );
                return Ok(Some(format!(
                    "the wire itself (measured): {} packets, {:.1} ms CPU",
                    total.packets,
                    total.cpu_ns as f64 / 1e6
                )));
            }
            Down::CpuLimit(group, moved) => {
                let (periods, time) = group.throttled();
                // Threads with a quota of their own go back to it; the rest stay in the
                // node's group, now unlimited (a group is removed only once it is empty).
                let _ = group.unlimit();
                for (c, tids) in moved {
                    for t in tids {
                        c.rejoin_own_cgroup(t);
                    }
                }
                self.spent_cgroups.push(group);
                return Ok(Some(format!(
                    "the quota throttled the node in {periods} period(s) of 100 ms, {:.0} ms in all (the kernel's cpu.stat)",
                    time.as_secs_f64() * 1e3
                )));
            }
            Down::Hog(stop, threads) => {
                stop.store(true, Ordering::Relaxed);
                for t in threads {
                    let _ = t.join();
                }
            }
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_rules_drop_the_share_asked_to_the_other_nodes_pods_and_address() {
        let r = loss_rules(1, 5.0);
        assert!(
            r.contains("ip daddr { 10.2.0.0/16, 10.255.0.2 } numgen random mod 1000 < 50 drop"),
            "{r}"
        );
        assert!(loss_rules(0, 0.5).contains("< 5 drop"));
    }
}
