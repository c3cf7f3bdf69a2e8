//! A running cluster: bring-up, the control socket other meshsim processes find it by, and
//! `exec` into its pods.
//!
//! The control socket is an *abstract* unix socket (`@meshsim/<uid>/<cluster>`) in the host's
//! network namespace: it has no file, and the kernel removes it when the process ends, so a
//! killed `up` leaves nothing behind for the next one to trip over.

use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

use crate::apps::{self, AppIdentity};
use crate::component::{Component, ComponentKind, ComponentRuntime};
use crate::netns::NetNs;
use crate::nft;
use crate::sandbox::{self, Sandbox};
use crate::topology::{self, BuildOptions, ClusterSpec, Topology, TopologyError};

const SOCKET_PREFIX: &str = "meshsim/";

/// A proxy just started: its component, runtime, cost accounting, metrics, the labels that
/// name it in merged metrics, and the admin ports it serves in its namespace.
type StartedProxy = (
    Arc<Component>,
    ComponentRuntime,
    Arc<crate::proxy::cost::Burner>,
    Arc<crate::proxy::telemetry::ProxyMetrics>,
    Vec<(&'static str, String)>,
    Vec<u16>,
);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Nft(#[from] nft::NftError),
    #[error("cannot start the app of pod {pod}: {source}")]
    App { pod: String, source: io::Error },
    #[error("cannot set the mesh up: {0}")]
    Mesh(String),
    #[error("cannot start {what}: {source}")]
    Proxy { what: String, source: io::Error },
    #[error("cannot open the control socket: {0}")]
    Control(io::Error),
    #[error("no meshsim cluster is up (for this user). Start one with `meshsim up SCENARIO`")]
    NoCluster,
    #[error(
        "several clusters are up: {}. Pick one with `--cluster NAME`",
        .0.join(", ")
    )]
    Ambiguous(Vec<String>),
    #[error("no cluster named {name:?} is up; clusters up: {}", fmt_list(.up))]
    UnknownCluster { name: String, up: Vec<String> },
    #[error("cannot reach cluster {name:?}: {source}")]
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
    #[error("cannot run {program:?} in pod {pod}: {source}")]
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
        if mode != scenario::Mode::NoMesh {
            phase(Phase::Mesh { mode });
            cluster.start_mesh(loaded, mode, profile, &spec, &decls, enforce)?;
        }
        Ok(cluster)
    }

    fn start_mesh(
        &mut self,
        loaded: &scenario::Loaded,
        mode: scenario::Mode,
        profile: &scenario::profile::Profile,
        spec: &ClusterSpec,
        decls: &[crate::mesh::control::WaypointDecl],
        enforce: bool,
    ) -> Result<(), ClusterError> {
        use crate::proxy::admin::{self, MetricsSource};
        use crate::proxy::telemetry::ProxyMetrics;
        use crate::proxy::{capture, sidecar, waypoint, ztunnel};
        let plan = crate::mesh::control::MeshPlan::build(
            loaded,
            mode,
            profile,
            spec,
            &self.topology,
            decls,
        )
        .map_err(|e| ClusterError::Mesh(e.to_string()))?;
        let proxy_err = |what: String| move |e: io::Error| ClusterError::Proxy { what, source: e };
        let capture_rules = capture::rules();
        for (w, pod) in plan.workloads.iter().zip(&self.topology.pods) {
            if w.is_waypoint.is_none() {
                nft::apply(&pod.ns, &capture_rules)?;
            }
        }
        let cpu = |s: &scenario::ProxySettings| {
            s.cpu_limit
                .as_deref()
                .and_then(|c| scenario::manifest::parse_cpu(c).ok())
        };
        let proxies = &loaded.scenario.proxies;
        let mut started: Vec<StartedProxy> = Vec::new();
        if mode == scenario::Mode::Sidecar {
            for (i, (w, pod)) in plan.workloads.iter().zip(&self.topology.pods).enumerate() {
                let c = Component::with_limit(
                    format!("sidecar-{}", w.pod),
                    ComponentKind::Sidecar,
                    pod.ns.clone(),
                    cpu(&proxies.sidecar),
                    enforce,
                );
                let m = Arc::new(ProxyMetrics::default());
                let (rt, b) = sidecar::start(
                    &c,
                    plan.clone(),
                    i,
                    proxies.sidecar.concurrency() as usize,
                    m.clone(),
                )
                .map_err(proxy_err(format!("sidecar of {}", w.pod)))?;
                let labels = vec![
                    ("proxy", "sidecar".to_string()),
                    ("pod", w.pod.clone()),
                    ("namespace", w.namespace.clone()),
                ];
                started.push((c, rt, b, m, labels, vec![capture::METRICS_PORT]));
            }
        } else {
            for (n, node) in spec.nodes.iter().enumerate() {
                let pods: Vec<(usize, crate::netns::NetNsRef)> = plan
                    .workloads
                    .iter()
                    .zip(&self.topology.pods)
                    .enumerate()
                    .filter(|(_, (w, _))| w.node == n && w.is_waypoint.is_none())
                    .map(|(i, (_, p))| (i, p.ns.clone()))
                    .collect();
                let c = Component::with_limit(
                    format!("ztunnel-{}", node.name),
                    ComponentKind::Ztunnel,
                    self.topology.nodes[n].ns.clone(),
                    cpu(&proxies.ztunnel),
                    enforce,
                );
                let m = Arc::new(ProxyMetrics::default());
                let workers = proxies.ztunnel.concurrency() as usize;
                let (rt, b) = ztunnel::start(&c, plan.clone(), pods, workers, m.clone())
                    .map_err(proxy_err(format!("ztunnel of {}", node.name)))?;
                let labels = vec![
                    ("proxy", "ztunnel".to_string()),
                    ("pod", format!("ztunnel-{}", node.name)),
                    ("namespace", "istio-system".to_string()),
                ];
                started.push((
                    c,
                    rt,
                    b,
                    m,
                    labels,
                    vec![capture::METRICS_PORT, capture::READY_PORT],
                ));
            }
            for (k, wp) in plan.waypoints.iter().enumerate() {
                let pod = &self.topology.pods[wp.workload];
                let c = Component::with_limit(
                    wp.decl.pod.clone(),
                    ComponentKind::Waypoint,
                    pod.ns.clone(),
                    wp.decl.cpu_limit_millis,
                    enforce,
                );
                let m = Arc::new(ProxyMetrics::default());
                let (rt, b) = waypoint::start(&c, plan.clone(), k, m.clone())
                    .map_err(proxy_err(format!("waypoint {}", wp.decl.name)))?;
                let labels = vec![
                    ("proxy", "waypoint".to_string()),
                    ("pod", wp.decl.pod.clone()),
                    ("namespace", wp.decl.namespace.clone()),
                ];
                started.push((c, rt, b, m, labels, vec![capture::METRICS_PORT]));
            }
        }
        for (c, rt, b, m, labels, ports) in started {
            let source = MetricsSource { labels, metrics: m };
            let own = Arc::new(vec![source.clone()]);
            for port in ports {
                let l = rt
                    .run(async move {
                        tokio::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await
                    })
                    .map_err(proxy_err(format!("admin port {port} of {}", c.name)))?;
                rt.spawn(admin::serve(l, own.clone()));
            }
            self.metrics.push(source);
            self.burners.push(b);
            self.components.push(c);
            self.runtimes.push(rt);
        }
        self.mesh = Some(plan);
        Ok(())
    }

    /// Serves every proxy's metrics merged on `127.0.0.1:port` (0: any free port) of the
    /// host, for a real Prometheus; returns the address.
    pub fn serve_merged_metrics(
        &mut self,
        port: u16,
    ) -> Result<std::net::SocketAddr, ClusterError> {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .map_err(ClusterError::Control)?;
        l.set_nonblocking(true).map_err(ClusterError::Control)?;
        let addr = l.local_addr().map_err(ClusterError::Control)?;
        let sources = Arc::new(self.metrics.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(l) = tokio::net::TcpListener::from_std(l) else {
                        return;
                    };
                    tokio::select! {
                        _ = crate::proxy::admin::serve(l, sources) => {}
                        _ = rx => {}
                    }
                });
            })
            .map_err(ClusterError::Control)?;
        self._metrics_stop = Some(tx);
        self.info.metrics = Some(addr.to_string());
        Ok(addr)
    }

    /// The network namespace of a pod, by name.
    pub fn pod_netns(&self, pod: &str) -> Option<crate::netns::NetNsRef> {
        self.topology.pod(pod).map(|p| p.ns.clone())
    }

    /// Registers the cluster under a unique name (the scenario's, or `<name>-2`, …) on the
    /// control socket so `exec` can find it, and answers queries on a thread of its own.
    pub fn publish(&mut self) -> Result<(), ClusterError> {
        let uid = self.sandbox.host_uid;
        let base = self.info.scenario.clone();
        let mut n = 1;
        let listener = loop {
            let name = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            match bind_control(uid, &name) {
                Ok(l) => {
                    self.info.name = name;
                    break l;
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && n < 1000 => n += 1,
                Err(e) => return Err(ClusterError::Control(e)),
            }
        };
        let server = listener.try_clone().map_err(ClusterError::Control)?;
        let info =
            serde_json::to_string(&self.info).map_err(|e| ClusterError::Control(e.into()))?;
        std::thread::Builder::new()
            .name("control".into())
            .spawn(move || serve_control(server, info))
            .map_err(ClusterError::Control)?;
        self._control = Some(listener);
        Ok(())
    }

    pub fn runtimes(&self) -> &[ComponentRuntime] {
        &self.runtimes
    }
}

