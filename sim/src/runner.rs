//! The runner: takes a loaded scenario through its modes, one cluster at a time.
//!
//! For each (mode, repeat) of the schedule it brings the cluster up, starts one load client per
//! flow as a metered component inside the flow's source pod (so the mesh captures it like any
//! app), drives every flow concurrently step by step, samples every component's CPU and heap
//! each second, and tears the cluster down before the next. Repeats interleave the modes
//! (A B C A B C …) so slow drift of a shared machine hits every mode alike.
//!
//! A stop request (Ctrl-C) ends the step in flight without keeping it — its window would be
//! short and unwarmed — and keeps every step and mode already measured, marked incomplete.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::cluster::{Cluster, ClusterError};
use crate::component::{Component, ComponentKind, ComponentRuntime};
use crate::meter::{Meter, MeterReport};
use crate::sandbox::Sandbox;
use scenario::profile::Profile;
use scenario::{Flow, FlowProtocol, Loaded, Mode};

/// How often the meters sample: the resolution of every time series of a run.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// How often a flow in flight checks for a stop request.
const STOP_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--repeat must be at least 1")]
    NoRepeat,
    #[error("the scenario has no flows: add one under `flows:` so there is load to measure")]
    NoFlows,
    #[error("{what} must be more than 0")]
    ZeroTime { what: &'static str },
    #[error("flow {flow}: {reason}")]
    Flow { flow: String, reason: String },
    #[error("mode {mode}: cannot bring the cluster up")]
    Cluster {
        mode: Mode,
        #[source]
        source: ClusterError,
    },
    #[error("mode {mode}: cannot start the load client of flow {flow}: {source}")]
    Client {
        mode: Mode,
        flow: String,
        source: std::io::Error,
    },
    #[error("mode {mode}: flow {flow}: {source}")]
    Load {
        mode: Mode,
        flow: String,
        source: loadgen::LoadError,
    },
    #[error("cannot start the meters: {0}")]
    Meter(std::io::Error),
}

/// Something happened; for a progress display. Called from the runner's threads: keep it short.
#[derive(Debug, Clone)]
pub enum Event {
    /// A cluster is about to be built for `mode` (0-based `index` of `total` in the schedule).
    ModeStarting {
        index: usize,
        total: usize,
        mode: Mode,
        repeat: u32,
    },
    /// The cluster is up and load starts now; it lasts about `planned`.
    LoadStarted {
        mode: Mode,
        repeat: u32,
        planned: Duration,
    },
    /// A flow's once-a-second view.
    Progress {
        mode: Mode,
        flow: String,
        progress: loadgen::Progress,
    },
    ModeFinished {
        mode: Mode,
        repeat: u32,
        complete: bool,
    },
}

pub type EventFn = Arc<dyn Fn(&Event) + Send + Sync>;

/// What to run. [`RunOptions::new`] takes the scenario's modes and times as written.
#[derive(Clone)]
pub struct RunOptions {
    /// Modes in order; empty means the scenario's `modes`.
    pub modes: Vec<Mode>,
    pub repeat: u32,
    /// Overrides every flow's measured time per step.
    pub duration: Option<Duration>,
    /// Overrides every flow's warmup per step.
    pub warmup: Option<Duration>,
    /// Set it (e.g. from a Ctrl-C handler) to stop after keeping what was measured.
    pub stop: Arc<AtomicBool>,
    pub events: Option<EventFn>,
}

