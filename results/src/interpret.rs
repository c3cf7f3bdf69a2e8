//! From what the runner measured ([`RawRun`]) to `run.json` ([`RunResult`]): the one place
//! measurements become figures. Per component, every figure comes from the component's own
//! readings over the mode's metered window; the one modeled figure (memory the cost profile
//! adds) says so in its name.

use scenario::Loaded;

use crate::raw::{ComponentSeries, MeterReport, RawFlow, RawMode, RawRun};
use crate::run::{
    ComponentKind, ComponentResult, Environment, FlowResult, ManifestRecord, ModeResult,
    ProcessSeries, ProfileInfo, RUN_SCHEMA_VERSION, RunResult, StepResult,
};
use crate::summary::IDLE_RPS;

/// What the binary knows about itself.
#[derive(Debug, Clone, Default)]
pub struct BuildInfo {
    pub version: String,
    pub commit: Option<String>,
}

/// The whole `run.json` of a run: everything converted, SLOs judged, summaries derived.
pub fn run_result(loaded: &Loaded, raw: &RawRun, build: &BuildInfo) -> RunResult {
    let mut run = RunResult {
        schema_version: RUN_SCHEMA_VERSION,
        scenario: loaded.resolved(),
        manifests: manifests(loaded),
        seed: loaded.scenario.seed,
        profile: ProfileInfo {
            name: raw.profile.name.clone(),
            sources: raw
                .profile
                .sources
                .iter()
                .map(|s| format!("{} <{}>: {}", s.title, s.url, s.says.trim()))
                .collect(),
            floors: serde_json::to_value(&raw.profile.proxies).unwrap_or_default(),
            model: raw.profile.model.clone(),
        },
        environment: Environment {
            meshsim_version: build.version.clone(),
            commit: build.commit.clone(),
            kernel: raw.host.kernel.clone(),
            cores: raw.host.cores,
            cpu_model: raw.host.cpu_model.clone(),
            user: raw.host.user.clone(),
            root: raw.host.root,
            started_at: humantime::format_rfc3339_seconds(raw.started_at).to_string(),
            hostname: raw.host.hostname.clone(),
            platform: None,
        },
        incomplete: raw.incomplete,
        repeats: raw.schedule.iter().map(|(_, r)| r + 1).max().unwrap_or(1),
        modes: raw.modes.iter().map(mode_result).collect(),
        checklist: Vec::new(),
        reach: None,
        replay_of: None,
    };
    crate::slo::judge_slos(&mut run, &loaded.scenario.slos);
    run.derive_summaries();
    run
}

/// A resumed run: the modes `earlier` finished, then what the runner measured now, judged and
/// summarized together. The run keeps the earlier start time (it is one run).
pub fn resumed(loaded: &Loaded, earlier: &RunResult, raw: &RawRun, build: &BuildInfo) -> RunResult {
    let mut run = run_result(loaded, raw, build);
    let mut modes: Vec<ModeResult> = earlier
        .modes
        .iter()
        .filter(|m| m.complete)
        .cloned()
        .collect();
    modes.append(&mut run.modes);
    run.modes = modes;
    run.environment.started_at = earlier.environment.started_at.clone();
    crate::slo::judge_slos(&mut run, &loaded.scenario.slos);
    run.derive_summaries();
    run
}

/// The (mode, repeat) pairs a run finished: what `run --resume` need not run again.
pub fn finished(run: &RunResult) -> Vec<(scenario::Mode, u32)> {
    run.modes
        .iter()
        .filter(|m| m.complete)
        .map(|m| (m.mode, m.repeat))
        .collect()
}

fn manifests(loaded: &Loaded) -> Vec<ManifestRecord> {
    loaded
        .manifests
        .iter()
        .map(|m| {
            let mut kinds: Vec<String> = m
                .objects
                .iter()
                .map(|o| o.object.kind().to_string())
                .collect();
            kinds.sort();
            kinds.dedup();
            ManifestRecord {
                path: m.path.display().to_string(),
                kinds,
                ignored: loaded
                    .ignored
                    .iter()
                    .filter(|i| i.file == m.path)
                    .map(|i| format!("{} {} (line {})", i.kind, i.name, i.line))
                    .collect(),
            }
        })
        .collect()
}

