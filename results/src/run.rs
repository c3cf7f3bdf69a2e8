//! `run.json`: the versioned result of one run, its JSON Schema, loading and saving.
//!
//! [`crate::interpret`] fills it from what the runner measured and calls
//! [`RunResult::derive_summaries`] ([`crate::summary`]); everything that reads a run (render,
//! compare, other tools) goes through these types. Every struct rejects unknown fields so a typo or a newer writer is
//! caught when loading rather than silently ignored.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::hist::{self, HistogramError};
pub use crate::summary::{AddedLatency, HeadlineRow, ModeSummary, ProxyCost, StepAddedLatency};

/// Version of the `run.json` layout. Bump it on any change a reader of an older version would
/// misread, and regenerate `run.schema.json`.
pub const RUN_SCHEMA_VERSION: u32 = 2;

/// Rate whose step is the headline: Istio's published per-proxy figures are at 1000 rps, so
/// that step compares with them directly.
pub const DEFAULT_HEADLINE_RPS: f64 = 1000.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunResult {
    /// Always [`RUN_SCHEMA_VERSION`] when written by this version of meshsim.
    pub schema_version: u32,
    /// The resolved scenario, as the runner ran it (defaults filled in), with the manifest
    /// objects it applied.
    pub scenario: scenario::Resolved,
    /// Istio / Gateway API manifests the scenario included, and what was used from them.
    #[serde(default)]
    pub manifests: Vec<ManifestRecord>,
    pub seed: u64,
    pub profile: ProfileInfo,
    pub environment: Environment,
    /// True when the run was interrupted (Ctrl-C): what was measured is kept, but some modes,
    /// steps or repeats are missing or short.
    pub incomplete: bool,
    /// How many times each mode was run; each run is one entry of `modes` with its `repeat`.
    pub repeats: u32,
    pub modes: Vec<ModeResult>,
    /// The static migration checklist of the scenario as written (`meshsim check`), in the
    /// first mode: verified, failed, warning or not checkable here, with evidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checklist: Vec<ChecklistItem>,
    /// A migration scenario's reachability, stage by stage, and its changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reach: Option<ReachResult>,
    /// The run this one replays (`meshsim replay`): its run.json, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestRecord {
    pub path: String,
    /// Kinds that were used, e.g. `AuthorizationPolicy`.
    pub kinds: Vec<String>,
    /// Kinds or fields that meshsim does not model and ignored, said so in the report.
    #[serde(default)]
    pub ignored: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileInfo {
    /// e.g. `istio-1.24` or `native`.
    pub name: String,
    /// Where the floors come from (publications, URLs as written in the profile file).
    pub sources: Vec<String>,
    /// The floors as the profile file gives them.
    pub floors: serde_json::Value,
    /// The profile's cost model (its `model:`), each parameter with its source: what
    /// "projected with the profile" figures are computed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<scenario::costmodel::CostModel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub meshsim_version: String,
    /// Git commit meshsim was built from, when known.
    pub commit: Option<String>,
    pub kernel: String,
    pub cores: u32,
    pub cpu_model: String,
    pub user: String,
    /// Whether meshsim ran as real root (cgroup CPU limits are only enforced then).
    pub root: bool,
    /// RFC 3339 start time.
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Where it ran, when not in meshsim's simulator: `kubernetes` for a run imported from a
    /// real cluster (`import k8s`), whose figures that cluster measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// The host's speed before a mode, with nothing of meshsim running (see `sim::hostprobe`).
/// Runs made on one machine are comparable when these agree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostProbe {
    /// 1 KiB loopback round trips back to back between two threads on one CPU: the host's
    /// raw speed.
    pub back_to_back: PingPong,
    /// The same, one round trip per millisecond with the CPU idle in between, as a proxy sees
    /// requests at moderate load: what each request costs starting from an idle CPU.
    pub paced: PingPong,
}

/// 1 KiB round trips between two threads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PingPong {
    /// Median time of one round trip, µs.
    pub round_trip_us: f64,
    /// CPU both threads spent per round trip, µs.
    pub cpu_per_round_trip_us: f64,
}

