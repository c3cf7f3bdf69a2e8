//! Wiring a mesh mode's proxies into a cluster that is up: the control plane's plan, the
//! in-pod capture rules, then the sidecars (one per pod), or the ztunnels (one per node) and
//! waypoints, each with its admin ports.

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;

use scenario::{DataPlane, Loaded, Mode, ProxySettings};

use super::{Cluster, ClusterError};
use crate::component::{Component, ComponentKind, ComponentRuntime};
use crate::mesh::control::{MeshPlan, WaypointDecl};
use crate::nft;
use crate::proxy::admin::{self, MetricsSource};
use crate::proxy::cost::Burner;
use crate::proxy::telemetry::ProxyMetrics;
use crate::proxy::{capture, sidecar, waypoint, ztunnel};
use crate::topology::ClusterSpec;

/// A proxy just started: what the cluster keeps of it.
struct Started {
    component: Arc<Component>,
    runtime: ComponentRuntime,
    burner: Arc<Burner>,
    metrics: Arc<ProxyMetrics>,
    /// The labels that name it in merged metrics.
    labels: Vec<(&'static str, String)>,
    /// The admin ports it serves in its namespace.
    admin_ports: Vec<u16>,
}

fn proxy_err(what: String) -> impl FnOnce(io::Error) -> ClusterError {
    move |source| ClusterError::Proxy { what, source }
}

fn cpu_limit(s: &ProxySettings) -> Option<u32> {
    s.cpu_limit
        .as_deref()
        .and_then(|c| scenario::manifest::parse_cpu(c).ok())
}

/// Who starts the proxies: the plan, and whether CPU limits can be enforced.
struct Wiring<'a> {
    cluster: &'a Cluster,
    plan: &'a Arc<MeshPlan>,
    proxies: &'a scenario::Proxies,
    enforce: bool,
}

impl Wiring<'_> {
    fn sidecars(&self) -> Result<Vec<Started>, ClusterError> {
        let mut out = Vec::new();
        let pods = self.plan.workloads.iter().zip(&self.cluster.topology.pods);
        for (i, (w, pod)) in pods.enumerate() {
            if w.dataplane() != DataPlane::Sidecar {
                continue;
            }
            let c = Component::with_limit(
                format!("sidecar-{}", w.pod),
                ComponentKind::Sidecar,
                pod.ns.clone(),
                cpu_limit(&self.proxies.sidecar),
                self.enforce,
            );
            let m = Arc::new(ProxyMetrics::for_component("proxy"));
            let workers = self.proxies.sidecar.concurrency() as usize;
            let (rt, b) = sidecar::start(&c, self.plan.clone(), i, workers, m.clone())
                .map_err(proxy_err(format!("sidecar of {}", w.pod)))?;
            out.push(Started {
                component: c,
                runtime: rt,
                burner: b,
                metrics: m,
                labels: vec![
                    ("proxy", "sidecar".to_string()),
                    ("pod", w.pod.clone()),
                    ("namespace", w.namespace.clone()),
                ],
                admin_ports: vec![capture::METRICS_PORT],
            });
        }
        Ok(out)
    }

    fn ztunnels(&self, spec: &ClusterSpec) -> Result<Vec<Started>, ClusterError> {
        let mut out = Vec::new();
        for (n, node) in spec.nodes.iter().enumerate() {
            let pods: Vec<(usize, crate::netns::NetNsRef)> = self
                .plan
                .workloads
                .iter()
                .zip(&self.cluster.topology.pods)
                .enumerate()
                .filter(|(_, (w, _))| w.node == n && w.dataplane() == DataPlane::Ambient)
                .map(|(i, (_, p))| (i, p.ns.clone()))
                .collect();
            let name = format!("ztunnel-{}", node.name);
            let c = Component::with_limit(
                name.clone(),
                ComponentKind::Ztunnel,
                self.cluster.topology.nodes[n].ns.clone(),
                cpu_limit(&self.proxies.ztunnel),
                self.enforce,
            );
            let m = Arc::new(ProxyMetrics::for_component("ztunnel"));
            let workers = self.proxies.ztunnel.concurrency() as usize;
            let (rt, b) = ztunnel::start(&c, self.plan.clone(), pods, workers, m.clone())
                .map_err(proxy_err(format!("ztunnel of {}", node.name)))?;
            out.push(Started {
                component: c,
                runtime: rt,
                burner: b,
                metrics: m,
                labels: vec![
                    ("proxy", "ztunnel".to_string()),
                    ("pod", name),
                    ("namespace", "istio-system".to_string()),
                ],
                admin_ports: vec![capture::METRICS_PORT, capture::READY_PORT],
            });
        }
        Ok(out)
    }

    fn waypoints(&self) -> Result<Vec<Started>, ClusterError> {
        let mut out = Vec::new();
        for (k, wp) in self.plan.waypoints.iter().enumerate() {
            let pod = &self.cluster.topology.pods[wp.workload];
            let c = Component::with_limit(
                wp.decl.pod.clone(),
                ComponentKind::Waypoint,
                pod.ns.clone(),
                wp.decl.cpu_limit_millis,
                self.enforce,
            );
            let m = Arc::new(ProxyMetrics::for_component("proxy"));
            let (rt, b) = waypoint::start(&c, self.plan.clone(), k, m.clone())
                .map_err(proxy_err(format!("waypoint {}", wp.decl.name)))?;
            out.push(Started {
                component: c,
                runtime: rt,
                burner: b,
                metrics: m,
                labels: vec![
                    ("proxy", "waypoint".to_string()),
                    ("pod", wp.decl.pod.clone()),
                    ("namespace", wp.decl.namespace.clone()),
                ],
                admin_ports: vec![capture::METRICS_PORT],
            });
        }
        Ok(out)
    }
}