fn control_name(uid: u32, cluster: &str) -> String {
    format!("{SOCKET_PREFIX}{uid}/{cluster}")
}

fn bind_control(uid: u32, cluster: &str) -> io::Result<UnixListener> {
    let addr = UnixAddr::from_abstract_name(control_name(uid, cluster).as_bytes())?;
    UnixListener::bind_addr(&addr)
}

fn serve_control(listener: UnixListener, info: String) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_ok() && line.trim() == "info" {
            let _ = stream.write_all(info.as_bytes());
            let _ = stream.write_all(b"\n");
        }
    }
}

/// Names of the clusters this user has up, sorted. Reads the host's abstract unix sockets.
pub fn list_clusters(uid: u32) -> Vec<String> {
    let prefix = format!("@{SOCKET_PREFIX}{uid}/");
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return Vec::new();
    };
    let mut names: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(7))
        .filter_map(|p| p.strip_prefix(&prefix))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Asks a running cluster for its info.
pub fn query(uid: u32, name: &str) -> Result<ClusterInfo, ClusterError> {
    let reach = |source| ClusterError::Reach {
        name: name.to_string(),
        source,
    };
    let addr = UnixAddr::from_abstract_name(control_name(uid, name).as_bytes()).map_err(reach)?;
    let mut stream = UnixStream::connect_addr(&addr).map_err(reach)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(reach)?;
    stream.write_all(b"info\n").map_err(reach)?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(reach)?;
    serde_json::from_str(&line).map_err(|e| reach(io::Error::new(io::ErrorKind::InvalidData, e)))
}

