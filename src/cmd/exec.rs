//! `meshsim exec`: run a real program inside a pod of a running cluster.

use std::ffi::OsString;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Which cluster, when several are up (names are printed by `up`).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Pod to run in: `<workload>-<index>`, e.g. client-0.
    pub pod: String,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let uid = nix::unistd::getuid().as_raw();
    let info = sim::cluster::find(uid, args.cluster.as_deref())?;
    // Returns only if the program could not be started.
    match sim::cluster::exec(&info, &args.pod, &args.command) {
        Ok(never) => match never {},
        Err(e) => Err(e.into()),
    }
}
