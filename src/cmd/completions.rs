//! `meshsim completions SHELL`: a completion script for bash, zsh, fish, elvish or PowerShell,
//! generated from the command definition itself, so it offers every subcommand, flag and value
//! (data-plane modes included) of this build.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(a: Args, mut cmd: clap::Command) -> anyhow::Result<ExitCode> {
    let name = cmd.get_name().to_string();
    clap_complete::generate(a.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
