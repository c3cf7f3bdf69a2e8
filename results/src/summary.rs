//! The derived figures of a run: per mode, latency added over no-mesh and the data plane's
//! cost per proxy kind; per run, the headline (the median over repeats).
//!
//! Every CPU-per-rate figure divides a measurement by a measurement taken over the same
//! window: a proxy's CPU by the requests that proxy counted itself, the data plane's total by
//! the requests the load clients counted. Nothing here divides by a rate taken from the
//! scenario.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::run::{
    ComponentKind, ComponentResult, LatencySummary, Mode, ModeResult, RunResult, median,
};

/// Below this many requests per second a component is idle: "vCPU per 1000 rps" of it would
/// divide noise by nothing.
pub const IDLE_RPS: f64 = 1.0;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeSummary {
    /// Latency added over no-mesh on the headline step of the first flow; absent for no-mesh
    /// itself and when the run has no no-mesh mode.
    pub added_latency_us: Option<AddedLatency>,
    /// The same for every flow and step that no-mesh also ran.
    #[serde(default)]
    pub added_latency_by_step: Vec<StepAddedLatency>,
    /// Per proxy kind (sidecar, ztunnel, waypoint).
    pub proxies: BTreeMap<ComponentKind, ProxyCost>,
    /// The load's achieved rate in the measured steps ([`ModeResult::achieved_rps`]).
    pub achieved_rps: f64,
    /// Requests per second the load clients counted over the metered window (warmups
    /// included): the rate the data plane's total CPU is divided by, over the same window.
    pub load_rps: f64,
    /// vCPU of all proxies.
    pub total_vcpu: f64,
    /// The part of `total_vcpu` burned to reach the cost profile's floors.
    pub total_vcpu_floor: f64,
    /// `total_vcpu` per 1000 of `load_rps`.
    pub total_vcpu_per_1000rps: Option<f64>,
    /// MiB of all proxies, measured (their heaps).
    pub total_mib_measured: f64,
    /// MiB of all proxies the cost profile adds beyond what was measured: modeled.
    pub total_mib_modeled: f64,
}

impl ModeSummary {
    /// Measured plus modeled MiB of all proxies: the figure to plan capacity with.
    pub fn total_mib(&self) -> f64 {
        self.total_mib_measured + self.total_mib_modeled
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddedLatency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepAddedLatency {
    pub flow: String,
    pub step: usize,
    pub target_rps: Option<f64>,
    pub added_us: AddedLatency,
}

/// What one kind of proxy cost in a mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyCost {
    pub count: u32,
    pub vcpu_total: f64,
    pub vcpu_per_proxy: f64,
    /// The part of `vcpu_per_proxy` burned to reach the cost profile's floor.
    pub vcpu_floor_per_proxy: f64,
    /// Requests per second through each proxy, as the proxies counted them (mean).
    pub rps_per_proxy: f64,
    /// vCPU per 1000 requests per second through a proxy: the busy proxies' CPU over the
    /// requests they counted (idle proxies left out: they would divide by nothing).
    pub vcpu_per_1000rps: Option<f64>,
    /// The part of `vcpu_per_1000rps` that is the profile's floor (burned); the rest is the
    /// model's own work.
    pub vcpu_floor_per_1000rps: Option<f64>,
    /// Measured heap per proxy (average over the run).
    pub mib_per_proxy: f64,
    pub mib_peak_per_proxy: f64,
    /// Modeled: what the cost profile adds per proxy beyond what was measured.
    pub mib_modeled_per_proxy: Option<f64>,
    /// Projected, not measured: the profile's cost model at the load these proxies measured
    /// (their own request and connection counts, the mode's bytes per request, their
    /// configuration scope). Absent without a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected: Option<Projected>,
}

/// A proxy's cost as the profile's cost model projects it at a measured load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Projected {
    pub vcpu_per_proxy: f64,
    pub mib_per_proxy: f64,
}

impl ProxyCost {
    /// Measured plus modeled MiB per proxy: the figure to plan capacity with.
    pub fn mib_planned_per_proxy(&self) -> f64 {
        self.mib_per_proxy + self.mib_modeled_per_proxy.unwrap_or(0.0)
    }

    /// `vcpu_per_1000rps` split into (model, floor).
    pub fn vcpu_per_1000rps_split(&self) -> Option<(f64, f64)> {
        let all = self.vcpu_per_1000rps?;
        let floor = self.vcpu_floor_per_1000rps.unwrap_or(0.0).min(all);
        Some((all - floor, floor))
    }
}