/// One (mode, repeat) of a run, SLOs not yet judged and summary not yet derived.
pub fn mode_result(m: &RawMode) -> ModeResult {
    let windows = intervals(&m.meter.t_s);
    let components: Vec<ComponentResult> = m
        .meter
        .components
        .iter()
        .map(|c| component_result(c, &m.meter.t_s, &windows))
        .collect();
    ModeResult {
        mode: m.mode,
        repeat: m.repeat,
        complete: m.complete,
        flows: m.flows.iter().map(flow_result).collect(),
        pods: m.pods.clone(),
        stages: crate::stages::stage_results(m),
        faults: crate::faults::fault_results(&m.faults, &m.flows),
        lb: m.lb.clone(),
        structure: m.structure.clone(),
        components_vcpu_sum: components.iter().map(|c| c.vcpu_avg).sum(),
        components,
        process_vcpu_avg: weighted_mean(&m.meter.process.vcpu, &windows),
        host_steal_share: m.meter.host_steal_share,
        host_probe: m.host_probe,
        saturation_warnings: m.warnings.clone(),
        slo: Vec::new(),
        process: process_series(&m.meter),
        summary: Default::default(),
    }
}

fn process_series(m: &MeterReport) -> ProcessSeries {
    ProcessSeries {
        t_s: m.t_s.clone(),
        rss_mib: m.process.rss_mib.clone(),
        fds: m.process.fds.clone(),
        threads: m.process.threads.clone(),
    }
}

/// The length of each interval ending at `t_s` (the first starts at 0).
fn intervals(t_s: &[f64]) -> Vec<f64> {
    let mut prev = 0.0;
    t_s.iter()
        .map(|&t| {
            let d = (t - prev).max(0.0);
            prev = t;
            d
        })
        .collect()
}

/// Mean of a per-interval rate, each interval weighted by its length (the last one is often
/// short).
fn weighted_mean(v: &[f64], windows: &[f64]) -> f64 {
    let total: f64 = windows.iter().take(v.len()).sum();
    if total <= 0.0 {
        return 0.0;
    }
    v.iter().zip(windows).map(|(x, w)| x * w).sum::<f64>() / total
}

/// What a component's `requests` count, per kind.
pub fn requests_are(kind: ComponentKind) -> &'static str {
    match kind {
        ComponentKind::App => "requests the app answered (HTTP) or messages it echoed (TCP)",
        ComponentKind::Sidecar | ComponentKind::Waypoint => {
            "HTTP requests the proxy handled, plus request/response exchanges it relayed on TCP \
             ports (a reply following a request counts one)"
        }
        ComponentKind::Ztunnel => {
            "request/response exchanges ztunnel relayed (L4: it never parses HTTP; a reply \
             following a request counts one)"
        }
        ComponentKind::LoadClient => "requests the load client completed, warmups included",
    }
}

fn component_result(s: &ComponentSeries, t_s: &[f64], windows: &[f64]) -> ComponentResult {
    let window: f64 = windows.iter().sum();
    let vcpu_avg = weighted_mean(&s.vcpu, windows);
    let has_floor = s.floor_vcpu.iter().any(|v| *v > 0.0);
    let requests: u64 = s.requests.iter().sum();
    let rps_avg = if window > 0.0 {
        requests as f64 / window
    } else {
        0.0
    };
    let heap_avg = if s.heap_mib.is_empty() {
        0.0
    } else {
        s.heap_mib.iter().sum::<f64>() / s.heap_mib.len() as f64
    };
    // The profile's memory is what the proxy holds at the least at its busiest; the model's
    // own heap counts toward it, the rest is modeled.
    let profile_peak = s.profile_mib.iter().copied().fold(0.0, f64::max);
    ComponentResult {
        name: s.name.clone(),
        kind: s.kind,
        vcpu_avg,
        vcpu_floor_avg: has_floor.then(|| weighted_mean(&s.floor_vcpu, windows)),
        requests,
        requests_are: requests_are(s.kind).to_string(),
        rps_avg,
        vcpu_per_1000rps: (rps_avg >= IDLE_RPS).then(|| vcpu_avg / rps_avg * 1000.0),
        heap_mib_avg: heap_avg,
        heap_mib_peak: s.heap_mib.iter().copied().fold(0.0, f64::max),
        modeled_mib: (profile_peak > 0.0).then(|| (profile_peak - heap_avg).max(0.0)),
        connections_opened: s.connections_opened.iter().sum(),
        // Absent where nothing counted them (a real cluster's Prometheus export).
        tls_handshakes: (!s.tls_handshakes.is_empty()).then(|| s.tls_handshakes.iter().sum()),
        connections_peak: s.connections_active.iter().copied().max().unwrap_or(0),
        threads_peak: s.threads.iter().copied().max().unwrap_or(0),
        cpu_limit_millis: s.cpu_limit_millis,
        cpu_limit_enforced: s.cpu_limit_enforced,
        series: crate::run::ComponentSeries {
            t_s: t_s.to_vec(),
            vcpu: s.vcpu.clone(),
            vcpu_floor: if has_floor {
                s.floor_vcpu.clone()
            } else {
                Vec::new()
            },
            heap_mib: s.heap_mib.clone(),
            rps: per_second(&s.requests, windows),
            connections_active: s.connections_active.clone(),
            connections_opened: per_second(&s.connections_opened, windows),
            threads: s.threads.clone(),
        },
    }
}

