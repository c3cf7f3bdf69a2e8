//! A running cluster. This file brings it up (topology, then apps); the rest, one job a file:
//! - [`mesh`](self::mesh): the mesh mode's proxies wired in (plan, capture rules, proxies, admin ports)
//! - `metrics`: every proxy's metrics merged on one host loopback port
//! - `control`: the control socket `exec` finds a cluster by, and the queries it answers
//! - `exec`: a program run inside a pod of a running cluster
//! - [`faults`](self::faults): faults on a running cluster (restarts, crashes, link loss, a CPU hog)

mod control;
mod exec;
pub mod faults;
pub mod mesh;
mod metrics;

pub use control::{LogsReply, find, list_clusters, query, query_config, query_explain, query_logs};
pub use exec::exec;

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::net::UnixListener;
use std::sync::Arc;

use crate::apps::{self, AppIdentity};
use crate::component::{Component, ComponentKind, ComponentRuntime};
use crate::nft;
use crate::sandbox::Sandbox;
use crate::topology::{self, BuildOptions, ClusterSpec, Topology, TopologyError};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Nft(#[from] nft::NftError),
    #[error("cannot put the link fault's wire in place")]
    Wire(#[source] crate::wire::WireError),
    #[error("cannot start the app of pod {pod}")]
    App { pod: String, source: io::Error },
    #[error("cannot set the mesh up")]
    Mesh(#[from] crate::mesh::control::ControlError),
    #[error(
        "this cluster was not brought up for a migration's stages (Cluster::up_staged), or the scenario has no such stage"
    )]
    NotStaged,
    #[error("cannot start {what}")]
    Proxy { what: String, source: io::Error },
    #[error("cannot open the control socket `exec` finds the cluster by")]
    Control(#[source] io::Error),
    #[error("cannot write the cluster's description for the control socket")]
    ControlInfo(#[source] serde_json::Error),
    #[error("cannot serve the merged metrics on 127.0.0.1:{port}; pick another --metrics-port")]
    Metrics {
        port: u16,
        #[source]
        source: io::Error,
    },
    #[error("no meshsim cluster is up (for this user). Start one with `meshsim up SCENARIO`")]
    NoCluster,
    #[error(
        "several clusters are up: {}. Pick one with `--cluster NAME`",
        .0.join(", ")
    )]
    Ambiguous(Vec<String>),
    #[error("no cluster named {name:?} is up; clusters up: {}", fmt_list(.up))]
    UnknownCluster { name: String, up: Vec<String> },
    #[error("cannot reach cluster {name:?}")]
    Reach { name: String, source: io::Error },
    #[error("cluster {cluster:?} has no pod {pod:?}; its pods are: {}", fmt_list(.pods))]
    UnknownPod {
        cluster: String,
        pod: String,
        pods: Vec<String>,
    },
    #[error(
        "cannot enter pod {pod} of cluster {cluster:?}: {step}: {source}{hint}",
        hint = if .source.kind() == io::ErrorKind::PermissionDenied {
            ". Run `meshsim exec` as the same user that ran `meshsim up`"
        } else { "" }
    )]
    Enter {
        cluster: String,
        pod: String,
        step: &'static str,
        source: io::Error,
    },
    #[error("cannot run {program:?} in pod {pod}")]
    Exec {
        pod: String,
        program: String,
        source: io::Error,
    },
    #[error("no command given; usage: meshsim exec POD -- COMMAND [ARGS...]")]
    NoCommand,
}

fn fmt_list(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

/// What `exec` and users need to know about a running cluster.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClusterInfo {
    pub name: String,
    pub scenario: String,
    pub mode: String,
    pub pid: u32,
    pub user_namespace: bool,
    /// `127.0.0.1:port` where all proxies' metrics are served merged (mesh modes).
    #[serde(default)]
    pub metrics: Option<String>,
    pub pods: Vec<PodInfo>,
    pub services: Vec<ServiceInfo>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PodInfo {
    pub name: String,
    pub namespace: String,
    pub workload: String,
    pub node: String,
    pub ip: Ipv4Addr,
    pub port: Option<u16>,
    /// Its data plane and why (set once the mesh is up; out of the mesh in `no-mesh`).
    #[serde(default)]
    pub enrollment: Option<scenario::Enrollment>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceInfo {
    pub name: String,
    pub namespace: String,
    pub vip: Ipv4Addr,
    pub ports: Vec<u16>,
}

/// A phase of bring-up, as it begins.
#[derive(Debug, Clone, Copy)]
pub enum Phase {
    /// Namespaces, links, routes, service rules.
    Topology { nodes: usize, pods: usize },
    /// Every pod's app.
    Apps,
    /// Certificates, capture rules and the proxies of a mesh mode.
    Mesh { mode: scenario::Mode },
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Topology { nodes, pods } => write!(
                f,
                "building {nodes} node{} and {pods} pod{} (namespaces, links, routes, service rules)",
                if *nodes == 1 { "" } else { "s" },
                if *pods == 1 { "" } else { "s" }
            ),
            Phase::Apps => f.write_str("starting the apps"),
            Phase::Mesh { mode } => write!(
                f,
                "starting the {mode} data plane (certificates, capture rules, proxies)"
            ),
        }
    }
}