impl RunResult {
    /// Fill every mode's `summary` from the measurements. Idempotent.
    pub fn derive_summaries(&mut self) {
        let model = self.profile.model.as_ref();
        let summaries: Vec<ModeSummary> = self
            .modes
            .iter()
            .map(|m| summarize(m, self.no_mesh_for(m.repeat), model))
            .collect();
        for (m, s) in self.modes.iter_mut().zip(summaries) {
            m.summary = s;
        }
    }

    /// The no-mesh run to compare a repeat with: the same repeat, else the first one.
    pub fn no_mesh_for(&self, repeat: u32) -> Option<&ModeResult> {
        let all = self.repeats_of(Mode::NoMesh);
        all.iter()
            .find(|m| m.repeat == repeat)
            .or(all.first())
            .copied()
    }
}

fn added(m: &LatencySummary, base: &LatencySummary) -> AddedLatency {
    AddedLatency {
        p50: m.p50_us - base.p50_us,
        p90: m.p90_us - base.p90_us,
        p99: m.p99_us - base.p99_us,
    }
}

fn same_rate(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        _ => false,
    }
}

/// Added latency per flow and step, and the headline one (first flow, headline step).
fn added_latency(
    m: &ModeResult,
    base: &ModeResult,
) -> (Option<AddedLatency>, Vec<StepAddedLatency>) {
    let mut by_step = Vec::new();
    let mut headline = None;
    for (fi, flow) in m.flows.iter().enumerate() {
        let Some(bflow) = base.flows.iter().find(|f| f.name == flow.name) else {
            continue;
        };
        let hl = flow.headline_step();
        for (si, step) in flow.steps.iter().enumerate() {
            let Some(bstep) = bflow.steps.get(si) else {
                continue;
            };
            if !same_rate(step.target_rps, bstep.target_rps)
                || step.latency.count == 0
                || bstep.latency.count == 0
            {
                continue;
            }
            let a = added(&step.latency, &bstep.latency);
            if fi == 0 && Some(si) == hl {
                headline = Some(a);
            }
            by_step.push(StepAddedLatency {
                flow: flow.name.clone(),
                step: si,
                target_rps: step.target_rps,
                added_us: a,
            });
        }
    }
    (headline, by_step)
}

/// The cost model's figure for each of `cs` at its own measured load, averaged: requests and
/// new connections as the proxy counted them, bytes at the mode's mean per request (what the
/// load clients sent and received), and its configuration scope as the run's structure has it.
fn project(
    pm: &scenario::costmodel::ProxyModel,
    m: &ModeResult,
    cs: &[&ComponentResult],
) -> Projected {
    use scenario::costmodel::{End, ProxyLoad, ProxyScope};
    let (bytes, requests) = m
        .flows
        .iter()
        .flat_map(|f| &f.steps)
        .fold((0u64, 0u64), |(b, r), s| {
            (b + s.bytes_sent + s.bytes_received, r + s.requests)
        });
    let kib_per_request = if requests > 0 {
        bytes as f64 / requests as f64 / 1024.0
    } else {
        0.0
    };
    let n = cs.len().max(1) as f64;
    let (mut vcpu, mut bytes_mem) = (0.0, 0.0);
    for c in cs {
        let window = c.series.t_s.len().max(1) as f64;
        let load = ProxyLoad {
            rps: c.rps_avg,
            kib_per_s: c.rps_avg * kib_per_request,
            connections_per_s: c.connections_opened as f64 / window,
            open_connections: c.connections_peak as f64,
        };
        let scope = m
            .structure
            .proxies
            .get(&c.name)
            .map_or_else(ProxyScope::default, |p| ProxyScope {
                services: p.services,
                endpoints: p.endpoints,
                workloads: p.workloads,
            });
        vcpu += pm.vcpu(End::Mid, &load);
        bytes_mem += pm.memory_bytes(End::Mid, &load, &scope);
    }
    Projected {
        vcpu_per_proxy: vcpu / n,
        mib_per_proxy: bytes_mem / n / (1024.0 * 1024.0),
    }
}

