//! Synthetic, seeded runs for tests and examples (feature `testing`).
//!
//! They are built the way the runner builds a real one: a scenario loaded by the scenario
//! crate, raw meter readings and load results ([`crate::raw`]), then [`crate::interpret`], so
//! every test of reports and `compare` reads the same shape a real `run.json` has. The numbers
//! follow Istio's published per-proxy figures (DESIGN.md, "Cost profiles"); the histograms are
//! real HdrHistograms recorded from a seeded generator.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use crate::hist;
use crate::interpret::{BuildInfo, run_result};
use crate::raw::{
    ComponentSeries, HostInfo, MeterReport, ProcessReadings, RawFlow, RawMode, RawRun,
};
use crate::run::{
    ComponentKind, HostProbe, IntervalSample, LatencySummary, Mode, PingPong, RunResult, StepResult,
};

/// Rate steps of the sample scenario, rps.
pub const SAMPLE_STEPS_RPS: [f64; 3] = [250.0, 500.0, 1000.0];
/// Seconds per measured step.
pub const SAMPLE_STEP_S: u32 = 10;
/// Seconds of warmup before each step.
pub const SAMPLE_WARMUP_S: u32 = 2;

/// The scenario the sample runs ran: a load client calling `frontend` (HTTP/1.1) and `orders`
/// (TCP request/response) on another node, over three rate steps.
pub const SAMPLE_SCENARIO: &str = "\
version: 1
name: sample-two-tier
description: load client -> frontend (HTTP/1.1) and -> orders (TCP request/response)
nodes: [{name: node-0}, {name: node-1}]
workloads:
  - {name: load, nodes: [node-0]}
  - {name: frontend, nodes: [node-1], app: {http: {port: 8080}}}
  - {name: orders, nodes: [node-1], app: {tcpEcho: {port: 9000}}}
services:
  - {name: frontend, workload: frontend, ports: [{port: 8080}]}
  - {name: orders, workload: orders, ports: [{port: 9000}]}
flows:
  - {name: web, from: load, to: frontend:8080, rate: [250, 500, 1000], duration: 10s, warmup: 2s}
  - {name: orders, from: load, to: orders:9000, protocol: tcp-rr, requestBytes: 256, rate: [250, 500, 1000], duration: 10s, warmup: 2s}
slos:
  - {name: web-p99, flow: web, p99: 5ms}
  - {name: web-errors, flow: web, maxErrorRate: 0.01%}
";

/// SplitMix64: tiny, seedable, and its output never changes across versions, unlike `rand`'s
/// generators, so sample runs stay byte-identical.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-12);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// The sample scenario, loaded as `meshsim run` loads one.
pub fn sample_loaded() -> scenario::Loaded {
    match scenario::load_str(std::path::Path::new("sample.yaml"), SAMPLE_SCENARIO) {
        Ok(l) => l,
        Err(e) => panic!("the sample scenario is valid: {e}"),
    }
}

/// How a synthetic run differs from the reference figures.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Scales every latency and CPU figure (1.0 = the reference numbers).
    pub slowdown: f64,
    /// Relative noise between repeats of a mode (standard deviation of a factor around 1),
    /// on latency and CPU alike: what a shared machine adds run to run.
    pub repeat_noise: f64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            slowdown: 1.0,
            repeat_noise: 0.03,
        }
    }
}

/// A four-mode run of two flows over three rate steps, one repeat.
/// `slowdown_factor` scales every latency and CPU figure (1.0 = the reference numbers).
pub fn sample_run(seed: u64, slowdown_factor: f64) -> RunResult {
    sample_run_with_repeats(seed, slowdown_factor, 1)
}

/// As [`sample_run`], with `repeats` runs of each mode (different noise per repeat).
pub fn sample_run_with_repeats(seed: u64, slowdown_factor: f64, repeats: u32) -> RunResult {
    shaped_run(
        seed,
        repeats,
        Shape {
            slowdown: slowdown_factor,
            ..Shape::default()
        },
    )
}