/// The data-plane modes, in the order reports show them (the scenario format's own type).
pub use scenario::{DataPlane, Mode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModeResult {
    pub mode: Mode,
    /// 0-based repeat index; several entries share a mode when the run has repeats.
    pub repeat: u32,
    /// Every flow ran every step to its end (false: stopped part-way; `run --resume` runs it
    /// again).
    #[serde(default = "yes")]
    pub complete: bool,
    pub flows: Vec<FlowResult>,
    /// The paths and the proxies' configuration (runs before this field have none).
    #[serde(default, skip_serializing_if = "Structure::is_empty")]
    pub structure: Structure,
    pub components: Vec<ComponentResult>,
    /// Every pod's data plane in this mode and what decided it (its labels in `declared`, the
    /// mode otherwise); empty in runs from before meshsim recorded it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodDataPlane>,
    /// A migration measured live: the scenario as written, then each stage (a step each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageResult>,
    /// The scenario's faults, one per fault and step, with their effect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultResult>,
    /// The proxies' load-balancing picks per service (mesh modes; in no-mesh the kernel's
    /// `numgen inc` round robin picks, per connection, and is not counted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lb: Vec<LbPicks>,
    /// CPU of the whole meshsim process while this mode ran, in vCPU.
    pub process_vcpu_avg: f64,
    /// Sum of `components[].vcpu_avg`; far below `process_vcpu_avg` means unattributed work.
    pub components_vcpu_sum: f64,
    /// Share of the machine's busy CPU time the hypervisor gave to other tenants while this
    /// mode ran (steal, from `/proc/stat`); absent where the kernel does not report it.
    #[serde(default)]
    pub host_steal_share: Option<f64>,
    /// How fast the host ran 1 KiB loopback round trips just before this mode (see
    /// `sim::hostprobe`); absent in runs from before meshsim measured it, or if the probe failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_probe: Option<HostProbe>,
    /// The machine was saturated (or close) or its host contended: latency then measures
    /// contention, not the mesh.
    #[serde(default)]
    pub saturation_warnings: Vec<String>,
    #[serde(default)]
    pub slo: Vec<SloVerdict>,
    /// The whole meshsim process each interval: what a soak watches for leaks.
    #[serde(default)]
    pub process: ProcessSeries,
    /// Filled by [`RunResult::derive_summaries`]; the runner leaves it at its default.
    #[serde(default)]
    pub summary: ModeSummary,
}

/// A migration's reachability (as `meshsim reach` probes it): every probe sent for real at
/// the scenario as written and after each stage (a cluster each), and what changed between
/// consecutive stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReachResult {
    pub columns: Vec<ReachColumn>,
    /// Breaks and openings, in stage order.
    pub changes: Vec<ReachChange>,
    /// The scenario's alert rules and dashboard queries evaluated at each stage by a real
    /// Prometheus (`monitoring:` in the scenario).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringResult>,
}

/// The monitoring check: each query of the user's rules and dashboards at each stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitoringResult {
    /// Why the check did not run (e.g. no `prometheus` binary), and how to make it run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The Prometheus version that evaluated the queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<String>,
    /// `before` and the stages, in order: the columns of every query's `at`.
    pub stages: Vec<String>,
    pub queries: Vec<MonitorQueryResult>,
}

