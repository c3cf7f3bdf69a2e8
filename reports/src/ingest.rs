//! From what the runner measured ([`sim::runner::RunOutput`]) to `run.json`
//! ([`RunResult`]): unit conversions, per-component figures, modeled memory, SLO verdicts and
//! the derived summaries.

use std::collections::BTreeMap;

use scenario::{Dur, Loaded, Slo};
use sim::runner::{ComponentFacts, FlowOutput, ModeOutput, RunOutput};

use crate::run::{
    ComponentKind, ComponentResult, ComponentSeries, Environment, FlowResult, HostProbe,
    IntervalSample, LatencySummary, ManifestRecord, Mode, ModeResult, PingPong, ProfileInfo,
    RUN_SCHEMA_VERSION, RunResult, SloVerdict, StepResult,
};

/// Below this many requests per second a component is idle: "vCPU per 1000 rps" of it would
/// divide noise by nothing.
const IDLE_RPS: f64 = 1.0;

/// What the binary knows about itself.
#[derive(Debug, Clone, Default)]
pub struct BuildInfo {
    pub version: String,
    pub commit: Option<String>,
}

pub fn mode(m: scenario::Mode) -> Mode {
    match m {
        scenario::Mode::NoMesh => Mode::NoMesh,
        scenario::Mode::Sidecar => Mode::Sidecar,
        scenario::Mode::Ambient => Mode::Ambient,
        scenario::Mode::AmbientWaypoint => Mode::AmbientWaypoint,
    }
}

fn kind(k: sim::component::ComponentKind) -> ComponentKind {
    use sim::component::ComponentKind as K;
    match k {
        K::App => ComponentKind::App,
        K::Sidecar => ComponentKind::Sidecar,
        K::Ztunnel => ComponentKind::Ztunnel,
        K::Waypoint => ComponentKind::Waypoint,
        K::LoadClient => ComponentKind::LoadClient,
    }
}

