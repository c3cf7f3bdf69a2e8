//! CPU against rate, per proxy kind, over a run's rate steps: each proxy's own request count
//! and its own CPU, averaged over each step's measured seconds, and a straight line through
//! them (ordinary least squares). The run report draws the points; a capacity plan fits its
//! cost model to them.

use crate::run::{ComponentKind, Mode, RunResult};

/// One proxy over one step's measured window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuPoint {
    pub mode: Mode,
    pub repeat: u32,
    pub kind: ComponentKind,
    /// Index into the flows' steps.
    pub step: usize,
    /// The step's target rate (the first flow's), for labels.
    pub target_rps: Option<f64>,
    /// What the proxy counted itself, per second (requests, or L4 exchanges for ztunnel).
    pub rps: f64,
    /// Connections it opened or accepted per second.
    pub connections_per_s: f64,
    pub vcpu: f64,
}

/// Every proxy's (rate, vCPU) per step, over every mode and repeat of `run`. A step's window
/// is the span of its per-second samples (the first flow's: every flow steps together); the
/// proxy's per-second readings inside it are averaged.
pub fn cpu_points(run: &RunResult) -> Vec<CpuPoint> {
    let mut out = Vec::new();
    for m in &run.modes {
        let Some(flow) = m.flows.first() else {
            continue;
        };
        for (step, s) in flow.steps.iter().enumerate() {
            let (Some(first), Some(last)) = (s.series.first(), s.series.last()) else {
                continue;
            };
            // Samples end their second: the window opens one second before the first.
            let (from, to) = (first.t_s - 1.0, last.t_s);
            for c in m.components.iter().filter(|c| c.kind.is_proxy()) {
                let inside: Vec<usize> = c
                    .series
                    .t_s
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| **t > from + 0.5 && **t <= to + 0.5)
                    .map(|(i, _)| i)
                    .collect();
                if inside.is_empty() {
                    continue;
                }
                let mean = |v: &[f64]| {
                    inside.iter().filter_map(|&i| v.get(i)).sum::<f64>() / inside.len() as f64
                };
                out.push(CpuPoint {
                    mode: m.mode,
                    repeat: m.repeat,
                    kind: c.kind,
                    step,
                    target_rps: s.target_rps,
                    rps: mean(&c.series.rps),
                    connections_per_s: mean(&c.series.connections_opened),
                    vcpu: mean(&c.series.vcpu),
                });
            }
        }
    }
    out
}

/// vCPU = `idle` + rps × `per_request`, with the standard errors of both.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuLine {
    pub idle: f64,
    pub per_request: f64,
    pub idle_se: f64,
    pub per_request_se: f64,
    /// Points fitted, and the rates they span.
    pub n: usize,
    pub rps_min: f64,
    pub rps_max: f64,
}

impl CpuLine {
    pub fn at(&self, rps: f64) -> f64 {
        self.idle + rps * self.per_request
    }
}

/// The least-squares line through `points`; none with fewer than 3 points or a single rate
/// (two points fit any line exactly, and say nothing of its error).
pub fn fit_line(points: &[(f64, f64)]) -> Option<CpuLine> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= f64::EPSILON * nf * mx.abs().max(1.0) {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let ss_res: f64 = points
        .iter()
        .map(|p| (p.1 - intercept - slope * p.0).powi(2))
        .sum();
    let s2 = ss_res / (nf - 2.0);
    Some(CpuLine {
        idle: intercept,
        per_request: slope,
        idle_se: (s2 * (1.0 / nf + mx * mx / sxx)).sqrt(),
        per_request_se: (s2 / sxx).sqrt(),
        n,
        rps_min: points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min),
        rps_max: points.iter().map(|p| p.0).fold(0.0, f64::max),
    })
}

/// vCPU = `coef[0]` + rps × `coef[1]` + new connections per second × `coef[2]`, with each
/// coefficient's standard error: per-request and per-connection CPU told apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuPlane {
    pub coef: [f64; 3],
    pub se: [f64; 3],
    pub n: usize,
}

