//! A scenario's flows as load: where each flow's client runs, the load spec it drives, and its
//! result in the run's terms (steps on the mode's time line).

use std::net::Ipv4Addr;

use results::raw::RawFlow;
use results::run::{IntervalSample, LatencySummary, StepResult, WarmupResult, WarmupSecond};
use scenario::{Flow, FlowProtocol, Loaded};

use super::{RunError, RunOptions};
use crate::cluster::Cluster;

/// A flow resolved against a running cluster: where its client runs and what it loads.
pub(super) struct PlannedFlow {
    pub flow: Flow,
    /// Pod running the load client (the first pod of `from`).
    pub pod: String,
    pub spec: loadgen::LoadSpec,
    /// Steps the flow runs (its open-loop rates; one closed-loop step otherwise); a search
    /// runs as many as it needs.
    pub steps: usize,
    /// `rate: search`: the search, fed each step's verdict by the load client.
    pub search: Option<std::sync::Arc<Search>>,
}

/// A flow's search for its highest rate meeting its SLOs in this mode.
pub(super) struct Search {
    criteria: Vec<Criterion>,
    state: std::sync::Mutex<(loadgen::search::RateSearch, Vec<bool>)>,
}

/// One thing a search step must meet.
enum Criterion {
    /// A latency percentile's ceiling, µs (coordinated-omission corrected).
    Latency(&'static str, fn(&loadgen::LatencySummary) -> u64, u64),
    MaxErrorRate(f64),
    MinAchieved(f64),
}

impl Criterion {
    fn holds(&self, s: &loadgen::StepResult) -> bool {
        match *self {
            Criterion::Latency(_, pick, max_us) => {
                s.latency.count > 0 && pick(&s.latency) <= max_us
            }
            Criterion::MaxErrorRate(max) => {
                let errors: u64 = s.errors.values().sum();
                let all = s.requests + errors;
                all > 0 && errors as f64 / all as f64 <= max
            }
            Criterion::MinAchieved(min) => s
                .target_rps
                .is_none_or(|t| t > 0.0 && s.achieved_rps / t >= min),
        }
    }

    fn describe(&self) -> String {
        match self {
            Criterion::Latency(name, _, us) => format!("{name} ≤ {:.3} ms", *us as f64 / 1000.0),
            Criterion::MaxErrorRate(m) => format!("errors ≤ {}%", m * 100.0),
            Criterion::MinAchieved(m) => format!("achieved ≥ {}% of the target", m * 100.0),
        }
    }
}

impl Search {
    /// The criteria of the SLOs on `flow` that apply in `mode`; with none, errors ≤ 1% and
    /// 95% of the target achieved. `addedP99` compares with no-mesh, which a step of another
    /// mode cannot see: it is left to the run's SLO verdicts.
    pub fn new(loaded: &Loaded, flow: &str, mode: scenario::Mode) -> Search {
        let mut criteria = Vec::new();
        for slo in loaded
            .scenario
            .slos
            .iter()
            .filter(|s| s.flow == flow && (s.modes.is_empty() || s.modes.contains(&mode)))
        {
            let us = |d: &scenario::Dur| d.0.as_micros() as u64;
            type Pick = fn(&loadgen::LatencySummary) -> u64;
            let lat: [(&'static str, Option<&scenario::Dur>, Pick); 4] = [
                ("p50", slo.p50.as_ref(), |l| l.p50_us),
                ("p90", slo.p90.as_ref(), |l| l.p90_us),
                ("p99", slo.p99.as_ref(), |l| l.p99_us),
                ("p99.9", slo.p999.as_ref(), |l| l.p999_us),
            ];
            for (name, d, pick) in lat {
                if let Some(d) = d {
                    criteria.push(Criterion::Latency(name, pick, us(d)));
                }
            }
            if let Some(f) = slo.max_error_rate {
                criteria.push(Criterion::MaxErrorRate(f.0));
            }
            if let Some(f) = slo.min_achieved_rate {
                criteria.push(Criterion::MinAchieved(f.0));
            }
        }
        if criteria.is_empty() {
            criteria = vec![Criterion::MaxErrorRate(0.01), Criterion::MinAchieved(0.95)];
        }
        Search {
            criteria,
            state: std::sync::Mutex::new((loadgen::search::RateSearch::new(), Vec::new())),
        }
    }

    /// Judges a finished step and says the next rate, if any.
    pub fn next(&self, s: &loadgen::StepResult) -> Option<f64> {
        let ok = self.criteria.iter().all(|c| c.holds(s));
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.1.push(ok);
        st.0.after(s.target_rps?, ok)
    }

    /// The verdicts so far, for run.json.
    pub fn result(&self, steps: &[Option<f64>]) -> results::run::RateSearchResult {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let passed: Vec<bool> = st.1.iter().copied().take(steps.len()).collect();
        results::run::RateSearchResult::new(
            self.criteria.iter().map(Criterion::describe).collect(),
            &steps[..passed.len()],
            passed,
        )
    }
}

impl PlannedFlow {
    /// The load client's component name.
    pub fn client_name(&self) -> String {
        format!("load-{}", self.flow.name)
    }

