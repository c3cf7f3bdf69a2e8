//! A fault's effect on the load, from the flows' per-second series: requests failed, the time
//! until the first error-free second once it ended, and the time until p99 is back within 10%
//! of what it was before the fault.

use crate::raw::{RawFault, RawFlow};
use crate::run::{FaultFlow, FaultResult};

/// p99 counts as recovered within this factor of its level before the fault.
const RECOVERED: f64 = 1.1;

pub fn fault_results(faults: &[RawFault], flows: &[RawFlow]) -> Vec<FaultResult> {
    faults.iter().map(|f| fault_result(f, flows)).collect()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn fault_result(f: &RawFault, flows: &[RawFlow]) -> FaultResult {
    let per_flow: Vec<FaultFlow> = if f.not_applied.is_some() {
        Vec::new()
    } else {
        flows
            .iter()
            .filter_map(|fl| {
                let step = fl.steps.get(f.step)?;
                let s = &step.series;
                // Each sample covers the second ending at `t_s`.
                let p99_before_us = median(
                    s.iter()
                        .filter(|x| x.t_s <= f.start_s && x.requests > 0)
                        .map(|x| x.p99_us)
                        .collect(),
                );
                let after_end = |x: &&crate::run::IntervalSample| x.t_s > f.end_s;
                let clean = s
                    .iter()
                    .filter(after_end)
                    .find(|x| x.errors == 0 && x.requests > 0);
                let window = || {
                    s.iter()
                        .filter(|x| x.t_s > f.start_s && clean.is_none_or(|c| x.t_s < c.t_s))
                };
                let failed = window().map(|x| x.errors).sum();
                let mut by_kind = std::collections::BTreeMap::new();
                for (k, n) in window().flat_map(|x| &x.errors_by_kind) {
                    *by_kind.entry(k.clone()).or_insert(0) += n;
                }
                let recovered = p99_before_us.and_then(|b| {
                    s.iter()
                        .filter(after_end)
                        .find(|x| x.requests > 0 && x.p99_us <= RECOVERED * b)
                });
                let since = |t_end: f64| (t_end - 1.0 - f.start_s).max(0.0);
                Some(FaultFlow {
                    flow: fl.name.clone(),
                    failed,
                    errors: by_kind,
                    clean_after_s: clean.map(|c| since(c.t_s)),
                    p99_before_us,
                    p99_recovered_after_s: recovered.map(|c| since(c.t_s)),
                })
            })
            .collect()
    };
    let worst = |g: fn(&FaultFlow) -> Option<f64>| {
        per_flow
            .iter()
            .map(g)
            .try_fold(0.0_f64, |acc, v| v.map(|v| acc.max(v)))
            .filter(|_| !per_flow.is_empty())
    };
    FaultResult {
        label: f.label.clone(),
        kind: f.kind.clone(),
        step: f.step,
        start_s: f.start_s,
        end_s: f.end_s,
        not_applied: f.not_applied.clone(),
        failed: per_flow.iter().map(|x| x.failed).sum(),
        clean_after_s: worst(|x| x.clean_after_s),
        p99_recovered_after_s: worst(|x| x.p99_recovered_after_s),
        errors: per_flow.iter().fold(Default::default(), |mut m, x| {
            for (k, n) in &x.errors {
                *m.entry(k.clone()).or_insert(0) += n;
            }
            m
        }),
        flows: per_flow,
        note: f.note.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::IntervalSample;

    fn flow(seconds: &[(u64, u64, f64)]) -> RawFlow {
        let mut step = crate::testing::step_result(Some(100.0), seconds.len() as f64);
        step.series = seconds
            .iter()
            .enumerate()
            .map(|(i, &(requests, errors, p99_us))| IntervalSample {
                t_s: 2.0 + i as f64 + 1.0,
                requests,
                errors,
                errors_by_kind: Default::default(),
                p50_us: p99_us / 2.0,
                p99_us,
                max_us: p99_us,
            })
            .collect();
        RawFlow {
            name: "f".into(),
            from: "a".into(),
            to: "b:80".into(),
            protocol: "http1".into(),
            steps: vec![step],
            measured_from_s: vec![2.0],
            search: None,
        }
    }

    fn fault(start_s: f64, end_s: f64) -> RawFault {
        RawFault {
            label: "ztunnel-restart node-2 at 3s for 1s".into(),
            kind: "ztunnel-restart".into(),
            step: 0,
            start_s,
            end_s,
            not_applied: None,
            note: None,
        }
    }

    #[test]
    fn a_restart_counts_its_failures_and_the_times_to_clean_and_to_p99_recovered() {
        // Seconds ending at 3..=9 s; down from 5.2 s to 6.2 s. p99 was 1 ms; errors in the
        // seconds ending at 6 and 7; p99 stays high through the second ending at 8.
        let fl = flow(&[
            (100, 0, 1000.0),
            (100, 0, 1000.0),
            (100, 0, 1050.0),
            (20, 80, 900.0),
            (90, 10, 8000.0),
            (100, 0, 3000.0),
            (100, 0, 1080.0),
        ]);
        let r = fault_result(&fault(5.2, 6.2), &[fl]);
        assert_eq!(r.failed, 90);
        // First clean second after the end: the one ending at 8 s, which began 1.8 s after.
        assert!(
            (r.clean_after_s.expect("clean") - 1.8).abs() < 1e-9,
            "{r:?}"
        );
        assert!(
            (r.p99_recovered_after_s.expect("recovered") - 2.8).abs() < 1e-9,
            "{r:?}"
        );
        assert_eq!(r.flows[0].p99_before_us, Some(1000.0));
    }

    #[test]
    fn a_fault_that_never_clears_says_so_and_one_not_applied_has_no_figures() {
        let fl = flow(&[(100, 0, 1000.0), (0, 100, 0.0), (0, 100, 0.0)]);
        let r = fault_result(&fault(3.5, 4.0), std::slice::from_ref(&fl));
        assert_eq!((r.failed, r.clean_after_s), (200, None));
        let mut na = fault(3.5, 3.5);
        na.not_applied = Some("no ztunnel runs on node-2 in this mode".into());
        let r = fault_result(&na, &[fl]);
        assert!(r.flows.is_empty() && r.clean_after_s.is_none());
    }
}