/// How to bring a cluster up.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The data-plane mode's name, shown to users.
    pub mode: String,
    pub build: BuildOptions,
}

/// A cluster that is up. Dropping it stops its components; the namespaces go with the process.
pub struct Cluster {
    // Fields drop in order: components stop before their namespaces are unnamed.
    runtimes: Vec<ComponentRuntime>,
    /// Stops the merged metrics server when dropped.
    _metrics_stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The mesh's control plane, in mesh modes.
    pub mesh: Option<Arc<crate::mesh::control::MeshPlan>>,
    /// Per proxy component: its cost-floor accounting (modeled memory).
    pub burners: Vec<Arc<crate::proxy::cost::Burner>>,
    /// Every proxy's metrics, labelled by proxy.
    pub metrics: Vec<crate::proxy::admin::MetricsSource>,
    _control: Option<UnixListener>,
    pub info: ClusterInfo,
    pub sandbox: Sandbox,
    pub components: Vec<Arc<Component>>,
    pub topology: Topology,
    /// The running proxies, to push a new plan to or stop.
    proxies: Vec<mesh::RunningProxy>,
    /// The node ztunnels (by node index), once one pod is ambient.
    ztunnels: Vec<Arc<crate::proxy::ztunnel::ZtunnelHandle>>,
    /// Set when the cluster takes a migration's stages live.
    staging: Option<mesh::Staging>,
    /// Components of stopped proxies: a restart runs as the same component.
    stopped: Vec<Arc<Component>>,
    /// The scenario's proxy settings (concurrency, CPU limits), for proxies (re)started later.
    proxies_settings: scenario::Proxies,
    /// Every proxy's access log, by component (shared with the control socket).
    pub logs: crate::proxy::access_log::Logs,
    /// Where the access logs are also written (a run's directory).
    log_dir: Option<std::path::PathBuf>,
    /// The scenario's mesh config (access logs on or off).
    mesh_config: scenario::MeshConfig,
    /// The NetworkPolicies in force on the nodes, and what their drop counters stand for.
    pub netpol: crate::netpol::Enforced,
    /// istiod is down (a fault): proxies that would start wait for it, here.
    istiod_down: Arc<std::sync::atomic::AtomicBool>,
    waiting_for_istiod: Vec<faults::Down>,
    /// The readiness ports of the proxies waiting for istiod, answering "not ready".
    unready: Vec<crate::proxy::admin::NotReady>,
    /// What the NetworkPolicies were planned from, while any are in force.
    netpol_inputs: Option<Box<(scenario::Loaded, ClusterSpec)>>,
    /// Renews workload certificates when the scenario sets a TTL of its own.
    rotator: Option<crate::mesh::rotation::Rotator>,
    /// Node cgroups of ended `cpu-limit` faults: unlimited, kept until their threads end.
    spent_cgroups: Vec<crate::cgroup::CpuCgroup>,
}

impl Cluster {
    /// Builds the topology and starts every pod's app. Must run inside the sandbox, from a
    /// thread in the host's network namespace.
    pub fn up(
        spec: &ClusterSpec,
        sandbox: Sandbox,
        opts: &UpOptions,
    ) -> Result<Cluster, ClusterError> {
        Self::up_reporting(spec, sandbox, opts, &|_| {})
    }

