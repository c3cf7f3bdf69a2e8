//! `meshsim serve`: a scenario's apps outside the simulator (on a host, or as a container of
//! a real cluster's pod), with the same behaviour and the same settings as `app:` — the
//! servers are the simulator's own.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use sim::apps::serve::{AppIdentity, serve_http, serve_tcp_echo, serve_tcp_sink};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub app: App,
    /// The pod named in each HTTP response (`x-meshsim-pod` and the body's first line);
    /// default: `$POD_NAME`, else the host's name.
    #[arg(long, global = true)]
    pub pod: Option<String>,
    /// Its namespace; default: `$POD_NAMESPACE`, else `default`.
    #[arg(long, global = true)]
    pub namespace: Option<String>,
    /// Its workload; default: the pod's name up to its last two `-` parts (a Deployment's).
    #[arg(long, global = true)]
    pub workload: Option<String>,
}

/// The apps of a scenario's `app:`, with its fields as flags.
#[derive(clap::Subcommand)]
pub enum App {
    /// HTTP/1.1 echo (`app: {http: …}`).
    Http {
        #[arg(long)]
        port: u16,
        /// Body size of each response (a request's `x-echo-bytes` header overrides it).
        #[arg(long, default_value = "1KiB", value_parser = scenario::units::parse_size)]
        response_bytes: u64,
        #[arg(long, default_value_t = 200)]
        status: u16,
        /// Time the app takes before answering (its own work).
        #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
        service_time: std::time::Duration,
    },
    /// Echoes every byte back (`app: {tcpEcho: …}`).
    TcpEcho {
        #[arg(long)]
        port: u16,
    },
    /// Reads and discards everything (`app: {tcpSink: …}`).
    TcpSink {
        #[arg(long)]
        port: u16,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let pod = args
        .pod
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "meshsim".into());
    let id = AppIdentity {
        namespace: args
            .namespace
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into()),
        workload: args.workload.unwrap_or_else(|| deployment_of(&pod)),
        pod,
    };
    let port = match &args.app {
        App::Http { port, .. } | App::TcpEcho { port } | App::TcpSink { port } => *port,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(sim::apps::APP_WORKERS.max(2))
        .enable_all()
        .build()
        .context("cannot start the app's runtime")?;
    rt.block_on(async move {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}; is the port in use?"))?;
        eprintln!("meshsim serve: {} listening on {addr}", id.pod);
        let counters = Arc::default();
        let serve = async move {
            match args.app {
                App::Http {
                    port,
                    response_bytes,
                    status,
                    service_time,
                } => {
                    let spec = sim::apps::HttpEchoSpec {
                        port,
                        response_bytes,
                        status,
                        service_time,
                    };
                    serve_http(listener, spec, id, counters).await;
                }
                App::TcpEcho { .. } => serve_tcp_echo(listener, counters).await,
                App::TcpSink { .. } => serve_tcp_sink(listener, counters).await,
            }
        };
        // Kubernetes stops a container with SIGTERM; a terminal with Ctrl-C.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch for SIGTERM")?;
        tokio::select! {
            _ = serve => {}
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A Deployment's pod is `<deployment>-<replicaset hash>-<pod hash>`.
fn deployment_of(pod: &str) -> String {
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    match parts.as_slice() {
        [_, _, name] => name.to_string(),
        _ => pod.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_deployments_pod_names_its_workload() {
        assert_eq!(super::deployment_of("echo-5d9c7b8f6-x2k4q"), "echo");
        assert_eq!(
            super::deployment_of("payment-service-7f9-abcde"),
            "payment-service"
        );
        assert_eq!(super::deployment_of("solo"), "solo");
    }
}
