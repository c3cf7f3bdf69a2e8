//! CPU against rate, per proxy kind, over a run's rate steps: each proxy's own request count
//! and its own CPU, averaged over each step's measured seconds, and a straight line through
//! them (ordinary least squares). The run report draws the points; a capacity plan fits its
//! cost model to them.

use crate::run::{ComponentKind, Mode, RunResult};

/// One proxy over one step's measured window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuPoint {
    pub mode: Mode,
    pub kind: ComponentKind,
    /// Index into the flows' steps.
    pub step: usize,
    /// The step's target rate (the first flow's), for labels.
    pub target_rps: Option<f64>,
    /// What the proxy counted itself, per second (requests, or L4 exchanges for ztunnel).
    pub rps: f64,
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
                    kind: c.kind,
                    step,
                    target_rps: s.target_rps,
                    rps: mean(&c.series.rps),
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

#[cfg(test)]
mod tests {
    use super::*;

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
