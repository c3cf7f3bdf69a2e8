//! Wiring a mesh mode's proxies into a cluster that is up: the control plane's plan, the
//! in-pod capture rules, then the sidecars (one per pod), or the ztunnels (one per node) and
//! waypoints, each with its admin ports. A migration stage changes them live
//! ([`Cluster::apply_stage`]): a new plan pushed to every running proxy, waypoints deployed
//! or removed, pods handed to ztunnel, sidecars removed by restarts.

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use scenario::{DataPlane, Loaded, Mode, ProxySettings};

use super::{Cluster, ClusterError};
use crate::component::{Component, ComponentKind, ComponentRuntime};
use crate::mesh::control::{MeshPlan, WaypointDecl};
use crate::nft;
use crate::proxy::access_log::AccessLog;
use crate::proxy::admin::{self, MetricsSource};
use crate::proxy::cost::Burner;
use crate::proxy::telemetry::ProxyMetrics;
use crate::proxy::ztunnel::ZtunnelHandle;
use crate::proxy::{Reconfigure, capture, sidecar, waypoint, ztunnel};
use crate::topology::ClusterSpec;

/// A proxy just started: what the cluster keeps of it.
pub(super) struct Started {
    component: Arc<Component>,
    runtime: ComponentRuntime,
    burner: Arc<Burner>,
    metrics: Arc<ProxyMetrics>,
    /// The labels that name it in merged metrics.
    labels: Vec<(&'static str, String)>,
    /// The admin ports it serves in its namespace.
    admin_ports: Vec<u16>,
    control: Arc<dyn Reconfigure>,
    /// The workload index of its pod (a sidecar's or a waypoint's).
    pod: Option<usize>,
}

/// A running proxy, as the cluster reconfigures or stops it.
pub(super) struct RunningProxy {
    pub component: Arc<Component>,
    burner: Arc<Burner>,
    metrics: Arc<ProxyMetrics>,
    control: Arc<dyn Reconfigure>,
    pub pod: Option<usize>,
}

/// What a live cluster needs to take a migration's stages: every waypoint any stage deploys
/// (their pods exist from the start, so indices stay put), and whether CPU limits apply.
pub(super) struct Staging {
    pub decls: Vec<WaypointDecl>,
    pub enforce: bool,
}

/// What one stage did to the running cluster.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StageApplied {
    /// Pods whose data plane changed: (pod, from, to).
    pub moved: Vec<(String, DataPlane, DataPlane)>,
    /// Pods restarted (their app, and their sidecar removed or added).
    pub restarted: Vec<String>,
    pub waypoints_deployed: Vec<String>,
    pub waypoints_removed: Vec<String>,
    /// ztunnel started on every node (the first ambient pod).
    pub ztunnels_started: bool,
    /// Wall time the changes took, seconds.
    pub took_s: f64,
}

impl StageApplied {
    /// One line per change, for run.json and the report.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.ztunnels_started {
            out.push("ztunnel started on every node".to_string());
        }
        out.extend(
            self.waypoints_deployed
                .iter()
                .map(|w| format!("waypoint {w} deployed")),
        );
        out.extend(self.moved.iter().map(|(p, a, b)| format!("{p}: {a} → {b}")));
        out.extend(self.restarted.iter().map(|p| format!("{p} restarted")));
        out.extend(
            self.waypoints_removed
                .iter()
                .map(|w| format!("waypoint {w} removed")),
        );
        if out.is_empty() {
            out.push("configuration pushed (no pod changed its data plane)".to_string());
        }
        out
    }
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
pub(super) struct Wiring<'a> {
    pub cluster: &'a Cluster,
    pub plan: &'a Arc<MeshPlan>,
    pub proxies: &'a scenario::Proxies,
    pub enforce: bool,
}

