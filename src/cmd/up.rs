//! `meshsim up`: bring a scenario's cluster up, print how to reach it, hold until Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use nix::sys::signal::{SigSet, Signal};
use sim::cluster::{Cluster, ClusterInfo};

#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (YAML), e.g. scenarios/quickstart.yaml.
    pub scenario: PathBuf,
    /// Data-plane mode. Default: the scenario's first mode (`declared` for a scenario that
    /// writes enrollment labels and lists no modes).
    #[arg(long, value_enum)]
    pub mode: Option<super::DataPlane>,
    /// Cost profile: a bundled name (istio-1.24, native) or a profile file (.yaml) of your own.
    /// Default: the scenario's `profile`.
    #[arg(long)]
    pub profile: Option<String>,
    /// Host loopback port serving every proxy's metrics merged (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub metrics_port: u16,
    /// Pods without their apps: run your own in them with `meshsim exec POD -- …` (an
    /// exported Deployment's `meshsim serve`, to check an export on this machine).
    #[arg(long)]
    pub without_apps: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Everything the user can get wrong is checked before anything starts.
    let loaded = super::load_scenario(&args.scenario)?;
    let mode = match args.mode {
        Some(m) => scenario::Mode::from(m),
        None => loaded.first_mode(),
    };
    let profile = match &args.profile {
        Some(p) => scenario::profile::Profile::load(p)?,
        None => loaded.profile()?,
    };
    sim::nft::check_installed()?;

    // The sandbox must be entered while this process has one thread; and Ctrl-C / SIGTERM are
    // blocked here so every thread started later inherits the block and only the wait below
    // receives them.
    let sandbox = sim::sandbox::enter().context("cannot set up the sandbox")?;
    let signals = stop_signals();
    signals
        .thread_block()
        .context("cannot block stop signals")?;

    let started = std::time::Instant::now();
    let phase = |p: sim::cluster::Phase| {
        eprintln!("[{:>5.1} s] {p}", started.elapsed().as_secs_f64());
    };
    let mut cluster = Cluster::up_scenario_reporting(&loaded, mode, &profile, sandbox, &phase)
        .context("cannot bring the cluster up")?;
    if args.without_apps {
        cluster.stop_apps();
    }
    if cluster.mesh.is_some() {
        cluster.serve_merged_metrics(args.metrics_port)?;
    }
    cluster.publish()?;
    print_info(
        &cluster.info,
        &args.scenario,
        cluster.topology.timings.total,
    );

    let sig = signals.wait().context("waiting for Ctrl-C")?;
    eprintln!("\n{sig}: stopping cluster {}", cluster.info.name);
    drop(cluster);
    Ok(ExitCode::SUCCESS)
}

fn stop_signals() -> SigSet {
    let mut s = SigSet::empty();
    s.add(Signal::SIGINT);
    s.add(Signal::SIGTERM);
    s.add(Signal::SIGHUP);
    s
}

fn print_info(info: &ClusterInfo, scenario: &std::path::Path, took: std::time::Duration) {
    println!(
        "cluster {} is up: mode {}, scenario {}, {} pods on {} nodes ({:.2} s)",
        info.name,
        info.mode,
        scenario.display(),
        info.pods.len(),
        sim::cluster::pods_by_node(info).len(),
        took.as_secs_f64()
    );
    println!();
    let w = info
        .pods
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(3)
        .max(3);
    let wn = info
        .pods
        .iter()
        .map(|p| p.namespace.len())
        .max()
        .unwrap_or(9)
        .max(9);
    println!(
        "{:w$}  {:wn$}  {:8}  {:15}  {:5}  {:9}  WHY",
        "POD", "NAMESPACE", "NODE", "IP", "PORT", "DATAPLANE"
    );
    for p in &info.pods {
        let port = p.port.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        let (dp, why) = match &p.enrollment {
            Some(e) => (e.dataplane.as_str(), e.why.as_str()),
            None => ("-", "a waypoint proxy"),
        };
        println!(
            "{:w$}  {:wn$}  {:8}  {:15}  {port:5}  {dp:9}  {why}",
            p.name,
            p.namespace,
            p.node,
            p.ip.to_string()
        );
    }
    println!();
    let ws = info
        .services
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(7)
        .max(7);
    println!(
        "{:ws$}  {:wn$}  {:15}  PORTS",
        "SERVICE", "NAMESPACE", "VIP"
    );
    for s in &info.services {
        let ports: Vec<String> = s.ports.iter().map(u16::to_string).collect();
        println!(
            "{:ws$}  {:wn$}  {:15}  {}",
            s.name,
            s.namespace,
            s.vip.to_string(),
            ports.join(",")
        );
    }
    println!();
    let from = info.pods.first().map(|p| p.name.as_str()).unwrap_or("POD");
    println!("Reach it from inside a pod (names resolve through the pod's /etc/hosts):");
    if let Some(svc) = info.services.first() {
        let port = svc.ports.first().copied().unwrap_or(80);
        println!(
            "  meshsim exec --cluster {} {from} -- curl -s http://{}:{port}/",
            info.name, svc.name
        );
    }
    println!("  meshsim exec --cluster {} {from} -- sh", info.name);
    if let Some(m) = &info.metrics {
        println!("Metrics of every proxy (Prometheus text): http://{m}/stats/prometheus");
    }
    println!("Press Ctrl-C to stop; everything the cluster made goes with it.");
}