    /// A closed loop (saturation) rather than a fixed rate.
    pub fn is_closed(&self) -> bool {
        self.spec.mode == loadgen::Mode::Closed
    }
}

/// The load spec of a flow aimed at a service address.
pub(super) fn load_spec(
    f: &Flow,
    vip: Ipv4Addr,
    opts: &RunOptions,
) -> Result<loadgen::LoadSpec, RunError> {
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

/// Every flow of the scenario against the running cluster.
pub(super) fn plan(
    loaded: &Loaded,
    cluster: &Cluster,
    opts: &RunOptions,
    mode: scenario::Mode,
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
        let spec = load_spec(f, service.vip, opts)?;
        let steps = match &spec.mode {
            loadgen::Mode::Open { rates } => rates.len(),
            loadgen::Mode::Closed => 1,
        };
        let search = f
            .rate
            .is_search()
            .then(|| std::sync::Arc::new(Search::new(loaded, &f.name, mode)));
        out.push(PlannedFlow {
            flow: f.clone(),
            pod: pod.name.clone(),
            spec,
            steps,
            search,
        });
    }
    Ok(out)
}

/// A migration run's flows: one step per stage (and one for the scenario as written) at the
/// flow's rate, all with the same warmup and duration, warmups counted (the transitions).
pub(super) fn as_stages(
    flows: &mut [PlannedFlow],
    stages: usize,
    (warmup, duration): (std::time::Duration, std::time::Duration),
) {
    for f in flows.iter_mut() {
        if let loadgen::Mode::Open { rates } = &mut f.spec.mode {
            let r = rates.first().copied().unwrap_or_default();
            *rates = vec![r; stages + 1];
        }
        f.steps = stages + 1;
        f.spec.record_warmup = true;
    }
    common_timing(flows, (warmup, duration));
}

/// Each flow's `load-surge` faults as windows of its load client's schedule, at the fault's
/// `at` into every step's measured window (after `common_timing` set the warmup).
pub(super) fn surges(flows: &mut [PlannedFlow], faults: &[scenario::Fault]) {
    for f in flows {
        let mut s: Vec<loadgen::Surge> = faults
            .iter()
            .filter(|x| x.kind == scenario::FaultKind::LoadSurge)
            .filter(|x| x.flow.as_deref() == Some(f.flow.name.as_str()))
            .filter_map(|x| {
                Some(loadgen::Surge {
                    at: f.spec.warmup + x.at.0,
                    duration: x.length(),
                    rate: x.rate?,
                })
            })
            .collect();
        s.sort_by_key(|x| x.at);
        f.spec.surges = s;
    }
}

/// Every flow on one step time line (the longest warmup and duration any asks for), so a
/// fault's `at` falls at the same moment of each flow's step.
pub(super) fn common_timing(
    flows: &mut [PlannedFlow],
    (warmup, duration): (std::time::Duration, std::time::Duration),
) {
    for f in flows {
        f.spec.warmup = warmup;
        f.spec.duration = duration;
    }
}

fn latency(l: &loadgen::LatencySummary) -> LatencySummary {
    LatencySummary {
        p50_us: l.p50_us as f64,
        p75_us: l.p75_us as f64,
        p90_us: l.p90_us as f64,
        p99_us: l.p99_us as f64,
        p999_us: l.p999_us as f64,
        p9999_us: l.p9999_us as f64,
        max_us: l.max_us as f64,
        mean_us: l.mean_us,
        count: l.count,
        histogram: l.histogram.clone(),
    }
}

/// A flow's load result on the mode's time line: its client started `started_s` after the
/// mode's load did.
pub(super) fn raw_flow(f: &PlannedFlow, load: &loadgen::LoadResult, started_s: f64) -> RawFlow {
    let mut r = flow_result(&f.flow, f.spec.warmup.as_secs_f64(), load, started_s);
    r.search = f.search.as_ref().map(|s| {
        let rates: Vec<Option<f64>> = load.steps.iter().map(|x| x.target_rps).collect();
        s.result(&rates)
    });
    r
}

/// Flow `flow`'s load result (its steps `warmup_s` each) as run.json keeps it, its client
/// started `started_s` into the mode's time line: what the simulator's load clients and a
/// real cluster's load Jobs (`import k8s`) report alike.
pub fn flow_result(
    flow: &scenario::Flow,
    warmup_s: f64,
    load: &loadgen::LoadResult,
    started_s: f64,
) -> RawFlow {
    let measured_from_s: Vec<f64> = load
        .steps
        .iter()
        .map(|s| started_s + s.offset_s + warmup_s)
        .collect();
    let steps = load
        .steps
        .iter()
        .zip(&measured_from_s)
        .map(|(s, from)| StepResult {
            target_rps: s.target_rps,
            duration_s: s.duration_s,
            requests: s.requests,
            achieved_rps: s.achieved_rps,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            // loadgen counts bytes per second; run.json speaks bits, as iperf does.
            throughput_bps: s.throughput_bps.map(|b| b * 8.0),
            errors: s.errors.clone(),
            latency: latency(&s.latency),
            service_time: latency(&s.service_time),
            series: s
                .series
                .iter()
                .map(|i| IntervalSample {
                    t_s: from + i.second as f64 + 1.0,
                    requests: i.requests,
                    errors: i.errors,
                    errors_by_kind: i.errors_by_kind.clone(),
                    p50_us: i.p50_us as f64,
                    p99_us: i.p99_us as f64,
                    max_us: i.max_us as f64,
                })
                .collect(),
            warmup: s.warmup.as_ref().map(|w| WarmupResult {
                from_s: started_s + s.offset_s,
                requests: w.requests,
                errors: w.errors.clone(),
                seconds: w
                    .seconds
                    .iter()
                    .map(|x| WarmupSecond {
                        requests: x.requests,
                        errors: x.errors,
                    })
                    .collect(),
            }),
        })
        .collect();
    RawFlow {
        name: flow.name.clone(),
        from: flow.from.clone(),
        to: flow.to.clone(),
        protocol: load.protocol.as_str().to_string(),
        search: None,
        steps,
        measured_from_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::tests::{SCENARIO, loaded};

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
        assert_eq!(s.duration, std::time::Duration::from_secs(2));
    }
}