/// One proxy kind's cost from its components.
fn proxy_cost(cs: &[&ComponentResult]) -> ProxyCost {
    let n = cs.len() as f64;
    let sum = |f: &dyn Fn(&ComponentResult) -> f64| cs.iter().map(|c| f(c)).sum::<f64>();
    let busy: Vec<&&ComponentResult> = cs.iter().filter(|c| c.rps_avg >= IDLE_RPS).collect();
    let busy_rps: f64 = busy.iter().map(|c| c.rps_avg).sum();
    let per_1000 = |v: f64| (busy_rps > 0.0).then(|| v / busy_rps * 1000.0);
    let modeled: Vec<f64> = cs.iter().filter_map(|c| c.modeled_mib).collect();
    ProxyCost {
        count: cs.len() as u32,
        vcpu_total: sum(&|c| c.vcpu_avg),
        vcpu_per_proxy: sum(&|c| c.vcpu_avg) / n,
        vcpu_floor_per_proxy: sum(&|c| c.vcpu_floor_avg.unwrap_or(0.0)) / n,
        rps_per_proxy: sum(&|c| c.rps_avg) / n,
        vcpu_per_1000rps: per_1000(busy.iter().map(|c| c.vcpu_avg).sum()),
        vcpu_floor_per_1000rps: per_1000(
            busy.iter().map(|c| c.vcpu_floor_avg.unwrap_or(0.0)).sum(),
        ),
        mib_per_proxy: sum(&|c| c.heap_mib_avg) / n,
        mib_peak_per_proxy: sum(&|c| c.heap_mib_peak) / n,
        projected: None,
        mib_modeled_per_proxy: (!modeled.is_empty()).then(|| modeled.iter().sum::<f64>() / n),
    }
}

fn summarize(
    m: &ModeResult,
    baseline: Option<&ModeResult>,
    model: Option<&scenario::costmodel::CostModel>,
) -> ModeSummary {
    let (headline, by_step) = match baseline.filter(|_| m.mode != Mode::NoMesh) {
        Some(base) => added_latency(m, base),
        None => (None, Vec::new()),
    };
    let mut proxies = BTreeMap::new();
    for kind in ComponentKind::ALL.into_iter().filter(|k| k.is_proxy()) {
        let cs: Vec<&ComponentResult> = m.components.iter().filter(|c| c.kind == kind).collect();
        if !cs.is_empty() {
            let mut cost = proxy_cost(&cs);
            cost.projected = model
                .and_then(|md| md.proxy(kind.as_str()))
                .map(|pm| project(pm, m, &cs));
            proxies.insert(kind, cost);
        }
    }
    let load_rps: f64 = m
        .components
        .iter()
        .filter(|c| c.kind == ComponentKind::LoadClient)
        .map(|c| c.rps_avg)
        .sum();
    let total_vcpu: f64 = proxies.values().map(|p| p.vcpu_total).sum();
    ModeSummary {
        added_latency_us: headline,
        added_latency_by_step: by_step,
        achieved_rps: m.achieved_rps(),
        load_rps,
        total_vcpu,
        total_vcpu_floor: proxies
            .values()
            .map(|p| p.vcpu_floor_per_proxy * f64::from(p.count))
            .sum(),
        total_vcpu_per_1000rps: (load_rps >= IDLE_RPS).then(|| total_vcpu / load_rps * 1000.0),
        total_mib_measured: proxies
            .values()
            .map(|p| p.mib_per_proxy * f64::from(p.count))
            .sum(),
        total_mib_modeled: proxies
            .values()
            .map(|p| p.mib_modeled_per_proxy.unwrap_or(0.0) * f64::from(p.count))
            .sum(),
        proxies,
    }
}

/// One row of the headline table: a mode's figures, the median over its repeats.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadlineRow {
    pub mode: Mode,
    pub repeats: usize,
    pub added_latency_us: Option<AddedLatency>,
    pub achieved_rps: f64,
    pub proxies: BTreeMap<ComponentKind, ProxyCost>,
    pub total_vcpu_per_1000rps: Option<f64>,
    /// The part of `total_vcpu_per_1000rps` that is the profile's floors.
    pub total_vcpu_floor_per_1000rps: Option<f64>,
    pub total_mib_measured: f64,
    pub total_mib_modeled: f64,
}

fn med_opt<'a, T: 'a>(items: &[&'a T], f: impl Fn(&'a T) -> Option<f64>) -> Option<f64> {
    median(items.iter().filter_map(|x| f(x)).collect())
}

