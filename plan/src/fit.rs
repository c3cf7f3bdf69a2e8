//! A cost model fitted to a run: each proxy kind's CPU against its own request rate over the
//! run's rate steps (`results::costfit`), a straight line whose intercept is the idle CPU and
//! whose slope the CPU per request, with 95% confidence bands. What a run cannot separate
//! (bytes and new connections, at one payload and one connection reuse) is folded into the
//! slope and said so; memory stays as the base profile publishes it.

use reports::RunResult;
use reports::run::ComponentKind;
use results::costfit::{CpuLine, cpu_points, fit_line};
use scenario::costmodel::{CostModel, Param, ProxyModel};
use scenario::units::Dur;

/// One kind's fit, for the plan's notes.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub kind: ComponentKind,
    pub line: CpuLine,
}

/// `base` with the CPU of every proxy kind `run` measured at three or more rates replaced by
/// its fit (over `steps` only, when given); `label` names the run in each source.
pub fn fit_model(
    run: &RunResult,
    base: &CostModel,
    label: &str,
    steps: Option<&[usize]>,
) -> (CostModel, Vec<Fitted>) {
    let points = cpu_points(run);
    let mut model = base.clone();
    let mut fitted = Vec::new();
    for kind in [
        ComponentKind::Sidecar,
        ComponentKind::Ztunnel,
        ComponentKind::Waypoint,
    ] {
        let pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.kind == kind && steps.is_none_or(|s| s.contains(&p.step)))
            .map(|p| (p.rps, p.vcpu))
            .collect();
        let Some(line) = fit_line(&pts) else {
            continue;
        };
        let m = model
            .proxy_mut(kind.as_str())
            .expect("a proxy kind has a model");
        apply(m, &line, label, &run.profile.name);
        fitted.push(Fitted { kind, line });
    }
    (model, fitted)
}

fn apply(m: &mut ProxyModel, l: &CpuLine, label: &str, profile: &str) {
    // A 95% band on each coefficient: Student's t with n − 2 degrees of freedom.
    let t = reports::stats::student_t_critical(0.975, (l.n - 2) as f64);
    let how = format!(
        "fitted: {label} (measured on this machine, cost profile {profile}): vCPU = cpuIdle + rps × cpuPerRequest, least squares over {} points (each proxy's own count and CPU over a step, {:.0}–{:.0} rps); range: 95% confidence",
        l.n, l.rps_min, l.rps_max
    );
    // Idle to 0.1 mvCPU and the slope to the nanosecond: finer digits are noise.
    let round = |v: f64, step: f64| (v / step).round() * step;
    let band = |v: f64, se: f64, step: f64| {
        (
            round(v.max(0.0), step),
            round((v - t * se).max(0.0), step),
            round((v + t * se).max(0.0), step),
        )
    };
    let (v, lo, hi) = band(l.idle, l.idle_se, 1e-4);
    m.cpu_idle = Param {
        value: v,
        low: Some(lo.min(v)),
        high: Some(hi.max(v)),
        source: how.clone(),
    };
    let (v, lo, hi) = band(l.per_request, l.per_request_se, 1e-9);
    let d = |s: f64| Dur(std::time::Duration::from_secs_f64(s));
    m.cpu_per_request = Param {
        value: d(v),
        low: Some(d(lo.min(v))),
        high: Some(d(hi.max(v))),
        source: how,
    };
    let folded = format!(
        "fitted: {label}: folded into cpuPerRequest at the run's payloads and connection reuse (one shape of traffic cannot separate them)"
    );
    m.cpu_per_kib = Param::new(Dur::default(), folded.clone());
    m.cpu_per_connection = Param::new(Dur::default(), folded);
}
