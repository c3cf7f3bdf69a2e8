//! `meshsim ztunnel-config` and `meshsim waypoint`: a running cluster's mesh configuration with
//! the columns and wording of `istioctl ztunnel-config` and `istioctl waypoint`.

use std::process::ExitCode;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ZtunnelTable {
    Workloads,
    Services,
    Policies,
    Certificates,
}

#[derive(clap::Args)]
pub struct ZtunnelArgs {
    /// What to list.
    #[arg(value_enum)]
    pub what: ZtunnelTable,
    /// Which cluster, when several are up.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Only this node's ztunnel (its pods, or the certificates it holds).
    #[arg(long)]
    pub node: Option<String>,
    /// `json` for the table as JSON.
    #[arg(short, long, default_value = "short")]
    pub output: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum WaypointCmd {
    List,
    Status,
}

#[derive(clap::Args)]
pub struct WaypointArgs {
    #[arg(value_enum)]
    pub what: WaypointCmd,
    /// Which cluster, when several are up.
    #[arg(long)]
    pub cluster: Option<String>,
}

fn show(
    cluster: Option<&str>,
    what: &str,
    node: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let uid = nix::unistd::getuid().as_raw();
    let info = sim::cluster::find(uid, cluster)?;
    let table = sim::cluster::query_config(uid, &info.name, what, node)?
        .map_err(|e| anyhow::anyhow!("cluster {}: {e}", info.name))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&table)?);
    } else {
        print!("{}", table.render());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn ztunnel(args: ZtunnelArgs) -> anyhow::Result<ExitCode> {
    let what = match args.what {
        ZtunnelTable::Workloads => "workloads",
        ZtunnelTable::Services => "services",
        ZtunnelTable::Policies => "policies",
        ZtunnelTable::Certificates => "certificates",
    };
    let json = match args.output.as_str() {
        "json" => true,
        "short" => false,
        other => anyhow::bail!("--output {other:?}: use `short` or `json`"),
    };
    show(args.cluster.as_deref(), what, args.node.as_deref(), json)
}

pub fn waypoint(args: WaypointArgs) -> anyhow::Result<ExitCode> {
    let what = match args.what {
        WaypointCmd::List => "waypoint-list",
        WaypointCmd::Status => "waypoint-status",
    };
    show(args.cluster.as_deref(), what, None, false)
}