/// The median over repeats of one proxy kind's cost.
fn median_cost(ps: &[&ProxyCost]) -> ProxyCost {
    let m = |f: fn(&ProxyCost) -> f64| med_opt(ps, |p| Some(f(p))).unwrap_or(0.0);
    ProxyCost {
        count: ps.iter().map(|p| p.count).max().unwrap_or(0),
        vcpu_total: m(|p| p.vcpu_total),
        vcpu_per_proxy: m(|p| p.vcpu_per_proxy),
        vcpu_floor_per_proxy: m(|p| p.vcpu_floor_per_proxy),
        rps_per_proxy: m(|p| p.rps_per_proxy),
        vcpu_per_1000rps: med_opt(ps, |p| p.vcpu_per_1000rps),
        vcpu_floor_per_1000rps: med_opt(ps, |p| p.vcpu_floor_per_1000rps),
        mib_per_proxy: m(|p| p.mib_per_proxy),
        mib_peak_per_proxy: m(|p| p.mib_peak_per_proxy),
        mib_modeled_per_proxy: med_opt(ps, |p| p.mib_modeled_per_proxy),
        projected: match (
            med_opt(ps, |p| p.projected.map(|x| x.vcpu_per_proxy)),
            med_opt(ps, |p| p.projected.map(|x| x.mib_per_proxy)),
        ) {
            (Some(vcpu_per_proxy), Some(mib_per_proxy)) => Some(Projected {
                vcpu_per_proxy,
                mib_per_proxy,
            }),
            _ => None,
        },
    }
}

impl RunResult {
    /// The headline figures per mode (median over repeats), from the derived summaries.
    pub fn headline(&self) -> Vec<HeadlineRow> {
        self.mode_names()
            .into_iter()
            .map(|mode| {
                let reps = self.repeats_of(mode);
                let sums: Vec<&ModeSummary> = reps.iter().map(|m| &m.summary).collect();
                let added = {
                    let p50 = med_opt(&sums, |s| s.added_latency_us.map(|a| a.p50));
                    let p90 = med_opt(&sums, |s| s.added_latency_us.map(|a| a.p90));
                    let p99 = med_opt(&sums, |s| s.added_latency_us.map(|a| a.p99));
                    match (p50, p90, p99) {
                        (Some(p50), Some(p90), Some(p99)) => Some(AddedLatency { p50, p90, p99 }),
                        _ => None,
                    }
                };
                let mut kinds: Vec<ComponentKind> = sums
                    .iter()
                    .flat_map(|s| s.proxies.keys().copied())
                    .collect();
                kinds.sort();
                kinds.dedup();
                let proxies = kinds
                    .into_iter()
                    .map(|k| {
                        let ps: Vec<&ProxyCost> =
                            sums.iter().filter_map(|s| s.proxies.get(&k)).collect();
                        (k, median_cost(&ps))
                    })
                    .collect();
                let floor_per_1000 = |s: &ModeSummary| {
                    (s.load_rps >= IDLE_RPS).then(|| s.total_vcpu_floor / s.load_rps * 1000.0)
                };
                HeadlineRow {
                    mode,
                    repeats: reps.len(),
                    added_latency_us: added,
                    achieved_rps: med_opt(&sums, |s| Some(s.achieved_rps)).unwrap_or(0.0),
                    proxies,
                    total_vcpu_per_1000rps: med_opt(&sums, |s| s.total_vcpu_per_1000rps),
                    total_vcpu_floor_per_1000rps: med_opt(&sums, floor_per_1000),
                    total_mib_measured: med_opt(&sums, |s| Some(s.total_mib_measured))
                        .unwrap_or(0.0),
                    total_mib_modeled: med_opt(&sums, |s| Some(s.total_mib_modeled)).unwrap_or(0.0),
                }
            })
            .collect()
    }

    /// Failed SLOs of every mode and repeat, with the mode they belong to.
    pub fn failed_slos(&self) -> Vec<(&ModeResult, &crate::run::SloVerdict)> {
        self.sorted_modes()
            .into_iter()
            .flat_map(|m| m.slo.iter().filter(|s| !s.passed).map(move |s| (m, s)))
            .collect()
    }

    /// Modes ordered by mode, then repeat: the order every output lists them in.
    pub fn sorted_modes(&self) -> Vec<&ModeResult> {
        let mut v: Vec<&ModeResult> = self.modes.iter().collect();
        v.sort_by_key(|m| (m.mode, m.repeat));
        v
    }
}
