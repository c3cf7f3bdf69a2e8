//! Synthetic, seeded run results for tests and examples (feature `testing`).
//!
//! The numbers follow Istio's published per-proxy figures (DESIGN.md, "Cost profiles") so
//! charts and tables look like a real run; the histograms are real HdrHistograms recorded from
//! a seeded generator, so percentiles, encodings and renderings are exercised for real.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde_json::json;

use crate::hist;
use crate::run::{
    ComponentKind, ComponentResult, ComponentSeries, Environment, FlowResult, HostProbe,
    IntervalSample, LatencySummary, Mode, ModeResult, ModeSummary, PingPong, ProfileInfo,
    RUN_SCHEMA_VERSION, RunResult, SloVerdict, StepResult,
};

/// Rate steps of the sample scenario, rps.
pub const SAMPLE_STEPS_RPS: [f64; 3] = [250.0, 500.0, 1000.0];
/// Seconds per step.
pub const SAMPLE_STEP_S: u32 = 10;

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

/// A four-mode run of two flows over three rate steps, one repeat.
/// `slowdown_factor` scales every latency and CPU figure (1.0 = the reference numbers).
pub fn sample_run(seed: u64, slowdown_factor: f64) -> RunResult {
    sample_run_with_repeats(seed, slowdown_factor, 1)
}

/// As [`sample_run`], with `repeats` runs of each mode (different noise per repeat).
pub fn sample_run_with_repeats(seed: u64, slowdown_factor: f64, repeats: u32) -> RunResult {
    let mut modes = Vec::new();
    for repeat in 0..repeats.max(1) {
        for (mi, mode) in Mode::ALL.into_iter().enumerate() {
            let sub_seed = seed
                .wrapping_mul(1_000_003)
                .wrapping_add(u64::from(repeat) * 16 + mi as u64);
            modes.push(sample_mode(
                mode,
                repeat,
                &mut Rng::new(sub_seed),
                slowdown_factor,
            ));
        }
    }
    let mut run = RunResult {
        schema_version: RUN_SCHEMA_VERSION,
        scenario: sample_scenario(),
        manifests: vec![crate::run::ManifestRecord {
            path: "scenarios/manifests/orders-authz.yaml".into(),
            kinds: vec!["AuthorizationPolicy".into(), "Gateway".into()],
            ignored: vec!["PeerAuthentication.spec.portLevelMtls".into()],
        }],
        seed,
        profile: ProfileInfo {
            name: "istio-1.24".into(),
            sources: vec![
                "Istio 1.24 performance and scalability: 1000 rps, 1 KiB, 2 worker threads".into(),
                "Istio blog: ambient ztunnel resource usage (1.22)".into(),
            ],
            floors: json!({
                "sidecar": {"cpu_us_per_request": 200, "memory_mib_base": 60},
                "ztunnel": {"cpu_us_per_request": 60, "memory_mib_base": 12},
                "waypoint": {"cpu_us_per_request": 250, "memory_mib_base": 60}
            }),
        },
        environment: Environment {
            meshsim_version: "0.1.0".into(),
            commit: Some("0000000000000000000000000000000000000000".into()),
            kernel: "6.1.0-sample".into(),
            cores: 2,
            cpu_model: "Sample CPU @ 2.0GHz".into(),
            user: "ci".into(),
            root: false,
            started_at: "2025-01-01T00:00:00Z".into(),
            hostname: Some("sample-host".into()),
        },
        incomplete: false,
        repeats: repeats.max(1),
        headline_rps: None,
        modes,
    };
    run.derive_summaries();
    run
}

/// The scenario the sample run claims to have run.
pub fn sample_scenario() -> serde_json::Value {
    json!({
        "name": "sample-two-tier",
        "description": "load client -> frontend (HTTP/1.1) and -> orders (TCP request/response)",
        "nodes": 2,
        "services": [
            {"name": "frontend", "replicas": 1, "node": 0},
            {"name": "orders", "replicas": 1, "node": 1}
        ],
        "flows": [
            {"name": "web", "from": "load-0", "to": "frontend:8080", "protocol": "http1",
             "payload_bytes": 1024},
            {"name": "orders", "from": "load-0", "to": "orders:9000", "protocol": "tcp-rr",
             "payload_bytes": 256}
        ],
        "load": {"steps_rps": SAMPLE_STEPS_RPS, "step_duration": "10s", "warmup": "2s"},
        "modes": ["no-mesh", "sidecar", "ambient", "ambient-waypoint"],
        "slo": [{"name": "web-p99", "p99": "5ms", "flow": "web"}]
    })
}

/// Median latency of a mode and flow in µs before noise; roughly the published added latency.
fn base_latency_us(mode: Mode, tcp: bool) -> f64 {
    let base = if tcp { 120.0 } else { 220.0 };
    base + match mode {
        Mode::NoMesh => 0.0,
        Mode::Sidecar => 300.0,
        Mode::Ambient => 180.0,
        Mode::AmbientWaypoint => 470.0,
    }
}

