//! `meshsim report RUN.json|DIR`: re-render report.html, charts and summary.md from a saved
//! run, complete or not (a run killed part-way left run.json with the modes it finished).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

#[derive(clap::Args)]
pub struct Args {
    /// A run.json written by `meshsim run`, or the run directory holding it.
    pub run: PathBuf,
    /// Where to write; default: the directory of RUN.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(mut args: Args) -> anyhow::Result<ExitCode> {
    if args.run.is_dir() {
        args.run = args.run.join("run.json");
    }
    let run = reports::RunResult::load(&args.run)?;
    if run.incomplete {
        eprintln!(
            "{}: an incomplete run ({} of its modes measured); the report says so",
            args.run.display(),
            run.modes.len()
        );
    }
    let dir = match args.out {
        Some(d) => d,
        None => args
            .run
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    ".".into()
                } else {
                    p.to_path_buf()
                }
            })
            .unwrap_or_else(|| ".".into()),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
    let files = reports::render_all(&run, &dir)
        .with_context(|| format!("cannot render the report into {}", dir.display()))?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}