/// Finds the cluster `exec` should use: the named one, or the only one up.
pub fn find(uid: u32, name: Option<&str>) -> Result<ClusterInfo, ClusterError> {
    let up = list_clusters(uid);
    let name = match name {
        Some(n) if up.iter().any(|u| u == n) => n.to_string(),
        Some(n) => {
            return Err(ClusterError::UnknownCluster {
                name: n.to_string(),
                up,
            });
        }
        None => match up.as_slice() {
            [] => return Err(ClusterError::NoCluster),
            [one] => one.clone(),
            _ => return Err(ClusterError::Ambiguous(up)),
        },
    };
    query(uid, &name)
}

/// Replaces this process with `argv` running inside `pod` of the cluster: its network
/// namespace, its `/etc/hosts`, and (for clusters started without root) its user namespace.
/// Must be called while the process is single-threaded. Returns only on error.
pub fn exec(
    info: &ClusterInfo,
    pod: &str,
    argv: &[OsString],
) -> Result<std::convert::Infallible, ClusterError> {
    let Some(program) = argv.first() else {
        return Err(ClusterError::NoCommand);
    };
    if !info.pods.iter().any(|p| p.name == pod) {
        return Err(ClusterError::UnknownPod {
            cluster: info.name.clone(),
            pod: pod.to_string(),
            pods: info.pods.iter().map(|p| p.name.clone()).collect(),
        });
    }
    let enter = |step: &'static str, source: io::Error| ClusterError::Enter {
        cluster: info.name.clone(),
        pod: pod.to_string(),
        step,
        source,
    };
    let cwd = std::env::current_dir().ok();
    let proc_ns = |kind: &str| PathBuf::from(format!("/proc/{}/ns/{kind}", info.pid));
    let user = if info.user_namespace {
        Some(File::open(proc_ns("user")).map_err(|e| enter("open its user namespace", e))?)
    } else {
        None
    };
    let mnt = File::open(proc_ns("mnt")).map_err(|e| enter("open its mount namespace", e))?;
    if let Some(user) = user {
        setns(user, CloneFlags::CLONE_NEWUSER)
            .map_err(|e| enter("join its user namespace", e.into()))?;
    }
    setns(mnt, CloneFlags::CLONE_NEWNS).map_err(|e| enter("join its mount namespace", e.into()))?;
    let ns = NetNs::open(pod, &NetNs::path(pod))
        .map_err(|e| enter("open the pod's network namespace", io::Error::other(e)))?;
    ns.enter()
        .map_err(|e| enter("join the pod's network namespace", io::Error::other(e)))?;
    sandbox::bind_pod_etc(pod).map_err(|e| enter("bind the pod's /etc/hosts", e))?;
    // Joining a mount namespace moves the working directory to its root; go back.
    if let Some(cwd) = cwd {
        let _ = std::env::set_current_dir(cwd);
    }
    let cstrings: Result<Vec<CString>, _> =
        argv.iter().map(|a| CString::new(a.as_bytes())).collect();
    let program_name = program.to_string_lossy().into_owned();
    let cstrings = cstrings.map_err(|_| ClusterError::Exec {
        pod: pod.to_string(),
        program: program_name.clone(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "argument contains a NUL byte"),
    })?;
    let Err(err) = nix::unistd::execvp(&cstrings[0], &cstrings);
    Err(ClusterError::Exec {
        pod: pod.to_string(),
        program: program_name,
        source: err.into(),
    })
}

/// Pods grouped by node, for printing.
pub fn pods_by_node(info: &ClusterInfo) -> BTreeMap<&str, Vec<&PodInfo>> {
    let mut m: BTreeMap<&str, Vec<&PodInfo>> = BTreeMap::new();
    for p in &info.pods {
        m.entry(p.node.as_str()).or_default().push(p);
    }
    m
}
