//! `meshsim plan INVENTORY`: what each data-plane mode would cost on the inventory's cluster,
//! projected with a cost profile's model; writes plan.json, plan.md and plan.html.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use plan::{Inventory, PlanError, PlanMode};

#[derive(clap::Args)]
pub struct Args {
    /// The cluster's inventory (YAML; see inventories/example.yaml).
    pub inventory: PathBuf,
    /// The cost model: a bundled profile's name or a profile file (YAML) with a `model:`.
    #[arg(long, default_value = "istio-1.24")]
    pub costs: String,
    /// Modes to project (repeatable); default: all of them.
    #[arg(long = "mode", value_enum)]
    pub modes: Vec<Mode>,
    /// Where to write; default: plans/<inventory name>.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A sidecar in every meshed pod.
    Sidecar,
    /// Every meshed pod on ztunnel, no waypoint.
    Ambient,
    /// Ambient with the inventory's waypoints where its labels use them.
    AmbientWaypoints,
    /// Each pod as its labels declare it today, waypoints as labelled.
    Declared,
}

impl From<Mode> for PlanMode {
    fn from(m: Mode) -> PlanMode {
        match m {
            Mode::Sidecar => PlanMode::Sidecar,
            Mode::Ambient => PlanMode::Ambient,
            Mode::AmbientWaypoints => PlanMode::AmbientWaypoints,
            Mode::Declared => PlanMode::Declared,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let inv = Inventory::load(&args.inventory)?;
    let profile = scenario::profile::Profile::load(&args.costs)?;
    let model = profile
        .model
        .clone()
        .ok_or_else(|| PlanError::NoModel(profile.name.clone()))?;
    let modes: Vec<PlanMode> = if args.modes.is_empty() {
        PlanMode::ALL.to_vec()
    } else {
        args.modes.iter().map(|&m| m.into()).collect()
    };
    let p = plan::plan(&inv, &model, &format!("profile {}", profile.name), &modes);
    let dir = args
        .out
        .unwrap_or_else(|| PathBuf::from("plans").join(&inv.name));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
    let files = plan::render::write_all(&p, &dir)
        .with_context(|| format!("cannot write the plan into {}", dir.display()))?;
    print!("{}", plan::render::totals(&p));
    for f in files {
        println!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}
