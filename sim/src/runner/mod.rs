//! The runner: takes a loaded scenario through its modes, one cluster at a time.
//!
//! For each (mode, repeat) of the schedule it brings the cluster up, starts one load client per
//! flow as a metered component inside the flow's source pod (so the mesh captures it like any
//! app), drives every flow concurrently, samples every component's CPU, heap and own counts
//! each second, and tears the cluster down before the next. What it returns is raw
//! ([`results::raw`]); `results::interpret` makes the figures.
//!
//! A stop request (the [`RunOptions::stop`] token, e.g. from Ctrl-C) ends the step in flight
//! at once without keeping it — its window would be short and unwarmed — and keeps every step
//! and mode already measured, marked incomplete.
//!
//! Modules: [`schedule`] (what will run, and the checks before it starts), `flows` (flows as
//! load specs and their results on the mode's time line), [`host`] (the machine), `timeline`
//! (a migration's stages and the scenario's faults applied while the load runs).

mod flows;
pub mod host;
pub mod schedule;
mod timeline;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use results::raw::{RawFlow, RawMode, RawRun};
use scenario::profile::Profile;
use scenario::{Loaded, Mode};
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, ClusterError};
use crate::component::{Component, ComponentKind, ComponentRuntime};
use crate::meter::Meter;
use crate::sandbox::Sandbox;
use flows::PlannedFlow;
pub use flows::flow_result;
pub use schedule::{check, planned_load_time, schedule, staged};

