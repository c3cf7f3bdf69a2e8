//! The workload apps: HTTP/1.1 echo, TCP echo and TCP sink, each a server on its own threads
//! inside its pod's network namespace.

use std::time::Duration;

/// What a workload's pods run. Resolved from the scenario; the topology starts one per pod.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AppSpec {
    /// Nothing listens (e.g. a pure client workload that load generators run in).
    None,
    /// HTTP/1.1 echo server.
    Http(HttpEchoSpec),
    /// Echoes every byte it reads back on the same connection.
    TcpEcho { port: u16 },
    /// Reads and discards everything (bulk stream target).
    TcpSink { port: u16 },
}

impl AppSpec {
    /// The port the app listens on, if any.
    pub fn port(&self) -> Option<u16> {
        match self {
            AppSpec::None => None,
            AppSpec::Http(h) => Some(h.port),
            AppSpec::TcpEcho { port } | AppSpec::TcpSink { port } => Some(*port),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpEchoSpec {
    pub port: u16,
    /// Body bytes of each response unless the request asks for another size.
    pub response_bytes: u64,
    /// Status code of each response.
    pub status: u16,
    /// Time the app waits before answering (models a backend's own service time).
    #[serde(with = "humantime_serde_compat")]
    pub service_time: Duration,
}

mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

pub mod serve;

pub use serve::{AppIdentity, ECHO_BYTES_HEADER, POD_HEADER};

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use crate::component::{Component, ComponentRuntime};

/// Worker threads an app replica runs on.
pub const APP_WORKERS: usize = 1;

/// Starts the app of one pod on its own threads inside the pod's namespace. Returns `None` for
/// a pod without an app. The listener is bound before this returns, so the app is reachable.
pub fn start(
    component: &Arc<Component>,
    app: &AppSpec,
    id: AppIdentity,
) -> io::Result<Option<ComponentRuntime>> {
    let Some(port) = app.port() else {
        return Ok(None);
    };
    let rt = component.start_runtime(APP_WORKERS, None)?;
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let listener = rt.run(async move { tokio::net::TcpListener::bind(addr).await })?;
    let span = tracing::info_span!("app", pod = %id.pod);
    let app = app.clone();
    let counters = component.counters.clone();
    rt.spawn(tracing::Instrument::instrument(
        async move {
            match app {
                AppSpec::Http(spec) => serve::serve_http(listener, spec, id, counters).await,
                AppSpec::TcpEcho { .. } => serve::serve_tcp_echo(listener, counters).await,
                AppSpec::TcpSink { .. } => serve::serve_tcp_sink(listener, counters).await,
                AppSpec::None => {}
            }
        },
        span,
    ));
    Ok(Some(rt))
}