/// A run of `repeats` interleaved repeats, shaped by `shape`.
pub fn shaped_run(seed: u64, repeats: u32, shape: Shape) -> RunResult {
    let loaded = sample_loaded();
    let mut modes = Vec::new();
    let mut schedule = Vec::new();
    for repeat in 0..repeats.max(1) {
        for (mi, mode) in Mode::ALL.into_iter().enumerate() {
            let sub_seed = seed
                .wrapping_mul(1_000_003)
                .wrapping_add(u64::from(repeat) * 16 + mi as u64);
            let mut rng = Rng::new(sub_seed);
            // One factor per repeat: a repeat on a slower moment is slower in everything.
            let factor = shape.slowdown * (1.0 + shape.repeat_noise * rng.normal()).max(0.1);
            modes.push(sample_mode(mode, repeat, &mut rng, factor));
            schedule.push((mode, repeat));
        }
    }
    let raw = RawRun {
        started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600),
        host: HostInfo {
            kernel: "Linux 6.1.0-sample x86_64".into(),
            cores: 2,
            cpu_model: "Sample CPU @ 2.0GHz".into(),
            user: "ci".into(),
            root: false,
            hostname: Some("sample-host".into()),
        },
        profile: match scenario::profile::Profile::load("istio-1.24") {
            Ok(p) => p,
            Err(e) => panic!("the bundled profile loads: {e}"),
        },
        schedule,
        modes,
        incomplete: false,
    };
    let build = BuildInfo {
        version: "0.1.0".into(),
        commit: Some("0000000000000000000000000000000000000000".into()),
    };
    run_result(&loaded, &raw, &build)
}

/// Median latency of a mode and flow in µs before noise; roughly the published added latency.
fn base_latency_us(mode: Mode, tcp: bool) -> f64 {
    let base = if tcp { 120.0 } else { 220.0 };
    base + match mode {
        Mode::NoMesh => 0.0,
        Mode::Sidecar => 300.0,
        Mode::Ambient => 180.0,
        Mode::AmbientWaypoint | Mode::Declared => 470.0,
    }
}