    fn up_reporting(
        spec: &ClusterSpec,
        sandbox: Sandbox,
        opts: &UpOptions,
        phase: &dyn Fn(Phase),
    ) -> Result<Cluster, ClusterError> {
        if opts.build.service_dnat {
            nft::check_installed()?;
        }
        phase(Phase::Topology {
            nodes: spec.nodes.len(),
            pods: spec.pods.len(),
        });
        let topology = topology::build(spec, opts.build)?;
        phase(Phase::Apps);
        let mut components = Vec::new();
        let mut runtimes = Vec::new();
        for (p, pod) in spec.pods.iter().zip(&topology.pods) {
            let c = Component::new(p.name.clone(), ComponentKind::App, pod.ns.clone());
            let id = AppIdentity {
                pod: p.name.clone(),
                namespace: p.namespace.clone(),
                workload: p.workload.clone(),
            };
            let rt = apps::start(&c, &p.app, id).map_err(|source| ClusterError::App {
                pod: p.name.clone(),
                source,
            })?;
            if let Some(rt) = rt {
                components.push(c);
                runtimes.push(rt);
            }
        }
        let info = ClusterInfo {
            name: spec.name.clone(),
            scenario: spec.name.clone(),
            mode: opts.mode.clone(),
            pid: std::process::id(),
            user_namespace: sandbox.user_namespace,
            metrics: None,
            pods: spec
                .pods
                .iter()
                .zip(&topology.pods)
                .map(|(p, built)| PodInfo {
                    name: p.name.clone(),
                    namespace: p.namespace.clone(),
                    workload: p.workload.clone(),
                    node: spec.nodes[p.node].name.clone(),
                    ip: built.ip,
                    port: p.app.port(),
                    enrollment: None,
                })
                .collect(),
            services: spec
                .services
                .iter()
                .zip(&topology.services)
                .map(|(s, built)| ServiceInfo {
                    name: s.name.clone(),
                    namespace: s.namespace.clone(),
                    vip: built.vip,
                    ports: s.ports.iter().map(|p| p.port).collect(),
                })
                .collect(),
        };
        Ok(Cluster {
            info,
            sandbox,
            topology,
            components,
            runtimes,
            _control: None,
            _metrics_stop: None,
            mesh: None,
            burners: Vec::new(),
            metrics: Vec::new(),
            proxies: Vec::new(),
            ztunnels: Vec::new(),
            staging: None,
            stopped: Vec::new(),
            proxies_settings: Default::default(),
            logs: Default::default(),
            log_dir: None,
            mesh_config: Default::default(),
            netpol: Default::default(),
            istiod_down: Default::default(),
            waiting_for_istiod: Vec::new(),
            unready: Vec::new(),
            rotator: None,
            netpol_inputs: None,
            spent_cgroups: Vec::new(),
        })
    }

    /// Brings a loaded scenario's cluster up in `mode`, with the cost profile's floors on the
    /// proxies. The one entry point `up` and `run` share.
    pub fn up_scenario(
        loaded: &scenario::Loaded,
        mode: scenario::Mode,
        profile: &scenario::profile::Profile,
        sandbox: Sandbox,
    ) -> Result<Cluster, ClusterError> {
        Self::up_scenario_reporting(loaded, mode, profile, sandbox, &|_| {})
    }

    /// [`Cluster::up_scenario`], telling `phase` as each phase of bring-up begins (for a
    /// person watching `up`).
    pub fn up_scenario_reporting(
        loaded: &scenario::Loaded,
        mode: scenario::Mode,
        profile: &scenario::profile::Profile,
        sandbox: Sandbox,
        phase: &dyn Fn(Phase),
    ) -> Result<Cluster, ClusterError> {
        let decls = crate::mesh::control::waypoints(loaded, mode);
        let deployed = vec![true; decls.len()];
        Self::up_with(loaded, mode, profile, sandbox, phase, (decls, deployed))
    }

    /// Brings a migration scenario up in mode `declared` as written, ready to take its stages
    /// live ([`Cluster::apply_stage`]): the pods of every waypoint a stage deploys exist from
    /// the start, with nothing running in them until their stage.
    pub fn up_staged(
        loaded: &scenario::Loaded,
        profile: &scenario::profile::Profile,
        sandbox: Sandbox,
    ) -> Result<Cluster, ClusterError> {
        let mode = scenario::Mode::Declared;
        let stages = loaded
            .scenario
            .migration
            .as_ref()
            .map_or(0, |m| m.stages.len());
        let mut decls = crate::mesh::control::waypoints(loaded, mode);
        let deployed = vec![true; decls.len()];
        for i in 0..stages {
            for d in crate::mesh::control::waypoints(&loaded.at_stage(Some(i)), mode) {
                if !decls.iter().any(|x| x.pod == d.pod) {
                    decls.push(d);
                }
            }
        }
        let mut deployed = deployed;
        deployed.resize(decls.len(), false);
        let mut cluster = Self::up_with(
            loaded,
            mode,
            profile,
            sandbox,
            &|_| {},
            (decls.clone(), deployed),
        )?;
        cluster.staging = Some(mesh::Staging {
            decls,
            enforce: sandbox.is_real_root(),
        });
        Ok(cluster)
    }