/// The whole `run.json` of a run: everything converted, SLOs judged, summaries derived.
pub fn run_result(loaded: &Loaded, out: &RunOutput, build: &BuildInfo) -> RunResult {
    let mut run = RunResult {
        schema_version: RUN_SCHEMA_VERSION,
        scenario: loaded.resolved_json(),
        manifests: manifests(loaded),
        seed: loaded.scenario.seed,
        profile: ProfileInfo {
            name: out.profile.name.clone(),
            sources: out
                .profile
                .sources
                .iter()
                .map(|s| format!("{} <{}>: {}", s.title, s.url, s.says.trim()))
                .collect(),
            floors: serde_json::to_value(&out.profile.proxies).unwrap_or_default(),
        },
        environment: Environment {
            meshsim_version: build.version.clone(),
            commit: build.commit.clone(),
            kernel: out.host.kernel.clone(),
            cores: out.host.cores,
            cpu_model: out.host.cpu_model.clone(),
            user: out.host.user.clone(),
            root: out.host.root,
            started_at: humantime::format_rfc3339_seconds(out.started_at).to_string(),
            hostname: out.host.hostname.clone(),
        },
        incomplete: out.incomplete,
        repeats: out.schedule.iter().map(|(_, r)| r + 1).max().unwrap_or(1),
        headline_rps: None,
        modes: out.modes.iter().map(mode_result).collect(),
    };
    judge_slos(&mut run, &loaded.scenario.slos);
    run.derive_summaries();
    run
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

fn mode_result(m: &ModeOutput) -> ModeResult {
    let flows = m.flows.iter().map(flow_result).collect();
    let components: Vec<ComponentResult> = m
        .meter
        .components
        .iter()
        .zip(&m.components)
        .map(|(s, f)| component_result(s, f, &m.meter.t_s))
        .collect();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    ModeResult {
        mode: mode(m.mode),
        repeat: m.repeat,
        flows,
        components_vcpu_sum: components.iter().map(|c| c.vcpu_avg).sum(),
        components,
        process_vcpu_avg: mean(&m.meter.process_vcpu),
        host_steal_share: m.meter.host_steal_share,
        host_probe: m.host_probe.map(|p| {
            let pp = |x: sim::hostprobe::PingPong| PingPong {
                round_trip_us: x.round_trip_us,
                cpu_per_round_trip_us: x.cpu_per_round_trip_us,
            };
            HostProbe {
                back_to_back: pp(p.back_to_back),
                paced: pp(p.paced),
            }
        }),
        saturation_warnings: m.warnings.clone(),
        slo: Vec::new(),
        summary: Default::default(),
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

fn flow_result(f: &FlowOutput) -> FlowResult {
    let steps = f
        .steps
        .iter()
        .zip(&f.step_offsets_s)
        .map(|(s, offset)| {
            let measured_from = offset + f.warmup_s;
            StepResult {
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
                // The last second of a step is usually a sliver (the stragglers after its
                // end); as a one-second sample it would read as a collapse of the rate.
                series: s
                    .series
                    .iter()
                    .filter(|i| i.second as f64 + 1.0 <= s.duration_s + 1e-6)
                    .map(|i| IntervalSample {
                        t_s: measured_from + i.second as f64 + 1.0,
                        requests: i.requests,
                        errors: i.errors,
                        p50_us: i.p50_us as f64,
                        p99_us: i.p99_us as f64,
                        max_us: i.max_us as f64,
                    })
                    .collect(),
            }
        })
        .collect();
    FlowResult {
        name: f.name.clone(),
        from: f.from.clone(),
        to: f.to.clone(),
        protocol: f.protocol.clone(),
        steps,
    }
}

fn component_result(
    s: &sim::meter::ComponentSeries,
    f: &ComponentFacts,
    t_s: &[f64],
) -> ComponentResult {
    let sum = s.summary();
    let heap_avg = sum.avg_heap_mib.unwrap_or(0.0);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    ComponentResult {
        name: s.name.clone(),
        kind: kind(s.kind),
        vcpu_avg: sum.avg_vcpu,
        vcpu_per_1000rps: f
            .rps_through
            .filter(|r| *r >= IDLE_RPS)
            .map(|r| sum.avg_vcpu / (r / 1000.0)),
        heap_mib_avg: heap_avg,
        heap_mib_peak: sum.peak_heap_mib.unwrap_or(0.0),
        // The profile's memory is what the proxy holds at the least; the model's own heap
        // counts toward it, the rest is modeled.
        modeled_mib: f
            .memory_floor_bytes
            .filter(|b| *b > 0)
            .map(|b| (mib(b) - heap_avg).max(0.0)),
        modeled_vcpu_floor: f.floor_vcpu.filter(|v| *v > 0.0),
        cpu_limit_millis: f.cpu_limit_millis,
        cpu_limit_enforced: f.cpu_limit_enforced,
        series: ComponentSeries {
            t_s: t_s.to_vec(),
            vcpu: s.vcpu.clone(),
            heap_mib: s.heap_mib.clone(),
        },
    }
}

/// Reads one figure of step `i` of a flow; `None` when the step has nothing to judge.
type Observe = Box<dyn Fn(usize, &StepResult) -> Option<f64>>;

/// A latency ceiling of an SLO: its name, its limit, and the percentile it reads.
type Percentile<'a> = (&'a str, &'a Option<Dur>, fn(&LatencySummary) -> f64);

/// One ceiling or floor of an SLO, judged on every step of its flow; the worst step decides.
struct Check {
    what: String,
    /// Unit the observed and limit values are in, for the description.
    unit: &'static str,
    limit: f64,
    /// A floor (observed must be at least the limit) rather than a ceiling.
    floor: bool,
    observe: Observe,
}

fn ms(d: &Dur) -> f64 {
    d.0.as_secs_f64() * 1000.0
}

/// Judges every SLO of the scenario on every mode (and repeat) it applies to.
pub fn judge_slos(run: &mut RunResult, slos: &[Slo]) {
    let verdicts: Vec<Vec<SloVerdict>> = run
        .modes
        .iter()
        .map(|m| {
            let base = if m.mode == Mode::NoMesh {
                None
            } else {
                let all = run.repeats_of(Mode::NoMesh);
                all.iter()
                    .find(|b| b.repeat == m.repeat)
                    .or(all.first())
                    .copied()
            };
            slos.iter()
                .filter(|s| s.modes.is_empty() || s.modes.iter().any(|x| mode(*x) == m.mode))
                .flat_map(|s| judge(s, m, base))
                .collect()
        })
        .collect();
    for (m, v) in run.modes.iter_mut().zip(verdicts) {
        m.slo = v;
    }
}

fn judge(slo: &Slo, m: &ModeResult, base: Option<&ModeResult>) -> Vec<SloVerdict> {
    let Some(flow) = m.flows.iter().find(|f| f.name == slo.flow) else {
        return Vec::new();
    };
    let mut checks: Vec<Check> = Vec::new();
    let pct: [Percentile; 4] = [
        ("p50", &slo.p50, |l| l.p50_us),
        ("p90", &slo.p90, |l| l.p90_us),
        ("p99", &slo.p99, |l| l.p99_us),
        ("p99.9", &slo.p999, |l| l.p999_us),
    ];
    for (name, limit, get) in pct {
        if let Some(d) = limit {
            checks.push(Check {
                what: format!("{name} latency"),
                unit: "ms",
                limit: ms(d),
                floor: false,
                observe: Box::new(move |_, s| {
                    (s.latency.count > 0).then(|| get(&s.latency) / 1000.0)
                }),
            });
        }
    }
    if let Some(d) = &slo.added_p99 {
        // Added latency needs the same flow and step measured without a mesh.
        let base_steps: Option<Vec<StepResult>> = base
            .and_then(|b| b.flows.iter().find(|f| f.name == slo.flow))
            .map(|f| f.steps.clone());
        if m.mode != Mode::NoMesh
            && let Some(bs) = base_steps
        {
            checks.push(Check {
                what: "p99 added over no-mesh".into(),
                unit: "ms",
                limit: ms(d),
                floor: false,
                observe: Box::new(move |i, s| {
                    let b = bs.get(i)?;
                    (s.latency.count > 0 && b.latency.count > 0 && b.target_rps == s.target_rps)
                        .then(|| (s.latency.p99_us - b.latency.p99_us) / 1000.0)
                }),
            });
        }
    }
    if let Some(f) = slo.max_error_rate {
        checks.push(Check {
            what: "error rate".into(),
            unit: "%",
            limit: f.0 * 100.0,
            floor: false,
            observe: Box::new(|_, s| {
                let errors: u64 = s.errors.values().sum();
                let all = s.requests + errors;
                (all > 0).then(|| 100.0 * errors as f64 / all as f64)
            }),
        });
    }
    if let Some(f) = slo.min_achieved_rate {
        checks.push(Check {
            what: "achieved rate".into(),
            unit: "% of target",
            limit: f.0 * 100.0,
            floor: true,
            observe: Box::new(|_, s| s.target_rps.map(|t| 100.0 * s.achieved_rps / t)),
        });
    }

    checks
        .into_iter()
        .filter_map(|c| {
            let mut worst: Option<(f64, usize)> = None;
            for (i, s) in flow.steps.iter().enumerate() {
                let Some(v) = (c.observe)(i, s) else { continue };
                let worse = match worst {
                    None => true,
                    Some((w, _)) => {
                        if c.floor {
                            v < w
                        } else {
                            v > w
                        }
                    }
                };
                if worse {
                    worst = Some((v, i));
                }
            }
            let (observed, i) = worst?;
            let passed = if c.floor {
                observed >= c.limit
            } else {
                observed <= c.limit
            };
            let at = if flow.steps.len() > 1 {
                match flow.steps[i].target_rps {
                    Some(r) => format!(", worst at the {r} rps step"),
                    None => format!(", worst at step {}", i + 1),
                }
            } else {
                String::new()
            };
            let op = if c.floor { "≥" } else { "≤" };
            Some(SloVerdict {
                name: slo.name.clone(),
                description: format!(
                    "{} {op} {} {} on flow {}{at}",
                    c.what,
                    crate::render::trim_num(c.limit),
                    c.unit,
                    slo.flow,
                ),
                observed,
                limit: c.limit,
                passed,
            })
        })
        .collect()
}

/// Error counts by kind over every step of a flow (for messages).
pub fn errors_by_kind(f: &FlowResult) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for s in &f.steps {
        for (k, v) in &s.errors {
            *m.entry(k.clone()).or_insert(0) += v;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(rps: Option<f64>, p99_us: f64, requests: u64, errors: u64) -> StepResult {
        let mut s = crate::testing::sample_run(1, 1.0).modes[0].flows[0].steps[0].clone();
        s.target_rps = rps;
        s.latency.p99_us = p99_us;
        s.latency.count = requests;
        s.requests = requests;
        s.achieved_rps = requests as f64 / s.duration_s;
        s.errors = if errors > 0 {
            BTreeMap::from([("timeout".to_string(), errors)])
        } else {
            BTreeMap::new()
        };
        s
    }

    /// An SLO as the scenario would write it (same keys; JSON is YAML).
    fn slo(json: &str) -> Slo {
        serde_json::from_str(json).expect("slo")
    }

    fn run_with(steps_by_mode: Vec<(Mode, Vec<StepResult>)>) -> RunResult {
        let mut run = crate::testing::sample_run(1, 1.0);
        let template = run.modes[0].clone();
        run.modes = steps_by_mode
            .into_iter()
            .map(|(m, steps)| {
                let mut r = template.clone();
                r.mode = m;
                r.flows.truncate(1);
                r.flows[0].name = "web".into();
                r.flows[0].steps = steps;
                r.slo.clear();
                r
            })
            .collect();
        run
    }

    #[test]
    fn the_worst_step_decides_and_the_description_says_which() {
        let mut run = run_with(vec![(
            Mode::Sidecar,
            vec![
                step(Some(500.0), 4_000.0, 5000, 0),
                step(Some(1000.0), 12_000.0, 10000, 0),
            ],
        )]);
        judge_slos(
            &mut run,
            &[slo(r#"{"name": "fast", "flow": "web", "p99": "10ms"}"#)],
        );
        let v = &run.modes[0].slo;
        assert_eq!(v.len(), 1);
        assert!(!v[0].passed);
        assert!((v[0].observed - 12.0).abs() < 1e-9);
        assert!((v[0].limit - 10.0).abs() < 1e-9);
        assert!(
            v[0].description
                .contains("p99 latency ≤ 10 ms on flow web, worst at the 1000 rps step"),
            "{}",
            v[0].description
        );
    }

    #[test]
    fn error_rate_added_latency_and_achieved_rate() {
        let mut run = run_with(vec![
            (Mode::NoMesh, vec![step(Some(100.0), 1_000.0, 1000, 0)]),
            (Mode::Sidecar, vec![step(Some(100.0), 3_500.0, 990, 10)]),
        ]);
        let slos = [
            slo(r#"{"name": "added", "flow": "web", "addedP99": "2ms"}"#),
            slo(r#"{"name": "errors", "flow": "web", "maxErrorRate": "0.5%"}"#),
            slo(
                r#"{"name": "rate", "flow": "web", "minAchievedRate": "95%", "modes": ["sidecar"]}"#,
            ),
        ];
        judge_slos(&mut run, &slos);
        let nomesh = &run.modes[0].slo;
        // no-mesh: no added latency over itself; the rate SLO is for sidecar only.
        assert_eq!(nomesh.len(), 1, "{nomesh:?}");
        assert!(nomesh[0].passed);
        let side = &run.modes[1].slo;
        let by = |n: &str| side.iter().find(|v| v.name == n).expect(n);
        assert!(!by("added").passed && (by("added").observed - 2.5).abs() < 1e-9);
        assert!(!by("errors").passed && (by("errors").observed - 1.0).abs() < 1e-9);
        assert!(by("rate").passed, "{:?}", by("rate"));
    }
}