impl Cluster {
    /// Starts the data plane of `mode` (not no-mesh) on a cluster whose apps are up.
    pub(super) fn start_mesh(
        &mut self,
        loaded: &Loaded,
        mode: Mode,
        profile: &scenario::profile::Profile,
        spec: &ClusterSpec,
        decls: &[WaypointDecl],
        enforce: bool,
    ) -> Result<(), ClusterError> {
        let plan = MeshPlan::build(loaded, mode, profile, spec, &self.topology, decls)?;
        let capture_rules = capture::rules();
        // Sidecar and ambient pods are captured alike (istio-init / istio-cni in-pod rules);
        // a pod out of the mesh, or a waypoint, is not.
        for (w, pod) in plan.workloads.iter().zip(&self.topology.pods) {
            if w.dataplane() != DataPlane::None {
                nft::apply(&pod.ns, &capture_rules)?;
            }
        }
        let wiring = Wiring {
            cluster: self,
            plan: &plan,
            proxies: &loaded.scenario.proxies,
            enforce,
        };
        // Each pod gets the data plane its enrollment says; ztunnel runs on every node (a
        // DaemonSet) as soon as one pod is ambient.
        let mut started = wiring.sidecars()?;
        if plan.runs_ztunnel() {
            started.extend(wiring.ztunnels(spec)?);
        }
        started.extend(wiring.waypoints()?);
        for s in started {
            self.adopt(s)?;
        }
        self.mesh = Some(plan);
        Ok(())
    }

    /// Serves a started proxy's admin ports in its namespace and keeps it.
    fn adopt(&mut self, s: Started) -> Result<(), ClusterError> {
        let source = MetricsSource {
            labels: s.labels,
            metrics: s.metrics,
        };
        let own = Arc::new(vec![source.clone()]);
        for port in s.admin_ports {
            let l =
                s.runtime
                    .run(async move {
                        tokio::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await
                    })
                    .map_err(proxy_err(format!(
                        "admin port {port} of {}",
                        s.component.name
                    )))?;
            s.runtime.spawn(admin::serve(l, own.clone()));
        }
        self.metrics.push(source);
        self.burners.push(s.burner);
        self.components.push(s.component);
        self.runtimes.push(s.runtime);
        Ok(())
    }
}
