//! A cost model fitted to a run: each proxy kind's CPU against its own request rate over the
//! run's rate steps (`results::costfit`), a straight line whose intercept is the idle CPU and
//! whose slope the CPU per request, with 95% confidence bands. A run whose proxies opened
//! connections out of proportion to their requests (a churning flow beside a reusing one,
//! as `scenarios/connection-churn.yaml` runs them) also gives the CPU per new connection, by
//! least squares on both rates. What a run cannot separate (bytes, at one payload; new
//! connections, at one reuse) is folded into the per-request slope and said so; memory stays
//! as the base profile publishes it.

use reports::RunResult;
use reports::run::ComponentKind;
use results::costfit::{CpuLine, CpuPlane, cpu_points, fit_line, fit_plane};
use scenario::costmodel::{CostModel, Param, ProxyModel};
use scenario::units::Dur;

/// One kind's fit, for the plan's notes.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub kind: ComponentKind,
    pub line: CpuLine,
    /// Per request and per new connection told apart, when the run could.
    pub plane: Option<CpuPlane>,
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
        let mine: Vec<_> = points
            .iter()
            .filter(|p| p.kind == kind && steps.is_none_or(|s| s.contains(&p.step)))
            .collect();
        let pts: Vec<(f64, f64)> = mine.iter().map(|p| (p.rps, p.vcpu)).collect();
        // CPU falling as the rate rises is other work varying against it (new connections,
        // bytes): no per-request cost can be read from it, and the base profile stays.
        let Some(line) = fit_line(&pts).filter(|l| l.per_request > 0.0) else {
            continue;
        };
        let plane = fit_plane(
            &mine
                .iter()
                .map(|p| (p.rps, p.connections_per_s, p.vcpu))
                .collect::<Vec<_>>(),
        )
        // A negative cost is the data saying it cannot tell them apart after all.
        .filter(|p| p.coef[1] > 0.0 && p.coef[2] > 0.0);
        let m = model
            .proxy_mut(kind.as_str())
            .expect("a proxy kind has a model");
        apply(m, &line, label, &run.profile.name);
        if let Some(p) = &plane {
            apply_plane(m, p, label, &run.profile.name);
        }
        fitted.push(Fitted { kind, line, plane });
    }
    (model, fitted)
}

/// A fitted coefficient `v` with standard error `se` as a parameter whose range is its band
/// (± `t` errors), every end clamped at 0: idle to 0.1 mvCPU, finer digits being noise.
fn idle_param(v: f64, se: f64, t: f64, source: &str) -> Param<f64> {
    let r = |x: f64| (x.max(0.0) * 1e4).round() / 1e4;
    let (lo, hi) = (r(v - t * se), r(v + t * se));
    let v = r(v);
    Param {
        value: v,
        low: Some(lo.min(v)),
        high: Some(hi.max(v)),
        source: source.to_string(),
    }
}

/// As [`idle_param`], for a CPU time per event, to the nanosecond.
fn time_param(v: f64, se: f64, t: f64, source: &str) -> Param<Dur> {
    let d = |x: f64| {
        Dur(std::time::Duration::from_secs_f64(
            (x * 1e9).round().max(0.0) / 1e9,
        ))
    };
    let (lo, hi) = (v - t * se, v + t * se);
    Param {
        value: d(v),
        low: Some(d(lo.min(v))),
        high: Some(d(hi.max(v))),
        source: source.to_string(),
    }
}

fn apply(m: &mut ProxyModel, l: &CpuLine, label: &str, profile: &str) {
    // A 95% band on each coefficient: Student's t with n − 2 degrees of freedom.
    let t = reports::stats::student_t_critical(0.975, (l.n - 2) as f64);
    let how = format!(
        "fitted: {label} (measured on this machine, cost profile {profile}): vCPU = cpuIdle + rps × cpuPerRequest, least squares over {} points (each proxy's own count and CPU over a step, {:.0}–{:.0} rps); range: 95% confidence",
        l.n, l.rps_min, l.rps_max
    );
    m.cpu_idle = idle_param(l.idle, l.idle_se, t, &how);
    m.cpu_per_request = time_param(l.per_request, l.per_request_se, t, &how);
    let folded = format!(
        "fitted: {label}: folded into cpuPerRequest at the run's payloads and connection reuse (one shape of traffic cannot separate them)"
    );
    m.cpu_per_kib = Param::new(Dur::default(), folded.clone());
    m.cpu_per_connection = Param::new(Dur::default(), folded);
}

/// The idle, per-request and per-connection CPU of `p`, each with its 95% band (Student's t,
/// n − 3 degrees of freedom).
fn apply_plane(m: &mut ProxyModel, p: &CpuPlane, label: &str, profile: &str) {
    let t = reports::stats::student_t_critical(0.975, (p.n - 3) as f64);
    let how = format!(
        "fitted: {label} (measured on this machine, cost profile {profile}): vCPU = cpuIdle + rps × cpuPerRequest + new connections/s × cpuPerConnection, least squares over {} points (each proxy's own counts and CPU over a step); range: 95% confidence",
        p.n
    );
    m.cpu_idle = idle_param(p.coef[0], p.se[0], t, &how);
    m.cpu_per_request = time_param(p.coef[1], p.se[1], t, &how);
    m.cpu_per_connection = time_param(p.coef[2], p.se[2], t, &how);
    m.cpu_per_kib = Param::new(
        Dur::default(),
        format!(
            "fitted: {label}: folded into cpuPerRequest at the run's payloads (one payload cannot separate them)"
        ),
    );
}
