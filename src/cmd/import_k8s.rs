//! `meshsim import k8s`: a real cluster's run of an exported scenario as a `run.json` —
//! the load Jobs' results (`kubectl logs`), and the proxies' CPU and memory from the
//! cluster's Prometheus — so `report`, `compare` and `plan --costs` take it like any run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use results::raw::{ComponentSeries, HostInfo, MeterReport, ProcessReadings, RawMode, RawRun};
use results::run::ComponentKind;

#[derive(clap::Args)]
pub struct K8sArgs {
    /// A directory of the load Jobs' logs, one file per Job as `kubectl logs job/load-<flow>`
    /// writes it (`load-<flow>.log`): each holds its result between the marker lines.
    #[arg(long)]
    pub loads: PathBuf,
    /// The scenario that was exported.
    #[arg(long)]
    pub scenario: PathBuf,
    /// The mode it was exported in.
    #[arg(long, value_enum, default_value = "ambient")]
    pub mode: super::DataPlane,
    /// The cluster's Prometheus over the same window, in `calibrate`'s format (`cpu` and
    /// `memory` of the `istio-proxy` containers, ztunnel and waypoint pods; `requests`):
    /// the proxies' cost as the cluster measured it.
    #[arg(long)]
    pub prometheus: Option<PathBuf>,
    /// Waypoint names, whose pods' names start with them (with --prometheus).
    #[arg(long = "waypoint")]
    pub waypoints: Vec<String>,
    /// The run directory to write (run.json, report.html, summary.md, charts).
    #[arg(long)]
    pub out: PathBuf,
}

/// One Job's result, found between `meshsim load --json -`'s markers.
fn load_result(path: &Path) -> anyhow::Result<loadgen::LoadResult> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let begin = super::load::JSON_BEGIN;
    let end = super::load::JSON_END;
    let Some((_, rest)) = text.split_once(begin) else {
        bail!(
            "{}: no `{begin}` line: is it the log of a load Job that finished (`kubectl logs job/load-<flow>`)?",
            path.display()
        );
    };
    let Some((json, _)) = rest.split_once(end) else {
        bail!(
            "{}: the result has no `{end}` line: the log is cut short",
            path.display()
        );
    };
    serde_json::from_str(json.trim()).with_context(|| {
        format!(
            "{}: the result between the markers is not a load result",
            path.display()
        )
    })
}

pub fn run(a: K8sArgs) -> anyhow::Result<ExitCode> {
    if a.out.exists() {
        bail!(
            "{} exists; import writes a new run directory",
            a.out.display()
        );
    }
    let loaded = super::load_scenario(&a.scenario)?;
    let mode: scenario::Mode = a.mode.into();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&a.loads)
        .with_context(|| format!("cannot read {}", a.loads.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut flows = Vec::new();
    for f in &loaded.scenario.flows {
        let Some(file) = files.iter().find(|p| {
            p.file_stem()
                .is_some_and(|s| s.to_string_lossy() == format!("load-{}", f.name))
        }) else {
            bail!(
                "{}: no log of flow {}'s Job (load-{}.log); collect it with `kubectl logs job/load-{} > {}/load-{}.log`",
                a.loads.display(),
                f.name,
                f.name,
                f.name,
                a.loads.display(),
                f.name
            );
        };
        let load = load_result(file)?;
        flows.push(sim::runner::flow_result(f, load.warmup_s, &load, 0.0));
    }
    // The window the load ran: each flow's steps, warmups included, back to back.
    let window_s = flows
        .iter()
        .map(|f| {
            f.steps
                .iter()
                .map(|s| s.duration_s + s.warmup.as_ref().map_or(0.0, |w| w.seconds.len() as f64))
                .sum::<f64>()
        })
        .fold(0.0, f64::max)
        .ceil()
        .max(1.0) as usize;
    let t_s: Vec<f64> = (1..=window_s).map(|t| t as f64).collect();
    let mut components = Vec::new();
    if let Some(p) = &a.prometheus {
        let samples = plan::calibrate::read(p, &a.waypoints)?;
        for (kind, pods) in &samples {
            let kind = match *kind {
                "sidecar" => ComponentKind::Sidecar,
                "ztunnel" => ComponentKind::Ztunnel,
                _ => ComponentKind::Waypoint,
            };
            for (pod, s) in pods {
                // Prometheus gives a rate over its window: the same figure every second.
                let mut c = ComponentSeries::new(pod.clone(), kind);
                c.vcpu = vec![s.vcpu; window_s];
                c.floor_vcpu = vec![0.0; window_s];
                c.requests = vec![s.rps.round() as u64; window_s];
                c.connections_opened = vec![s.connections_per_s.round() as u64; window_s];
                // Not in a Prometheus export: left unmeasured rather than zero.
                c.tls_handshakes = Vec::new();
                c.connections_active = vec![0; window_s];
                c.threads = vec![0; window_s];
                if let Some(m) = s.memory_bytes {
                    c.heap_mib = vec![m / (1024.0 * 1024.0); window_s];
                }
                components.push(c);
            }
        }
    }
    let raw = RawRun {
        started_at: std::time::SystemTime::now(),
        host: HostInfo {
            kernel: "kubernetes".into(),
            cores: 0,
            cpu_model: "the cluster's nodes".into(),
            user: std::env::var("USER").unwrap_or_default(),
            root: false,
            hostname: None,
        },
        profile: loaded.profile()?,
        schedule: vec![(mode, 0)],
        modes: vec![RawMode {
            mode,
            repeat: 0,
            flows,
            pods: Vec::new(),
            meter: MeterReport {
                interval_s: 1.0,
                t_s,
                cores: 0,
                heap_measured: components.iter().any(|c| !c.heap_mib.is_empty()),
                components,
                process: ProcessReadings::default(),
                meter_vcpu: 0.0,
                saturation_warning: None,
                host_steal_share: None,
            },
            complete: true,
            bring_up: std::time::Duration::ZERO,
            warnings: vec![format!(
                "imported from a Kubernetes cluster: latency from its load Jobs{}",
                if a.prometheus.is_some() {
                    "; proxy CPU and memory from its Prometheus (a rate over its window, the same each second)"
                } else {
                    "; no proxy CPU or memory (give --prometheus)"
                }
            )],
            host_probe: None,
            stages: Vec::new(),
            faults: Vec::new(),
            lb: Vec::new(),
            structure: Default::default(),
        }],
        incomplete: false,
    };
    let build = results::interpret::BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit: option_env!("MESHSIM_COMMIT").map(str::to_string),
    };
    let mut run = results::interpret::run_result(&loaded, &raw, &build);
    run.environment.platform = Some("kubernetes".into());
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    run.save(a.out.join("run.json"))?;
    let written = reports::render_all(&run, &a.out)
        .with_context(|| format!("cannot write the report into {}", a.out.display()))?;
    println!("{}", a.out.join("run.json").display());
    for f in written {
        println!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}
