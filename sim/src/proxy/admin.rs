//! The proxies' admin ports: each proxy's own `:15020/stats/prometheus` (and ztunnel's
//! `:15021/healthz/ready`) in its namespace, and the cluster's merged metrics on one host
//! loopback port, which a real Prometheus scrapes.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use prometheus_client::registry::Registry;

use super::telemetry::{Format, ProxyMetrics, registry, render};

/// A proxy's metrics and the labels that tell it apart in the merged view.
#[derive(Clone)]
pub struct MetricsSource {
    pub labels: Vec<(&'static str, String)>,
    pub metrics: Arc<ProxyMetrics>,
}

/// Several proxies' metrics as one registry (each under its own labels).
pub fn registry_of(sources: &[MetricsSource]) -> Registry {
    let proxies: Vec<(Vec<(&'static str, String)>, &ProxyMetrics)> = sources
        .iter()
        .map(|s| (s.labels.clone(), s.metrics.as_ref()))
        .collect();
    registry(&proxies)
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

/// Serves `/stats/prometheus` (and `/metrics`) with `sources`, and `/healthz/ready`, on
/// `listener`, for as long as the runtime runs.
pub async fn serve(listener: TcpListener, sources: Arc<Vec<MetricsSource>>) {
    let registry = Arc::new(registry_of(&sources));
    loop {
        let (conn, _) = crate::accept::next(&listener, "admin", None).await;
        let registry = registry.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let registry = registry.clone();
                async move {
                    let r = match req.uri().path() {
                        "/stats/prometheus" | "/metrics" => {
                            let accept = req
                                .headers()
                                .get(http::header::ACCEPT)
                                .and_then(|v| v.to_str().ok());
                            let format = Format::negotiate(accept);
                            reply(
                                StatusCode::OK,
                                format.content_type(),
                                render(&registry, format),
                            )
                        }
                        "/healthz/ready" => reply(StatusCode::OK, "text/plain", "ready\n".into()),
                        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
                    };
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(conn), svc)
                .await;
        });
    }
}

/// A proxy started but not ready: its readiness port answers `/healthz/ready` with `status`
/// and `why`, as ztunnel's readiness server does before its tasks are done (500, "not ready,
/// pending: …"; istio/ztunnel src/readiness/server.rs) and pilot-agent does for an Envoy with
/// no configuration yet (503). Stops, freeing the port, when dropped.
pub struct NotReady {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NotReady {
    pub fn serve(
        ns: &crate::netns::NetNs,
        status: StatusCode,
        why: String,
    ) -> std::io::Result<NotReady> {
        let addr = std::net::SocketAddr::from((
            std::net::Ipv4Addr::UNSPECIFIED,
            super::capture::READY_PORT,
        ));
        let l = super::sock::listen_in(ns, addr)?;
        let (tx, thread) = serve_on_thread("not-ready", l, move |l| async move {
            loop {
                let (conn, _) = crate::accept::next(&l, "readiness", None).await;
                let why = why.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let r = match req.uri().path() {
                            "/healthz/ready" => reply(status, "text/plain", why.clone()),
                            _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
                        };
                        async move { Ok::<_, std::convert::Infallible>(r) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(conn), svc)
                        .await;
                });
            }
        })?;
        Ok(NotReady {
            stop: Some(tx),
            thread: Some(thread),
        })
    }
}

/// Serves listener `l` with `serve` on a thread and runtime of its own (outside any
/// component's, so it neither counts as their CPU nor stops with them), until the returned
/// sender is sent to or dropped.
pub(crate) fn serve_on_thread<F, Fut>(
    name: &str,
    l: std::net::TcpListener,
    serve: F,
) -> std::io::Result<(
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
)>
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(l) = TcpListener::from_std(l) else {
                    return;
                };
                tokio::select! {
                    _ = serve(l) => {}
                    _ = rx => {}
                }
            });
        })?;
    Ok((tx, thread))
}

impl Drop for NotReady {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
