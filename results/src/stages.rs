//! A migration measured live: per stage, each component's CPU and memory over the flows'
//! measured step, totals per proxy kind, and the transition — the errors from the change until
//! the load ran clean again.

use std::collections::BTreeMap;

use crate::raw::{ComponentSeries, RawFlow, RawMode};
use crate::run::{
    ComponentKind, StageComponent, StageResult, StageTotal, Transition, TransitionFlow,
};

/// The stages of a mode that applied a migration live (none otherwise).
pub fn stage_results(m: &RawMode) -> Vec<StageResult> {
    m.stages
        .iter()
        .enumerate()
        .filter_map(|(k, st)| {
            let (from, to) = window(&m.flows, k)?;
            let components: Vec<StageComponent> = m
                .meter
                .components
                .iter()
                .map(|c| component(c, &m.meter.t_s, (from, to)))
                .collect();
            let transition = st.applied_at_s.map(|at| transition(&m.flows, k, at));
            Some(StageResult {
                name: st.name.clone(),
                step: k,
                applied_at_s: st.applied_at_s,
                changes: st.changes.clone(),
                apply_s: st.apply_s,
                totals: totals(&components),
                components,
                transition,
            })
        })
        .collect()
}

/// The stage's measured window: from the first flow's measured start of step `k` to the last
/// flow's end of it. `None` when no flow ran that step to its end.
fn window(flows: &[RawFlow], k: usize) -> Option<(f64, f64)> {
    let spans: Vec<(f64, f64)> = flows
        .iter()
        .filter_map(|f| {
            let from = *f.measured_from_s.get(k)?;
            Some((from, from + f.steps.get(k)?.duration_s))
        })
        .collect();
    let from = spans.iter().map(|s| s.0).reduce(f64::min)?;
    let to = spans.iter().map(|s| s.1).reduce(f64::max)?;
    Some((from, to))
}

/// A component's means over the meter intervals whose middle falls in the window.
fn component(c: &ComponentSeries, t_s: &[f64], (from, to): (f64, f64)) -> StageComponent {
    let mut prev = 0.0;
    let (mut w_sum, mut cpu, mut heap, mut profile, mut n) = (0.0, 0.0, 0.0, 0.0, 0usize);
    let mut running = false;
    for (i, &t) in t_s.iter().enumerate() {
        let (start, len) = (prev, (t - prev).max(0.0));
        prev = t;
        let mid = start + len / 2.0;
        if mid < from || mid > to {
            continue;
        }
        w_sum += len;
        running |= c.threads.get(i).is_some_and(|&t| t > 0);
        cpu += c.vcpu.get(i).copied().unwrap_or(0.0) * len;
        heap += c.heap_mib.get(i).copied().unwrap_or(0.0);
        profile += c.profile_mib.get(i).copied().unwrap_or(0.0);
        n += 1;
    }
    let mean = |v: f64| if n > 0 { v / n as f64 } else { 0.0 };
    let heap_mib = mean(heap);
    StageComponent {
        name: c.name.clone(),
        kind: c.kind,
        running,
        vcpu: if w_sum > 0.0 { cpu / w_sum } else { 0.0 },
        heap_mib,
        modeled_mib: (!c.profile_mib.is_empty()).then(|| (mean(profile) - heap_mib).max(0.0)),
    }
}

fn is_proxy(k: ComponentKind) -> bool {
    matches!(
        k,
        ComponentKind::Sidecar | ComponentKind::Ztunnel | ComponentKind::Waypoint
    )
}

/// Sums per kind, then `proxies` (the three proxy kinds together). A component with no
/// thread in the window (a removed sidecar, a waypoint not yet deployed) is not counted as
/// running.
fn totals(components: &[StageComponent]) -> Vec<StageTotal> {
    let mut by: BTreeMap<String, StageTotal> = BTreeMap::new();
    for c in components {
        let running = c.running;
        let mut add = |kind: String| {
            let t = by.entry(kind.clone()).or_insert(StageTotal {
                kind,
                running: 0,
                vcpu: 0.0,
                heap_mib: 0.0,
                modeled_mib: 0.0,
            });
            t.running += usize::from(running);
            t.vcpu += c.vcpu;
            t.heap_mib += c.heap_mib;
            t.modeled_mib += c.modeled_mib.unwrap_or(0.0);
        };
        add(c.kind.as_str().to_string());
        if is_proxy(c.kind) {
            add("proxies".to_string());
        }
    }
    by.into_values().collect()
}

