//! `meshsim compare BASE.json NEW.json`: figure by figure, with a verdict; for CI.
//!
//! Given two deterministic-bench trees instead (`DIR` or `DIR@BASELINE`, gungraun's output,
//! e.g. `target/gungraun@main target/gungraun`), it compares instruction counts, default
//! threshold 1%.
//!
//! Exit codes: 0 nothing regressed beyond the threshold and the mesh's structure is the same;
//! 1 something regressed, or the structure changed (a path gained or lost a hop, a proxy checks
//! other policies or holds other configuration) without `--allow-structure-change`; 2 an
//! error (e.g. the runs are of different scenarios).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The baseline run.json (or a deterministic-bench tree, `DIR[@BASELINE]`).
    pub base: PathBuf,
    /// The run.json to judge against it (or a bench tree).
    pub new: PathBuf,
    /// Smallest change that counts, e.g. 5% (or 5). Default: 5% for runs, 1% for benches.
    #[arg(long, value_parser = parse_pct)]
    pub threshold: Option<f64>,
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
    let (b, n) = (args.base.to_string_lossy(), args.new.to_string_lossy());
    if reports::benches::is_bench_tree(&b) || reports::benches::is_bench_tree(&n) {
        let threshold = args
            .threshold
            .unwrap_or(reports::benches::DEFAULT_THRESHOLD_PCT);
        let c = reports::benches::compare(
            &reports::benches::read(&b)?,
            &reports::benches::read(&n)?,
            threshold,
        );
        let md = c.markdown();
        write_out(&md, args.markdown.as_deref())?;
        return Ok(if c.has_regression() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    // A run directory stands for its run.json, as `report` takes it.
    let file = |p: &std::path::Path| {
        if p.is_dir() {
            p.join("run.json")
        } else {
            p.to_path_buf()
        }
    };
    let base = reports::RunResult::load(file(&args.base))?;
    let new = reports::RunResult::load(file(&args.new))?;
    let c = reports::compare(&base, &new, args.threshold.unwrap_or(5.0))?;
    write_out(&c.markdown(), args.markdown.as_deref())?;
    Ok(
        if c.has_regression() || (c.structure_changed() && !args.allow_structure_change) {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

fn write_out(md: &str, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    print!("{md}");
    if let Some(p) = file {
        std::fs::write(p, md).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    Ok(())
}
