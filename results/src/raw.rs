//! What the runner measured, before interpretation: filled by `sim::runner` (and by
//! [`crate::testing`] for tests), turned into `run.json` by [`crate::interpret`]. Plain data:
//! readings and counts per interval, no derived figure.

use std::time::{Duration, SystemTime};

use crate::run::{ComponentKind, HostProbe, Mode, StepResult};

/// The machine a run was made on.
#[derive(Debug, Clone, PartialEq)]
pub struct HostInfo {
    pub kernel: String,
    pub cores: u32,
    pub cpu_model: String,
    pub user: String,
    pub root: bool,
    pub hostname: Option<String>,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct RawRun {
    pub started_at: SystemTime,
    pub host: HostInfo,
    pub profile: scenario::profile::Profile,
    /// The (mode, repeat) pairs planned, in the order they were (to be) run.
    pub schedule: Vec<(Mode, u32)>,
    pub modes: Vec<RawMode>,
    /// Stopped early (Ctrl-C) or failed part-way: some of `schedule` is missing or short.
    pub incomplete: bool,
}

/// One (mode, repeat) of the schedule.
#[derive(Debug, Clone)]
pub struct RawMode {
    pub mode: Mode,
    pub repeat: u32,
    pub flows: Vec<RawFlow>,
    /// Every pod's data plane.
    pub pods: Vec<crate::run::PodDataPlane>,
    pub meter: MeterReport,
    /// Every flow ran every step to the end.
    pub complete: bool,
    /// Time to build the cluster and start its components.
    pub bring_up: Duration,
    pub warnings: Vec<String>,
    /// The host's speed just before this mode's cluster came up; `None` if the probe failed.
    pub host_probe: Option<HostProbe>,
    /// A migration applied live: `before`, then one entry per stage applied.
    pub stages: Vec<RawStage>,
    /// The scenario's faults as they happened (one per fault and step).
    pub faults: Vec<RawFault>,
    /// The proxies' load-balancing picks per service.
    pub lb: Vec<crate::run::LbPicks>,
    /// The mesh's paths and proxy scopes, as the mode started.
    pub structure: crate::run::Structure,
}

/// One fault in one step, as the runner applied it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawFault {
    pub label: String,
    pub kind: String,
    /// The flows' step it fell in.
    pub step: usize,
    /// When it began and ended (the component back, the rule removed), seconds since the
    /// mode's load started.
    pub start_s: f64,
    pub end_s: f64,
    /// Why it did nothing in this mode (e.g. no ztunnel runs there).
    pub not_applied: Option<String>,
    /// What else the fault did, measured (see `FaultResult::note`).
    pub note: Option<String>,
}

/// One migration stage as the runner applied it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawStage {
    pub name: String,
    /// Seconds since the mode's load started; `None` for `before`.
    pub applied_at_s: Option<f64>,
    pub changes: Vec<String>,
    pub apply_s: f64,
}

/// One flow's load client.
#[derive(Debug, Clone)]
pub struct RawFlow {
    pub name: String,
    pub from: String,
    pub to: String,
    /// `http1`, `http1-churn`, `tcp-rr` or `tcp-stream`: what the load client did.
    pub protocol: String,
    /// The steps that ran to their end, in order; their series' `t_s` count from the mode's
    /// load start.
    pub steps: Vec<StepResult>,
    /// When each step's measured part began, seconds since the mode's load started.
    pub measured_from_s: Vec<f64>,
    /// A rate search's verdicts, for `rate: search` flows.
    pub search: Option<crate::run::RateSearchResult>,
}

/// Every component's readings, sampled each interval over one mode's load.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterReport {
    pub interval_s: f64,
    /// End of each sampled interval, seconds since the mode's load started (the last interval
    /// may be shorter than `interval_s`).
    pub t_s: Vec<f64>,
    pub cores: usize,
    pub components: Vec<ComponentSeries>,
    pub process: ProcessReadings,
    /// Heap measured per component (false: jemalloc is not the allocator).
    pub heap_measured: bool,
    /// CPU the meter itself used, in vCPU over the whole run (its overhead).
    pub meter_vcpu: f64,
    /// Set when in some interval the components together used more than
    /// [`crate::host::SATURATION`] of the cores.
    pub saturation_warning: Option<String>,
    /// Share of the machine's busy CPU time that the hypervisor gave to other tenants while
    /// the meter ran (steal); `None` where `/proc/stat` has no steal column.
    pub host_steal_share: Option<f64>,
}

/// The whole process, per interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessReadings {
    /// vCPU: the components' sum plus anything unattributed.
    pub vcpu: Vec<f64>,
    pub rss_mib: Vec<f64>,
    pub fds: Vec<u64>,
    pub threads: Vec<u64>,
}

/// One component's readings per interval.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSeries {
    pub name: String,
    pub kind: ComponentKind,
    /// vCPU used in each interval (1.0 = one core busy the whole interval).
    pub vcpu: Vec<f64>,
    /// Of `vcpu`, what was burned to reach the cost profile's floor.
    pub floor_vcpu: Vec<f64>,
    /// Live heap at the end of each interval, MiB; empty when heap is not measured.
    pub heap_mib: Vec<f64>,
    /// The memory the cost profile gives the component at the end of each interval (base +
    /// per open connection), MiB; empty when it has none.
    pub profile_mib: Vec<f64>,
    /// Work the component counted itself in each interval (requests, or L4 exchanges).
    pub requests: Vec<u64>,
    pub connections_opened: Vec<u64>,
    /// Full mTLS handshakes the component made, either side (proxies).
    pub tls_handshakes: Vec<u64>,
    /// Connections open at the end of each interval.
    pub connections_active: Vec<u64>,
    /// Threads running at the end of each interval.
    pub threads: Vec<u64>,
    pub cpu_limit_millis: Option<u32>,
    /// False when a limit was asked for but could not be applied (not root).
    pub cpu_limit_enforced: bool,
}

impl ComponentSeries {
    /// An empty series for a component.
    pub fn new(name: impl Into<String>, kind: ComponentKind) -> ComponentSeries {
        ComponentSeries {
            name: name.into(),
            kind,
            vcpu: Vec::new(),
            floor_vcpu: Vec::new(),
            heap_mib: Vec::new(),
            profile_mib: Vec::new(),
            requests: Vec::new(),
            connections_opened: Vec::new(),
            tls_handshakes: Vec::new(),
            connections_active: Vec::new(),
            threads: Vec::new(),
            cpu_limit_millis: None,
            cpu_limit_enforced: false,
        }
    }
}

impl MeterReport {
    /// Sum over components, per interval.
    pub fn components_vcpu(&self) -> Vec<f64> {
        (0..self.t_s.len())
            .map(|i| self.components.iter().filter_map(|c| c.vcpu.get(i)).sum())
            .collect()
    }
}
