//! `meshsim logs`: a running cluster's proxy access logs, as `kubectl logs -l app=ztunnel`
//! reads a real cluster's (ztunnel's "connection complete" lines; the sidecars' and
//! waypoints' Envoy lines when `meshConfig.accessLogFile` is set).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Which cluster, when several are up (names are printed by `up`).
    #[arg(long)]
    pub cluster: Option<String>,
    /// The proxy, or a prefix of several: `ztunnel` (every node's), `ztunnel-node-1`,
    /// `sidecar-client-0`, `payments-waypoint-0`.
    pub component: String,
    /// Keep printing new lines as they are written, until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines of each proxy (the cluster keeps the last 5000 in memory).
    #[arg(long, default_value_t = 100)]
    pub tail: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let uid = nix::unistd::getuid().as_raw();
    let info = sim::cluster::find(uid, args.cluster.as_deref())?;
    let mut since: BTreeMap<String, u64> = BTreeMap::new();
    let mut tail = args.tail;
    loop {
        let r = sim::cluster::query_logs(uid, &info.name, &args.component, tail, &since)?;
        if r.next.is_empty() {
            anyhow::bail!(
                "no proxy of cluster {} has a name starting with {:?}; those with logs: {}",
                info.name,
                args.component,
                if r.components.is_empty() {
                    "none (ztunnel logs every connection; sidecars and waypoints only with meshConfig.accessLogFile)".to_string()
                } else {
                    r.components.join(", ")
                }
            );
        }
        let several = r.next.len() > 1;
        for (c, l) in &r.lines {
            if several {
                println!("[{c}] {l}");
            } else {
                println!("{l}");
            }
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        since = r.next;
        tail = usize::MAX;
        std::thread::sleep(Duration::from_millis(500));
    }
}