/// (name, kind, vCPU per 1000 rps through it, of which floor, measured MiB, profile MiB,
/// share of the load through it).
type Spec = (&'static str, ComponentKind, f64, f64, f64, f64, f64);

fn components_of(mode: Mode) -> Vec<Spec> {
    let mut specs: Vec<Spec> = vec![
        ("frontend-0", ComponentKind::App, 0.05, 0.0, 6.0, 0.0, 0.5),
        ("orders-0", ComponentKind::App, 0.03, 0.0, 4.0, 0.0, 0.5),
        (
            "load-web",
            ComponentKind::LoadClient,
            0.08,
            0.0,
            8.0,
            0.0,
            0.5,
        ),
        (
            "load-orders",
            ComponentKind::LoadClient,
            0.06,
            0.0,
            6.0,
            0.0,
            0.5,
        ),
    ];
    match mode {
        Mode::NoMesh => {}
        Mode::Sidecar => {
            specs.push((
                "sidecar-load-0",
                ComponentKind::Sidecar,
                0.20,
                0.16,
                9.0,
                57.2,
                1.0,
            ));
            specs.push((
                "sidecar-frontend-0",
                ComponentKind::Sidecar,
                0.20,
                0.16,
                9.0,
                57.2,
                0.5,
            ));
            specs.push((
                "sidecar-orders-0",
                ComponentKind::Sidecar,
                0.20,
                0.16,
                9.0,
                57.2,
                0.5,
            ));
        }
        Mode::Ambient | Mode::AmbientWaypoint | Mode::Declared => {
            specs.push((
                "ztunnel-node-0",
                ComponentKind::Ztunnel,
                0.06,
                0.0,
                3.0,
                11.4,
                1.0,
            ));
            specs.push((
                "ztunnel-node-1",
                ComponentKind::Ztunnel,
                0.06,
                0.0,
                3.0,
                11.4,
                1.0,
            ));
            if mode == Mode::AmbientWaypoint {
                specs.push((
                    "default-waypoint-0",
                    ComponentKind::Waypoint,
                    0.25,
                    0.2,
                    10.0,
                    57.2,
                    1.0,
                ));
            }
        }
    }
    specs
}

fn sample_mode(mode: Mode, repeat: u32, rng: &mut Rng, slow: f64) -> RawMode {
    let step_s = f64::from(SAMPLE_STEP_S);
    let warm_s = f64::from(SAMPLE_WARMUP_S);
    let measured_from: Vec<f64> = (0..SAMPLE_STEPS_RPS.len())
        .map(|i| i as f64 * (step_s + warm_s) + warm_s)
        .collect();
    let flows = vec![
        sample_flow(
            "web",
            "frontend:8080",
            "http1",
            mode,
            false,
            rng,
            slow,
            &measured_from,
        ),
        sample_flow(
            "orders",
            "orders:9000",
            "tcp-rr",
            mode,
            true,
            rng,
            slow,
            &measured_from,
        ),
    ];
    let total_s = (step_s + warm_s) * SAMPLE_STEPS_RPS.len() as f64;
    let t_s: Vec<f64> = (1..=total_s as u32).map(f64::from).collect();
    // Both flows run the same steps at once: the load at second t.
    let load_at = |t: f64| {
        let step = ((t - 1.0) / (step_s + warm_s)) as usize;
        2.0 * SAMPLE_STEPS_RPS[step.min(SAMPLE_STEPS_RPS.len() - 1)]
    };
    let components: Vec<ComponentSeries> = components_of(mode)
        .into_iter()
        .map(
            |(name, kind, per1000, floor1000, mib, profile_mib, share)| {
                let per1000 = per1000 * slow;
                let mut s = ComponentSeries::new(name, kind);
                for &t in &t_s {
                    let rps = load_at(t) * share;
                    let n = (rps * (1.0 + 0.01 * rng.normal())).max(0.0).round() as u64;
                    let vcpu = (per1000 * n as f64 / 1000.0 * (1.0 + 0.05 * rng.normal())).max(0.0);
                    s.requests.push(n);
                    s.vcpu.push(vcpu);
                    s.floor_vcpu
                        .push(floor1000.min(per1000) * n as f64 / 1000.0);
                    s.heap_mib
                        .push(mib * slow * (0.9 + 0.1 * t / total_s) + 0.1 * rng.normal().abs());
                    if profile_mib > 0.0 {
                        s.profile_mib.push(profile_mib);
                    }
                    s.connections_opened.push(if t == 1.0 { 4 } else { 0 });
                    s.tls_handshakes.push(if t == 1.0 { 2 } else { 0 });
                    s.connections_active.push(4);
                    s.threads.push(2);
                }
                if kind == ComponentKind::Sidecar {
                    s.cpu_limit_millis = Some(2000);
                }
                s
            },
        )
        .collect();
    let meter = MeterReport {
        interval_s: 1.0,
        process: ProcessReadings {
            vcpu: t_s
                .iter()
                .enumerate()
                .map(|(i, _)| components.iter().map(|c| c.vcpu[i]).sum::<f64>() * 1.04)
                .collect(),
            rss_mib: t_s.iter().map(|_| 80.0).collect(),
            fds: t_s.iter().map(|_| 120).collect(),
            threads: t_s.iter().map(|_| 40).collect(),
        },
        t_s,
        cores: 2,
        components,
        heap_measured: true,
        meter_vcpu: 0.002,
        saturation_warning: None,
        host_steal_share: Some(0.01),
    };
    RawMode {
        mode,
        repeat,
        flows,
        pods: Vec::new(),
        meter,
        complete: true,
        bring_up: Duration::from_millis(300),
        warnings: Vec::new(),
        stages: Vec::new(),
        faults: Vec::new(),
        lb: Vec::new(),
        host_probe: Some(HostProbe {
            back_to_back: PingPong {
                round_trip_us: 18.0 + f64::from(repeat),
                cpu_per_round_trip_us: 18.5,
            },
            paced: PingPong {
                round_trip_us: 30.0,
                cpu_per_round_trip_us: 66.0 + 2.0 * f64::from(repeat),
            },
        }),
        structure: Default::default(),
    }
}

#[allow(clippy::too_many_arguments)]
fn sample_flow(
    name: &str,
    to: &str,
    protocol: &str,
    mode: Mode,
    tcp: bool,
    rng: &mut Rng,
    slow: f64,
    measured_from: &[f64],
) -> RawFlow {
    let base = base_latency_us(mode, tcp) * slow;
    let payload = if tcp { 256 } else { 1024 };
    let mut steps = Vec::new();
    for (si, &rps) in SAMPLE_STEPS_RPS.iter().enumerate() {
        // Queueing grows with load, a little.
        let load = 1.0 + 0.25 * (rps / 1000.0).powi(2);
        let mut lat = hist::new_histogram().expect("static histogram bounds are valid");
        let mut svc = lat.clone();
        let mut series = Vec::new();
        let per_s = rps as u64;
        for sec in 0..SAMPLE_STEP_S {
            let mut chunk = Vec::with_capacity(per_s as usize);
            for _ in 0..per_s {
                let mut v = base * load * (0.22 * rng.normal()).exp();
                if rng.uniform() < 0.004 {
                    // A tail: GC-like pauses, retransmits.
                    v += -base * 6.0 * rng.uniform().max(1e-12).ln();
                }
                let v = v.max(1.0);
                chunk.push(v);
                lat.saturating_record(v as u64);
                svc.saturating_record((v * 0.85).max(1.0) as u64);
            }
            chunk.sort_by(f64::total_cmp);
            let q = |p: f64| chunk[((chunk.len() - 1) as f64 * p) as usize];
            series.push(IntervalSample {
                t_s: measured_from[si] + f64::from(sec) + 1.0,
                requests: per_s,
                errors: 0,
                errors_by_kind: Default::default(),
                p50_us: q(0.5),
                p99_us: q(0.99),
                max_us: q(1.0),
            });
        }
        let requests = lat.len();
        let mut errors = BTreeMap::new();
        if mode == Mode::AmbientWaypoint && si == SAMPLE_STEPS_RPS.len() - 1 {
            errors.insert("timeout".to_string(), 2);
        }
        steps.push(StepResult {
            target_rps: Some(rps),
            duration_s: f64::from(SAMPLE_STEP_S),
            requests,
            achieved_rps: requests as f64 / f64::from(SAMPLE_STEP_S),
            bytes_sent: requests * payload,
            bytes_received: requests * payload,
            throughput_bps: None,
            errors,
            latency: summary(&lat),
            service_time: summary(&svc),
            series,
            warmup: None,
        });
    }
    RawFlow {
        name: name.into(),
        from: "load".into(),
        to: to.into(),
        protocol: protocol.into(),
        steps,
        measured_from_s: measured_from.to_vec(),
        search: None,
    }
}

/// An error-free step of `rate` rps measured over `duration_s`, with no series.
pub fn step_result(rate: Option<f64>, duration_s: f64) -> StepResult {
    let empty = summary(&hist::new_histogram().expect("static histogram bounds are valid"));
    StepResult {
        target_rps: rate,
        duration_s,
        requests: 0,
        achieved_rps: 0.0,
        bytes_sent: 0,
        bytes_received: 0,
        throughput_bps: None,
        errors: BTreeMap::new(),
        latency: empty.clone(),
        service_time: empty,
        series: Vec::new(),
        warmup: None,
    }
}

fn summary(h: &Histogram<u64>) -> LatencySummary {
    LatencySummary::from_histogram(h).expect("in-memory histograms encode")
}
