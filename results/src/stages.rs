//! A migration measured live: per stage, each component's CPU and memory over the flows'
//! measured step, totals per proxy kind, and the transition — the errors from the change until
//! the load ran clean again.

use std::collections::BTreeMap;

use crate::raw::{ComponentSeries, RawFlow, RawMode};
use crate::run::{
    ChecklistItem, ComponentKind, RunResult, StageComponent, StageResult, StageTotal, Transition,
    TransitionFlow,
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

fn item(id: &str, status: &str, title: &str, evidence: Vec<String>, source: &str) -> ChecklistItem {
    ChecklistItem {
        id: id.to_string(),
        status: status.to_string(),
        title: title.to_string(),
        evidence,
        source: source.to_string(),
    }
}

/// "Dashboards and alerts adjusted": the scenario's queries evaluated at each stage.
fn dashboards_item(m: Option<&crate::run::MonitoringResult>) -> ChecklistItem {
    let (status, evidence) = match m {
        None => (
            "not-checkable",
            vec!["the scenario names no alert rules or dashboards (`monitoring: {rules, dashboards}`)".to_string()],
        ),
        Some(m) => match &m.skipped {
            Some(why) => ("not-checkable", vec![why.clone()]),
            None => {
                let flags: Vec<String> = m
                    .flagged()
                    .flat_map(|q| q.flags.iter().map(move |f| format!("{}: {f}", q.name)))
                    .collect();
                if flags.is_empty() {
                    (
                        "verified",
                        vec![format!(
                            "{} queries evaluated at {} stages by Prometheus {}: none goes silent, every selector matches",
                            m.queries.len(),
                            m.stages.len(),
                            m.prometheus.as_deref().unwrap_or("?")
                        )],
                    )
                } else {
                    ("failed", flags)
                }
            }
        },
    };
    item(
        "dashboards-checked",
        status,
        "dashboards and alert rules still see the traffic",
        evidence,
        "istio.io ambient migration (after): ztunnel reports L4 metrics only, L7 metrics come from waypoints (reporter=\"waypoint\")",
    )
}

/// The checklist items a live migration run verifies (beyond `meshsim check`'s static ones):
/// sidecars gone, mTLS between meshed workloads, nothing broken or opened that no stage
/// expects, the transitions, and performance before against after. `sidecars_after` is how
/// many pods the last stage's labels leave on sidecars.
pub fn live_checklist(run: &RunResult, sidecars_after: usize) -> Vec<ChecklistItem> {
    let mut out = Vec::new();
    let Some(m) = run
        .modes
        .iter()
        .find(|m| m.repeat == 0 && !m.stages.is_empty())
    else {
        return out;
    };
    let (Some(first), Some(last)) = (m.stages.first(), m.stages.last()) else {
        return out;
    };
    let total = |st: &StageResult, kind: &str| st.totals.iter().find(|t| t.kind == kind).cloned();
    let running = |st: &StageResult, kind: &str| total(st, kind).map_or(0, |t| t.running);
    let gone = running(last, "sidecar");
    out.push(item(
        "sidecars-gone",
        if gone <= sidecars_after { "verified" } else { "failed" },
        "sidecars gone where the labels moved pods to ambient",
        vec![format!(
            "sidecars running: {} as written, {gone} after stage {} ({sidecars_after} left on sidecars by the labels)",
            running(first, "sidecar"),
            last.name
        )],
        "istio.io ambient migration: restart the pods so the injector removes their sidecars",
    ));
    if let Some(r) = &run.reach {
        if let Some(col) = r.columns.last() {
            let mut evidence: Vec<String> = col
                .meshed_plaintext
                .iter()
                .map(|p| format!("plaintext between meshed workloads: {p}"))
                .collect();
            evidence.push(format!(
                "after stage {}: plaintext from outside the mesh {} accepted, {} reset by STRICT",
                col.at,
                col.outside_accepted.len(),
                col.outside_refused_strict.len()
            ));
            out.push(item(
                "mtls-verified",
                if col.meshed_plaintext.is_empty() { "verified" } else { "failed" },
                "mTLS between every two meshed workloads",
                evidence,
                "what the destination proxy saw on the wire, as Istio's connection_security_policy label reports it",
            ));
        }
        let unexpected: Vec<String> = r
            .unexpected()
            .map(|c| {
                format!(
                    "{} at {}: {} → {} {} ({} → {})",
                    c.kind, c.to_stage, c.from, c.to, c.request, c.before, c.after
                )
            })
            .collect();
        let expected = r.changes.len() - unexpected.len();
        out.push(item(
            "reachability",
            if unexpected.is_empty() {
                "verified"
            } else {
                "failed"
            },
            "nothing broken or opened that no stage expects",
            if unexpected.is_empty() {
                vec![format!(
                    "{expected} change(s), each listed in its stage's expect:"
                )]
            } else {
                unexpected
            },
            "every probe sent for real at each stage (meshsim reach)",
        ));
        out.push(dashboards_item(r.monitoring.as_ref()));
    }
    let transitions: Vec<String> = m
        .stages
        .iter()
        .filter_map(|st| {
            let t = st.transition.as_ref().filter(|t| t.failed > 0)?;
            Some(format!(
                "{}: {} request(s) failed, {}",
                st.name,
                t.failed,
                match t.cleared_after_s {
                    Some(c) => format!("clean after {c:.1} s"),
                    None => "not clean again within the stage".to_string(),
                }
            ))
        })
        .collect();
    out.push(item(
        "transitions",
        if transitions.is_empty() {
            "verified"
        } else {
            "warning"
        },
        "stage transitions under load",
        if transitions.is_empty() {
            vec!["no request failed across any stage change".to_string()]
        } else {
            transitions
        },
        "each stage applied to the running cluster with the load running across it",
    ));
    let mut perf = Vec::new();
    for f in &m.flows {
        let (Some(a), Some(b)) = (f.steps.get(first.step), f.steps.get(last.step)) else {
            continue;
        };
        if a.latency.count > 0 && b.latency.count > 0 {
            perf.push(format!(
                "flow {}: p50 {:.2} → {:.2} ms, p99 {:.2} → {:.2} ms",
                f.name,
                a.latency.p50_us / 1000.0,
                b.latency.p50_us / 1000.0,
                a.latency.p99_us / 1000.0,
                b.latency.p99_us / 1000.0
            ));
        }
    }
    if let (Some(a), Some(b)) = (total(first, "proxies"), total(last, "proxies")) {
        perf.push(format!(
            "proxies: {:.3} → {:.3} vCPU (measured), {:.1} → {:.1} MiB (measured + modeled)",
            a.vcpu,
            b.vcpu,
            a.heap_mib + a.modeled_mib,
            b.heap_mib + b.modeled_mib
        ));
    }
    out.push(item(
        "performance-compared",
        "verified",
        &format!(
            "performance compared: as written against after stage {}",
            last.name
        ),
        perf,
        "one run, one machine: the stages' measured windows side by side",
    ));
    out
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
                errors_by_kind: Default::default(),
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
            search: None,
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