fn sample_mode(mode: Mode, repeat: u32, rng: &mut Rng, slow: f64) -> ModeResult {
    let flows = vec![
        sample_flow("web", "load-0", "frontend", "http1", mode, false, rng, slow),
        sample_flow(
            "orders", "load-0", "orders", "tcp-rr", mode, true, rng, slow,
        ),
    ];
    let total_s = f64::from(SAMPLE_STEP_S) * SAMPLE_STEPS_RPS.len() as f64;
    let mean_rps: f64 = 2.0 * SAMPLE_STEPS_RPS.iter().sum::<f64>() / SAMPLE_STEPS_RPS.len() as f64;

    // (name, kind, vCPU per 1000 rps, measured MiB, modeled MiB)
    let mut specs: Vec<(&str, ComponentKind, f64, f64, Option<f64>)> = vec![
        ("app/frontend-0", ComponentKind::App, 0.05, 6.0, None),
        ("app/orders-0", ComponentKind::App, 0.03, 4.0, None),
        (
            "load-client/load-0",
            ComponentKind::LoadClient,
            0.08,
            8.0,
            None,
        ),
    ];
    match mode {
        Mode::NoMesh => {}
        Mode::Sidecar => {
            for n in ["sidecar/load-0", "sidecar/frontend-0", "sidecar/orders-0"] {
                specs.push((n, ComponentKind::Sidecar, 0.20, 9.0, Some(51.0)));
            }
        }
        Mode::Ambient | Mode::AmbientWaypoint => {
            for n in ["ztunnel/node-0", "ztunnel/node-1"] {
                specs.push((n, ComponentKind::Ztunnel, 0.06, 3.0, Some(9.0)));
            }
            if mode == Mode::AmbientWaypoint {
                specs.push((
                    "waypoint/default",
                    ComponentKind::Waypoint,
                    0.25,
                    10.0,
                    Some(50.0),
                ));
            }
        }
    }
    let components: Vec<ComponentResult> = specs
        .into_iter()
        .map(|(name, kind, per1000, mib, modeled)| {
            let per1000 = per1000 * slow * (1.0 + 0.03 * rng.normal());
            let vcpu = per1000 * mean_rps / 1000.0;
            let mut series = ComponentSeries::default();
            for i in 1..=(total_s as u32) {
                let t = f64::from(i);
                // CPU follows the rate steps.
                let step = ((i - 1) / SAMPLE_STEP_S) as usize;
                let rate = 2.0 * SAMPLE_STEPS_RPS[step.min(SAMPLE_STEPS_RPS.len() - 1)];
                series.t_s.push(t);
                series
                    .vcpu
                    .push((per1000 * rate / 1000.0 * (1.0 + 0.05 * rng.normal())).max(0.0));
                series
                    .heap_mib
                    .push(mib * slow * (0.9 + 0.1 * t / total_s) + 0.1 * rng.normal().abs());
            }
            let heap_avg = series.heap_mib.iter().sum::<f64>() / series.heap_mib.len() as f64;
            let heap_peak = series.heap_mib.iter().copied().fold(0.0, f64::max);
            ComponentResult {
                name: name.into(),
                kind,
                vcpu_avg: vcpu,
                vcpu_per_1000rps: kind.is_proxy().then_some(per1000),
                heap_mib_avg: heap_avg,
                heap_mib_peak: heap_peak,
                modeled_mib: modeled,
                modeled_vcpu_floor: kind.is_proxy().then_some(per1000 * 0.8 * mean_rps / 1000.0),
                cpu_limit_millis: (kind == ComponentKind::Sidecar).then_some(2000),
                cpu_limit_enforced: false,
                series,
            }
        })
        .collect();
    let components_vcpu_sum: f64 = components.iter().map(|c| c.vcpu_avg).sum();

    let mut saturation_warnings = Vec::new();
    if components_vcpu_sum > 0.75 * 2.0 {
        saturation_warnings.push(format!(
            "components used {components_vcpu_sum:.2} of 2 cores on average: latency partly measures contention"
        ));
    }
    let web_hl = &flows[0].steps[SAMPLE_STEPS_RPS.len() - 1].latency;
    let mut slo = vec![SloVerdict {
        name: "web-p99".into(),
        description: "p99 < 5ms on flow web".into(),
        observed: web_hl.p99_us / 1000.0,
        limit: 5.0,
        passed: web_hl.p99_us < 5000.0,
    }];
    if mode == Mode::Sidecar {
        let per1000 = components
            .iter()
            .filter(|c| c.kind == ComponentKind::Sidecar)
            .filter_map(|c| c.vcpu_per_1000rps)
            .fold(0.0, f64::max);
        slo.push(SloVerdict {
            name: "sidecar-cpu".into(),
            description: "sidecar vCPU per 1000 rps < 0.18".into(),
            observed: per1000,
            limit: 0.18,
            passed: per1000 < 0.18,
        });
    }
    ModeResult {
        mode,
        repeat,
        flows,
        components,
        process_vcpu_avg: components_vcpu_sum * 1.04,
        components_vcpu_sum,
        host_steal_share: Some(0.01),
        host_probe: Some(HostProbe {
            back_to_back: PingPong {
                round_trip_us: 18.0 + repeat as f64,
                cpu_per_round_trip_us: 18.5,
            },
            paced: PingPong {
                round_trip_us: 30.0,
                cpu_per_round_trip_us: 66.0 + 2.0 * repeat as f64,
            },
        }),
        saturation_warnings,
        slo,
        summary: ModeSummary::default(),
    }
}

#[allow(clippy::too_many_arguments)]
fn sample_flow(
    name: &str,
    from: &str,
    to: &str,
    protocol: &str,
    mode: Mode,
    tcp: bool,
    rng: &mut Rng,
    slow: f64,
) -> FlowResult {
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
                t_s: f64::from(si as u32 * SAMPLE_STEP_S + sec + 1),
                requests: per_s,
                errors: 0,
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
        });
    }
    FlowResult {
        name: name.into(),
        from: from.into(),
        to: to.into(),
        protocol: protocol.into(),
        steps,
    }
}

fn summary(h: &Histogram<u64>) -> LatencySummary {
    LatencySummary::from_histogram(h).expect("in-memory histograms encode")
}
