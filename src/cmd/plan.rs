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
    /// The cost model: a bundled profile's name, a profile file (YAML) with a `model:`, or a
    /// run (RUN.json or its directory) with rate steps, whose proxies' CPU is fitted (memory
    /// then comes from the run's profile, or istio-1.24).
    #[arg(long, default_value = "istio-1.24")]
    pub costs: String,
    /// Modes to project (repeatable); default: all of them.
    #[arg(long = "mode", value_enum)]
    pub modes: Vec<Mode>,
    /// A scenario whose `migration:` stages to project (instead of the inventory's own):
    /// `declared` after each, its relabels and waypoint Gateways applied to the inventory.
    #[arg(long, value_name = "SCENARIO")]
    pub migration: Option<PathBuf>,
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
    let mut inv = Inventory::load(&args.inventory)?;
    if let Some(path) = &args.migration {
        let loaded = scenario::load(path)?;
        let m = plan::inventory::migration_of(&loaded).with_context(|| {
            format!(
                "{} has no `migration:` whose stages to plan",
                path.display()
            )
        })?;
        let locate = |p: &str| {
            let l = loaded.locate(p);
            (l.line, l.column)
        };
        inv = inv.with_migration(m, path, &locate)?;
    }
    let (model, costs) = costs(&args.costs)?;
    let modes: Vec<PlanMode> = if args.modes.is_empty() {
        PlanMode::ALL.to_vec()
    } else {
        args.modes.iter().map(|&m| m.into()).collect()
    };
    let p = plan::plan(&inv, &model, &costs, &modes);
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

/// The model `--costs` names, and how to say where it came from.
fn costs(arg: &str) -> anyhow::Result<(scenario::costmodel::CostModel, String)> {
    let path = std::path::Path::new(arg);
    let run_file = if path.is_dir() {
        Some(path.join("run.json"))
    } else {
        arg.ends_with(".json").then(|| path.to_path_buf())
    };
    let Some(run_file) = run_file else {
        let profile = scenario::profile::Profile::load(arg)?;
        let model = profile
            .model
            .ok_or_else(|| PlanError::NoModel(profile.name.clone()))?;
        return Ok((model, format!("profile {}", profile.name)));
    };
    let run = reports::RunResult::load(&run_file)?;
    // Memory is not fitted: it comes from the run's profile when it has a model.
    let base = scenario::profile::Profile::load(&run.profile.name)
        .ok()
        .and_then(|p| p.model.map(|m| (m, p.name)));
    let (base, base_name) = match base {
        Some(b) => b,
        None => {
            let p = scenario::profile::Profile::load("istio-1.24")?;
            let m = p.model.ok_or_else(|| PlanError::NoModel(p.name.clone()))?;
            (m, p.name)
        }
    };
    let label = run_file.display().to_string();
    let (model, fitted) = plan::fit::fit_model(&run, &base, &label, None);
    if fitted.is_empty() {
        anyhow::bail!(
            "{label}: no proxy was measured at 3 or more rates to fit its CPU; run a scenario whose flow has rate steps (e.g. `rate: [250, 500, 1000]`)"
        );
    }
    let kinds: Vec<&str> = fitted.iter().map(|f| f.kind.as_str()).collect();
    Ok((
        model,
        format!(
            "CPU of {} fitted to {label}; the rest from profile {base_name}",
            kinds.join(", ")
        ),
    ))
}