impl MonitoringResult {
    /// Queries with something to fix.
    pub fn flagged(&self) -> impl Iterator<Item = &MonitorQueryResult> {
        self.queries.iter().filter(|q| !q.flags.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorQueryResult {
    /// The rule or dashboard file, as the scenario names it, and the line of the expression.
    pub file: String,
    pub line: usize,
    /// `alert X (group g)`, `record x (group g)` or `panel "Title" A`.
    pub name: String,
    pub expr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// One per stage.
    pub at: Vec<QueryAt>,
    /// What goes silent, and selectors that match nothing (with the values Istio emits).
    pub flags: Vec<String>,
}

/// A query's result at one stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryAt {
    /// Series returned (0: nothing).
    pub series: usize,
    /// The value of the first series returned (a sample, in Prometheus' order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// That series, with its labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReachResult {
    /// Changes no stage's `expect:` lists: each makes `run` exit 1.
    pub fn unexpected(&self) -> impl Iterator<Item = &ReachChange> {
        self.changes.iter().filter(|c| !c.expected)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReachColumn {
    /// `before`, or a stage's name.
    pub at: String,
    pub probes: usize,
    pub allowed: usize,
    pub refused: usize,
    /// `source → destination request` between two meshed workloads that went in plaintext
    /// (what the destination proxy saw on the wire, Istio's `connection_security_policy`).
    pub meshed_plaintext: Vec<String>,
    /// Plaintext from out of the mesh that a PERMISSIVE destination accepted.
    pub outside_accepted: Vec<String>,
    /// Plaintext from out of the mesh that STRICT reset.
    pub outside_refused_strict: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReachChange {
    /// The stage before and the stage that made the change.
    pub from_stage: String,
    pub to_stage: String,
    /// `break` (allowed, now refused) or `opening` (refused, now allowed: a security
    /// regression).
    pub kind: String,
    /// Source pod, `service.namespace:port`, `METHOD /path` or `tcp`.
    pub from: String,
    pub to: String,
    pub request: String,
    /// Outcomes before and after, e.g. `allowed (200)`, `503`, `denied 403`.
    pub before: String,
    pub after: String,
    /// The proxy and the policy (and rule) that decided after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// The stage's `expect:` lists it.
    pub expected: bool,
}

/// One item of the migration checklist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    pub id: String,
    /// `verified`, `failed`, `warning` or `not-checkable`.
    pub status: String,
    pub title: String,
    pub evidence: Vec<String>,
    /// The Istio source of the rule applied.
    pub source: String,
}

/// One pod's data plane in a mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodDataPlane {
    pub pod: String,
    pub namespace: String,
    pub node: String,
    pub dataplane: scenario::DataPlane,
    pub why: String,
}

fn yes() -> bool {
    true
}

/// The meshsim process as a whole, sampled with the components (same `t_s`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessSeries {
    pub t_s: Vec<f64>,
    /// Resident memory, MiB.
    pub rss_mib: Vec<f64>,
    /// Open file descriptors (sockets included): the components share one table.
    pub fds: Vec<u64>,
    pub threads: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowResult {
    pub name: String,
    pub from: String,
    pub to: String,
    /// e.g. `http1`, `http1-close`, `tcp-rr`, `tcp-stream`.
    pub protocol: String,
    /// One per rate step, in the order they ran.
    pub steps: Vec<StepResult>,
    /// `rate: search` (or `run --find-max`): each step's verdict and the highest rate that
    /// met the flow's SLOs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<RateSearchResult>,
}

/// A search for a flow's highest rate meeting its SLOs (steps bracketed, then bisected).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateSearchResult {
    /// What each step had to meet.
    pub criteria: Vec<String>,
    /// Per step, in the order they ran: met every criterion.
    pub passed: Vec<bool>,
    /// The highest rate that passed; none when even the lowest step tried failed.
    pub max_rps: Option<f64>,
    /// The lowest rate that failed; none when the search stopped at its ceiling, passing.
    pub first_failing_rps: Option<f64>,
}

impl RateSearchResult {
    /// From the verdicts of `steps` (their target rates).
    pub fn new(criteria: Vec<String>, steps: &[Option<f64>], passed: Vec<bool>) -> Self {
        let pick = |ok: bool| {
            steps
                .iter()
                .zip(&passed)
                .filter(|(_, p)| **p == ok)
                .filter_map(|(r, _)| *r)
                .reduce(if ok { f64::max } else { f64::min })
        };
        RateSearchResult {
            max_rps: pick(true),
            first_failing_rps: pick(false),
            criteria,
            passed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepResult {
    /// Open-loop target rate; absent for closed loop ("max").
    pub target_rps: Option<f64>,
    pub duration_s: f64,
    pub requests: u64,
    pub achieved_rps: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// For stream flows: payload throughput in bits per second.
    pub throughput_bps: Option<f64>,
    /// Error counts by kind (e.g. `connect`, `timeout`, `http-5xx`).
    pub errors: BTreeMap<String, u64>,
    /// From the intended send time (coordinated-omission corrected).
    pub latency: LatencySummary,
    /// From the actual send time: what the server side took.
    pub service_time: LatencySummary,
    /// One sample per interval (normally a second).
    pub series: Vec<IntervalSample>,
    /// The step's warmup, counted when something changed at its start (a migration stage
    /// applied live): the transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<WarmupResult>,
}

/// A step's warmup: requests and errors from the step's start to its measured window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmupResult {
    /// When the warmup began, seconds since the mode's load started.
    pub from_s: f64,
    pub requests: u64,
    /// By kind (connect_refused, reset, timeout, http_4xx, http_5xx, other).
    pub errors: BTreeMap<String, u64>,
    /// Successes and errors in each second from `from_s`.
    pub seconds: Vec<WarmupSecond>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmupSecond {
    pub requests: u64,
    pub errors: u64,
}

/// The load balancing of one service over a mode: the picks each endpoint got from the
/// proxies' round robin (its cursor starts from the run's seed, so a replay picks the same
/// endpoint for the k-th request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LbPicks {
    /// `name.namespace`.
    pub service: String,
    /// Endpoint pod → picks.
    pub picks: BTreeMap<String, u64>,
}

/// One fault in one step and what it did to the load (`faults:` in the scenario).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultResult {
    /// e.g. `ztunnel-restart node-2 at 10s for 1s`.
    pub label: String,
    pub kind: String,
    /// The flows' step it fell in.
    pub step: usize,
    /// When it began and ended (the component back, the rule removed), seconds since the
    /// mode's load started: the band the report's time-series charts shade.
    pub start_s: f64,
    pub end_s: f64,
    /// Why it did nothing in this mode (e.g. no ztunnel runs there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_applied: Option<String>,
    /// Requests that failed, every flow, from the fault's start to the first error-free
    /// second after it ended.
    pub failed: u64,
    /// Seconds from the fault's start to the first second after it ended in which every
    /// flow ran without an error (1 s resolution); absent if that never came in the step.
    pub clean_after_s: Option<f64>,
    /// Seconds from the fault's start until every flow's p99 was back within 10% of its median
    /// p99 before the fault; absent if it never was in the step (or nothing came before).
    pub p99_recovered_after_s: Option<f64>,
    pub flows: Vec<FaultFlow>,
    /// The failed requests by kind, every flow, over the same window as `failed`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// What else the fault did, measured: a link wire's packets and CPU time, a CPU quota's
    /// throttling, proxy starts that waited for istiod, certificate renewals that failed, a
    /// replaced pod's new address. (`cost` in runs before meshsim 0.x named it.)
    #[serde(default, alias = "cost", skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultFlow {
    pub flow: String,
    pub failed: u64,
    /// By kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    pub clean_after_s: Option<f64>,
    /// Median of the per-second p99 before the fault.
    pub p99_before_us: Option<f64>,
    pub p99_recovered_after_s: Option<f64>,
}

/// One stage of a migration, measured live: `run` on a scenario with `migration:` in mode
/// declared applies each stage to the running cluster at the start of a step, with the load
/// running across it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageResult {
    /// `before` (the scenario as written), then each stage's name.
    pub name: String,
    /// The flows' step that measured it (index into `flows[].steps`).
    pub step: usize,
    /// When its changes were applied, seconds since the mode's load started; absent for
    /// `before`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at_s: Option<f64>,
    /// What it changed in the running cluster, one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// Wall time applying the changes took (plan push, proxies started and stopped), seconds.
    #[serde(default)]
    pub apply_s: f64,
    /// Each component over the stage's measured window (the flows' measured step).
    pub components: Vec<StageComponent>,
    /// Per proxy kind and in total: the sum over its components.
    pub totals: Vec<StageTotal>,
    /// Errors from the change until the load ran clean again; absent for `before`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<Transition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageComponent {
    pub name: String,
    pub kind: ComponentKind,
    /// It had threads in the window (false: not started yet, or stopped by a restart).
    pub running: bool,
    /// Measured: CPU of its threads over the window.
    pub vcpu: f64,
    /// Measured: its live heap, mean over the window.
    pub heap_mib: f64,
    /// Modeled, not measured: the cost profile's memory beyond the heap (base + per
    /// connection), mean over the window; absent without a profile memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modeled_mib: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageTotal {
    /// A component kind (`sidecar`, `ztunnel`, `waypoint`, ...), or `proxies` for all three
    /// proxy kinds together.
    pub kind: String,
    /// Components of that kind that ran in the window.
    pub running: usize,
    pub vcpu: f64,
    pub heap_mib: f64,
    /// Modeled part, as [`StageComponent::modeled_mib`].
    pub modeled_mib: f64,
}

/// What a stage's change did to the load while it settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// Requests that failed from the change until each flow's first error-free second.
    pub failed: u64,
    /// Of the warmup after the change, the errors by kind (every flow).
    pub errors: BTreeMap<String, u64>,
    /// Seconds from the change to the start of the first second in which every flow ran
    /// without an error (1 s resolution); absent when the stage never ran clean.
    pub cleared_after_s: Option<f64>,
    /// Per flow: failed requests and its own clear time.
    pub flows: Vec<TransitionFlow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionFlow {
    pub flow: String,
    pub failed: u64,
    pub cleared_after_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencySummary {
    pub p50_us: f64,
    pub p75_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
    pub count: u64,
    /// The whole histogram (µs), HdrHistogram V2 compressed, base64 ("HISTFAAA...").
    pub histogram: String,
}

impl LatencySummary {
    /// Percentiles and the encoded histogram from a histogram recorded in microseconds.
    pub fn from_histogram(h: &Histogram<u64>) -> Result<Self, HistogramError> {
        let q = |p: f64| h.value_at_quantile(p) as f64;
        Ok(Self {
            p50_us: q(0.50),
            p75_us: q(0.75),
            p90_us: q(0.90),
            p99_us: q(0.99),
            p999_us: q(0.999),
            p9999_us: q(0.9999),
            max_us: h.max() as f64,
            mean_us: if h.is_empty() { 0.0 } else { h.mean() },
            count: h.len(),
            histogram: hist::encode(h)?,
        })
    }

    pub fn decode_histogram(&self) -> Result<Histogram<u64>, HistogramError> {
        hist::decode(&self.histogram)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntervalSample {
    /// End of the interval, seconds since the mode's load started (not the step's), so the
    /// samples of successive steps form one time line.
    pub t_s: f64,
    pub requests: u64,
    pub errors: u64,
    /// The second's errors by kind (`reset`, `timeout`, `http_5xx`, …); only kinds that
    /// occurred.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors_by_kind: BTreeMap<String, u64>,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    App,
    Sidecar,
    Ztunnel,
    Waypoint,
    LoadClient,
}

impl ComponentKind {
    pub const ALL: [ComponentKind; 5] = [
        ComponentKind::App,
        ComponentKind::Sidecar,
        ComponentKind::Ztunnel,
        ComponentKind::Waypoint,
        ComponentKind::LoadClient,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::App => "app",
            ComponentKind::Sidecar => "sidecar",
            ComponentKind::Ztunnel => "ztunnel",
            ComponentKind::Waypoint => "waypoint",
            ComponentKind::LoadClient => "load-client",
        }
    }

    /// Proxies are the data plane's cost; apps and load clients exist in every mode.
    pub fn is_proxy(self) -> bool {
        matches!(
            self,
            ComponentKind::Sidecar | ComponentKind::Ztunnel | ComponentKind::Waypoint
        )
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One component over a mode's metered window (load start to end, warmups included). Every
/// figure is measured on the component itself, CPU and work counted over the same window;
/// `modeled_mib` is the one modeled figure, and says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentResult {
    /// e.g. `sidecar-frontend-0`, `ztunnel-node-1`.
    pub name: String,
    pub kind: ComponentKind,
    /// CPU of the component's threads (scheduler time), in vCPU.
    pub vcpu_avg: f64,
    /// The part of `vcpu_avg` burned to reach the cost profile's floor (proxies under a profile
    /// with floors); `vcpu_avg` minus this is the model's own work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu_floor_avg: Option<f64>,
    /// Units of work the component counted itself over the window (see `requests_are`).
    pub requests: u64,
    /// What `requests` counts for this kind of component.
    pub requests_are: String,
    /// `requests` per second of the window.
    pub rps_avg: f64,
    /// `vcpu_avg` per 1000 of `rps_avg`: both measured on this component over the same
    /// window. Absent when it was idle (under 1 request per second).
    pub vcpu_per_1000rps: Option<f64>,
    /// Live heap, measured (this component's jemalloc arena).
    pub heap_mib_avg: f64,
    pub heap_mib_peak: f64,
    /// Modeled, not measured: the memory the cost profile gives the proxy at its busiest
    /// (base + per open connection) beyond the heap measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modeled_mib: Option<f64>,
    /// Connections the component opened or accepted over the window (proxies).
    #[serde(default)]
    pub connections_opened: u64,
    /// Full mTLS handshakes the proxy made over the window, either side: connections it
    /// opened or accepted without resuming a session. Absent in runs
    /// made before meshsim counted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshakes: Option<u64>,
    /// Most connections open at once (sampled each interval).
    #[serde(default)]
    pub connections_peak: u64,
    /// Most threads the component ran at once.
    #[serde(default)]
    pub threads_peak: u64,
    pub cpu_limit_millis: Option<u32>,
    /// False when a limit was asked for but could not be applied (not root).
    pub cpu_limit_enforced: bool,
    pub series: ComponentSeries,
}

/// What a mode's mesh is made of, from the scenario and Istio's rules alone: the same
/// scenario gives the same structure on any machine, so `compare` judges it exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Structure {
    /// Per flow, by name: the paths its requests take.
    pub flows: BTreeMap<String, Vec<PathStructure>>,
    /// Per proxy (component name): the configuration entries in its scope.
    pub proxies: BTreeMap<String, ProxyScope>,
}

impl Structure {
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty() && self.proxies.is_empty()
    }
}

/// One path a flow's requests take (endpoints whose paths read the same share one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathStructure {
    /// Pod to pod, each proxy on the way (`ztunnel for client-0 (outbound)`, `waypoint
    /// payment-waypoint`, …), endpoint pods named by their workload.
    pub route: Vec<String>,
    /// Proxies on the route.
    pub hops: usize,
    /// Per proxy that checks policy: the policies it considers for the request, and their
    /// rules.
    pub checks: Vec<HopChecks>,
    /// What the proxies' own policy engine says of a request (`allowed`, `denied 403`, …).
    pub outcome: String,
    /// Endpoints that take this path.
    pub endpoints: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HopChecks {
    pub proxy: String,
    pub policies: usize,
    pub rules: usize,
}

/// Configuration a proxy holds (what istiod pushes into its scope).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyScope {
    pub services: usize,
    pub endpoints: usize,
    pub workloads: usize,
    pub policies: usize,
}

/// A component's figures per interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentSeries {
    /// End of each interval, seconds since the mode's load started.
    pub t_s: Vec<f64>,
    pub vcpu: Vec<f64>,
    /// Part of `vcpu` burned to reach the profile's floor (empty: no floor).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vcpu_floor: Vec<f64>,
    pub heap_mib: Vec<f64>,
    /// Requests (as `requests_are` says) per second in each interval.
    #[serde(default)]
    pub rps: Vec<f64>,
    #[serde(default)]
    pub connections_active: Vec<u64>,
    /// Connections opened (or accepted) per second in each interval: what tells a proxy's
    /// per-connection CPU from its per-request CPU when a run has both churn and reuse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections_opened: Vec<f64>,
    #[serde(default)]
    pub threads: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SloVerdict {
    pub name: String,
    /// Human-readable, e.g. "p99 < 10ms on flow web".
    pub description: String,
    pub observed: f64,
    pub limit: f64,
    pub passed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunLoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: not a valid meshsim run.json: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{path}: no `schema_version` field; this is not a meshsim run.json (or one from before versioning): re-run the scenario to get a current one"
    )]
    MissingVersion { path: PathBuf },
    #[error(
        "{path}: run.json schema_version {found} is not supported by this meshsim, which reads version {supported}; {hint}"
    )]
    UnsupportedVersion {
        path: PathBuf,
        found: u64,
        supported: u32,
        hint: &'static str,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RunSaveError {
    #[error("cannot serialize the run result: {0}")]
    Serialize(serde_json::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The JSON Schema of `run.json`, as committed in `results/run.schema.json`.
pub fn schema() -> schemars::Schema {
    schemars::schema_for!(RunResult)
}

/// The committed schema file's text: pretty JSON and a final newline.
pub fn schema_json() -> String {
    // Serializing a Schema (a JSON value) cannot fail.
    let mut s = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    s.push('\n');
    s
}

fn json_error(path: &Path, e: &serde_json::Error) -> RunLoadError {
    RunLoadError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    }
}

impl RunResult {
    /// Read and check a `run.json`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, RunLoadError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| RunLoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, path)
    }

    /// Parse `run.json` text; `path` only names the source in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self, RunLoadError> {
        // The version is checked before the full parse so an old or new file says "wrong
        // version" rather than pointing at whichever field changed.
        #[derive(Deserialize)]
        struct VersionOnly {
            schema_version: Option<serde_json::Value>,
        }
        let v: VersionOnly = serde_json::from_str(text).map_err(|e| json_error(path, &e))?;
        match v.schema_version {
            None => {
                return Err(RunLoadError::MissingVersion {
                    path: path.to_path_buf(),
                });
            }
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(RUN_SCHEMA_VERSION.into()) => {
            }
            Some(other) => {
                let found = other.as_u64().unwrap_or(u64::MAX);
                let hint = if found < u64::from(RUN_SCHEMA_VERSION) {
                    "it was written by an older meshsim: re-run the scenario, or read it with the meshsim that wrote it"
                } else {
                    "it was written by a newer meshsim: read it with that version or newer"
                };
                return Err(RunLoadError::UnsupportedVersion {
                    path: path.to_path_buf(),
                    found,
                    supported: RUN_SCHEMA_VERSION,
                    hint,
                });
            }
        }
        serde_json::from_str(text).map_err(|e| json_error(path, &e))
    }

    /// Pretty JSON with a final newline; byte-identical for equal results.
    pub fn to_json_string(&self) -> Result<String, serde_json::Error> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }

    /// Write `run.json` atomically (temporary file, then rename), so an interrupted write
    /// never leaves half a file where a previous good one was.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), RunSaveError> {
        let path = path.as_ref();
        let text = self.to_json_string().map_err(RunSaveError::Serialize)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let write_err = |source| RunSaveError::Write {
            path: path.to_path_buf(),
            source,
        };
        std::fs::write(&tmp, text).map_err(write_err)?;
        std::fs::rename(&tmp, path).map_err(write_err)
    }

    /// The scenario's name.
    pub fn scenario_name(&self) -> &str {
        &self.scenario.scenario.name
    }

    /// Modes present, in display order, each once.
    pub fn mode_names(&self) -> Vec<Mode> {
        let mut v: Vec<Mode> = self.modes.iter().map(|m| m.mode).collect();
        v.sort();
        v.dedup();
        v
    }

    /// One host-probe figure across the run's modes: (median, lowest, highest); `None` when
    /// no mode recorded it.
    pub fn host_probe_range(
        &self,
        pick: impl Fn(&HostProbe) -> Option<f64>,
    ) -> Option<(f64, f64, f64)> {
        let v: Vec<f64> = self
            .modes
            .iter()
            .filter_map(|m| m.host_probe.as_ref().and_then(&pick))
            .collect();
        let lo = v.iter().copied().reduce(f64::min)?;
        let hi = v.iter().copied().reduce(f64::max)?;
        Some((median(v)?, lo, hi))
    }

    /// All repeats of a mode, by repeat index.
    pub fn repeats_of(&self, mode: Mode) -> Vec<&ModeResult> {
        let mut v: Vec<&ModeResult> = self.modes.iter().filter(|m| m.mode == mode).collect();
        v.sort_by_key(|m| m.repeat);
        v
    }
}