/// How often the meters sample: the resolution of every time series of a run.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

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
    #[error("mode {mode}: cannot start the load client of flow {flow}")]
    Client {
        mode: Mode,
        flow: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mode {mode}: flow {flow}")]
    Load {
        mode: Mode,
        flow: String,
        #[source]
        source: loadgen::LoadError,
    },
    #[error("cannot start the meters' thread")]
    Meter(#[source] std::io::Error),
    #[error("cannot start the thread that waits for the load clients")]
    Waiter(#[source] std::io::Error),
    #[error("mode {mode}: fault {fault} failed")]
    Fault {
        mode: Mode,
        fault: String,
        #[source]
        source: Box<ClusterError>,
    },
    #[error("mode {mode}: cannot apply migration stage {stage} to the running cluster")]
    Stage {
        mode: Mode,
        stage: String,
        #[source]
        source: Box<ClusterError>,
    },
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

/// Called after each finished (mode, repeat) with everything measured so far, so a caller can
/// save it before the next mode starts (nothing is lost if the process dies later).
pub type MeasuredFn = Arc<dyn Fn(&RawRun) + Send + Sync>;

/// Asked after each full round of modes with everything measured so far: `true` runs one
/// more round (`--repeat auto`, until its figures are precise enough or its time is up).
pub type MoreFn = Arc<dyn Fn(&RawRun) -> bool + Send + Sync>;

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
    /// Cancel it (e.g. from a Ctrl-C handler) to stop at once, keeping what was measured.
    pub stop: CancellationToken,
    /// (mode, repeat) pairs measured already (a resumed run): skipped.
    pub done: Vec<(Mode, u32)>,
    pub events: Option<EventFn>,
    pub measured: Option<MeasuredFn>,
    pub more: Option<MoreFn>,
    /// Where each mode's proxies write their access logs (`<dir>/<mode>-<repeat>/`).
    pub logs_dir: Option<std::path::PathBuf>,
}

impl RunOptions {
    pub fn new() -> RunOptions {
        RunOptions {
            modes: Vec::new(),
            repeat: 1,
            duration: None,
            warmup: None,
            stop: CancellationToken::new(),
            done: Vec::new(),
            events: None,
            measured: None,
            more: None,
            logs_dir: None,
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// A run that failed part-way: the error, and what was measured before it.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct RunFailure {
    #[source]
    pub error: RunError,
    pub partial: Option<Box<RawRun>>,
}

fn emit(opts: &RunOptions, e: Event) {
    if let Some(f) = &opts.events {
        f(&e);
    }
}

/// Runs the schedule. Errors before anything starts (bad options) return `Err` without a
/// partial run; an error part-way returns what was measured so far, marked incomplete.
pub fn run(
    loaded: &Loaded,
    profile: &Profile,
    sandbox: Sandbox,
    opts: &RunOptions,
) -> Result<RawRun, RunFailure> {
    check(loaded, opts).map_err(|error| RunFailure {
        error,
        partial: None,
    })?;
    let mut schedule = schedule(loaded, opts);
    let round: Vec<Mode> = schedule
        .iter()
        .filter(|(_, r)| *r == 0)
        .map(|(m, _)| *m)
        .collect();
    let mut out = RawRun {
        started_at: SystemTime::now(),
        host: host::collect(&sandbox),
        profile: profile.clone(),
        schedule: schedule.clone(),
        modes: Vec::new(),
        incomplete: false,
    };
    // A while over positions, not a for: `--repeat auto` extends the schedule as it goes.
    let mut next = 0;
    while next < schedule.len() {
        let index = next;
        next += 1;
        let (mode, repeat) = schedule[index];
        if opts.done.contains(&(mode, repeat)) {
            continue;
        }
        let total = schedule.len();
        if opts.stop.is_cancelled() {
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
                out.incomplete = !complete;
                if let Some(f) = &opts.measured {
                    f(&out);
                }
                if !complete {
                    break;
                }
                // The schedule's last mode done: another round, if asked for.
                if next == schedule.len()
                    && !opts.stop.is_cancelled()
                    && opts.more.as_ref().is_some_and(|more| more(&out))
                {
                    schedule.extend(round.iter().map(|m| (*m, repeat + 1)));
                    out.schedule = schedule.clone();
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

/// The host's speed, measured before the cluster exists so nothing of meshsim competes.
fn probe_host() -> Option<results::run::HostProbe> {
    match crate::hostprobe::probe() {
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
    }
}

/// One load client per flow, on threads in its source pod's namespace.
fn start_clients(
    cluster: &Cluster,
    flows: &[PlannedFlow],
    mode: Mode,
) -> Result<Vec<ComponentRuntime>, RunError> {
    let mut clients = Vec::new();
    for f in flows {
        let netns = cluster.pod_netns(&f.pod).ok_or_else(|| RunError::Flow {
            flow: f.flow.name.clone(),
            reason: format!("pod {} has no namespace", f.pod),
        })?;
        let c = Component::new(f.client_name(), ComponentKind::LoadClient, netns);
        // One worker keeps an open-loop schedule at thousands of rps; a closed loop
        // (saturation) gets two so the client is not the bottleneck.
        let workers = if f.is_closed() { 2 } else { 1 };
        let rt = c
            .start_runtime(workers, None)
            .map_err(|source| RunError::Client {
                mode,
                flow: f.flow.name.clone(),
                source,
            })?;
        clients.push(rt);
    }
    Ok(clients)
}

/// A flow's load, driven on its client's threads: the result and when it started (seconds
/// after the mode's load did).
type FlowRun = Result<(loadgen::LoadResult, f64), loadgen::LoadError>;

/// Tells the runner each flow's step starts (a migration applies its stages then).
type StepTx = std::sync::mpsc::Sender<usize>;

fn drive(
    opts: &RunOptions,
    mode: Mode,
    flows: &[PlannedFlow],
    clients: &[ComponentRuntime],
    (load_start, steps): (Instant, Option<&StepTx>),
) -> Vec<tokio::task::JoinHandle<FlowRun>> {
    flows
        .iter()
        .zip(clients)
        .map(|(f, rt)| {
            let step_started = steps.map(|tx| {
                let tx = std::sync::Mutex::new(tx.clone());
                Arc::new(move |k: usize| {
                    let _ = tx.lock().unwrap_or_else(|e| e.into_inner()).send(k);
                }) as Arc<dyn Fn(usize) + Send + Sync>
            });
            let spec = f.spec.clone();
            let progress: Option<loadgen::ProgressFn> = opts.events.clone().map(|ev| {
                let flow = f.flow.name.clone();
                Arc::new(move |p: &loadgen::Progress| {
                    ev(&Event::Progress {
                        mode,
                        flow: flow.clone(),
                        progress: p.clone(),
                    })
                }) as loadgen::ProgressFn
            });
            let next_rate = f.search.clone().map(|s| {
                Arc::new(move |step: &loadgen::StepResult| s.next(step)) as loadgen::NextRateFn
            });
            let hooks = loadgen::Hooks {
                progress,
                cancel: Some(opts.stop.child_token()),
                completed: Some(rt.component.counters.requests.clone()),
                step_started,
                next_rate,
                ..Default::default()
            };
            rt.spawn(async move {
                let started = load_start.elapsed().as_secs_f64();
                loadgen::run(&spec, hooks).await.map(|r| (r, started))
            })
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
) -> Result<RawMode, RunError> {
    let host_probe = probe_host();
    let t0 = Instant::now();
    let stages = staged(loaded, mode);
    let up = if stages > 0 {
        Cluster::up_staged(loaded, profile, sandbox)
    } else {
        Cluster::up_scenario(loaded, mode, profile, sandbox)
    };
    let mut cluster = up.map_err(|source| RunError::Cluster { mode, source })?;
    if let Some(dir) = &opts.logs_dir {
        let dir = dir.join(format!("{mode}-{}", repeat + 1));
        if let Err(e) = cluster.log_to(&dir) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot write the access logs there; they are not kept");
        }
    }
    let pods = cluster
        .info
        .pods
        .iter()
        .filter_map(|p| {
            let e = p.enrollment.as_ref()?;
            Some(results::run::PodDataPlane {
                pod: p.name.clone(),
                namespace: p.namespace.clone(),
                node: p.node.clone(),
                dataplane: e.dataplane,
                why: e.why.clone(),
            })
        })
        .collect();
    let bring_up = t0.elapsed();
    tracing::info!(took = ?bring_up, "cluster up");
    let mut flows = flows::plan(loaded, &cluster, opts, mode)?;
    let structure = cluster
        .proxies_in_plan()
        .map(|(plan, proxies)| crate::structure::of(loaded, &plan, &proxies))
        .unwrap_or_default();
    let faults = &loaded.scenario.faults;
    if stages > 0 {
        flows::as_stages(&mut flows, stages, schedule::stage_step(loaded, opts));
    } else if !faults.is_empty() {
        flows::common_timing(&mut flows, schedule::stage_step(loaded, opts));
        flows::surges(&mut flows, faults);
    }
    let clients = start_clients(&cluster, &flows, mode)?;

    let mut metered: Vec<Arc<Component>> = cluster.components.clone();
    metered.extend(clients.iter().map(|c| c.component.clone()));
    let load_start = Instant::now();
    let meter =
        Meter::start(metered.clone(), SAMPLE_INTERVAL, load_start).map_err(RunError::Meter)?;
    emit(
        opts,
        Event::LoadStarted {
            mode,
            repeat,
            planned: planned_load_time(loaded, opts),
        },
    );
    let (step_tx, step_rx) = std::sync::mpsc::channel();
    let timed = stages > 0 || !faults.is_empty();
    let handles = drive(
        opts,
        mode,
        &flows,
        &clients,
        (load_start, timed.then_some(&step_tx)),
    );
    drop(step_tx);
    let (raw_stages, raw_faults) = if timed {
        let mut t = timeline::Timeline {
            cluster: &mut cluster,
            loaded,
            meter: &meter,
            metered,
            load_start,
            mode,
            warmup: flows.first().map(|f| f.spec.warmup).unwrap_or_default(),
            stop: opts.stop.clone(),
        };
        let steps: Vec<usize> = flows.iter().map(|f| f.steps).collect();
        t.follow(&step_rx, &steps, stages, &handles)?
    } else {
        (Vec::new(), Vec::new())
    };
    let waiter = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Waiter)?;
    let results: Vec<FlowRun> = waiter.block_on(async {
        let mut v = Vec::new();
        for h in handles {
            v.push(match h.await {
                Ok(r) => r,
                Err(e) => Err(loadgen::LoadError::Aborted(format!(
                    "the load client stopped: {e}"
                ))),
            });
        }
        v
    });
    let meter = meter.finish();

    let mut out_flows: Vec<RawFlow> = Vec::new();
    let mut complete = true;
    for (f, r) in flows.iter().zip(results) {
        let (load, started) = r.map_err(|source| RunError::Load {
            mode,
            flow: f.flow.name.clone(),
            source,
        })?;
        // A search runs as many steps as it needs.
        complete &= !load.cancelled && (f.search.is_some() || load.steps.len() == f.steps);
        out_flows.push(flows::raw_flow(f, &load, started));
    }
    let warnings = warnings(&meter, &out_flows);

    drop(clients);
    cluster.flush_logs();
    let lb = cluster.lb_picks();
    let t_down = Instant::now();
    drop(cluster);
    tracing::info!(took = ?t_down.elapsed(), "cluster down");
    Ok(RawMode {
        mode,
        repeat,
        flows: out_flows,
        pods,
        meter,
        complete,
        bring_up,
        warnings,
        host_probe,
        stages: raw_stages,
        faults: raw_faults,
        lb,
        structure,
    })
}

/// What makes a mode's figures suspect: a saturated machine, a contended host, a flow that
/// could not keep its rate.
fn warnings(meter: &results::raw::MeterReport, flows: &[RawFlow]) -> Vec<String> {
    let mut w: Vec<String> = meter.saturation_warning.iter().cloned().collect();
    w.extend(results::host::steal_warning(meter.host_steal_share));
    for f in flows {
        for s in &f.steps {
            // Requests that failed were sent on time: a shortfall they explain (a broken
            // path) is not the machine falling behind.
            let failed_rps = s.errors.values().sum::<u64>() as f64 / s.duration_s.max(1e-9);
            if let Some(t) = s.target_rps
                && s.achieved_rps + failed_rps < 0.9 * t
            {
                w.push(format!(
                    "flow {} at {t} rps achieved {:.0} rps ({:.0}%): the path or the load \
                     client could not keep up, so latency there measures a queue",
                    f.name,
                    s.achieved_rps,
                    100.0 * s.achieved_rps / t
                ));
            }
        }
    }
    w
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn loaded(yaml: &str) -> Loaded {
        scenario::load_str(std::path::Path::new("t.yaml"), yaml).expect("valid")
    }

    pub const SCENARIO: &str = r#"
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
}
