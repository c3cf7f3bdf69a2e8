use std::path::PathBuf;
use std::process::ExitCode;

use sim::check::Status;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (YAML), e.g. scenarios/migration-mixed.yaml.
    pub scenario: PathBuf,
    /// The mode to check. Default: the scenario's first mode (`declared` for a scenario that
    /// writes enrollment labels).
    #[arg(long, value_enum)]
    pub mode: Option<super::DataPlane>,
    /// Print the checklist as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The static migration checklist: exit 0 when nothing failed, 1 when an item failed (warnings
/// do not fail), 2 when the scenario does not load.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = super::load_scenario(&args.scenario)?;
    let mode = match args.mode {
        Some(m) => scenario::Mode::from(m),
        None => loaded
            .scenario
            .modes
            .first()
            .copied()
            .unwrap_or(scenario::Mode::Declared),
    };
    let report = sim::check::check(&loaded, mode);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&args.scenario, &report);
    }
    Ok(if report.failed() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_text(path: &std::path::Path, r: &sim::check::Report) {
    let planes: Vec<String> = r
        .dataplanes
        .iter()
        .map(|(d, pods)| match d {
            scenario::DataPlane::None => format!("{} out of the mesh", pods.len()),
            d => format!("{} {d}", pods.len()),
        })
        .collect();
    println!(
        "{} (mode {}): pods {}",
        path.display(),
        r.mode,
        planes.join(", ")
    );
    let mut items: Vec<&sim::check::Item> = r.items.iter().collect();
    items.sort_by_key(|i| i.status);
    for i in items {
        println!("  [{:7}] {}", i.status.label(), i.title);
        if i.status != Status::Verified || i.evidence.len() == 1 {
            for e in &i.evidence {
                println!("            {e}");
            }
        }
        if matches!(i.status, Status::Failed | Status::Warning) {
            println!("            (source: {})", i.source);
        }
    }
    let warnings = r
        .items
        .iter()
        .filter(|i| i.status == Status::Warning)
        .count();
    println!("{} failed, {warnings} warning(s)", r.failed());
}