impl Wiring<'_> {
    /// The component of a proxy: the one it ran as before when it is restarted (so its CPU
    /// and memory stay one series), a new one otherwise.
    fn component(
        &self,
        name: String,
        kind: ComponentKind,
        ns: crate::netns::NetNsRef,
        limit: Option<u32>,
    ) -> Arc<Component> {
        match self.cluster.stopped.iter().find(|c| c.name == name) {
            Some(c) => c.clone(),
            None => Component::with_limit(name, kind, ns, limit, self.enforce),
        }
    }

    /// An Envoy-based proxy's access log, when the mesh config turns them on.
    fn envoy_log(&self, name: &str) -> Option<Arc<AccessLog>> {
        self.cluster
            .mesh_config
            .envoy_access_log()
            .then(|| self.cluster.access_log(name))
    }

    pub(super) fn sidecar(&self, i: usize) -> Result<Started, ClusterError> {
        let w = &self.plan.workloads[i];
        let pod = &self.cluster.topology.pods[i];
        let c = self.component(
            format!("sidecar-{}", w.pod),
            ComponentKind::Sidecar,
            pod.ns.clone(),
            cpu_limit(&self.proxies.sidecar),
        );
        let m = Arc::new(ProxyMetrics::for_component("proxy"));
        let workers = self.proxies.sidecar.concurrency() as usize;
        let log = self.envoy_log(&c.name);
        let (rt, b, control) = sidecar::start(&c, self.plan.clone(), i, workers, (m.clone(), log))
            .map_err(proxy_err(format!("sidecar of {}", w.pod)))?;
        Ok(Started {
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
            control,
            pod: Some(i),
        })
    }

    fn sidecars(&self) -> Result<Vec<Started>, ClusterError> {
        (0..self.plan.workloads.len())
            .filter(|&i| self.plan.workloads[i].dataplane() == DataPlane::Sidecar)
            .map(|i| self.sidecar(i))
            .collect()
    }

    /// One ztunnel per node (a DaemonSet), each serving its node's ambient pods (or none yet:
    /// a stage hands them over one by one, as their sidecars go).
    fn ztunnels(
        &self,
        with_pods: bool,
    ) -> Result<Vec<(Started, Arc<ZtunnelHandle>)>, ClusterError> {
        (0..self.cluster.topology.nodes.len())
            .map(|n| self.ztunnel(n, with_pods))
            .collect()
    }

    pub(super) fn ztunnel(
        &self,
        n: usize,
        with_pods: bool,
    ) -> Result<(Started, Arc<ZtunnelHandle>), ClusterError> {
        let node = &self.cluster.topology.nodes[n];
        let pods: Vec<(usize, crate::netns::NetNsRef)> = self
            .plan
            .workloads
            .iter()
            .zip(&self.cluster.topology.pods)
            .enumerate()
            .filter(|(_, (w, _))| with_pods && w.node == n && w.dataplane() == DataPlane::Ambient)
            .map(|(i, (_, p))| (i, p.ns.clone()))
            .collect();
        let name = format!("ztunnel-{}", node.name);
        let c = self.component(
            name.clone(),
            ComponentKind::Ztunnel,
            node.ns.clone(),
            cpu_limit(&self.proxies.ztunnel),
        );
        let m = Arc::new(ProxyMetrics::for_component("ztunnel"));
        let workers = self.proxies.ztunnel.concurrency() as usize;
        let log = self.cluster.access_log(&name);
        let (rt, b, handle) =
            ztunnel::start(&c, self.plan.clone(), pods, workers, (m.clone(), log))
                .map_err(proxy_err(format!("ztunnel of {}", node.name)))?;
        let started = Started {
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
            control: handle.clone(),
            pod: None,
        };
        Ok((started, handle))
    }

    pub(super) fn waypoint(&self, k: usize) -> Result<Started, ClusterError> {
        let wp = &self.plan.waypoints[k];
        let pod = &self.cluster.topology.pods[wp.workload];
        let c = self.component(
            wp.decl.pod.clone(),
            ComponentKind::Waypoint,
            pod.ns.clone(),
            wp.decl.cpu_limit_millis,
        );
        let m = Arc::new(ProxyMetrics::for_component("proxy"));
        let log = self.envoy_log(&c.name);
        let (rt, b, control) = waypoint::start(&c, self.plan.clone(), k, (m.clone(), log))
            .map_err(proxy_err(format!("waypoint {}", wp.decl.name)))?;
        Ok(Started {
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
            control,
            pod: Some(wp.workload),
        })
    }

    fn waypoints(&self) -> Result<Vec<Started>, ClusterError> {
        (0..self.plan.waypoints.len())
            .filter(|&k| self.plan.waypoints[k].deployed)
            .map(|k| self.waypoint(k))
            .collect()
    }
}

impl Cluster {
    /// A proxy's access log (the one it wrote before, when it is restarted), writing to the
    /// cluster's log directory when it has one.
    pub(super) fn access_log(&self, name: &str) -> Arc<AccessLog> {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = logs.get(name) {
            return l.clone();
        }
        let l = AccessLog::new();
        if let Some(dir) = &self.log_dir
            && let Err(e) = l.to_file(&dir.join(format!("{name}.log")))
        {
            tracing::warn!(error = %e, proxy = name, "cannot write the access log file; keeping it in memory only");
        }
        logs.insert(name.to_string(), l.clone());
        l
    }