impl FlowResult {
    /// Index of the step headline figures and single-step charts use: the one nearest
    /// [`DEFAULT_HEADLINE_RPS`]; closed-loop steps have no rate, so the last one.
    pub fn headline_step(&self) -> Option<usize> {
        let want = DEFAULT_HEADLINE_RPS;
        let mut best: Option<(usize, f64)> = None;
        for (i, s) in self.steps.iter().enumerate() {
            if let Some(r) = s.target_rps {
                let d = (r - want).abs();
                // Strictly less: on a tie the lower rate wins, it is less likely saturated.
                if best.is_none_or(|(_, bd)| d < bd) {
                    best = Some((i, d));
                }
            }
        }
        best.map(|(i, _)| i)
            .or_else(|| self.steps.len().checked_sub(1))
    }
}

impl ModeResult {
    /// The load's achieved rate, the one definition meshsim uses: requests the load clients
    /// completed in the measured steps (warmups left out) per second of those steps, summed
    /// over the flows.
    pub fn achieved_rps(&self) -> f64 {
        self.flows
            .iter()
            .map(|f| {
                let req: u64 = f.steps.iter().map(|s| s.requests).sum();
                let dur: f64 = f.steps.iter().map(|s| s.duration_s).sum();
                if dur > 0.0 { req as f64 / dur } else { 0.0 }
            })
            .sum()
    }
}

/// Median of the values; `None` when there are none.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}
