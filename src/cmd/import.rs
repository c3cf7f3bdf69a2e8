//! `meshsim import kubectl …`: an inventory for `meshsim plan` from a cluster's own dumps.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub source: Source,
}

#[derive(clap::Subcommand)]
pub enum Source {
    /// From `kubectl get ns,pods,svc -A -o json` (one or more files), the Istio resources as
    /// YAML, and a Prometheus query result of request rates.
    Kubectl(KubectlArgs),
    /// A real cluster's run of an exported scenario (`export k8s`): its load Jobs' logs and
    /// its Prometheus, as a run directory (run.json, report) for report, compare and plan.
    K8s(super::import_k8s::K8sArgs),
}

#[derive(clap::Args)]
pub struct KubectlArgs {
    /// JSON from `kubectl get ns,pods,svc -A -o json` (a List, or several files).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Istio resources as YAML (`kubectl get gateways,sidecars -A -o yaml`), repeatable.
    #[arg(long)]
    pub istio: Vec<PathBuf>,
    /// The body of Prometheus's /api/v1/query for
    /// `sum(rate(istio_requests_total[5m])) by (source_workload, source_workload_namespace,
    /// destination_service_name, destination_service_namespace, reporter)`.
    #[arg(long)]
    pub traffic: Option<PathBuf>,
    /// The inventory's name; default: the first file's stem.
    #[arg(long)]
    pub name: Option<String>,
    /// Where to write the inventory (YAML).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write a one-machine scenario of the busiest paths (one per proxy kind) into this
    /// directory, to check the plan by a run.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// The downscaled scenario's total rate, requests per second.
    #[arg(long, default_value_t = 600.0)]
    pub scenario_rps: f64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let a = match args.source {
        Source::Kubectl(a) => a,
        Source::K8s(a) => return super::import_k8s::run(a),
    };
    let name = a.name.clone().unwrap_or_else(|| {
        a.files[0]
            .file_stem()
            .map_or_else(|| "cluster".into(), |s| s.to_string_lossy().into_owned())
    });
    let imported = plan::import::from_kubectl(&name, &a.files, &a.istio, a.traffic.as_deref())?;
    let yaml = plan::import::to_yaml(&imported)?;
    // What is written must plan: read it back as `plan` will.
    plan::Inventory::parse(&a.out, &yaml)
        .context("the imported inventory does not read back (a meshsim bug; please report it)")?;
    std::fs::write(&a.out, yaml).with_context(|| format!("cannot write {}", a.out.display()))?;
    let inv = &imported.inventory;
    println!(
        "{}: {} nodes, {} namespaces, {} workloads ({} pods), {} services, {} waypoints, {} traffic entries",
        a.out.display(),
        inv.nodes.len(),
        inv.namespaces.len(),
        inv.workloads.len(),
        inv.workloads.iter().map(|w| w.replicas).sum::<u32>(),
        inv.services.len(),
        inv.waypoints.len(),
        inv.traffic.len()
    );
    for n in &imported.notes {
        println!("note: {n}");
    }
    if let Some(dir) = &a.scenario {
        let stem = format!("{}-downscaled", inv.name);
        let manifests = format!("{}-waypoints.yaml", inv.name);
        let d = plan::downscale::downscale(inv, a.scenario_rps, &manifests);
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        if let Some(m) = &d.manifests {
            std::fs::write(dir.join(&manifests), m)
                .with_context(|| format!("cannot write {}", dir.join(&manifests).display()))?;
        }
        let path = dir.join(format!("{stem}.yaml"));
        std::fs::write(&path, &d.scenario)
            .with_context(|| format!("cannot write {}", path.display()))?;
        // It must load as a scenario: check it as `run` would.
        scenario::load(&path).with_context(|| {
            format!(
                "the downscaled scenario {} does not load (a meshsim bug; please report it)",
                path.display()
            )
        })?;
        println!("{}", path.display());
        for n in d.notes {
            println!("note: {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
