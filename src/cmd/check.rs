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
        None => loaded.first_mode(),
    };
    // A migration is checked as written and after each of its stages.
    let mut points = vec![("as written".to_string(), loaded.at_stage(None))];
    for (i, st) in loaded
        .scenario
        .migration
        .iter()
        .flat_map(|m| m.stages.iter())
        .enumerate()
    {
        points.push((format!("after stage {}", st.name), loaded.at_stage(Some(i))));
    }
    let stages: Vec<scenario::Stage> = loaded
        .scenario
        .migration
        .as_ref()
        .map(|m| m.stages.clone())
        .unwrap_or_default();
    let reports: Vec<(String, sim::check::Report)> = points
        .into_iter()
        .enumerate()
        .map(|(i, (label, l))| {
            let mut r = sim::check::check(&l, mode);
            if let Some(st) = i.checked_sub(1).and_then(|k| stages.get(k)) {
                accept_expected(&mut r, st);
            }
            (label, r)
        })
        .collect();
    if args.json {
        let doc: Vec<serde_json::Value> = reports
            .iter()
            .map(|(at, r)| serde_json::json!({ "at": at, "report": r }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for (at, r) in &reports {
            if reports.len() > 1 {
                println!("== {at}");
            }
            print_text(&args.scenario, r);
        }
    }
    let failed: usize = reports.iter().map(|(_, r)| r.failed()).sum();
    Ok(if failed > 0 {
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

/// A waypoint-identity break the stage declares in `expect` is a warning, not a failure.
fn accept_expected(r: &mut sim::check::Report, st: &scenario::Stage) {
    for item in r.items.iter_mut().filter(|i| i.id == "waypoint-identity") {
        let expected = |line: &String| {
            st.expect.iter().any(|e| {
                e.change == scenario::ChangeKind::Break && line.starts_with(&format!("{} ", e.to))
            })
        };
        if item.status == Status::Failed && item.evidence.iter().all(expected) {
            item.status = Status::Warning;
            item.evidence
                .push(format!("expected by stage {} (`expect:`)", st.name));
        }
    }
}
