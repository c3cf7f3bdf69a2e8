//! `meshsim export k8s SCENARIO`: the scenario as plain Kubernetes YAML for a real cluster
//! with Istio (apps running `meshsim serve`, load Jobs running `meshsim load`), and a
//! kustomization for each half.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub target: Target,
}

#[derive(clap::Subcommand)]
pub enum Target {
    /// Kubernetes objects: namespaces labelled for the mode, Deployments, Services, the
    /// scenario's Istio manifests, waypoints, and one load Job per flow (under jobs/).
    K8s {
        /// The scenario file (YAML).
        scenario: PathBuf,
        /// The data plane to enroll the namespaces in; `declared` keeps the scenario's labels.
        #[arg(long, value_enum, default_value = "ambient")]
        mode: super::DataPlane,
        /// The image with `meshsim` as its entrypoint (see the Dockerfile).
        #[arg(long, default_value = DEFAULT_IMAGE)]
        image: String,
        /// The directory to write; it must not exist yet.
        #[arg(long)]
        out: PathBuf,
    },
}

/// What `docker build -t meshsim:<version> .` of the repository's Dockerfile tags.
const DEFAULT_IMAGE: &str = concat!("meshsim:", env!("CARGO_PKG_VERSION"));

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Target::K8s {
        scenario,
        mode,
        image,
        out,
    } = args.target;
    if out.exists() {
        anyhow::bail!(
            "{} exists; export writes a new directory (remove it, or choose another --out)",
            out.display()
        );
    }
    let loaded = super::load_scenario(&scenario)?;
    let bundle = export::export(&loaded, mode.into(), &image)?;
    for n in &bundle.notes {
        eprintln!("note: {n}");
    }
    let files = bundle
        .write(&out)
        .with_context(|| format!("cannot write the export into {}", out.display()))?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}
