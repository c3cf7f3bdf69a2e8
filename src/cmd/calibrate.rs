//! `meshsim calibrate PROM.json --out PROFILE.yaml`: a cost profile whose model is fitted to
//! the user's own cluster (Prometheus), for `plan --costs` and `run --profile`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use plan::PlanError;

#[derive(clap::Args)]
pub struct Args {
    /// One JSON object of named Prometheus /api/v1/query results, each grouped
    /// `by (namespace, pod)`: `cpu` (container_cpu_usage_seconds_total rate of the
    /// `istio-proxy` containers), `memory` (container_memory_working_set_bytes), `requests`
    /// (istio_requests_total rate), `bytes` and `connections` (ztunnel's istio_tcp_* rates).
    pub prometheus: PathBuf,
    /// The profile the rest comes from (floors, and what the cluster cannot tell).
    #[arg(long, default_value = "istio-1.24")]
    pub base: String,
    /// A waypoint's name (its pods are `<name>-…`), when it does not contain "waypoint".
    #[arg(long = "waypoint")]
    pub waypoints: Vec<String>,
    /// The new profile's name; default: `calibrated`.
    #[arg(long, default_value = "calibrated")]
    pub name: String,
    /// Where to write the profile (YAML).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut profile = scenario::profile::Profile::load(&args.base)?;
    let base = profile
        .model
        .clone()
        .ok_or_else(|| PlanError::NoModel(profile.name.clone()))?;
    let samples = plan::calibrate::read(&args.prometheus, &args.waypoints)?;
    let label = args.prometheus.display().to_string();
    let (model, notes) = plan::calibrate::calibrate(&samples, &base, &label);
    profile.description = format!(
        "{} calibrated on {label} ({}); the rest from profile {}.",
        args.name,
        samples
            .iter()
            .map(|(k, pods)| format!("{} {k}", pods.len()))
            .collect::<Vec<_>>()
            .join(", "),
        args.base
    );
    profile.name = args.name.clone();
    profile.model = Some(model);
    let text = plan::calibrate::profile_yaml(&profile, &args.out)?;
    std::fs::write(&args.out, &text)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    // What is written must load as a profile.
    scenario::profile::Profile::load_file(&args.out)
        .context("the calibrated profile does not read back (a meshsim bug; please report it)")?;
    println!("{}", args.out.display());
    for (kind, pods) in &samples {
        println!("{kind}: {} proxies", pods.len());
    }
    for n in notes {
        println!("note: {n}");
    }
    Ok(ExitCode::SUCCESS)
}