/// The least-squares plane through (rps, connections/s, vCPU), when the points can tell the
/// two rates apart: at least 5 points at 4 or more distinct loads, and connections not
/// (nearly) in proportion to requests, as a run with both a churning and a reusing flow gives
/// them (|r| < 0.9).
/// Otherwise none, and [`fit_line`] folds connections into the per-request cost.
pub fn fit_plane(points: &[(f64, f64, f64)]) -> Option<CpuPlane> {
    let n = points.len();
    if n < 5 {
        return None;
    }
    let nf = n as f64;
    let mean = |f: &dyn Fn(&(f64, f64, f64)) -> f64| points.iter().map(f).sum::<f64>() / nf;
    let (mr, mc) = (mean(&|p| p.0), mean(&|p| p.1));
    let (mut srr, mut scc, mut src) = (0.0, 0.0, 0.0);
    for p in points {
        srr += (p.0 - mr).powi(2);
        scc += (p.1 - mc).powi(2);
        src += (p.0 - mr) * (p.1 - mc);
    }
    if srr <= 0.0 || scc <= 0.0 || (src / (srr * scc).sqrt()).abs() >= 0.9 {
        return None;
    }
    // Three coefficients need four distinct loads for an error to mean anything: proxies
    // measured side by side at one load only repeat a point.
    let span = |f: &dyn Fn(&(f64, f64, f64)) -> f64| {
        let (lo, hi) = points
            .iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        (hi - lo).max(f64::MIN_POSITIVE)
    };
    let (wr, wc) = (span(&|p| p.0), span(&|p| p.1));
    let mut loads: Vec<(f64, f64)> = Vec::new();
    for p in points {
        if !loads
            .iter()
            .any(|l| (l.0 - p.0).abs() <= 0.02 * wr && (l.1 - p.1).abs() <= 0.02 * wc)
        {
            loads.push((p.0, p.1));
        }
    }
    if loads.len() < 4 {
        return None;
    }
    // Normal equations X'X b = X'y with X = [1, rps, conns].
    let mut a = [[0.0f64; 3]; 3];
    let mut b = [0.0f64; 3];
    for p in points {
        let x = [1.0, p.0, p.1];
        for i in 0..3 {
            b[i] += x[i] * p.2;
            for j in 0..3 {
                a[i][j] += x[i] * x[j];
            }
        }
    }
    let inv = invert3(a)?;
    let coef: [f64; 3] = std::array::from_fn(|i| (0..3).map(|j| inv[i][j] * b[j]).sum());
    let rss: f64 = points
        .iter()
        .map(|p| (p.2 - coef[0] - coef[1] * p.0 - coef[2] * p.1).powi(2))
        .sum();
    let s2 = rss / (nf - 3.0);
    Some(CpuPlane {
        coef,
        se: std::array::from_fn(|i| (s2 * inv[i][i]).max(0.0).sqrt()),
        n,
    })
}

/// The inverse of a 3×3 matrix (adjugate over determinant); none when singular.
fn invert3(m: [[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let c = |r: usize, k: usize| {
        let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
        let (k1, k2) = ((k + 1) % 3, (k + 2) % 3);
        m[r1][k1] * m[r2][k2] - m[r1][k2] * m[r2][k1]
    };
    let det: f64 = (0..3).map(|k| m[0][k] * c(0, k)).sum();
    let scale = m.iter().flatten().map(|v| v.abs()).fold(0.0, f64::max);
    if det.abs() <= f64::EPSILON * scale.powi(3) {
        return None;
    }
    // The inverse's (i, j) is the cofactor of (j, i) over the determinant.
    Some(std::array::from_fn(|i| {
        std::array::from_fn(|j| c(j, i) / det)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keep-alive steps (almost no new connections) and churning ones (a connection per
    /// request) at their own rates tell 200 µs per request from 1.5 ms per connection.
    #[test]
    fn churn_and_reuse_tell_connection_cpu_from_request_cpu() {
        let mut pts = Vec::new();
        for (i, r) in [100.0, 200.0, 300.0, 400.0].into_iter().enumerate() {
            let wobble = 1.0 + 0.01 * (i as f64 - 1.5);
            pts.push((r, 0.2, (0.01 + r * 2e-4 + 0.2 * 1.5e-3) * wobble));
            let churn = r / 4.0;
            pts.push((
                churn,
                churn,
                (0.01 + churn * 2e-4 + churn * 1.5e-3) * wobble,
            ));
        }
        let p = fit_plane(&pts).expect("separable");
        assert!((p.coef[1] / 2e-4 - 1.0).abs() < 0.05, "{p:?}");
        assert!((p.coef[2] / 1.5e-3 - 1.0).abs() < 0.05, "{p:?}");
        assert!(p.se[2] > 0.0 && p.n == 8);
        // Connections in proportion to requests cannot be told apart.
        let prop: Vec<_> = [100.0, 200.0, 300.0, 400.0, 500.0]
            .iter()
            .map(|&r| (r, r / 10.0, 0.01 + r * 3e-4))
            .collect();
        assert!(fit_plane(&prop).is_none());
        // Three loads, each seen by two proxies: an exact fit with no error to speak of.
        let three: Vec<_> = [(250.0, 150.0), (450.0, 50.0), (150.0, 100.0)]
            .iter()
            .flat_map(|&(r, c)| [(r, c, 0.01 + r * 2e-4 + c * 1e-3); 2])
            .collect();
        assert!(fit_plane(&three).is_none());
    }

    #[test]
    fn a_line_is_found_again_with_its_error() {
        let pts: Vec<(f64, f64)> = [100.0, 200.0, 400.0, 800.0]
            .iter()
            .map(|&r| (r, 0.01 + r * 2e-4))
            .collect();
        let l = fit_line(&pts).expect("a line");
        assert!((l.idle - 0.01).abs() < 1e-12 && (l.per_request - 2e-4).abs() < 1e-15);
        assert!(l.per_request_se < 1e-12);
        assert_eq!((l.n, l.rps_min, l.rps_max), (4, 100.0, 800.0));
        let noisy = [(100.0, 0.03), (200.0, 0.05), (300.0, 0.08), (400.0, 0.09)];
        let l = fit_line(&noisy).expect("a line");
        assert!(l.per_request_se > 0.0 && l.idle_se > 0.0);
        assert!(fit_line(&[(1.0, 1.0), (2.0, 2.0)]).is_none(), "two points");
        assert!(
            fit_line(&[(5.0, 1.0), (5.0, 2.0), (5.0, 3.0)]).is_none(),
            "one rate"
        );
    }
}