fn flow_result(f: &RawFlow) -> FlowResult {
    let steps = f
        .steps
        .iter()
        .zip(&f.measured_from_s)
        .map(|(s, from)| {
            // The last second of a step is usually a sliver (the stragglers after its end);
            // as a one-second sample it would read as a collapse of the rate.
            let end = from + s.duration_s + 1e-6;
            StepResult {
                series: s.series.iter().filter(|i| i.t_s <= end).cloned().collect(),
                ..s.clone()
            }
        })
        .collect();
    FlowResult {
        name: f.name.clone(),
        from: f.from.clone(),
        to: f.to.clone(),
        protocol: f.protocol.clone(),
        steps,
        search: f.search.clone(),
    }
}

/// Counts per interval as rates, each over its interval's length.
fn per_second(counts: &[u64], windows: &[f64]) -> Vec<f64> {
    counts
        .iter()
        .zip(windows)
        .map(|(&n, &w)| if w > 0.0 { n as f64 / w } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(kind: ComponentKind) -> ComponentSeries {
        let mut s = ComponentSeries::new("c", kind);
        s.vcpu = vec![0.2, 0.2, 0.1];
        s.floor_vcpu = vec![0.15, 0.15, 0.05];
        s.heap_mib = vec![4.0, 6.0, 5.0];
        s.profile_mib = vec![60.0, 61.0, 60.0];
        s.requests = vec![1000, 1000, 250];
        s.connections_opened = vec![4, 0, 0];
        s.connections_active = vec![4, 4, 1];
        s.threads = vec![3, 3, 3];
        s
    }

    #[test]
    fn a_components_rate_and_cpu_come_from_its_own_readings_over_one_window() {
        // Two whole seconds and a half-second tail: 2250 requests in 2.5 s.
        let t = [1.0, 2.0, 2.5];
        let c = component_result(&series(ComponentKind::Sidecar), &t, &intervals(&t));
        assert_eq!(c.requests, 2250);
        assert!((c.rps_avg - 900.0).abs() < 1e-9, "{}", c.rps_avg);
        // vCPU weighted by interval: (0.2 + 0.2 + 0.1 * 0.5) / 2.5 = 0.18.
        assert!((c.vcpu_avg - 0.18).abs() < 1e-9, "{}", c.vcpu_avg);
        assert!((c.vcpu_per_1000rps.unwrap() - 0.2).abs() < 1e-9);
        // The floor part: (0.15 + 0.15 + 0.025) / 2.5 = 0.13.
        assert!((c.vcpu_floor_avg.unwrap() - 0.13).abs() < 1e-9);
        // Modeled memory: the profile's peak beyond the measured average heap.
        assert!((c.modeled_mib.unwrap() - 56.0).abs() < 1e-9);
        assert_eq!(
            (c.connections_opened, c.connections_peak, c.threads_peak),
            (4, 4, 3)
        );
        assert_eq!(c.series.rps, vec![1000.0, 1000.0, 500.0]);
    }

    #[test]
    fn an_idle_component_has_no_cpu_per_rate_and_no_floor_is_no_floor() {
        let t = [1.0, 2.0];
        let mut s = series(ComponentKind::Ztunnel);
        s.requests = vec![0, 1];
        s.floor_vcpu = vec![0.0, 0.0];
        s.profile_mib.clear();
        let c = component_result(&s, &t, &intervals(&t));
        assert_eq!(c.vcpu_per_1000rps, None, "0.5 rps is idle");
        assert_eq!(c.vcpu_floor_avg, None);
        assert_eq!(c.modeled_mib, None);
        assert!(c.series.vcpu_floor.is_empty());
    }
}
