//! `meshsim compare`: two runs of the same scenario, figure by figure, with a verdict that
//! accounts for noise.
//!
//! A figure regressed (or improved) when it moved beyond `threshold_pct` in the bad (good)
//! direction and, when both runs have repeats, Welch's t-test over the repeats gives p < 0.05.
//! Without repeats there is no estimate of noise, so the threshold alone decides.
//!
//! Each figure judged over repeats also states its detection limit: the smallest change the
//! test would find 4 times in 5 given the repeats' spread (never below the threshold), so a
//! clean comparison says what it could not have seen. Only repeats are replicates: they are
//! whole runs, interleaved, so independent of one another; the per-second samples inside a
//! run are autocorrelated (a queue or a hot cache lasts seconds) and are not counted as
//! replicates.

use std::fmt::Write as _;

use serde::Serialize;

use crate::run::{ComponentKind, HostProbe, Mode, ModeResult, RunResult};
use crate::stats;

/// One figure of a host probe.
type ProbeFigure = fn(&HostProbe) -> Option<f64>;

/// Significance level for runs with repeats.
pub const P_THRESHOLD: f64 = 0.05;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(
        "the two runs are not of the same scenario, so their figures cannot be compared:\n{}\nre-run the baseline with the new scenario (or compare against a baseline of this one)",
        .differences.iter().map(|d| format!("  - {d}")).collect::<Vec<_>>().join("\n")
    )]
    ScenarioMismatch { differences: Vec<String> },
    #[error("the runs have no mode in common (base: {base}; new: {new}); nothing to compare")]
    NoCommonMode { base: String, new: String },
    #[error("the threshold must be a finite, non-negative percentage, got {0}")]
    BadThreshold(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Improved,
    Regressed,
    WithinNoise,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Regressed => "regressed",
            Verdict::WithinNoise => "within noise",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    Micros,
    Rps,
    Vcpu,
    Mib,
    Count,
    /// A count per 1000 requests.
    PerThousand,
    Seconds,
}

