//! The `meshsim` command line: parses arguments and calls the crates. No logic a test needs
//! lives here.

mod cmd;

// jemalloc with one arena per component is how heap is metered per component (sim::meter).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "meshsim",
    version,
    about = "Istio data-plane cluster simulator and benchmark harness"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario through every mode and write run.json, report.html, charts, summary.md.
    Run(cmd::run::Args),
    /// Re-render the report of a saved run.json.
    Report(cmd::report::Args),
    /// Compare two run.json of one scenario; exit 1 on a regression beyond the threshold.
    Compare(cmd::compare::Args),
    /// Check a scenario (and the manifests it includes) without starting anything.
    Validate(cmd::validate::Args),
    /// The static migration checklist: classic ambient breaks in the scenario's policies,
    /// enrollment and flows, without a cluster; exit 1 when an item fails.
    Check(cmd::check::Args),
    /// Probe who can reach whom, for real, in each mode or migration stage; show what breaks
    /// and what opens between them, with the policy that decided; exit 1 on any unexpected
    /// change.
    Reach(cmd::reach::Args),
    /// Bring a scenario's cluster up and hold it until Ctrl-C.
    Up(cmd::up::Args),
    /// Run a program inside a pod of a running cluster (`meshsim exec client-0 -- curl ...`).
    Exec(cmd::exec::Args),
    /// A running cluster's proxy access logs (`meshsim logs ztunnel --follow`).
    Logs(cmd::logs::Args),
    /// A running cluster's ztunnel configuration, as `istioctl ztunnel-config` shows it.
    ZtunnelConfig(cmd::introspect::ZtunnelArgs),
    /// A running cluster's waypoints, as `istioctl waypoint list|status` shows them.
    Waypoint(cmd::introspect::WaypointArgs),
    /// Why a request from a pod is allowed or refused, hop by hop, checked for real.
    Explain(cmd::explain::Args),
    /// Project what sidecars, ztunnels, waypoints and istiod would cost on a real cluster,
    /// from an inventory of it (plan.json, plan.md, plan.html).
    Plan(cmd::plan::Args),
    /// Build an inventory for `plan` from a real cluster's dumps (`import kubectl`).
    Import(cmd::import::Args),
    /// Fit a cost profile to your own cluster's Prometheus figures (for plan and run).
    Calibrate(cmd::calibrate::Args),
    /// Run a run again exactly (its scenario files, seed, profile, faults, modes) and compare.
    Replay(cmd::replay::Args),
    /// Drive load at any HTTP or TCP target, like wrk2 or fortio.
    Load(cmd::load::Args),
    /// Write a scenario as the Kubernetes objects that run it on a real cluster with Istio.
    Export(cmd::export::Args),
    /// Run a scenario's app (HTTP echo, TCP echo, TCP sink) on its own, as `app:` sets it:
    /// on a host, or in a real cluster's pods (`export k8s`).
    Serve(cmd::serve::Args),
    /// Print the JSON Schema of the scenario format (for editors).
    Schema(cmd::schema::Args),
    /// Make test JWT keys, their JWKS and signed tokens (for RequestAuthentication).
    Token(cmd::token::Args),
    /// Print a shell completion script: `meshsim completions bash > /etc/bash_completion.d/meshsim`.
    Completions(cmd::completions::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cmd::init_tracing();
    let result = match cli.command {
        Command::Run(a) => cmd::run::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Compare(a) => cmd::compare::run(a),
        Command::Validate(a) => cmd::validate::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Reach(a) => cmd::reach::run(a),
        Command::Up(a) => cmd::up::run(a),
        Command::Exec(a) => cmd::exec::run(a),
        Command::Logs(a) => cmd::logs::run(a),
        Command::ZtunnelConfig(a) => cmd::introspect::ztunnel(a),
        Command::Waypoint(a) => cmd::introspect::waypoint(a),
        Command::Explain(a) => cmd::explain::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Plan(a) => cmd::plan::run(a),
        Command::Import(a) => cmd::import::run(a),
        Command::Calibrate(a) => cmd::calibrate::run(a),
        Command::Load(a) => cmd::load::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Schema(a) => cmd::schema::run(a),
        Command::Token(a) => cmd::token::run(a),
        Command::Completions(a) => cmd::completions::run(a, Cli::command()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