impl RunOptions {
    pub fn new() -> RunOptions {
        RunOptions {
            modes: Vec::new(),
            repeat: 1,
            duration: None,
            warmup: None,
            stop: Arc::new(AtomicBool::new(false)),
            events: None,
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The machine a run was made on.
#[derive(Debug, Clone, PartialEq)]
pub struct HostInfo {
    pub kernel: String,
    pub cores: u32,
    pub cpu_model: String,
    pub user: String,
    pub root: bool,
    pub hostname: Option<String>,
}

impl HostInfo {
    pub fn collect(sandbox: &Sandbox) -> HostInfo {
        let uname = nix::sys::utsname::uname().ok();
        let kernel = uname
            .as_ref()
            .map(|u| {
                format!(
                    "{} {} {}",
                    u.sysname().to_string_lossy(),
                    u.release().to_string_lossy(),
                    u.machine().to_string_lossy()
                )
            })
            .unwrap_or_else(|| "unknown".into());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let uid = sandbox.host_uid;
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid {uid}"));
        HostInfo {
            kernel,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            cpu_model,
            user,
            root: sandbox.is_real_root(),
            hostname: nix::unistd::gethostname()
                .ok()
                .map(|h| h.to_string_lossy().into_owned()),
        }
    }
}

/// Everything a run measured, raw; `reports` turns it into `run.json`.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub started_at: SystemTime,
    pub host: HostInfo,
    pub profile: Profile,
    /// The (mode, repeat) pairs planned, in the order they were (to be) run.
    pub schedule: Vec<(Mode, u32)>,
    pub modes: Vec<ModeOutput>,
    /// Stopped early (Ctrl-C) or failed part-way: some of `schedule` is missing or short.
    pub incomplete: bool,
}

#[derive(Debug, Clone)]
pub struct ModeOutput {
    pub mode: Mode,
    pub repeat: u32,
    pub flows: Vec<FlowOutput>,
    pub meter: MeterReport,
    /// Per metered component (same order as `meter.components`).
    pub components: Vec<ComponentFacts>,
    /// Every flow ran every step to the end.
    pub complete: bool,
    /// Time to build the cluster and start its components.
    pub bring_up: Duration,
    pub warnings: Vec<String>,
    /// The host's speed just before this mode's cluster came up; `None` if the probe failed.
    pub host_probe: Option<crate::hostprobe::HostProbe>,
}

#[derive(Debug, Clone)]
pub struct FlowOutput {
    pub name: String,
    pub from: String,
    pub to: String,
    /// `http1`, `http1-churn`, `tcp-rr` or `tcp-stream`: what the load client did.
    pub protocol: String,
    /// The steps that ran to their end, in order.
    pub steps: Vec<loadgen::StepResult>,
    /// When each step's warmup began, seconds since the mode's load started.
    pub step_offsets_s: Vec<f64>,
    pub warmup_s: f64,
}

/// What the runner knows about a component beyond its meter series.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentFacts {
    pub name: String,
    pub kind: ComponentKind,
    /// Requests per second through it over the metered window, when known.
    pub rps_through: Option<f64>,
    /// The cost profile's CPU floor for the work it did, in vCPU (proxies only).
    pub floor_vcpu: Option<f64>,
    /// The profile's memory for it at its busiest, bytes (proxies only).
    pub memory_floor_bytes: Option<u64>,
    pub cpu_limit_millis: Option<u32>,
    pub cpu_limit_enforced: bool,
}

/// A flow resolved against a running cluster: where its client runs and what it loads.
struct PlannedFlow {
    flow: Flow,
    /// Pod running the load client (the first pod of `from`).
    pod: String,
    pod_node: String,
    /// Nodes of the target's endpoints, one entry per endpoint.
    endpoint_nodes: Vec<String>,
    spec: loadgen::LoadSpec,
    rates: Vec<Option<f64>>,
}

/// Modes in the order they run: `opts.modes` or the scenario's, repeated and interleaved.
pub fn schedule(loaded: &Loaded, opts: &RunOptions) -> Vec<(Mode, u32)> {
    let modes = if opts.modes.is_empty() {
        loaded.scenario.modes.clone()
    } else {
        opts.modes.clone()
    };
    (0..opts.repeat)
        .flat_map(|r| modes.iter().map(move |m| (*m, r)))
        .collect()
}

/// Planned length of one mode's load: its longest flow.
pub fn planned_load_time(loaded: &Loaded, opts: &RunOptions) -> Duration {
    loaded
        .scenario
        .flows
        .iter()
        .map(|f| {
            let steps = f.rate.steps().len().max(1) as u32;
            (opts.warmup.unwrap_or(f.warmup.0) + opts.duration.unwrap_or(f.duration.0)) * steps
        })
        .max()
        .unwrap_or_default()
}

/// Checks the options against the scenario before anything starts.
pub fn check(loaded: &Loaded, opts: &RunOptions) -> Result<(), RunError> {
    if opts.repeat == 0 {
        return Err(RunError::NoRepeat);
    }
    if loaded.scenario.flows.is_empty() {
        return Err(RunError::NoFlows);
    }
    if opts.duration.is_some_and(|d| d.is_zero()) {
        return Err(RunError::ZeroTime { what: "--duration" });
    }
    let ip = Ipv4Addr::LOCALHOST;
    for f in &loaded.scenario.flows {
        // The address does not matter for checking; the cluster gives the real one.
        let mut spec = load_spec(f, ip, opts)?;
        spec.mode = loadgen::Mode::Closed;
        spec.validate().map_err(|e| RunError::Flow {
            flow: f.name.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

fn load_spec(f: &Flow, vip: Ipv4Addr, opts: &RunOptions) -> Result<loadgen::LoadSpec, RunError> {
    let bad = |reason: String| RunError::Flow {
        flow: f.name.clone(),
        reason,
    };
    let (_, _, port) = f
        .target()
        .ok_or_else(|| bad(format!("`to: {}` is not service[.namespace]:port", f.to)))?;
    let host = vip.to_string();
    let (target, protocol) = match f.protocol {
        FlowProtocol::Http1 => (
            loadgen::Target::Http {
                host,
                port,
                path: f.path.clone(),
                // What a client that called the service by name would send.
                host_header: Some(f.to.clone()),
            },
            if f.reuse {
                loadgen::Protocol::Http1
            } else {
                loadgen::Protocol::Http1Churn
            },
        ),
        FlowProtocol::TcpRr => (
            loadgen::Target::Tcp { host, port },
            loadgen::Protocol::TcpRr,
        ),
        FlowProtocol::TcpStream => (
            loadgen::Target::Tcp { host, port },
            loadgen::Protocol::TcpStream,
        ),
    };
    let mode = match f.rate.steps().as_slice() {
        [] => loadgen::Mode::Closed,
        rates => loadgen::Mode::Open {
            rates: rates.to_vec(),
        },
    };
    let mut spec = loadgen::LoadSpec::new(target, mode);
    spec.protocol = protocol;
    spec.connections = f.connections as usize;
    spec.duration = opts.duration.unwrap_or(f.duration.0);
    spec.warmup = opts.warmup.unwrap_or(f.warmup.0);
    spec.request_bytes = usize::try_from(f.request_bytes())
        .map_err(|_| bad("requestBytes is too large for this machine".into()))?;
    spec.response_bytes = f
        .response_bytes
        .map(|s| usize::try_from(s.0))
        .transpose()
        .map_err(|_| bad("responseBytes is too large for this machine".into()))?;
    if protocol.is_http() {
        spec.method = Some(f.method.clone());
        spec.headers = f
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    Ok(spec)
}

fn plan_flows(
    loaded: &Loaded,
    cluster: &Cluster,
    opts: &RunOptions,
) -> Result<Vec<PlannedFlow>, RunError> {
    let sc = &loaded.scenario;
    let mut out = Vec::new();
    for f in &sc.flows {
        let bad = |reason: String| RunError::Flow {
            flow: f.name.clone(),
            reason,
        };
        let from = sc
            .workloads
            .iter()
            .find(|w| w.name == f.from)
            .ok_or_else(|| bad(format!("no workload {}", f.from)))?;
        let pod = cluster
            .info
            .pods
            .iter()
            .find(|p| p.workload == from.name && p.namespace == from.namespace)
            .ok_or_else(|| bad(format!("workload {} has no pod", from.name)))?;
        let (svc, ns, _) = f
            .target()
            .ok_or_else(|| bad(format!("`to: {}` is not service[.namespace]:port", f.to)))?;
        let ns = ns.unwrap_or(&from.namespace);
        let service = cluster
            .info
            .services
            .iter()
            .find(|s| s.name == svc && s.namespace == ns)
            .ok_or_else(|| bad(format!("no service {svc} in namespace {ns}")))?;
        let backing = sc
            .services
            .iter()
            .find(|s| s.name == svc && s.namespace == ns)
            .map(|s| s.workload.clone())
            .unwrap_or_default();
        let endpoint_nodes = cluster
            .info
            .pods
            .iter()
            .filter(|p| p.workload == backing && p.namespace == ns)
            .map(|p| p.node.clone())
            .collect();
        let spec = load_spec(f, service.vip, opts)?;
        let rates = match &spec.mode {
            loadgen::Mode::Open { rates } => rates.iter().map(|r| Some(*r)).collect(),
            loadgen::Mode::Closed => vec![None],
        };
        out.push(PlannedFlow {
            flow: f.clone(),
            pod: pod.name.clone(),
            pod_node: pod.node.clone(),
            endpoint_nodes,
            spec,
            rates,
        });
    }
    Ok(out)
}

/// Runs the schedule. Errors before anything starts (bad options) return `Err`; an error
/// part-way returns what was measured so far in `partial`, marked incomplete.
pub fn run(
    loaded: &Loaded,
    profile: &Profile,
    sandbox: Sandbox,
    opts: &RunOptions,
) -> Result<RunOutput, RunFailure> {
    check(loaded, opts).map_err(|error| RunFailure {
        error,
        partial: None,
    })?;
    let schedule = schedule(loaded, opts);
    let mut out = RunOutput {
        started_at: SystemTime::now(),
        host: HostInfo::collect(&sandbox),
        profile: profile.clone(),
        schedule: schedule.clone(),
        modes: Vec::new(),
        incomplete: false,
    };
    let total = schedule.len();
    for (index, &(mode, repeat)) in schedule.iter().enumerate() {
        if opts.stop.load(Ordering::Relaxed) {
            out.incomplete = true;
            break;
        }
        emit(
            opts,
            Event::ModeStarting {
                index,
                total,
                mode,
                repeat,
            },
        );
        let span = tracing::info_span!("mode", %mode, repeat);
        let _guard = span.enter();
        match run_mode(loaded, profile, sandbox, opts, mode, repeat) {
            Ok(m) => {
                let complete = m.complete;
                emit(
                    opts,
                    Event::ModeFinished {
                        mode,
                        repeat,
                        complete,
                    },
                );
                out.modes.push(m);
                if !complete {
                    out.incomplete = true;
                    break;
                }
            }
            Err(error) => {
                out.incomplete = true;
                return Err(RunFailure {
                    error,
                    partial: Some(Box::new(out)),
                });
            }
        }
    }
    Ok(out)
}

/// A run that failed part-way: the error, and what was measured before it.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct RunFailure {
    #[source]
    pub error: RunError,
    pub partial: Option<Box<RunOutput>>,
}

fn emit(opts: &RunOptions, e: Event) {
    if let Some(f) = &opts.events {
        f(&e);
    }
}

/// A proxy's counters at one instant, to take the difference over the metered window.
struct ProxyReading {
    requests: u64,
    floor_ns: u64,
}

fn read_proxies(cluster: &Cluster) -> BTreeMap<String, ProxyReading> {
    cluster
        .burners
        .iter()
        .zip(&cluster.metrics)
        .map(|(b, m)| {
            let requests = m
                .metrics
                .requests_total
                .snapshot()
                .iter()
                .map(|(_, c)| c.get())
                .sum();
            (
                b.component().name.clone(),
                ProxyReading {
                    requests,
                    floor_ns: b.floor_owed_ns(),
                },
            )
        })
        .collect()
}

fn run_mode(
    loaded: &Loaded,
    profile: &Profile,
    sandbox: Sandbox,
    opts: &RunOptions,
    mode: Mode,
    repeat: u32,
) -> Result<ModeOutput, RunError> {
    // Before the cluster exists, so nothing of meshsim's competes with the probe.
    let host_probe = match crate::hostprobe::probe() {
        Ok(p) => {
            tracing::info!(
                round_trip_us = p.back_to_back.round_trip_us,
                paced_cpu_us = p.paced.cpu_per_round_trip_us,
                "host probe"
            );
            Some(p)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the host probe failed; this mode records no host speed");
            None
        }
    };
    let t0 = Instant::now();
    let cluster = Cluster::up_scenario(loaded, mode, profile, sandbox)
        .map_err(|source| RunError::Cluster { mode, source })?;
    let bring_up = t0.elapsed();
    tracing::info!(took = ?bring_up, "cluster up");
    let flows = plan_flows(loaded, &cluster, opts)?;

    // One load client per flow, on threads in its source pod's namespace.
    let mut clients: Vec<ComponentRuntime> = Vec::new();
    for f in &flows {
        let netns = cluster.pod_netns(&f.pod).ok_or_else(|| RunError::Flow {
            flow: f.flow.name.clone(),
            reason: format!("pod {} has no namespace", f.pod),
        })?;
        let c = Component::new(
            format!("load-{}", f.flow.name),
            ComponentKind::LoadClient,
            netns,
        );
        // One worker keeps an open-loop schedule at thousands of rps; a closed loop
        // (saturation) gets two so the client is not the bottleneck.
        let workers = if f.rates == [None] { 2 } else { 1 };
        let rt = c
            .start_runtime(workers, None)
            .map_err(|source| RunError::Client {
                mode,
                flow: f.flow.name.clone(),
                source,
            })?;
        clients.push(rt);
    }

    let mut metered: Vec<Arc<Component>> = cluster.components.clone();
    metered.extend(clients.iter().map(|c| c.component.clone()));
    let before = read_proxies(&cluster);
    let peak_floor: Arc<Vec<std::sync::atomic::AtomicU64>> = Arc::new(
        cluster
            .burners
            .iter()
            .map(|b| std::sync::atomic::AtomicU64::new(b.memory_floor()))
            .collect(),
    );
    let meter = Meter::start(metered.clone(), SAMPLE_INTERVAL).map_err(RunError::Meter)?;
    let load_start = Instant::now();
    emit(
        opts,
        Event::LoadStarted {
            mode,
            repeat,
            planned: planned_load_time(loaded, opts),
        },
    );

    let mut handles = Vec::new();
    for (f, rt) in flows.iter().zip(&clients) {
        let spec = f.spec.clone();
        let rates = f.rates.clone();
        let stop = opts.stop.clone();
        let name = f.flow.name.clone();
        let events = opts.events.clone();
        let progress: Option<loadgen::ProgressFn> = events.map(|ev| {
            let flow = name.clone();
            Arc::new(move |p: &loadgen::Progress| {
                ev(&Event::Progress {
                    mode,
                    flow: flow.clone(),
                    progress: p.clone(),
                })
            }) as loadgen::ProgressFn
        });
        handles.push(rt.spawn(drive_flow(spec, rates, stop, load_start, progress)));
    }
    // Proxies' modeled memory follows their open connections: keep the busiest moment.
    let sampler = {
        let burners = cluster.burners.clone();
        let peak = peak_floor.clone();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let t = std::thread::Builder::new()
            .name("floor-sampler".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    for (b, p) in burners.iter().zip(peak.iter()) {
                        p.fetch_max(b.memory_floor(), Ordering::Relaxed);
                    }
                    std::thread::park_timeout(SAMPLE_INTERVAL);
                }
            })
            .map_err(RunError::Meter)?;
        (done, t)
    };

    let waiter = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Meter)?;
    let results: Vec<Result<FlowRun, loadgen::LoadError>> = waiter.block_on(async {
        let mut v = Vec::new();
        for h in handles {
            v.push(match h.await {
                Ok(r) => r,
                Err(e) => Err(loadgen::LoadError::BadSpec(format!(
                    "the load client stopped: {e}"
                ))),
            });
        }
        v
    });
    let report = meter.finish();
    let window_s = load_start.elapsed().as_secs_f64().max(1e-9);
    sampler.0.store(true, Ordering::Relaxed);
    sampler.1.thread().unpark();
    let _ = sampler.1.join();
    let after = read_proxies(&cluster);

    let mut out_flows = Vec::new();
    let mut complete = true;
    for (f, r) in flows.iter().zip(results) {
        let run = r.map_err(|source| RunError::Load {
            mode,
            flow: f.flow.name.clone(),
            source,
        })?;
        complete &= run.steps.len() == f.rates.len();
        out_flows.push(FlowOutput {
            name: f.flow.name.clone(),
            from: f.flow.from.clone(),
            to: f.flow.to.clone(),
            protocol: f.spec.protocol.as_str().to_string(),
            steps: run.steps,
            step_offsets_s: run.offsets_s,
            warmup_s: f.spec.warmup.as_secs_f64(),
        });
    }

    // Requests per second a flow sent over the window, warmups included (they run at the
    // step's rate, and the meters count their CPU too).
    let flow_rate: Vec<f64> = out_flows
        .iter()
        .map(|f| {
            f.steps
                .iter()
                .map(|s| s.achieved_rps * (s.duration_s + f.warmup_s))
                .sum::<f64>()
                / window_s
        })
        .collect();

    let mut components = Vec::new();
    for c in &metered {
        let mut facts = ComponentFacts {
            name: c.name.clone(),
            kind: c.kind,
            rps_through: None,
            floor_vcpu: None,
            memory_floor_bytes: None,
            cpu_limit_millis: c.cpu_limit_millis(),
            cpu_limit_enforced: c.cpu_limit_enforced(),
        };
        if let (Some(b), Some(a)) = (before.get(&c.name), after.get(&c.name)) {
            facts.floor_vcpu = Some(a.floor_ns.saturating_sub(b.floor_ns) as f64 / 1e9 / window_s);
            let reqs = a.requests.saturating_sub(b.requests);
            facts.rps_through = match c.kind {
                // ztunnel is L4: it never counts requests, so its share comes from the flows.
                ComponentKind::Ztunnel => Some(ztunnel_share(&c.name, &flows, &flow_rate)),
                _ => Some(reqs as f64 / window_s),
            };
        }
        if let Some(i) = cluster
            .burners
            .iter()
            .position(|b| b.component().name == c.name)
        {
            facts.memory_floor_bytes = Some(peak_floor[i].load(Ordering::Relaxed));
        }
        if c.kind == ComponentKind::LoadClient
            && let Some(i) = flows
                .iter()
                .position(|f| format!("load-{}", f.flow.name) == c.name)
        {
            facts.rps_through = Some(flow_rate[i]);
        }
        components.push(facts);
    }

    let mut warnings: Vec<String> = report.saturation_warning.iter().cloned().collect();
    warnings.extend(crate::meter::steal_warning(report.host_steal_share));
    for f in &out_flows {
        for s in &f.steps {
            if let Some(t) = s.target_rps
                && s.achieved_rps < 0.9 * t
            {
                warnings.push(format!(
                    "flow {} at {t} rps achieved {:.0} rps ({:.0}%): the path or the load \
                     client could not keep up, so latency there measures a queue",
                    f.name,
                    s.achieved_rps,
                    100.0 * s.achieved_rps / t
                ));
            }
        }
    }

    drop(clients);
    let t_down = Instant::now();
    drop(cluster);
    tracing::info!(took = ?t_down.elapsed(), "cluster down");
    Ok(ModeOutput {
        mode,
        repeat,
        flows: out_flows,
        meter: report,
        components,
        complete,
        bring_up,
        warnings,
        host_probe,
    })
}

/// Requests per second through a node's ztunnel: each flow counts once when its client is
/// on the node, and by the share of its endpoints that are (traffic is balanced evenly).
fn ztunnel_share(component: &str, flows: &[PlannedFlow], rate: &[f64]) -> f64 {
    let Some(node) = component.strip_prefix("ztunnel-") else {
        return 0.0;
    };
    flows
        .iter()
        .zip(rate)
        .map(|(f, r)| {
            let src = if f.pod_node == node { 1.0 } else { 0.0 };
            let n = f.endpoint_nodes.len();
            let dst = if n == 0 {
                0.0
            } else {
                f.endpoint_nodes.iter().filter(|e| *e == node).count() as f64 / n as f64
            };
            r * (src + dst)
        })
        .sum()
}

struct FlowRun {
    steps: Vec<loadgen::StepResult>,
    offsets_s: Vec<f64>,
}

/// Runs a flow's steps one by one so a stop request keeps the finished ones.
async fn drive_flow(
    spec: loadgen::LoadSpec,
    rates: Vec<Option<f64>>,
    stop: Arc<AtomicBool>,
    load_start: Instant,
    progress: Option<loadgen::ProgressFn>,
) -> Result<FlowRun, loadgen::LoadError> {
    let mut run = FlowRun {
        steps: Vec::new(),
        offsets_s: Vec::new(),
    };
    for rate in rates {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut step = spec.clone();
        step.mode = match rate {
            Some(r) => loadgen::Mode::Open { rates: vec![r] },
            None => loadgen::Mode::Closed,
        };
        let offset = load_start.elapsed().as_secs_f64();
        let stopped = async {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(STOP_POLL).await;
            }
        };
        tokio::select! {
            r = loadgen::run(&step, None, progress.clone()) => {
                let mut r = r?;
                run.steps.append(&mut r.steps);
                run.offsets_s.push(offset);
            }
            _ = stopped => break,
        }
    }
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(yaml: &str) -> Loaded {
        scenario::load_str(std::path::Path::new("t.yaml"), yaml).expect("valid")
    }

    const SCENARIO: &str = r#"
version: 1
name: t
modes: [no-mesh, sidecar]
nodes: [{name: a}, {name: b}]
workloads:
  - {name: client, nodes: [a]}
  - {name: echo, replicas: 2, nodes: [a, b], app: {http: {port: 8080}}}
services:
  - {name: echo, workload: echo, ports: [{port: 8080}]}
flows:
  - {name: web, from: client, to: "echo:8080", rate: [100, 200], duration: 2s, warmup: 1s}
  - {name: slow, from: client, to: "echo:8080", rate: 50, duration: 3s, warmup: 1s}
"#;

    #[test]
    fn repeats_interleave_the_modes() {
        let l = loaded(SCENARIO);
        let mut o = RunOptions::new();
        o.repeat = 2;
        assert_eq!(
            schedule(&l, &o),
            vec![
                (Mode::NoMesh, 0),
                (Mode::Sidecar, 0),
                (Mode::NoMesh, 1),
                (Mode::Sidecar, 1)
            ]
        );
        o.modes = vec![Mode::Ambient];
        o.repeat = 1;
        assert_eq!(schedule(&l, &o), vec![(Mode::Ambient, 0)]);
    }

    #[test]
    fn planned_time_is_the_longest_flow_and_follows_overrides() {
        let l = loaded(SCENARIO);
        let mut o = RunOptions::new();
        assert_eq!(planned_load_time(&l, &o), Duration::from_secs(6));
        o.duration = Some(Duration::from_secs(10));
        o.warmup = Some(Duration::ZERO);
        assert_eq!(planned_load_time(&l, &o), Duration::from_secs(20));
    }

    #[test]
    fn bad_options_are_refused_before_anything_starts() {
        let l = loaded(SCENARIO);
        let mut o = RunOptions::new();
        o.repeat = 0;
        assert!(matches!(check(&l, &o), Err(RunError::NoRepeat)));
        o.repeat = 1;
        o.duration = Some(Duration::ZERO);
        assert!(matches!(check(&l, &o), Err(RunError::ZeroTime { .. })));
        o.duration = None;
        assert!(check(&l, &o).is_ok());
    }

    #[test]
    fn flows_become_load_specs_like_a_named_client() {
        let l = loaded(SCENARIO);
        let o = RunOptions::new();
        let s = load_spec(&l.scenario.flows[0], Ipv4Addr::new(10, 96, 0, 1), &o).expect("spec");
        assert_eq!(
            s.target,
            loadgen::Target::Http {
                host: "10.96.0.1".into(),
                port: 8080,
                path: "/".into(),
                host_header: Some("echo:8080".into())
            }
        );
        assert_eq!(s.protocol, loadgen::Protocol::Http1);
        assert_eq!(s.method.as_deref(), Some("GET"));
        assert_eq!(
            s.mode,
            loadgen::Mode::Open {
                rates: vec![100.0, 200.0]
            }
        );
        assert_eq!(s.duration, Duration::from_secs(2));
    }

    #[test]
    fn ztunnel_share_counts_source_and_endpoint_sides() {
        let spec = loadgen::LoadSpec::new(
            loadgen::Target::Tcp {
                host: "127.0.0.1".into(),
                port: 1,
            },
            loadgen::Mode::Closed,
        );
        let l = loaded(SCENARIO);
        let f = PlannedFlow {
            flow: l.scenario.flows[0].clone(),
            pod: "client-0".into(),
            pod_node: "a".into(),
            endpoint_nodes: vec!["a".into(), "b".into()],
            spec,
            rates: vec![None],
        };
        let flows = [f];
        // Client on a: all of it leaves through a; half the endpoints are on each node.
        assert!((ztunnel_share("ztunnel-a", &flows, &[1000.0]) - 1500.0).abs() < 1e-9);
        assert!((ztunnel_share("ztunnel-b", &flows, &[1000.0]) - 500.0).abs() < 1e-9);
    }
}