impl Unit {
    fn format(self, v: f64) -> String {
        match self {
            Unit::Micros => format!("{:.3} ms", v / 1000.0),
            Unit::Rps => format!("{v:.1} rps"),
            Unit::Vcpu => format!("{v:.3} vCPU"),
            Unit::Mib => format!("{v:.1} MiB"),
            Unit::Count => format!("{v:.0}"),
            Unit::PerThousand => format!("{v:.2} /1000 req"),
            Unit::Seconds => format!("{v:.1} s"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparisonRow {
    pub mode: Mode,
    /// e.g. `web p99 @1000 rps`, `sidecar vCPU/1000 rps per proxy`.
    pub figure: String,
    pub unit: Unit,
    pub lower_is_better: bool,
    /// Mean over repeats.
    pub base: f64,
    pub new: f64,
    pub base_samples: usize,
    pub new_samples: usize,
    /// Relative change of the mean, %; absent when the base is 0.
    pub change_pct: Option<f64>,
    /// Welch's t-test, when both runs have at least two repeats.
    pub p_value: Option<f64>,
    /// The detection limit, % of the base: a change smaller than this would not be judged a
    /// regression (the threshold, or what the repeats' spread lets the t-test see at 80%
    /// power, whichever is larger). Absent without two repeats in each run.
    pub detectable_pct: Option<f64>,
    pub verdict: Verdict,
}

/// The power at which the detection limit is stated: a change of that size is found 4 times
/// in 5.
pub const POWER: f64 = 0.8;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub scenario: Option<String>,
    pub threshold_pct: f64,
    pub base_started_at: String,
    pub new_started_at: String,
    pub rows: Vec<ComparisonRow>,
    /// What could not be compared (a mode only one run has, an incomplete run, ...).
    pub notes: Vec<String>,
    /// How the mesh's structure changed (paths, policies checked, what proxies hold), per
    /// mode: exact facts of the two scenarios, neither noise nor a verdict.
    pub structure_changes: Vec<StructureChange>,
    /// Where each run was measured, when they differ (`simulated`, `kubernetes`): the
    /// simulation set beside a real cluster, figure by figure with the ratio, no verdict.
    pub platforms: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StructureChange {
    pub mode: Mode,
    pub change: String,
}

/// One flow as far as comparability goes: its identity and its rate steps.
#[derive(Debug, PartialEq)]
struct FlowSig {
    name: String,
    from: String,
    to: String,
    protocol: String,
    rates: Vec<Option<f64>>,
}

fn flow_sigs(run: &RunResult) -> Vec<FlowSig> {
    let Some(first) = run.sorted_modes().into_iter().next() else {
        return Vec::new();
    };
    first
        .flows
        .iter()
        .map(|f| FlowSig {
            name: f.name.clone(),
            from: f.from.clone(),
            to: f.to.clone(),
            protocol: f.protocol.clone(),
            rates: f.steps.iter().map(|s| s.target_rps).collect(),
        })
        .collect()
}

fn rates_label(r: &[Option<f64>]) -> String {
    r.iter()
        .map(|x| rate_label(*x))
        .collect::<Vec<_>>()
        .join(", ")
}

fn rate_label(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{r} rps"),
        None => "max".to_string(),
    }
}

fn scenario_differences(base: &RunResult, new: &RunResult) -> Vec<String> {
    let mut d = Vec::new();
    if base.scenario_name() != new.scenario_name() {
        d.push(format!(
            "scenario name: base `{}`, new `{}`",
            base.scenario_name(),
            new.scenario_name()
        ));
    }
    let (bf, nf) = (flow_sigs(base), flow_sigs(new));
    for b in &bf {
        match nf.iter().find(|n| n.name == b.name) {
            None => d.push(format!("flow `{}` is only in the base run", b.name)),
            Some(n) => {
                if (b.from.as_str(), b.to.as_str()) != (n.from.as_str(), n.to.as_str()) {
                    d.push(format!(
                        "flow `{}`: base goes {} -> {}, new goes {} -> {}",
                        b.name, b.from, b.to, n.from, n.to
                    ));
                }
                if b.protocol != n.protocol {
                    d.push(format!(
                        "flow `{}`: protocol base `{}`, new `{}`",
                        b.name, b.protocol, n.protocol
                    ));
                }
                if b.rates != n.rates {
                    d.push(format!(
                        "flow `{}`: rate steps base [{}], new [{}]",
                        b.name,
                        rates_label(&b.rates),
                        rates_label(&n.rates)
                    ));
                }
            }
        }
    }
    for n in &nf {
        if !bf.iter().any(|b| b.name == n.name) {
            d.push(format!("flow `{}` is only in the new run", n.name));
        }
    }
    d
}

struct Figure {
    name: String,
    unit: Unit,
    lower_is_better: bool,
    base: Vec<f64>,
    new: Vec<f64>,
}

/// The figures of one mode, in a stable order, each with one value per repeat.
fn figures(base: &[&ModeResult], new: &[&ModeResult]) -> Vec<Figure> {
    let mut out = Vec::new();
    let Some(b0) = base.first() else {
        return out;
    };
    let collect = |runs: &[&ModeResult], f: &dyn Fn(&ModeResult) -> Option<f64>| -> Vec<f64> {
        runs.iter().filter_map(|m| f(m)).collect()
    };
    let mut push = |name: String, unit, lower, f: &dyn Fn(&ModeResult) -> Option<f64>| {
        let (b, n) = (collect(base, f), collect(new, f));
        if !b.is_empty() && !n.is_empty() {
            out.push(Figure {
                name,
                unit,
                lower_is_better: lower,
                base: b,
                new: n,
            });
        }
    };
    for flow in &b0.flows {
        // A rate search: its one figure is the rate it found; its steps differ run to run.
        if flow.search.is_some() {
            push(
                format!("{} highest rate meeting the SLOs", flow.name),
                Unit::Rps,
                false,
                &|m| {
                    m.flows
                        .iter()
                        .find(|f| f.name == flow.name)
                        .and_then(|f| f.search.as_ref())
                        .and_then(|s| s.max_rps)
                },
            );
            continue;
        }
        for (si, step) in flow.steps.iter().enumerate() {
            let at = rate_label(step.target_rps);
            let step_of = |m: &ModeResult| {
                m.flows
                    .iter()
                    .find(|f| f.name == flow.name)
                    .and_then(|f| f.steps.get(si))
                    .filter(|s| s.latency.count > 0)
                    .cloned()
            };
            type Pick = fn(&crate::run::StepResult) -> f64;
            let lat: [(&str, Pick); 3] = [
                ("p50", |s| s.latency.p50_us),
                ("p90", |s| s.latency.p90_us),
                ("p99", |s| s.latency.p99_us),
            ];
            for (label, pick) in lat {
                push(
                    format!("{} {label} @{at}", flow.name),
                    Unit::Micros,
                    true,
                    &|m| step_of(m).map(|s| pick(&s)),
                );
            }
            push(
                format!("{} achieved @{at}", flow.name),
                Unit::Rps,
                false,
                &|m| step_of(m).map(|s| s.achieved_rps),
            );
        }
    }
    for kind in ComponentKind::ALL.into_iter().filter(|k| k.is_proxy()) {
        push(
            format!("{kind} vCPU/1000 rps per proxy"),
            Unit::Vcpu,
            true,
            &|m| {
                m.summary
                    .proxies
                    .get(&kind)
                    .and_then(|p| p.vcpu_per_1000rps)
            },
        );
        // Connections a proxy opens or accepts per 1000 requests it handles: pooling and
        // reuse, measured (they depend on timing, so they are judged against noise, not
        // exactly as the structure is).
        push(
            format!("{kind} connections opened per 1000 requests"),
            Unit::PerThousand,
            true,
            &|m| {
                let cs = m.components.iter().filter(|c| c.kind == kind);
                let (conns, reqs) = cs.fold((0u64, 0u64), |(a, b), c| {
                    (a + c.connections_opened, b + c.requests)
                });
                (reqs > 0).then(|| conns as f64 / reqs as f64 * 1000.0)
            },
        );
        // Full TLS handshakes per 1000 requests: what mTLS costs beyond the bytes. Measured
        // like the connections (ztunnel never resumes a session; Envoy's sidecars may).
        push(
            format!("{kind} TLS handshakes per 1000 requests"),
            Unit::PerThousand,
            true,
            &|m| {
                let cs = m.components.iter().filter(|c| c.kind == kind);
                let (shakes, reqs) = cs.fold((Some(0u64), 0u64), |(a, b), c| {
                    (a.zip(c.tls_handshakes).map(|(a, n)| a + n), b + c.requests)
                });
                shakes
                    .filter(|_| reqs > 0)
                    .map(|n| n as f64 / reqs as f64 * 1000.0)
            },
        );
        push(
            format!("{kind} MiB per proxy (measured)"),
            Unit::Mib,
            true,
            &|m| m.summary.proxies.get(&kind).map(|p| p.mib_per_proxy),
        );
    }
    // A mode without proxies (no-mesh) has no data-plane cost to compare.
    push(
        "all proxies vCPU/1000 rps".to_string(),
        Unit::Vcpu,
        true,
        &|m| {
            m.summary
                .total_vcpu_per_1000rps
                .filter(|_| !m.summary.proxies.is_empty())
        },
    );
    // A replayed incident: each fault's effect, matched by its label and step. A fault that
    // never cleared in its step counts the whole step, so the fix that makes it clear shows.
    for f in b0.faults.iter().filter(|f| f.not_applied.is_none()) {
        let of = |m: &ModeResult| {
            m.faults
                .iter()
                .find(|x| x.label == f.label && x.step == f.step && x.not_applied.is_none())
                .cloned()
        };
        let step_s = |m: &ModeResult| {
            m.flows
                .first()
                .and_then(|fl| fl.steps.get(f.step))
                .map_or(0.0, |s| s.duration_s)
        };
        push(
            format!("fault {}: requests failed", f.label),
            Unit::Count,
            true,
            &|m| of(m).map(|x| x.failed as f64),
        );
        push(
            format!("fault {}: time to an error-free second", f.label),
            Unit::Seconds,
            true,
            &|m| of(m).map(|x| x.clean_after_s.unwrap_or(step_s(m))),
        );
        push(
            format!("fault {}: time to p99 within 10% of before", f.label),
            Unit::Seconds,
            true,
            &|m| of(m).map(|x| x.p99_recovered_after_s.unwrap_or(step_s(m))),
        );
    }
    // A migration run: each stage's transition.
    for st in b0.stages.iter().filter(|s| s.transition.is_some()) {
        push(
            format!("stage {}: requests failed in the transition", st.name),
            Unit::Count,
            true,
            &|m| {
                m.stages
                    .iter()
                    .find(|x| x.name == st.name)
                    .and_then(|x| x.transition.as_ref())
                    .map(|t| t.failed as f64)
            },
        );
    }
    out
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn judge(f: Figure, mode: Mode, threshold_pct: f64) -> ComparisonRow {
    let (b, n) = (mean(&f.base), mean(&f.new));
    let change_pct = (b != 0.0).then(|| (n - b) / b.abs() * 100.0);
    let beyond = match change_pct {
        Some(c) => c.abs() > threshold_pct,
        // From nothing to something is beyond any threshold.
        None => n != 0.0,
    };
    let worse = if f.lower_is_better { n > b } else { n < b };
    let p_value = stats::welch_p_value(&f.base, &f.new);
    let detectable_pct = stats::welch_min_detectable(&f.base, &f.new, P_THRESHOLD, POWER)
        .filter(|_| b != 0.0)
        .map(|d| (d / b.abs() * 100.0).max(threshold_pct));
    let significant = p_value.is_none_or(|p| p < P_THRESHOLD);
    let verdict = if beyond && significant {
        if worse {
            Verdict::Regressed
        } else {
            Verdict::Improved
        }
    } else {
        Verdict::WithinNoise
    };
    ComparisonRow {
        mode,
        figure: f.name,
        unit: f.unit,
        lower_is_better: f.lower_is_better,
        base: b,
        new: n,
        base_samples: f.base.len(),
        new_samples: f.new.len(),
        change_pct,
        p_value,
        detectable_pct,
        verdict,
    }
}

/// Compare `new` against `base`. Errors when the runs are not of the same scenario.
pub fn compare(
    base: &RunResult,
    new: &RunResult,
    threshold_pct: f64,
) -> Result<Comparison, CompareError> {
    if !threshold_pct.is_finite() || threshold_pct < 0.0 {
        return Err(CompareError::BadThreshold(threshold_pct));
    }
    let differences = scenario_differences(base, new);
    if !differences.is_empty() {
        return Err(CompareError::ScenarioMismatch { differences });
    }
    let (bm, nm) = (base.mode_names(), new.mode_names());
    let common: Vec<Mode> = bm.iter().copied().filter(|m| nm.contains(m)).collect();
    if common.is_empty() {
        let names = |v: &[Mode]| v.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
        return Err(CompareError::NoCommonMode {
            base: names(&bm),
            new: names(&nm),
        });
    }
    let mut notes = Vec::new();
    for m in bm.iter().filter(|m| !nm.contains(m)) {
        notes.push(format!("mode {m} is only in the base run"));
    }
    for m in nm.iter().filter(|m| !bm.contains(m)) {
        notes.push(format!("mode {m} is only in the new run"));
    }
    if base.incomplete {
        notes.push("the base run was interrupted (incomplete)".into());
    }
    if new.incomplete {
        notes.push("the new run was interrupted (incomplete)".into());
    }
    for (which, run) in [("base", base), ("new", new)] {
        let worst = run
            .modes
            .iter()
            .filter_map(|m| m.host_steal_share.map(|s| (s, m)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((s, m)) = worst
            && s > results::host::STEAL_WARNING
        {
            notes.push(format!(
                "the {which} run was measured on a contended host: the hypervisor took {:.1}% of \
                 the busy CPU time (steal) during {}{}; its CPU and latency figures are inflated",
                s * 100.0,
                m.mode,
                if run.repeats_of(m.mode).len() > 1 {
                    format!(" (repeat {})", m.repeat + 1)
                } else {
                    String::new()
                }
            ));
        }
    }
    // The raw speed, and what a request costs starting from an idle CPU: proxies' CPU per
    // request at moderate load follows the second.
    let probes: [(&str, &str, ProbeFigure); 2] = [
        ("a 1 KiB loopback round trip took", "", |p| {
            Some(p.back_to_back.round_trip_us)
        }),
        ("one round trip per millisecond cost", " of CPU", |p| {
            Some(p.paced.cpu_per_round_trip_us)
        }),
    ];
    for (what, unit, pick) in probes {
        if let (Some((b, ..)), Some((n, ..))) =
            (base.host_probe_range(pick), new.host_probe_range(pick))
            && let Some(d) = results::host::drift(b, n)
        {
            let how = if d > 0.0 {
                format!("{:.0}% slower", d * 100.0)
            } else {
                format!("{:.0}% faster", -d * 100.0)
            };
            notes.push(format!(
                "the host ran {how} in the new run: {what} {n:.0} µs{unit} against {b:.0} µs in \
                 the base (medians of the probes before each mode); CPU and latency changes of \
                 that order may be the host's, not meshsim's"
            ));
        }
    }
    if base.profile.name != new.profile.name {
        notes.push(format!(
            "cost profiles differ: base `{}`, new `{}`; CPU and memory figures include the profile's floors",
            base.profile.name, new.profile.name
        ));
    }
    let (br, nr) = (
        base.repeats_of(common[0]).len(),
        new.repeats_of(common[0]).len(),
    );
    let cross_platform = base.environment.platform != new.environment.platform;
    if (br < 2 || nr < 2) && !cross_platform {
        notes.push(format!(
            "without repeats in both runs (base {br}, new {nr}) there is no noise estimate: a change beyond {threshold_pct}% counts"
        ));
    }
    let platform = |r: &RunResult| {
        r.environment
            .platform
            .clone()
            .unwrap_or_else(|| "simulated".into())
    };
    let platforms = cross_platform.then(|| (platform(base), platform(new)));
    if platforms.is_some() {
        notes.extend(
            [
                "nodes: the scenario's nodes are the cluster's labelled ones, with other cores and speed; latency and CPU compare as orders of magnitude, not to the percent",
                "proxy CPU: the simulator's includes what its cost profile burns to reach Istio's published floors; the cluster's is its proxies' own, as Prometheus rated it",
                "proxy memory: the simulator's is its models' heap plus the profile's modeled memory; the cluster's is the containers' working set",
                "proxy counts and requests per proxy: the cluster's are every proxy its Prometheus export holds (a load Job's own sidecar included)",
            ]
            .map(String::from),
        );
    }
    let mut rows = Vec::new();
    let mut structure_changes = Vec::new();
    for mode in common {
        let (b, n) = (base.repeats_of(mode), new.repeats_of(mode));
        for f in figures(&b, &n) {
            rows.push(judge(f, mode, threshold_pct));
        }
        if let (Some(b), Some(n)) = (b.first(), n.first()) {
            if platforms.is_some() {
                // A real cluster's structure is not recorded: nothing to set beside.
            } else if b.structure.is_empty() != n.structure.is_empty() && mode != Mode::NoMesh {
                notes.push(format!(
                    "{mode}: only the {} run recorded the mesh's structure (a run of an older meshsim); structure not compared",
                    if b.structure.is_empty() { "new" } else { "base" }
                ));
            } else {
                structure_changes.extend(
                    crate::structure::changes(&b.structure, &n.structure)
                        .into_iter()
                        .map(|change| StructureChange { mode, change }),
                );
            }
        }
    }
    Ok(Comparison {
        scenario: Some(new.scenario_name().to_string()),
        threshold_pct,
        base_started_at: base.environment.started_at.clone(),
        new_started_at: new.environment.started_at.clone(),
        rows,
        notes,
        structure_changes,
        platforms,
    })
}

impl Comparison {
    /// A regression between runs of one platform; a simulation set beside a real cluster
    /// has none to judge.
    pub fn has_regression(&self) -> bool {
        self.platforms.is_none() && self.rows.iter().any(|r| r.verdict == Verdict::Regressed)
    }

    pub fn structure_changed(&self) -> bool {
        !self.structure_changes.is_empty()
    }

    pub fn count(&self, v: Verdict) -> usize {
        self.rows.iter().filter(|r| r.verdict == v).count()
    }

    /// A Markdown report: a one-line outcome, notes, then one table row per figure.
    pub fn markdown(&self) -> String {
        if let Some(p) = &self.platforms {
            return self.side_by_side(p);
        }
        let mut s = String::new();
        let _ = writeln!(
            s,
            "## meshsim compare: {}\n",
            self.scenario.as_deref().unwrap_or("(unnamed scenario)")
        );
        let _ = writeln!(
            s,
            "Base run started {}, new run started {}; threshold {}%{}.\n",
            self.base_started_at,
            self.new_started_at,
            self.threshold_pct,
            if self.rows.iter().any(|r| r.p_value.is_some()) {
                format!(" and p < {P_THRESHOLD} (Welch's t-test over repeats)")
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            s,
            "**{}**: {} regressed, {} improved, {} within noise{}.\n",
            if self.has_regression() {
                "REGRESSION"
            } else {
                "No regression"
            },
            self.count(Verdict::Regressed),
            self.count(Verdict::Improved),
            self.count(Verdict::WithinNoise),
            if self.structure_changed() {
                format!("; **structure changed** ({})", self.structure_changes.len())
            } else {
                String::new()
            }
        );
        for n in &self.notes {
            let _ = writeln!(s, "- {n}");
        }
        if !self.notes.is_empty() {
            s.push('\n');
        }
        if self.structure_changed() {
            s.push_str(
                "Structure changed (paths, policies checked, what proxies hold; facts of the scenarios, compared exactly):\n\n",
            );
            for c in &self.structure_changes {
                let _ = writeln!(s, "- {}: {}", c.mode, c.change);
            }
            s.push('\n');
        }
        let blind: Vec<&ComparisonRow> = self
            .rows
            .iter()
            .filter(|r| r.detectable_pct.is_some_and(|d| d > self.threshold_pct))
            .collect();
        if !blind.is_empty() {
            let _ = writeln!(
                s,
                "Detection limit: with these repeats' spread, Welch's test (p < {P_THRESHOLD}, {:.0}% power) would miss a regression smaller than the *not seen below* column in {} of {} figures, wider than the {}% threshold; add repeats to narrow it (the limit shrinks about as 1/√repeats).\n",
                POWER * 100.0,
                blind.len(),
                self.rows.len(),
                self.threshold_pct
            );
        }
        s.push_str("| mode | figure | base | new | change | p | not seen below | verdict |\n");
        s.push_str("|---|---|---:|---:|---:|---:|---:|---|\n");
        for r in &self.rows {
            let change = r
                .change_pct
                .map_or_else(|| "n/a".to_string(), |c| format!("{c:+.1}%"));
            let p = r
                .p_value
                .map_or_else(|| "–".to_string(), |p| format!("{p:.3}"));
            let limit = r
                .detectable_pct
                .map_or_else(|| "–".to_string(), |d| format!("{d:.1}%"));
            let verdict = match r.verdict {
                Verdict::Regressed => "**regressed**",
                Verdict::Improved => "improved",
                Verdict::WithinNoise => "within noise",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.mode,
                r.figure,
                r.unit.format(r.base),
                r.unit.format(r.new),
                change,
                p,
                limit,
                verdict
            );
        }
        s
    }

    /// Two platforms' runs of one scenario: every figure beside the other with their ratio,
    /// and what does not compare.
    fn side_by_side(&self, (base, new): &(String, String)) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "## meshsim compare: {}, {base} against {new}
",
            self.scenario.as_deref().unwrap_or("(unnamed scenario)")
        );
        let _ = writeln!(
            s,
            "Base ({base}) started {}, new ({new}) started {}. Side by side, no verdict: the two were measured on different platforms.
",
            self.base_started_at, self.new_started_at
        );
        s.push_str(
            "Not comparable as they stand:

",
        );
        for n in &self.notes {
            let _ = writeln!(s, "- {n}");
        }
        let _ = writeln!(
            s,
            "
| mode | figure | {base} | {new} | {new} / {base} |
|---|---|---:|---:|---:|"
        );
        for r in &self.rows {
            // A figure one platform did not measure (a count its export lacks) is zero there.
            let ratio = if r.base != 0.0 && r.new != 0.0 {
                format!("×{:.2}", r.new / r.base)
            } else {
                "n/a (one side measured none)".into()
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r.mode,
                r.figure,
                r.unit.format(r.base),
                r.unit.format(r.new),
                ratio
            );
        }
        s
    }
}
