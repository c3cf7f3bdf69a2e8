use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario files to check (with the manifests and JWKS files they name).
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    /// Treat warnings (manifest objects and fields meshsim does not model) as errors: exit 1.
    #[arg(long)]
    pub strict: bool,
}

/// Exit 0 when every file is valid, 1 when any is not (each problem printed as
/// `file:line:column: field: message`) or, with `--strict`, has warnings, 2 when a file cannot
/// be read. Warnings (`file:line: warning: …`) go to stderr either way.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut code = 0u8;
    let mut out = std::io::stdout().lock();
    for path in &args.scenarios {
        match scenario::load(path) {
            Ok(l) => {
                let warnings = scenario::unmodelled::warnings(&l);
                for w in &warnings {
                    eprintln!("{w}");
                }
                if args.strict && !warnings.is_empty() {
                    code = code.max(1);
                    eprintln!(
                        "{}: {} warning{} (errors under --strict)",
                        path.display(),
                        warnings.len(),
                        if warnings.len() == 1 { "" } else { "s" }
                    );
                    continue;
                }
                let s = &l.scenario;
                let pods: u32 = s.workloads.iter().map(|w| w.replicas).sum();
                let objects = l.objects().count();
                writeln!(
                    out,
                    "{}: ok — scenario `{}`: {} nodes, {} workloads ({} pods), {} services, {} flows, {} manifest objects; modes: {}",
                    path.display(),
                    s.name,
                    s.nodes.len(),
                    s.workloads.len(),
                    pods,
                    s.services.len(),
                    s.flows.len(),
                    objects,
                    s.modes
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )?;
            }
            Err(scenario::ScenarioError::Invalid(diags)) => {
                code = code.max(1);
                for d in &diags {
                    eprintln!("{d}");
                }
                eprintln!(
                    "{}: {} problem{}",
                    path.display(),
                    diags.len(),
                    if diags.len() == 1 { "" } else { "s" }
                );
            }
            Err(e) => {
                code = 2;
                eprintln!("error: {e}");
            }
        }
    }
    Ok(ExitCode::from(code))
}