/// Errors from the change at `at` (seconds on the mode's time line) until each flow's first
/// second with requests and no error: the step's warmup seconds, then its measured ones.
fn transition(flows: &[RawFlow], k: usize, at: f64) -> Transition {
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_flow = Vec::new();
    for f in flows {
        let Some(step) = f.steps.get(k) else {
            continue;
        };
        // (start of the second, requests, errors), in time order.
        let mut seconds: Vec<(f64, u64, u64)> = Vec::new();
        if let Some(w) = &step.warmup {
            for (kind, n) in &w.errors {
                *errors.entry(kind.clone()).or_default() += n;
            }
            seconds.extend(
                w.seconds
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (w.from_s + i as f64, s.requests, s.errors)),
            );
        }
        seconds.extend(
            step.series
                .iter()
                .map(|s| (s.t_s - 1.0, s.requests, s.errors)),
        );
        let clean = seconds.iter().position(|&(_, r, e)| r > 0 && e == 0);
        let failed = seconds[..clean.unwrap_or(seconds.len())]
            .iter()
            .map(|s| s.2)
            .sum();
        per_flow.push(TransitionFlow {
            flow: f.name.clone(),
            failed,
            cleared_after_s: clean.map(|i| (seconds[i].0 - at).max(0.0)),
        });
    }
    let cleared_after_s = per_flow
        .iter()
        .map(|f| f.cleared_after_s)
        .try_fold(0.0_f64, |acc, c| c.map(|c| acc.max(c)));
    Transition {
        failed: per_flow.iter().map(|f| f.failed).sum(),
        errors,
        cleared_after_s,
        flows: per_flow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{IntervalSample, WarmupResult, WarmupSecond};

    fn flow(warm: &[(u64, u64)], measured: &[(u64, u64)]) -> RawFlow {
        let mut step = crate::testing::step_result(Some(100.0), 5.0);
        step.warmup = Some(WarmupResult {
            from_s: 6.0,
            requests: warm.iter().map(|w| w.0).sum(),
            errors: BTreeMap::from([("reset".to_string(), warm.iter().map(|w| w.1).sum())]),
            seconds: warm
                .iter()
                .map(|&(requests, errors)| WarmupSecond { requests, errors })
                .collect(),
        });
        step.series = measured
            .iter()
            .enumerate()
            .map(|(i, &(requests, errors))| IntervalSample {
                t_s: 8.0 + i as f64 + 1.0,
                requests,
                errors,
                p50_us: 100.0,
                p99_us: 200.0,
                max_us: 300.0,
            })
            .collect();
        let before = crate::testing::step_result(Some(100.0), 5.0);
        RawFlow {
            name: "f".into(),
            from: "a".into(),
            to: "b:80".into(),
            protocol: "http1".into(),
            steps: vec![before, step],
            measured_from_s: vec![1.0, 8.0],
        }
    }

    #[test]
    fn a_transition_counts_its_errors_and_the_time_they_took_to_clear() {
        // Applied at 6 s: the first warmup second fails 30 of its requests, the second 5, the
        // first measured second 2, then it runs clean from 9 s.
        let f = flow(&[(70, 30), (95, 5)], &[(98, 2), (100, 0), (100, 0)]);
        let t = transition(&[f], 1, 6.0);
        assert_eq!(t.failed, 37);
        assert_eq!(t.errors.get("reset"), Some(&35));
        assert_eq!(t.cleared_after_s, Some(3.0));
    }

    #[test]
    fn a_transition_without_errors_clears_at_once_and_one_that_never_clears_says_so() {
        let f = flow(&[(100, 0), (100, 0)], &[(100, 0)]);
        let t = transition(&[f], 1, 6.0);
        assert_eq!((t.failed, t.cleared_after_s), (0, Some(0.0)));
        let f = flow(&[(0, 100), (0, 100)], &[(0, 100)]);
        let t = transition(&[f], 1, 6.0);
        assert_eq!((t.failed, t.cleared_after_s), (300, None));
    }
}
