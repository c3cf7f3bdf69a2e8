//! Service level objectives: each SLO of the scenario judged on every mode (and repeat) it
//! applies to; the worst step of its flow decides, and the verdict says which step that was.

use std::collections::BTreeMap;

use scenario::{Dur, Slo};

use crate::run::{FlowResult, LatencySummary, Mode, ModeResult, RunResult, SloVerdict, StepResult};

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
                .filter(|s| s.modes.is_empty() || s.modes.contains(&m.mode))
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
                    crate::trim_num(c.limit),
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
