//! `meshsim report RUN.json`: re-render report.html, charts and summary.md from a saved run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

#[derive(clap::Args)]
pub struct Args {
    /// A run.json written by `meshsim run`.
    pub run: PathBuf,
    /// Where to write; default: the directory of RUN.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let run = reports::RunResult::load(&args.run)?;
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
