//! `meshsim compare BASE.json NEW.json`: figure by figure, with a verdict; for CI.
//!
//! Exit codes: 0 nothing regressed beyond the threshold and the mesh's structure is the same;
//! 1 something regressed, or the structure changed (a path gained or lost a hop, a proxy checks
//! other policies or holds other configuration) without `--allow-structure-change`; 2 an
//! error (e.g. the runs are of different scenarios).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The baseline run.json.
    pub base: PathBuf,
    /// The run.json to judge against it.
    pub new: PathBuf,
    /// Smallest change that counts, e.g. 5% (or 5).
    #[arg(long, default_value = "5%", value_parser = parse_pct)]
    pub threshold: f64,
    /// Also write the Markdown table to this file (e.g. for a CI job summary).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// A change in the mesh's structure (paths, policies, proxy configuration) is expected:
    /// report it, but exit 0 for it.
    #[arg(long)]
    pub allow_structure_change: bool,
}

pub(super) fn parse_pct(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches('%').trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a percentage like 5%")),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let base = reports::RunResult::load(&args.base)?;
    let new = reports::RunResult::load(&args.new)?;
    let c = reports::compare(&base, &new, args.threshold)?;
    let md = c.markdown();
    print!("{md}");
    if let Some(p) = &args.markdown {
        std::fs::write(p, &md).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    Ok(
        if c.has_regression() || (c.structure_changed() && !args.allow_structure_change) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}