    /// Writes every proxy's access log under `dir` (`<component>.log`), those started later
    /// too.
    pub fn log_to(&mut self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (name, l) in self.logs.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            l.to_file(&dir.join(format!("{name}.log")))?;
        }
        self.log_dir = Some(dir.to_path_buf());
        Ok(())
    }

    /// Flushes every access log to its file.
    pub fn flush_logs(&self) {
        for l in self.logs.lock().unwrap_or_else(|e| e.into_inner()).values() {
            l.flush();
        }
    }

    /// Starts the data plane of `mode` (not no-mesh) on a cluster whose apps are up. Of
    /// `decls`, the `deployed` ones run; the others are a later migration stage's.
    pub(super) fn start_mesh(
        &mut self,
        loaded: &Loaded,
        mode: Mode,
        profile: &scenario::profile::Profile,
        spec: &ClusterSpec,
        (decls, deployed): (&[WaypointDecl], &[bool]),
        enforce: bool,
    ) -> Result<(), ClusterError> {
        let plan = MeshPlan::build(loaded, mode, profile, spec, &self.topology, decls, deployed)?;
        self.mesh_config = loaded.scenario.mesh_config.clone();
        // Sidecar and ambient pods are captured alike (istio-init / istio-cni in-pod rules);
        // a pod out of the mesh, or a waypoint, is not.
        for (w, pod) in plan.workloads.iter().zip(&self.topology.pods) {
            if w.dataplane() != DataPlane::None {
                nft::apply(&pod.ns, &capture::rules())?;
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
        let mut ztunnels = Vec::new();
        if plan.runs_ztunnel() {
            for (s, h) in wiring.ztunnels(true)? {
                started.push(s);
                ztunnels.push(h);
            }
        }
        started.extend(wiring.waypoints()?);
        for s in started {
            self.adopt(s)?;
        }
        self.ztunnels = ztunnels;
        // At Istio's default TTL (24 h) nothing renews within a run; a scenario that sets its
        // own gets renewal, and so expiry when istiod stays away long enough.
        if loaded.scenario.mesh_config.workload_cert_ttl.is_some() {
            let mut seen = std::collections::BTreeSet::new();
            let certs = plan
                .workloads
                .iter()
                .filter(|w| seen.insert(w.identity.to_string()))
                .map(|w| w.cert.clone())
                .collect();
            let r = crate::mesh::rotation::Rotator::start(
                plan.ca.clone(),
                certs,
                self.istiod_down.clone(),
            )
            .map_err(|source| ClusterError::Proxy {
                what: "certificate renewal".into(),
                source,
            })?;
            self.rotator = Some(r);
        }
        for p in &self.proxies {
            size_config(p, &plan);
        }
        self.mesh = Some(plan);
        self.proxies_settings = loaded.scenario.proxies.clone();
        Ok(())
    }

    /// The current plan (none out of the mesh) and each running proxy as (component name,
    /// kind, its pod, its node): what [`crate::structure::of`] describes.
    #[allow(clippy::type_complexity)]
    pub fn proxies_in_plan(
        &self,
    ) -> Option<(
        Arc<MeshPlan>,
        Vec<(String, ComponentKind, Option<usize>, Option<usize>)>,
    )> {
        let plan = self.mesh.clone()?;
        let proxies = self
            .proxies
            .iter()
            .map(|p| {
                let node = self
                    .topology
                    .nodes
                    .iter()
                    .position(|n| Arc::ptr_eq(&n.ns, &p.component.netns));
                (p.component.name.clone(), p.component.kind, p.pod, node)
            })
            .collect();
        Some((plan, proxies))
    }

    /// istiod's push: every running proxy takes the new plan.
    pub(super) fn push_plan(&mut self, plan: Arc<MeshPlan>) {
        for p in &self.proxies {
            p.control.reconfigure(&plan);
            size_config(p, &plan);
        }
        self.mesh = Some(plan);
    }

    /// Applies migration stage `stage` of `base` (the scenario as written) to this running
    /// cluster, the way Istio applies it: istiod pushes the new configuration to every proxy;
    /// a waypoint the stage deploys is up before anything is sent to it, and one it removes
    /// goes after nothing is; a pod the labels enroll in ambient is handed to its node's
    /// ztunnel without a restart (istio-cni); a restarted pod loses or gains its sidecar.
    ///
    /// A restart is modelled in place (the same IP, as a StatefulSet pod keeps it): the
    /// sidecar stops, its connections and the app's close, the app starts again, and the pod
    /// is served by its new data plane. Between those, connections to it are refused: the
    /// transition's errors.
    pub fn apply_stage(
        &mut self,
        base: &Loaded,
        stage: usize,
    ) -> Result<StageApplied, ClusterError> {
        let t0 = Instant::now();
        let (Some(staging), Some(old)) = (&self.staging, self.mesh.clone()) else {
            return Err(ClusterError::NotStaged);
        };
        let at = base.at_stage(Some(stage));
        let st = base
            .scenario
            .migration
            .as_ref()
            .and_then(|m| m.stages.get(stage))
            .ok_or(ClusterError::NotStaged)?
            .clone();
        let mut spec = crate::topology::cluster_spec(&at);
        crate::mesh::control::add_waypoint_pods(&mut spec, &staging.decls);
        let now = crate::mesh::control::waypoints(&at, Mode::Declared);
        let deployed: Vec<bool> = staging
            .decls
            .iter()
            .map(|d| now.iter().any(|n| n.pod == d.pod))
            .collect();
        let enforce = staging.enforce;
        let plan = old.next_stage(&at, &spec, &self.topology, &staging.decls, &deployed)?;
        let mut out = StageApplied::default();
        let wiring = Wiring {
            cluster: self,
            plan: &plan,
            proxies: &at.scenario.proxies,
            enforce,
        };
        // Up before anything is sent to them: new waypoints, and the node ztunnels.
        let mut started = Vec::new();
        for (k, wp) in plan.waypoints.iter().enumerate() {
            if wp.deployed && !old.waypoints[k].deployed {
                started.push(wiring.waypoint(k)?);
                out.waypoints_deployed.push(wp.decl.name.clone());
            }
        }
        let mut ztunnels = Vec::new();
        if plan.runs_ztunnel() && self.ztunnels.is_empty() {
            for (s, h) in wiring.ztunnels(false)? {
                started.push(s);
                ztunnels.push(h);
            }
            out.ztunnels_started = true;
        }
        for s in started {
            self.adopt(s)?;
        }
        if !ztunnels.is_empty() {
            self.ztunnels = ztunnels;
        }
        self.proxies_settings = at.scenario.proxies.clone();
        self.push_plan(plan.clone());
        // Pods whose data plane changes, and restarts.
        for i in 0..plan.workloads.len() {
            let (was, is) = (old.workloads[i].dataplane(), plan.workloads[i].dataplane());
            let w = &plan.workloads[i];
            let restarted =
                w.is_waypoint.is_none()
                    && at.scenario.workloads.iter().any(|x| {
                        x.name == w.workload && x.namespace == w.namespace && st.restarts(x)
                    });
            if was == is && !restarted {
                continue;
            }
            if was == DataPlane::Sidecar && (is != DataPlane::Sidecar || restarted) {
                self.stop_proxy(|p| p.pod == Some(i) && p.component.kind == ComponentKind::Sidecar);
            }
            if restarted {
                self.restart_app(i, &spec)?;
                out.restarted.push(w.pod.clone());
            }
            let ns = self.topology.pods[i].ns.clone();
            match (was, is) {
                (DataPlane::None, DataPlane::Sidecar | DataPlane::Ambient) => {
                    nft::apply(&ns, &capture::rules())?;
                }
                (DataPlane::Sidecar | DataPlane::Ambient, DataPlane::None) => {
                    nft::apply(&ns, capture::REMOVE_RULES)?;
                }
                _ => {}
            }
            match is {
                DataPlane::Ambient => {
                    if let Some(z) = self.ztunnels.get(w.node) {
                        z.serve_pod(i, ns)
                            .map_err(proxy_err(format!("ztunnel for pod {}", w.pod)))?;
                    }
                }
                DataPlane::Sidecar if was != DataPlane::Sidecar || restarted => {
                    let wiring = Wiring {
                        cluster: self,
                        plan: &plan,
                        proxies: &at.scenario.proxies,
                        enforce,
                    };
                    let s = wiring.sidecar(i)?;
                    self.adopt(s)?;
                }
                _ => {}
            }
            if was != is {
                out.moved.push((w.pod.clone(), was, is));
            }
        }
        // Waypoints the stage removes go once nothing is sent to them.
        for (k, wp) in plan.waypoints.iter().enumerate() {
            if !wp.deployed && old.waypoints[k].deployed {
                let pod = wp.workload;
                self.stop_proxy(|p| {
                    p.pod == Some(pod) && p.component.kind == ComponentKind::Waypoint
                });
                out.waypoints_removed.push(wp.decl.name.clone());
            }
        }
        for (i, pod) in self.info.pods.iter_mut().enumerate() {
            if plan.workloads[i].is_waypoint.is_none() {
                pod.enrollment = Some(plan.workloads[i].enrollment.clone());
            }
        }
        // The stage's NetworkPolicies (added, changed or removed) on every node.
        self.enforce_netpol(&at, &spec)?;
        out.took_s = t0.elapsed().as_secs_f64();
        Ok(out)
    }

    /// Stops the proxies `which` picks: their threads and sockets go, their modeled memory too.
    pub(super) fn stop_proxy(&mut self, which: impl Fn(&RunningProxy) -> bool) {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.proxies)
            .into_iter()
            .partition(|p| which(p));
        self.proxies = kept;
        for p in gone {
            p.burner.stop();
            let c = &p.component;
            self.runtimes.retain(|r| !Arc::ptr_eq(&r.component, c));
            self.components.retain(|x| !Arc::ptr_eq(x, c));
            self.burners.retain(|b| !Arc::ptr_eq(b, &p.burner));
            self.metrics
                .retain(|m| !Arc::ptr_eq(&m.metrics, &p.metrics));
            self.stopped.push(p.component);
        }
    }

    /// Restarts pod `i`'s app in place: its listener and connections close, then it serves
    /// again on the same component (so its CPU stays one series).
    fn restart_app(&mut self, i: usize, spec: &ClusterSpec) -> Result<(), ClusterError> {
        if let Some(c) = self.stop_app(&spec.pods[i].name) {
            self.start_app(&spec.pods[i], c)?;
        }
        Ok(())
    }

    /// Stops a pod's app (its threads, listener and connections); `None` when it has none.
    pub(super) fn stop_app(&mut self, pod: &str) -> Option<Arc<Component>> {
        let pos = self
            .runtimes
            .iter()
            .position(|r| r.component.kind == ComponentKind::App && r.component.name == pod)?;
        let c = self.runtimes[pos].component.clone();
        drop(self.runtimes.remove(pos));
        Some(c)
    }

    /// Stops every pod's app, leaving the pods, their addresses and data planes: the ports
    /// are free for apps run in the pods another way (`meshsim exec … meshsim serve`).
    pub fn stop_apps(&mut self) {
        let pods: Vec<String> = self
            .runtimes
            .iter()
            .filter(|r| r.component.kind == ComponentKind::App)
            .map(|r| r.component.name.clone())
            .collect();
        for p in pods {
            self.stop_app(&p);
        }
    }

    pub(super) fn start_app(
        &mut self,
        p: &crate::topology::PodSpec,
        c: Arc<Component>,
    ) -> Result<(), ClusterError> {
        let id = crate::apps::AppIdentity {
            pod: p.name.clone(),
            namespace: p.namespace.clone(),
            workload: p.workload.clone(),
        };
        let rt = crate::apps::start(&c, &p.app, id).map_err(|source| ClusterError::App {
            pod: p.name.clone(),
            source,
        })?;
        self.runtimes.extend(rt);
        Ok(())
    }

    /// Serves a started proxy's admin ports in its namespace and keeps it.
    pub(super) fn adopt(&mut self, s: Started) -> Result<(), ClusterError> {
        let source = MetricsSource {
            labels: s.labels,
            metrics: s.metrics.clone(),
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
        self.burners.push(s.burner.clone());
        self.stopped.retain(|c| !Arc::ptr_eq(c, &s.component));
        self.components.push(s.component.clone());
        let p = RunningProxy {
            component: s.component,
            burner: s.burner,
            metrics: s.metrics,
            control: s.control,
            pod: s.pod,
        };
        if let Some(plan) = &self.mesh {
            size_config(&p, plan);
        }
        self.proxies.push(p);
        self.runtimes.push(s.runtime);
        Ok(())
    }
}

/// Memory grows with the configuration a proxy holds (a sidecar's whole mesh unless scoped,
/// ztunnel's every workload): the profile's cost model prices `plan` at the proxy's scope,
/// and its burner reports that as modeled memory. A profile without a model adds nothing.
fn size_config(p: &RunningProxy, plan: &MeshPlan) {
    let kind = p.component.kind;
    let (Some(model), Some(scope)) = (
        plan.profile
            .model
            .as_ref()
            .and_then(|m| m.proxy(kind.as_str())),
        plan.model_scope(kind, p.pod),
    ) else {
        return;
    };
    use scenario::costmodel::{End, ProxyLoad};
    let idle = ProxyLoad::default();
    let bytes = model.memory_bytes(End::Mid, &idle, &scope) - model.memory_base.value.0 as f64;
    p.burner.set_config_bytes(bytes.max(0.0) as u64);
}