    fn up_with(
        loaded: &scenario::Loaded,
        mode: scenario::Mode,
        profile: &scenario::profile::Profile,
        sandbox: Sandbox,
        phase: &dyn Fn(Phase),
        (decls, deployed): (Vec<crate::mesh::control::WaypointDecl>, Vec<bool>),
    ) -> Result<Cluster, ClusterError> {
        let mut spec = crate::topology::cluster_spec(loaded);
        crate::mesh::control::add_waypoint_pods(&mut spec, &decls);
        // Service DNAT stays on in mesh modes too: captured traffic never reaches it, and a
        // pod the mesh does not capture (a waypoint) still finds services.
        let opts = UpOptions {
            mode: mode.to_string(),
            build: BuildOptions { service_dnat: true },
        };
        let enforce = sandbox.is_real_root();
        let mut cluster = Cluster::up_reporting(&spec, sandbox, &opts, phase)?;
        // The CNI's NetworkPolicy is in force before any pod sends, whatever the mode.
        cluster.enforce_netpol(loaded, &spec)?;
        if mode != scenario::Mode::NoMesh {
            phase(Phase::Mesh { mode });
            cluster.start_mesh(loaded, mode, profile, &spec, (&decls, &deployed), enforce)?;
        }
        let plan = cluster.mesh.clone();
        // A waypoint's pod is a proxy, not an enrolled workload: it has no data plane.
        for (i, pod) in cluster.info.pods.iter_mut().enumerate() {
            pod.enrollment = match &plan {
                Some(plan) if plan.workloads[i].is_waypoint.is_some() => None,
                Some(plan) => Some(plan.workloads[i].enrollment.clone()),
                None if decls.iter().any(|d| d.pod == pod.name) => None,
                None => Some(scenario::Enrollment {
                    dataplane: scenario::DataPlane::None,
                    why: format!("mode {mode}"),
                }),
            };
        }
        Ok(cluster)
    }

    /// The proxies' load-balancing picks so far, per service and endpoint.
    pub fn lb_picks(&self) -> Vec<results::run::LbPicks> {
        let Some(plan) = &self.mesh else {
            return Vec::new();
        };
        plan.services
            .iter()
            .enumerate()
            .map(|(k, s)| results::run::LbPicks {
                service: format!("{}.{}", s.name, s.namespace),
                picks: s
                    .endpoints
                    .iter()
                    .zip(plan.balancer.picks(k))
                    .map(|(&w, n)| (plan.workloads[w].pod.clone(), n))
                    .collect(),
            })
            .collect()
    }

    /// Enforces the NetworkPolicies of `loaded` (the scenario at the current stage) on every
    /// node, in place of those in force.
    pub(crate) fn enforce_netpol(
        &mut self,
        loaded: &scenario::Loaded,
        spec: &ClusterSpec,
    ) -> Result<(), ClusterError> {
        let next = crate::netpol::plan_for(loaded, spec, &self.topology);
        crate::netpol::apply(&self.node_netns(), Some(&self.netpol), &next)?;
        // Kept to follow a pod to a new address; only policies need it.
        self.netpol_inputs =
            (!next.rules.is_empty()).then(|| Box::new((loaded.clone(), spec.clone())));
        self.netpol = next;
        Ok(())
    }

    /// Pod `i` is deleted: its address goes, and istiod withdraws its endpoint from every
    /// proxy. Returns the plan from before, to bring it back from.
    pub(crate) fn release_pod(
        &mut self,
        i: usize,
    ) -> Result<Option<Arc<crate::mesh::control::MeshPlan>>, ClusterError> {
        self.topology.release_address(i)?;
        let before = self.mesh.clone();
        if let Some(b) = &before {
            self.push_plan(b.without_endpoint(i));
        }
        Ok(before)
    }

    /// Pod `i`'s replacement comes up on a new address: the network gives it one, the
    /// NetworkPolicies and the pod list follow, and istiod pushes the plan from `before` with
    /// the pod at its new address. Returns that address.
    pub(crate) fn replace_pod(
        &mut self,
        i: usize,
        before: Option<Arc<crate::mesh::control::MeshPlan>>,
    ) -> Result<std::net::Ipv4Addr, ClusterError> {
        let ip = self.topology.assign_address(i)?;
        if let Some(p) = self.info.pods.get_mut(i) {
            p.ip = ip;
        }
        if let Some(inputs) = self.netpol_inputs.take() {
            let (loaded, spec) = &*inputs;
            self.enforce_netpol(loaded, spec)?;
        }
        if let Some(b) = before {
            self.push_plan(b.with_pod_ip(i, ip));
        }
        Ok(ip)
    }

    /// The nodes' network namespaces, in node order.
    pub fn node_netns(&self) -> Vec<crate::netns::NetNsRef> {
        self.topology.nodes.iter().map(|n| n.ns.clone()).collect()
    }

    /// The network namespace of a pod, by name.
    pub fn pod_netns(&self, pod: &str) -> Option<crate::netns::NetNsRef> {
        self.topology.pod(pod).map(|p| p.ns.clone())
    }

    pub fn runtimes(&self) -> &[ComponentRuntime] {
        &self.runtimes
    }
}

/// Pods grouped by node, for printing.
pub fn pods_by_node(info: &ClusterInfo) -> BTreeMap<&str, Vec<&PodInfo>> {
    let mut m: BTreeMap<&str, Vec<&PodInfo>> = BTreeMap::new();
    for p in &info.pods {
        m.entry(p.node.as_str()).or_default().push(p);
    }
    m
}
