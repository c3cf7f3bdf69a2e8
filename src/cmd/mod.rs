pub mod calibrate;
pub mod check;
pub mod compare;
pub mod completions;
pub mod exec;
pub mod explain;
pub mod export;
pub mod import;
pub mod import_k8s;
pub mod introspect;
pub mod load;
pub mod logs;
pub mod plan;
pub mod reach;
pub mod repeat_auto;
pub mod replay;
pub mod report;
pub mod run;
pub mod schema;
pub mod serve;
pub mod token;
pub mod up;
pub mod validate;

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings and errors).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Whether this is a CI job (`CI` set to anything but empty, `0` or `false`): no progress
/// bars or live lines there, the logs stay readable.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Loads and validates a scenario for `run` and `up`. Errors name file, line and field; what
/// the manifests hold that the run will not reflect is said once here, on stderr, as
/// `meshsim validate` says it.
pub fn load_scenario(path: &std::path::Path) -> anyhow::Result<scenario::Loaded> {
    let loaded = scenario::load(path)?;
    for w in scenario::unmodelled::warnings(&loaded) {
        eprintln!("{w}");
    }
    Ok(loaded)
}

/// A data-plane mode on the command line: the values are listed in `--help` and offered by
/// shell completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataPlane {
    /// Pod -> service VIP (nftables DNAT) -> pod; no proxies.
    NoMesh,
    /// A sidecar in every pod, mTLS between them.
    Sidecar,
    /// A ztunnel per node (HBONE), plus the waypoints the manifests declare.
    Ambient,
    /// Ambient with a waypoint for every namespace that has a server.
    AmbientWaypoint,
    /// Each pod as its labels declare it (sidecar, ambient or out of the mesh).
    Declared,
}

impl From<DataPlane> for scenario::Mode {
    fn from(d: DataPlane) -> scenario::Mode {
        match d {
            DataPlane::NoMesh => scenario::Mode::NoMesh,
            DataPlane::Sidecar => scenario::Mode::Sidecar,
            DataPlane::Ambient => scenario::Mode::Ambient,
            DataPlane::AmbientWaypoint => scenario::Mode::AmbientWaypoint,
            DataPlane::Declared => scenario::Mode::Declared,
        }
    }
}
